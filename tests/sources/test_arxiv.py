"""arXiv client: parsing the real recorded answers, and the client against FakeArxiv."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from bot.core.errors import (
    ArxivApiError,
    MalformedResponseError,
    SourceUnavailableError,
    UnknownCategoryError,
)
from bot.core.models import Announcement, AnnounceType, Paper
from bot.fakes.arxiv import FakeArxiv
from bot.fakes.atom import ATOM_CONTENT_TYPE, RSS_CONTENT_TYPE, render_api_feed
from bot.settings import ArxivSettings, HttpSettings
from bot.sources.arxiv import (
    DEFAULT_MAX_ISOLATION_REQUESTS,
    ArxivClient,
    ArxivRateLimiter,
    build_title_query,
    parse_atom,
    parse_rss,
    split_authors,
)
from bot.sources.http import HttpClient
from tests.sources.conftest import TEST_DATA, RecordingSleep

UTC = dt.UTC
GOLDEN = "arxiv_api/arxiv.py-golden-2026-extracted"
LEGACY = "arxiv_api/arxiv.py-legacy-2016"
RSS = "arxiv_rss"
ARXIV_DATA = TEST_DATA / "arxiv"


def read(root: Path, name: str) -> bytes:
    return (root / name).read_bytes()


def golden(root: Path, prefix: str) -> bytes:
    (path,) = (root / GOLDEN).glob(prefix + "*.atom.xml")
    return path.read_bytes()


def when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def make_paper(n: int, **changes: object) -> Paper:
    paper = Paper(
        arxiv_id=f"2401.{10000 + n:05d}",
        title=f"Graph paper number {n}",
        abstract=f"We study graph {n}.",
        authors=("Ada Lovelace", "Alan Turing"),
        primary_category="cs.LG",
        categories=("cs.LG", "stat.ML"),
        published=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        updated=dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC),
        version=1,
    )
    return dataclasses.replace(paper, **changes)  # type: ignore[arg-type]


def announcement(arxiv_id: str, kind: AnnounceType, **changes: object) -> Announcement:
    ann = Announcement(
        arxiv_id=arxiv_id,
        version=1,
        announce_type=kind,
        title=f"Title of {arxiv_id}",
        abstract=f"Abstract of {arxiv_id}.",
        authors=("Hyewon Jeong", "Przemys{\\l}aw Olbratowski"),
        categories=("cs.LG", "stat.ML"),
        # Announcement days are midnights in New York (-0500 in winter).
        announced=dt.datetime(2024, 11, 28, 5, 0, tzinfo=UTC),
    )
    return dataclasses.replace(ann, **changes)  # type: ignore[arg-type]


# ============================================================================================
# Parsing the real recorded API answers (2026 serializer)


def test_every_2026_fixture_parses(real_fixtures: Path) -> None:
    files = sorted((real_fixtures / GOLDEN).glob("*.atom.xml"))
    assert len(files) == 22
    for path in files:
        if path.name.startswith("id_abc"):
            continue
        page = parse_atom(path.read_bytes())
        assert page.start_index is not None
        assert page.items_per_page is not None
        for paper in page.papers:
            assert paper.title
            assert paper.abstract
            assert paper.authors
            assert paper.version is not None
            assert paper.version >= 1
            assert paper.categories[0] == paper.primary_category
            assert len(set(paper.categories)) == len(paper.categories)
            assert paper.published.tzinfo is UTC
            assert paper.updated.tzinfo is UTC
            assert page.links[paper.arxiv_id].pdf_url.startswith("https://arxiv.org/pdf/")


def test_search_pages_match_their_requests(real_fixtures: Path) -> None:
    for path in sorted((real_fixtures / GOLDEN).glob("q_testing_*.atom.xml")):
        start, size = re.match(r"q_testing_s(\d+)_m(\d+)_", path.name).groups()  # type: ignore[union-attr]
        page = parse_atom(path.read_bytes())
        assert page.total_results == 214881
        assert page.start_index == int(start)
        assert page.items_per_page == int(size)
        assert len(page.papers) == int(size)


def test_single_paper_values(real_fixtures: Path) -> None:
    page = parse_atom(golden(real_fixtures, "id_1605.08386"))
    assert page.total_results == 1
    (paper,) = page.papers
    assert paper == Paper(
        arxiv_id="1605.08386",
        title="Heat-bath random walks with Markov bases",
        abstract=paper.abstract,
        authors=("Caprice Stanley", "Tobias Windisch"),
        primary_category="math.CO",
        categories=("math.CO", "math.ST"),
        published=when("2016-05-26T17:59:46Z"),
        updated=when("2016-05-26T17:59:46Z"),
        version=1,
        comment="20 pages, 3 figures",
        journal_ref=None,
        doi=None,
    )
    assert paper.abstract.startswith("Graphs on lattice points are studied whose edges")
    assert page.links["1605.08386"].abs_url == "https://arxiv.org/abs/1605.08386v1"
    assert page.links["1605.08386"].pdf_url == "https://arxiv.org/pdf/1605.08386v1"


def test_doi_journal_ref_and_non_ascii_authors(real_fixtures: Path) -> None:
    page = parse_atom(golden(real_fixtures, "q_testing_s0_m10_bc5a"))
    by_id = {p.arxiv_id: p for p in page.papers}
    ltr = by_id["2405.13786"]
    assert ltr.authors == ("Aurora Ramírez", "Mario Berrios", "José Raúl Romero", "Robert Feldt")
    assert ltr.doi == "10.1109/ICSTW58534.2023.00023"
    assert ltr.journal_ref == (
        "Proc. 2023 IEEE International Conference on Software Testing, Verification and "
        "Validation Workshops (ICSTW), pp. 66-69"
    )
    assert ltr.categories == ("cs.SE", "cs.AI")
    fuzz = by_id["2005.14124"]
    assert fuzz.version == 2
    assert fuzz.categories == ("cs.SE", "cs.CR", "cs.LG")
    assert fuzz.doi == "10.1145/3395363.3397376"


@pytest.mark.parametrize(
    ("prefix", "arxiv_id", "categories", "authors"),
    [
        ("id_astro-ph_0601001", "astro-ph/0601001", ("astro-ph",), 4),
        ("id_hep-ex_0406020v1", "hep-ex/0406020", ("hep-ex",), 1),
        ("id_quant-ph_0201082v1", "quant-ph/0201082", ("quant-ph", "cs.PL"), 1),
    ],
)
def test_old_style_ids(
    real_fixtures: Path, prefix: str, arxiv_id: str, categories: tuple[str, ...], authors: int
) -> None:
    (paper,) = parse_atom(golden(real_fixtures, prefix)).papers
    assert paper.arxiv_id == arxiv_id
    assert paper.version == 1
    assert paper.categories == categories
    assert len(paper.authors) == authors


def test_old_style_journal_ref_and_escaped_text(real_fixtures: Path) -> None:
    (paper,) = parse_atom(golden(real_fixtures, "id_astro-ph_0601001")).papers
    assert paper.journal_ref == "ActaAstron.56:1-50,2006"
    assert paper.authors[0] == "Andrew Gould"  # the <arxiv:affiliation> is not part of the name
    assert "Gould & Morgan (2003)" in paper.abstract  # &amp; unescaped
    assert "V_max<17.5" in paper.abstract  # &lt; unescaped
    assert paper.abstract.startswith("We derive")  # the leading spaces are gone


@pytest.mark.parametrize("prefix", ["id_0000.0000", "id_0808.05394_s0"])
def test_unknown_ids_give_an_empty_page(real_fixtures: Path, prefix: str) -> None:
    page = parse_atom(golden(real_fixtures, prefix))
    assert page.papers == []
    assert page.total_results == 0


def test_unknown_id_is_dropped_from_a_list(real_fixtures: Path) -> None:
    page = parse_atom(golden(real_fixtures, "id_0808.05394_1707.08567"))
    assert [p.arxiv_id for p in page.papers] == ["1707.08567"]
    assert page.total_results == 1
    assert len(page.papers[0].authors) == 34
    assert "Dirk Wübben" in page.papers[0].authors


def test_versioned_request(real_fixtures: Path) -> None:
    (paper,) = parse_atom(golden(real_fixtures, "id_2104.12255v1")).papers
    assert (paper.arxiv_id, paper.version, paper.title) == ("2104.12255", 1, "0")


def test_error_entry_raises(real_fixtures: Path) -> None:
    with pytest.raises(ArxivApiError) as info:
        parse_atom(golden(real_fixtures, "id_abc"))
    assert info.value.source == "arxiv"
    assert str(info.value) == "arxiv: incorrect id format for abc"


# ============================================================================================
# The 2016 serializer


def test_legacy_id_list(real_fixtures: Path) -> None:
    page = parse_atom(read(real_fixtures, f"{LEGACY}/id_list_1111.2011v2.atom.xml"))
    assert (page.total_results, page.start_index, page.items_per_page) == (1, 0, 10)
    (paper,) = page.papers
    assert paper.arxiv_id == "1111.2011"
    assert paper.version == 2
    # Hard-wrapped title and abstract come out on one line.
    assert paper.title == (
        "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit"
    )
    assert "\n" not in paper.abstract
    assert "  " not in paper.abstract
    assert paper.abstract.startswith("Theoretical description of anisotropic systems, such as")
    assert paper.published == when("2011-11-08T18:48:36Z")
    assert paper.updated == when("2012-04-02T12:38:54Z")
    assert paper.authors == ("James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic")
    assert paper.doi == "10.1103/PhysRevB.85.115117"
    assert paper.journal_ref == "Phys. Rev. B 85, 115117 (2012)"
    assert paper.comment == "8 pages, 3 figures. Published version"
    assert paper.primary_category == "cond-mat.str-el"
    assert paper.categories == ("cond-mat.str-el", "cond-mat.stat-mech")
    assert page.links["1111.2011"].pdf_url == "http://arxiv.org/pdf/1111.2011v2"


@pytest.mark.parametrize(
    ("name", "count", "total"),
    [
        ("sq_au_del_maestro.atom.xml", 10, 31),
        ("sq_au_del_maestro_AND_ti_checkerboard.atom.xml", 1, 1),
        ("sq_au_del_maestro_AND_ti_quantum_criticality.atom.xml", 2, 2),
        ("sq_au_del_maestro_ANDNOT_ti_checkerboard_OR_ti_Pyrochlore.atom.xml", 10, 24),
    ],
)
def test_legacy_searches(real_fixtures: Path, name: str, count: int, total: int) -> None:
    page = parse_atom(read(real_fixtures, f"{LEGACY}/{name}"))
    assert (len(page.papers), page.total_results) == (count, total)
    assert all(any("Del Maestro" in a for a in p.authors) for p in page.papers)


def test_legacy_checkerboard_paper(real_fixtures: Path) -> None:
    (paper,) = parse_atom(
        read(real_fixtures, f"{LEGACY}/sq_au_del_maestro_AND_ti_checkerboard.atom.xml")
    ).papers
    assert paper.arxiv_id == "cond-mat/0603029"
    assert paper.title == (
        "From stripe to checkerboard order on the square lattice in the presence of quenched "
        "disorder"
    )
    assert paper.categories == ("cond-mat.str-el", "cond-mat.supr-con")


def test_legacy_error_entry_with_http_200() -> None:
    with pytest.raises(ArxivApiError, match=r"incorrect id format for 1234\.12345"):
        parse_atom((ARXIV_DATA / "legacy_error_http200.atom.xml").read_bytes())


def test_offset_timestamps_become_utc(real_fixtures: Path) -> None:
    data = read(real_fixtures, f"{LEGACY}/id_list_1111.2011v2.atom.xml").replace(
        b"<published>2011-11-08T18:48:36Z</published>",
        b"<published>2011-11-08T14:48:36-04:00</published>",
    )
    (paper,) = parse_atom(data).papers
    assert paper.published == dt.datetime(2011, 11, 8, 18, 48, 36, tzinfo=UTC)
    assert paper.published.tzinfo is UTC


# ============================================================================================
# Fallbacks and hostile input


def test_pdf_link_without_title_falls_back_to_mime_type(real_fixtures: Path) -> None:
    # The Nov 2025 backend briefly dropped link titles (arxiv.py #181).
    data = golden(real_fixtures, "id_1605.08386").replace(b' title="pdf"', b"")
    page = parse_atom(data)
    assert page.links["1605.08386"].pdf_url == "https://arxiv.org/pdf/1605.08386v1"


def test_missing_pdf_link_and_primary_category_fall_back(real_fixtures: Path) -> None:
    data = golden(real_fixtures, "id_1605.08386")
    data = re.sub(rb'\s*<link href="https://arxiv.org/pdf/[^>]*/>', b"", data)
    data = re.sub(rb"\s*<arxiv:primary_category[^>]*/>", b"", data)
    page = parse_atom(data)
    (paper,) = page.papers
    assert page.links["1605.08386"].pdf_url == "https://arxiv.org/pdf/1605.08386"
    assert paper.primary_category == "math.CO"  # the first <category>
    assert paper.categories == ("math.CO", "math.ST")


def test_primary_category_first_and_not_repeated(real_fixtures: Path) -> None:
    data = golden(real_fixtures, "id_1605.08386").replace(
        b'<arxiv:primary_category term="math.CO"/>', b'<arxiv:primary_category term="math.ST"/>'
    )
    (paper,) = parse_atom(data).papers
    assert paper.categories == ("math.ST", "math.CO")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"Service Unavailable",
        b"<html><body>Bad gateway</body></html>",
        b"{}",
        b"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><entry>",
    ],
)
def test_malformed_answers(body: bytes) -> None:
    with pytest.raises(MalformedResponseError) as info:
        parse_atom(body)
    assert info.value.source == "arxiv"


def test_truncated_fixture_is_malformed(real_fixtures: Path) -> None:
    data = golden(real_fixtures, "q_testing_s0_m10_bc5a")
    with pytest.raises(MalformedResponseError):
        parse_atom(data[: len(data) // 2])


def test_rss_is_not_atom_and_atom_is_not_rss(real_fixtures: Path) -> None:
    with pytest.raises(MalformedResponseError, match="not an Atom feed"):
        parse_atom(read(real_fixtures, f"{RSS}/aioarxiv_empty_rss_mock_feed.xml"))
    with pytest.raises(MalformedResponseError, match="not an RSS feed"):
        parse_rss(golden(real_fixtures, "id_1605.08386"))


def test_entities_are_not_expanded() -> None:
    data = (ARXIV_DATA / "billion_laughs.atom.xml").read_bytes()
    try:
        page = parse_atom(data)
    except MalformedResponseError:
        return  # refusing the document is as good as not expanding it
    assert all("lollol" not in p.title for p in page.papers)


def test_external_entities_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    data = f"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>
<feed xmlns="http://www.w3.org/2005/Atom">
  <entry>
    <id>http://arxiv.org/abs/1605.08386v1</id>
    <title>&xxe;</title>
    <summary>&xxe;</summary>
    <published>2016-05-26T17:59:46Z</published>
    <updated>2016-05-26T17:59:46Z</updated>
  </entry>
</feed>""".encode()
    try:
        page = parse_atom(data)
    except MalformedResponseError:
        return
    assert all("TOP-SECRET" not in p.title + p.abstract for p in page.papers)


# ============================================================================================
# RSS


def test_full_day_rss_feed(real_fixtures: Path) -> None:
    feed = parse_rss(read(real_fixtures, f"{RSS}/aioarxiv_rss_mock_feed.xml"))
    assert feed.error is None
    assert not feed.empty
    assert len(feed.announcements) == 1504
    assert Counter(a.announce_type for a in feed.announcements) == {
        AnnounceType.NEW: 926,
        AnnounceType.REPLACE: 569,
        AnnounceType.CROSS: 9,
    }
    assert feed.categories.startswith("astro-ph+cond-mat+physics+quant-ph+math+cs+")
    assert feed.published == dt.datetime(2024, 11, 28, 5, 0, tzinfo=UTC)
    assert feed.skip_days == ("Saturday", "Sunday")
    assert all(a.abstract and not a.abstract.startswith("arXiv:") for a in feed.announcements)


def test_rss_item_values(real_fixtures: Path) -> None:
    feed = parse_rss(read(real_fixtures, f"{RSS}/derived/aioarxiv_rss_mock_feed.EXCERPT.xml"))
    by_id = {a.arxiv_id: a for a in feed.announcements}
    assert len(by_id) == 12
    ecg = by_id["2411.17702"]
    assert ecg.title == (
        'Finding "Good Views" of Electrocardiogram Signals for Inferring Abnormalities in '
        "Cardiac Condition"
    )
    assert ecg.version == 1
    assert ecg.announce_type is AnnounceType.NEW
    assert ecg.abstract.startswith("Electrocardiograms (ECGs) are an established technique")
    assert ecg.authors == ("Hyewon Jeong", "Suyeol Yun", "Hammaad Adam")
    assert ecg.categories == ("eess.SP", "cs.LG")
    assert ecg.announced == dt.datetime(2024, 11, 28, 5, 0, tzinfo=UTC)
    # TeX escapes stay as they are.
    assert by_id["2411.17775"].authors == ("V\\'aclav Vavry\\v{c}uk",)
    eeg = by_id["2411.17709"].authors
    assert len(eeg) == 8
    assert eeg[2] == "Przemys{\\l}aw Olbratowski"
    assert eeg[-1] == "Jaros{\\l}aw \\.Zygierewicz"
    cross = by_id["2202.06515"]
    assert (cross.version, cross.announce_type) == (3, AnnounceType.CROSS)
    assert by_id["1401.3665"].announce_type is AnnounceType.REPLACE
    assert by_id["1401.3665"].version == 4


def test_empty_rss_day(real_fixtures: Path) -> None:
    feed = parse_rss(read(real_fixtures, f"{RSS}/aioarxiv_empty_rss_mock_feed.xml"))
    assert feed.empty
    assert feed.error is None
    assert feed.announcements == []
    assert feed.categories == "test"
    assert feed.skip_days == ("Saturday", "Sunday")


def test_rss_error_feed(real_fixtures: Path) -> None:
    feed = parse_rss(read(real_fixtures, f"{RSS}/aioarxiv_error_rss_mock_feed.xml"))
    assert not feed.empty
    assert feed.announcements == []
    assert feed.error is not None
    assert feed.error.startswith("Bad archive 'astroph'. Valid archive names are: astro-ph,")
    assert feed.categories == "astroph"
    assert feed.skip_days == ()


def test_rss_dedupes_on_id(real_fixtures: Path) -> None:
    data = read(real_fixtures, f"{RSS}/derived/aioarxiv_rss_mock_feed.EXCERPT.xml")
    first_item = re.search(rb"<item>.*?</item>", data, re.S).group(0)  # type: ignore[union-attr]
    doubled = data.replace(b"</channel>", first_item + b"\n</channel>")
    assert len(parse_rss(doubled).announcements) == 12


@pytest.mark.parametrize(
    ("creator", "expected"),
    [
        ("Jun Cui", ("Jun Cui",)),
        ("Hyewon Jeong, Suyeol Yun, Hammaad Adam", ("Hyewon Jeong", "Suyeol Yun", "Hammaad Adam")),
        (
            "Jia-Wen Li (Yunnan Univ.), Xinwu Cao (Zhejiang Univ.)",
            ("Jia-Wen Li", "Xinwu Cao"),
        ),
        (
            "Aleteia Araujo (University of Brasilia Brazil, The University of Melbourne "
            "Australia), Breno Costa (University of Brasilia Brazil)",
            ("Aleteia Araujo", "Breno Costa"),
        ),
        ("Hongni Jin, Kenneth M. Merz, Jr.", ("Hongni Jin", "Kenneth M. Merz Jr.")),
        ('Fran\\c{c}ois Derrida, Ga\\"el Richard', ("Fran\\c{c}ois Derrida", 'Ga\\"el Richard')),
        ("A {B, C} D, E", ("A {B, C} D", "E")),
        ("", ()),
    ],
)
def test_split_authors(creator: str, expected: tuple[str, ...]) -> None:
    assert split_authors(creator) == expected


# ============================================================================================
# Title search query


@pytest.mark.parametrize(
    ("words", "query"),
    [
        ("attention", "ti:attention"),
        ("Attention is all you need", "ti:attention AND ti:is AND ti:all AND ti:you AND ti:need"),
        (
            '"graph" (neural) AND networks: OR ti:x',
            "ti:graph AND ti:neural AND ti:networks AND ti:ti AND ti:x",
        ),
        ("self-supervised  learning", "ti:self AND ti:supervised AND ti:learning"),
        ("Schrödinger équation", "ti:schrödinger AND ti:équation"),
        ("%28x%29 & y", "ti:28x AND ti:29 AND ti:y"),
        ("", None),
        ('"" () AND OR', None),
    ],
)
def test_build_title_query(words: str, query: str | None) -> None:
    assert build_title_query(words) == query


def test_build_title_query_is_bounded() -> None:
    query = build_title_query(" ".join(f"word{i}" for i in range(50)))
    assert query is not None
    assert query.count("ti:") == 12


# ============================================================================================
# The client against FakeArxiv


@pytest.fixture
async def fake() -> AsyncIterator[FakeArxiv]:
    async with FakeArxiv() as server:
        yield server


ClientFactory = Callable[..., ArxivClient]


@pytest.fixture
def make_client(
    fake: FakeArxiv, http_session: aiohttp.ClientSession, sleep: RecordingSleep
) -> ClientFactory:
    def build(
        *,
        interval: float = 0.0,
        retries: int = 4,
        batch_size: int = 100,
        limiter: ArxivRateLimiter | None = None,
        empty_page_retries: int = 3,
        max_isolation_requests: int = DEFAULT_MAX_ISOLATION_REQUESTS,
    ) -> ArxivClient:
        settings = ArxivSettings(
            api_url=fake.api_url,
            rss_url=fake.rss_url,
            min_interval_seconds=interval,
            batch_size=batch_size,
        )
        http = HttpClient(http_session, HttpSettings(retries=retries), source="arxiv", sleep=sleep)
        return ArxivClient(
            http,
            settings,
            limiter or ArxivRateLimiter(interval),
            empty_page_retries=empty_page_retries,
            max_isolation_requests=max_isolation_requests,
        )

    return build


def api_arrivals(fake: FakeArxiv) -> list[dict[str, str]]:
    return [a.query for a in fake.arrivals if a.path == "/api/query"]


async def test_batches_of_at_most_100_ids(fake: FakeArxiv, make_client: ClientFactory) -> None:
    papers = [make_paper(i) for i in range(250)]
    fake.add_papers(papers)
    result = await make_client().fetch_papers(p.arxiv_id for p in papers)
    queries = api_arrivals(fake)
    assert len(queries) == 3
    sizes = [len(q["id_list"].split(",")) for q in queries]
    assert sizes == [100, 100, 50]
    assert [int(q["max_results"]) for q in queries] == sizes
    assert list(result.papers) == [p.arxiv_id for p in papers]
    assert result.missing == []


async def test_smaller_batch_size_setting(fake: FakeArxiv, make_client: ClientFactory) -> None:
    fake.add_papers(make_paper(i) for i in range(5))
    result = await make_client(batch_size=2).fetch_papers(make_paper(i).arxiv_id for i in range(5))
    assert [len(q["id_list"].split(",")) for q in api_arrivals(fake)] == [2, 2, 1]
    assert len(result.papers) == 5


async def test_missing_invalid_duplicate_and_versioned_ids(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    fake.add_papers([make_paper(1), make_paper(2, version=3)])
    result = await make_client().fetch_papers(
        ["2401.10001", "2401.10002v2", "arXiv:2401.10001", "2401.19999", "abc", "2401.10002"]
    )
    assert list(result.papers) == ["2401.10001", "2401.10002"]
    assert result.papers["2401.10002"].version == 3  # versions are stripped: the latest comes back
    assert result.missing == ["2401.19999", "abc"]
    (query,) = api_arrivals(fake)
    # Invalid ids are never sent: one would make arXiv reject the whole batch.
    assert query["id_list"] == "2401.10001,2401.10002,2401.19999"
    assert query["max_results"] == "3"


async def test_nothing_to_fetch_makes_no_request(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    result = await make_client().fetch_papers([])
    assert (result.papers, result.missing, fake.arrivals) == ({}, [], [])


async def test_papers_round_trip_through_the_fake(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    papers = [
        make_paper(1),
        make_paper(
            2,
            title="Escaping <b>tags</b> & \"quotes\" in 'titles'",
            abstract="Ünïcödé abstract with 5 < 6 && x > y; Aurora Ramírez.",
            authors=("Aurora Ramírez", "José Raúl Romero", "Dirk Wübben"),
            primary_category="cs.SE",
            categories=("cs.SE", "cs.AI", "cs.LG"),
            version=4,
            comment="12 pages, 3 figures",
            journal_ref="Proc. ICSTW 2023, pp. 66-69",
            doi="10.1109/ICSTW58534.2023.00023",
        ),
        make_paper(
            3,
            arxiv_id="hep-th/9901001",
            primary_category="hep-th",
            categories=("hep-th", "gr-qc"),
            published=dt.datetime(1999, 1, 1, 0, 0, 1, tzinfo=UTC),
            updated=dt.datetime(1999, 2, 1, 0, 0, 1, tzinfo=UTC),
            version=2,
        ),
    ]
    fake.add_papers(papers)
    result = await make_client().fetch_papers(p.arxiv_id for p in papers)
    assert list(result.papers.values()) == papers


async def test_rate_limit_spacing_measured_at_the_server(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    interval = 0.1
    fake.add_papers(make_paper(i) for i in range(250))
    fake.set_announcements("cs.LG", [announcement("2411.17702", AnnounceType.NEW)])
    limiter = ArxivRateLimiter(interval)
    # Two clients (API and RSS callers alike) share the one per-process limiter.
    first = make_client(interval=interval, limiter=limiter)
    second = make_client(interval=interval, limiter=limiter)
    await asyncio.gather(
        first.fetch_papers(make_paper(i).arxiv_id for i in range(250)),
        second.announcements(["cs.LG"]),
        second.search("graph paper"),
    )
    assert len(fake.arrivals) == 5
    gaps = fake.gaps()
    # Request latency varies a little (a new connection vs a reused one), hence the slack.
    assert min(gaps) >= interval * 0.8, gaps


async def test_limiter_allows_one_request_in_flight() -> None:
    limiter = ArxivRateLimiter(0.02)
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    in_flight = peak = 0

    async def request() -> None:
        nonlocal in_flight, peak
        async with limiter:
            starts.append(loop.time())
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.03)  # slower than the interval: the lock must still hold
            in_flight -= 1

    await asyncio.gather(*(request() for _ in range(4)))
    assert peak == 1
    assert all(b - a >= 0.02 - 1e-3 for a, b in itertools.pairwise(starts))


async def test_limiter_is_released_when_a_waiter_is_cancelled() -> None:
    limiter = ArxivRateLimiter(60)
    async with limiter:
        pass
    waiter = asyncio.create_task(limiter.__aenter__())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # waiting out the 60 s interval
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # The lock was given back, so a later caller only waits for the interval, not forever.
    assert not limiter._lock.locked()


def test_limiter_rejects_negative_interval() -> None:
    with pytest.raises(ValueError, match="min_interval_seconds"):
        ArxivRateLimiter(-1)
    assert ArxivRateLimiter.from_settings(ArxivSettings()).min_interval_seconds == 3.0


async def test_429_retry_after_is_honoured(
    fake: FakeArxiv, make_client: ClientFactory, sleep: RecordingSleep
) -> None:
    fake.add_papers([make_paper(1)])
    fake.fail_next(429, headers={"Retry-After": "7"})
    result = await make_client().fetch_papers(["2401.10001"])
    assert list(result.papers) == ["2401.10001"]
    assert sleep.waits == [7.0]
    assert len(api_arrivals(fake)) == 2


async def test_503_is_retried_and_every_attempt_is_rate_limited(
    fake: FakeArxiv, make_client: ClientFactory, sleep: RecordingSleep
) -> None:
    interval = 0.05
    fake.add_papers([make_paper(1)])
    fake.fail_next(503, times=2)
    result = await make_client(interval=interval).fetch_papers(["2401.10001"])
    assert list(result.papers) == ["2401.10001"]
    assert len(sleep.waits) == 2
    assert len(fake.arrivals) == 3
    # The backoff sleeps are recorded, not slept: the spacing comes from the limiter alone.
    assert min(fake.gaps()) >= interval * 0.8


async def test_an_answer_cut_off_mid_body_is_retried(
    fake: FakeArxiv, make_client: ClientFactory, sleep: RecordingSleep
) -> None:
    fake.add_papers([make_paper(1)])
    fake.truncate_next()  # Content-Length promises more than arrives, then the socket closes
    result = await make_client().fetch_papers(["2401.10001"])
    assert list(result.papers) == ["2401.10001"]
    assert len(api_arrivals(fake)) == 2
    assert len(sleep.waits) == 1


async def test_answers_cut_off_beyond_the_retries_are_source_unavailable(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    fake.truncate_next(times=3)
    with pytest.raises(SourceUnavailableError, match=r"^arxiv: answer cut short after 3 attempts"):
        await make_client(retries=2).fetch_papers(["2401.10001"])
    assert len(api_arrivals(fake)) == 3


async def test_retries_exhausted(
    fake: FakeArxiv, make_client: ClientFactory, sleep: RecordingSleep
) -> None:
    fake.fail_next(503, times=3)
    with pytest.raises(SourceUnavailableError, match="HTTP 503 after 3 attempts"):
        await make_client(retries=2).fetch_papers(["2401.10001"])
    assert len(fake.arrivals) == 3
    assert len(sleep.waits) == 2


async def test_malformed_body(fake: FakeArxiv, make_client: ClientFactory) -> None:
    fake.malformed_next()
    with pytest.raises(MalformedResponseError):
        await make_client().fetch_papers(["2401.10001"])


async def test_empty_page_flake_is_retried(fake: FakeArxiv, make_client: ClientFactory) -> None:
    fake.add_papers([make_paper(1), make_paper(2)])
    fake.empty_page_next(times=2)
    result = await make_client().fetch_papers(["2401.10001", "2401.10002"])
    assert list(result.papers) == ["2401.10001", "2401.10002"]
    assert result.missing == []
    queries = api_arrivals(fake)
    assert len(queries) == 3
    assert all(q["id_list"] == "2401.10001,2401.10002" for q in queries)


async def test_empty_page_retries_are_bounded(fake: FakeArxiv, make_client: ClientFactory) -> None:
    fake.add_papers([make_paper(1)])
    fake.empty_page_next(times=10)
    result = await make_client(empty_page_retries=2).fetch_papers(["2401.10001"])
    assert result.papers == {}
    assert result.missing == ["2401.10001"]
    assert len(api_arrivals(fake)) == 3


async def test_truly_unknown_ids_are_not_retried(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    result = await make_client().fetch_papers(["2401.10001"])
    assert result.missing == ["2401.10001"]
    assert len(api_arrivals(fake)) == 1  # totalResults 0 promised nothing more


async def test_http_400_error_entry_becomes_arxiv_api_error(
    fake: FakeArxiv, make_client: ClientFactory, real_fixtures: Path
) -> None:
    fake.serve_next(golden(real_fixtures, "id_abc"), status=400)
    with pytest.raises(ArxivApiError, match="incorrect id format for abc"):
        await make_client().fetch_papers(["2401.10001"])
    assert len(fake.arrivals) == 1  # a 400 is an answer, not something to retry


def id_lists(fake: FakeArxiv) -> list[list[str]]:
    return [q["id_list"].split(",") for q in api_arrivals(fake)]


async def test_a_refused_batch_is_split_to_isolate_the_offending_id(
    fake: FakeArxiv, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    papers = [make_paper(i) for i in range(10)]
    fake.add_papers(papers)
    bad = papers[3].arxiv_id
    fake.reject_ids(bad)
    wanted = [p.arxiv_id for p in papers]

    result = await make_client().fetch_papers(wanted)

    assert list(result.papers) == [i for i in wanted if i != bad]
    assert result.missing == [bad]
    assert result.rejected == [bad]
    lists = id_lists(fake)
    assert lists[0] == wanted  # the whole batch first, refused
    # Then halves: log2(10) levels, and a half whose sibling fetched fine is not asked whole.
    assert len(lists) <= 1 + 2 * 4
    assert all(len(ids) < 10 for ids in lists[1:])
    assert f"refused id {bad}" in caplog.text


async def test_several_refused_ids_in_several_batches(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    papers = [make_paper(i) for i in range(9)]
    fake.add_papers(papers)
    wanted = [p.arxiv_id for p in papers]
    # Two bad ids in the first batch of four, and the last batch is one bad id on its own.
    fake.reject_ids(wanted[0], wanted[3], wanted[8])

    result = await make_client(batch_size=4).fetch_papers(wanted)

    assert list(result.papers) == [wanted[i] for i in (1, 2, 4, 5, 6, 7)]
    assert result.missing == [wanted[0], wanted[3], wanted[8]]
    assert result.rejected == [wanted[0], wanted[3], wanted[8]]


async def test_isolation_is_bounded_when_every_request_is_refused(
    fake: FakeArxiv, make_client: ClientFactory, real_fixtures: Path
) -> None:
    # An error that is not about any one id: arXiv refuses whatever is asked.
    fake.serve_next(golden(real_fixtures, "id_abc"), status=400, times=100)
    client = make_client(max_isolation_requests=5)
    wanted = [make_paper(i).arxiv_id for i in range(64)]

    with pytest.raises(ArxivApiError, match=r"gave up isolating the refused ids after 5 extra"):
        await client.fetch_papers(wanted)

    assert len(api_arrivals(fake)) == 1 + 5


async def test_a_single_id_look_up_still_raises_the_error(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    fake.add_papers([make_paper(1)])
    fake.reject_ids("2401.10001")
    with pytest.raises(ArxivApiError, match=r"incorrect id format for 2401\.10001"):
        await make_client().fetch_papers(["2401.10001v2"])
    assert len(api_arrivals(fake)) == 1


async def test_fake_rejects_a_well_formed_id_like_a_bad_one(
    fake: FakeArxiv, http_session: aiohttp.ClientSession
) -> None:
    fake.add_papers([make_paper(1), make_paper(2)])
    fake.reject_ids("2401.10002")
    params = {"id_list": "2401.10001,2401.10002v1"}
    async with http_session.get(fake.api_url, params=params) as resp:
        assert resp.status == 400
        body = await resp.read()
    with pytest.raises(ArxivApiError, match=r"incorrect id format for 2401\.10002v1"):
        parse_atom(body)
    async with http_session.get(fake.api_url, params={"id_list": "2401.10001"}) as resp:
        assert resp.status == 200


async def test_http_200_legacy_error_entry(fake: FakeArxiv, make_client: ClientFactory) -> None:
    fake.serve_next((ARXIV_DATA / "legacy_error_http200.atom.xml").read_bytes())
    with pytest.raises(ArxivApiError, match=r"incorrect id format for 1234\.12345"):
        await make_client().search("anything")


async def test_http_400_without_error_entry(fake: FakeArxiv, make_client: ClientFactory) -> None:
    fake.fail_next(400, body=b"<html>Bad Request</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(ArxivApiError, match="HTTP 400"):
        await make_client().fetch_papers(["2401.10001"])


async def test_search(fake: FakeArxiv, make_client: ClientFactory) -> None:
    fake.add_papers(
        [
            make_paper(1, title="Graph neural networks for molecules"),
            make_paper(2, title="Neural networks: a survey"),
            make_paper(3, title="Molecules in space"),
        ]
    )
    found = await make_client().search('  neural "networks" (AND) molecules!  ', max_results=5)
    assert [p.arxiv_id for p in found] == ["2401.10001"]
    (query,) = api_arrivals(fake)
    assert query == {
        "search_query": "ti:neural AND ti:networks AND ti:molecules",
        "start": "0",
        "max_results": "5",
        "sortBy": "relevance",
        "sortOrder": "descending",
    }


async def test_search_retries_an_empty_first_page(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    fake.add_papers([make_paper(1, title="Graph neural networks")])
    fake.empty_page_next()
    found = await make_client().search("graph")
    assert [p.arxiv_id for p in found] == ["2401.10001"]
    assert len(api_arrivals(fake)) == 2


async def test_search_with_no_match_is_not_retried(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    assert await make_client().search("nothing matches this") == []
    assert len(api_arrivals(fake)) == 1


async def test_search_without_words_makes_no_request(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    assert await make_client().search('"()" AND :') == []
    assert fake.arrivals == []


async def test_announcements_by_type(fake: FakeArxiv, make_client: ClientFactory) -> None:
    items = [
        announcement("2411.17702", AnnounceType.NEW),
        announcement("2202.06515", AnnounceType.CROSS, version=3),
        announcement("1401.3665", AnnounceType.REPLACE, version=4, categories=("cs.LG",)),
    ]
    fake.set_announcements("cs.LG", items)
    feed = await make_client().announcements(["cs.LG"])
    assert feed.error is None
    assert not feed.empty
    assert feed.categories == "cs.LG"
    assert feed.announcements == items  # round trip through the real wire format
    assert feed.published == dt.datetime(2024, 11, 28, 5, 0, tzinfo=UTC)
    assert feed.skip_days == ("Saturday", "Sunday")
    assert fake.arrivals[-1].path == "/rss/cs.LG"


async def test_announcements_of_several_categories_are_deduped(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    shared = announcement("2411.17702", AnnounceType.NEW, categories=("cs.LG", "cs.CV"))
    fake.set_announcements("cs.LG", [shared, announcement("2411.00001", AnnounceType.NEW)])
    fake.set_announcements("cs.CV", [dataclasses.replace(shared, announce_type=AnnounceType.CROSS)])
    feed = await make_client().announcements(["cs.LG", "cs.CV"])
    assert [a.arxiv_id for a in feed.announcements] == ["2411.17702", "2411.00001"]
    assert feed.categories == "cs.LG+cs.CV"
    assert fake.arrivals[-1].path == "/rss/cs.LG+cs.CV"


async def test_empty_announcement_day(fake: FakeArxiv, make_client: ClientFactory) -> None:
    feed = await make_client().announcements(["math.CO"])
    assert feed.empty
    assert feed.error is None
    assert feed.announcements == []


@pytest.mark.parametrize(
    ("category", "message"),
    [
        ("astroph", "Bad archive 'astroph'. Valid archive names are: astro-ph, cond-mat, cs,"),
        ("cs.XY", "Bad subject class 'XY'. Valid subject classes for the archive 'cs' are: AI,"),
    ],
)
async def test_announcements_error_feed(
    fake: FakeArxiv, make_client: ClientFactory, category: str, message: str
) -> None:
    feed = await make_client().announcements([category])
    assert feed.error is not None
    assert feed.error.startswith(message)
    assert not feed.empty
    assert feed.announcements == []


async def test_announcements_refuses_unsafe_category_names(
    fake: FakeArxiv, make_client: ClientFactory
) -> None:
    with pytest.raises(UnknownCategoryError):
        await make_client().announcements(["cs.LG/../../api/query"])
    with pytest.raises(ValueError, match="at least one category"):
        await make_client().announcements([])
    assert fake.arrivals == []


# ============================================================================================
# The fake speaks the real wire format


async def test_fake_answers_a_bad_id_like_arxiv(
    fake: FakeArxiv, http_session: aiohttp.ClientSession, real_fixtures: Path
) -> None:
    async with http_session.get(fake.api_url, params={"id_list": "abc"}) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"] == ATOM_CONTENT_TYPE
        body = await resp.read()
    expected = golden(real_fixtures, "id_abc")
    stamp = re.compile(rb"<updated>[^<]*</updated>")
    assert stamp.sub(b"", body) == stamp.sub(b"", expected)


async def test_fake_search_syntax(fake: FakeArxiv, http_session: aiohttp.ClientSession) -> None:
    fake.add_papers(
        [
            make_paper(1, title="Checkerboard order", authors=("Adrian Del Maestro",)),
            make_paper(2, title="Quantum criticality", authors=("Adrian Del Maestro",)),
            make_paper(
                3, title="Pyrochlore magnets", authors=("Someone Else",), categories=("cs.AI",)
            ),
        ]
    )

    async def ids(search_query: str, **params: str) -> list[str]:
        async with http_session.get(
            fake.api_url, params={"search_query": search_query, **params}
        ) as resp:
            assert resp.status == 200
            return [p.arxiv_id for p in parse_atom(await resp.read()).papers]

    assert await ids("au:del_maestro") == ["2401.10001", "2401.10002"]
    assert await ids("au:del_maestro AND ti:checkerboard") == ["2401.10001"]
    assert await ids('au:del_maestro AND ti:"quantum criticality"') == ["2401.10002"]
    assert await ids("au:del_maestro ANDNOT (ti:checkerboard OR ti:pyrochlore)") == ["2401.10002"]
    assert await ids("cat:cs.AI") == ["2401.10003"]
    assert await ids("magnets") == ["2401.10003"]
    assert await ids("au:del_maestro", start="1", max_results="1") == ["2401.10002"]


async def test_fake_content_types(fake: FakeArxiv, http_session: aiohttp.ClientSession) -> None:
    async with http_session.get(fake.api_url, params={"id_list": "2401.10001"}) as resp:
        assert resp.headers["Content-Type"] == ATOM_CONTENT_TYPE
    async with http_session.get(fake.rss_url + "/cs.LG") as resp:
        assert resp.headers["Content-Type"] == RSS_CONTENT_TYPE


async def test_fake_rss_matches_the_real_empty_and_error_feeds(
    http_session: aiohttp.ClientSession, real_fixtures: Path
) -> None:
    published = dt.datetime(2024, 11, 28, 5, 0, tzinfo=UTC)
    async with (
        FakeArxiv(
            now=lambda: dt.datetime(2024, 11, 28, 17, 23, 8, tzinfo=UTC), rss_published=published
        ) as server,
        http_session.get(server.rss_url + "/test") as resp,
    ):
        assert resp.status == 200
        assert await resp.read() == read(real_fixtures, f"{RSS}/aioarxiv_empty_rss_mock_feed.xml")
    async with (
        FakeArxiv(
            now=lambda: dt.datetime(2024, 11, 28, 17, 29, 24, tzinfo=UTC), rss_published=published
        ) as server,
        http_session.get(server.rss_url + "/astroph") as resp,
    ):
        assert resp.status == 400
        expected = read(real_fixtures, f"{RSS}/aioarxiv_error_rss_mock_feed.xml")
        assert (await resp.read()).rstrip() == expected.rstrip()


@pytest.mark.parametrize("prefix", ["id_1605.08386", "id_1707.08567", "id_2104.12255v1"])
def test_rendered_feed_is_byte_identical_to_the_real_one(real_fixtures: Path, prefix: str) -> None:
    data = golden(real_fixtures, prefix)
    page = parse_atom(data)
    updated = re.search(rb"<updated>([^<]+)</updated>", data).group(1).decode()  # type: ignore[union-attr]
    id_list = re.search(rb'&amp;id_list=([^"&<]+)"', data).group(1).decode()  # type: ignore[union-attr]
    rendered = render_api_feed(
        page.papers,
        search_query="",
        id_list=id_list,
        start=0,
        max_results=100,
        total_results=1,
        updated=when(updated),
    )
    feed_id = re.compile(rb"<id>https://arxiv.org/api/[^<]*</id>")
    assert feed_id.sub(b"", rendered) == feed_id.sub(b"", data)
