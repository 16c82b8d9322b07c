"""HackerNewsSource against FakeHackerNews: real payloads, fuzzy URLs, paging and the hit cap."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.core.errors import MalformedResponseError, SourceUnavailableError
from bot.core.models import Window
from bot.fakes.hackernews import CAP_MESSAGE, FakeHackerNews
from bot.settings import HackerNewsSettings, HttpSettings
from bot.sources.base import PopularitySource
from bot.sources.hackernews import HackerNewsSource
from bot.sources.http import HttpClient

UTC = dt.UTC
DAY = Window.for_day(dt.date(2026, 3, 9))
T0 = DAY.start
REAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real" / "hn_algolia"
DATA = Path(__file__).resolve().parents[1] / "data" / "sources"
needs_real = pytest.mark.usefixtures("shared")  # fails, never skips, without ../shared
SEARCH = "/api/v1/search_by_date"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def fake() -> AsyncIterator[FakeHackerNews]:
    async with FakeHackerNews() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_source(fake: FakeHackerNews, session: aiohttp.ClientSession, sleeps: list[float]):
    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    def build(server: FakeHackerNews | None = None, **settings: object) -> HackerNewsSource:
        http = HttpClient(session, HttpSettings(), source="hackernews", sleep=record)
        api_url = (server or fake).api_url
        config = HackerNewsSettings(api_url=api_url, **settings)  # type: ignore[arg-type]
        return HackerNewsSource(http, config)

    return build


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def add_papers(
    fake: FakeHackerNews, count: int, *, spread_hours: float = 23.0
) -> list[dict[str, object]]:
    return [
        fake.add_story(
            47200000 + i,
            f"Paper {i}",
            f"https://arxiv.org/abs/2603.{10000 + i}",
            f"user{i}",
            at(spread_hours * i / max(count, 1)),
            points=10 + i,
        )
        for i in range(count)
    ]


# -- the happy path --------------------------------------------------------------------------


async def test_is_a_popularity_source(make_source) -> None:
    source = make_source()
    assert isinstance(source, PopularitySource)
    assert source.name == "hackernews"


async def test_collects_stories_linking_arxiv(fake: FakeHackerNews, make_source) -> None:
    fake.add_story(
        47210001, "Scaling laws", "https://arxiv.org/abs/2603.01234v2", "dkua", at(20),
        points=270, num_comments=103,
    )  # fmt: skip
    fake.add_story(
        47210002, "Pdf", "https://export.arxiv.org/pdf/2603.02222", "shazow", at(15),
        points=None, num_comments=None,
    )  # fmt: skip
    fake.add_story(47210003, "Ask HN: arxiv.org alternatives?", None, "asker", at(10))
    source = make_source()

    mentions = await source.collect(DAY)

    assert [m.post_id for m in mentions] == ["47210001", "47210002"]
    first, second = mentions
    assert first.source == "hackernews"
    assert first.url == "https://news.ycombinator.com/item?id=47210001"
    assert first.author == "dkua"
    assert first.text == "Scaling laws"
    assert first.arxiv_ids == ("2603.01234",)
    assert first.created_at == at(20)
    assert dict(first.metrics) == {"points": 270, "comments": 103}
    assert dict(second.metrics) == {"points": 0, "comments": 0}  # nulls count as zero
    assert source.requests == 1
    [request] = fake.requests_to(SEARCH)
    assert request.params == {
        "query": "arxiv.org",
        "restrictSearchableAttributes": "url",
        "tags": "story",
        "numericFilters": "created_at_i>=1773014400,created_at_i<1773100800",
        "hitsPerPage": "100",
        "page": "0",
    }


async def test_fuzzy_url_matches_are_rejected(fake: FakeHackerNews, make_source, caplog) -> None:
    fake.add_story(1, "Real", "https://arxiv.org/abs/2603.01234", "a", at(1))
    fake.add_story(2, "Blog", "https://blog.example.org/why-arxiv-org-matters", "b", at(2))
    fake.add_story(3, "Lookalike", "https://arxiv.org.evil.example/abs/2603.04444", "c", at(3))
    fake.add_story(4, "Listing", "https://arxiv.org/list/cs.LG/recent", "d", at(4))
    fake.add_story(5, "Mirror path", "https://example.com/arxiv.org/abs/2603.05555", "e", at(5))

    with caplog.at_level(logging.INFO, logger="bot.sources.hackernews"):
        mentions = await make_source().collect(DAY)

    assert [m.post_id for m in mentions] == ["1"]
    assert "4 fuzzy URL matches rejected" in caplog.text


async def test_min_points_is_sent_as_a_numeric_filter(fake: FakeHackerNews, make_source) -> None:
    fake.add_story(1, "Hot", "https://arxiv.org/abs/2603.01234", "a", at(1), points=50)
    fake.add_story(2, "Cold", "https://arxiv.org/abs/2603.02222", "b", at(2), points=3)

    mentions = await make_source(min_points=10).collect(DAY)

    assert [m.post_id for m in mentions] == ["1"]
    assert fake.requests[0].params["numericFilters"].endswith(",points>=10")


async def test_min_comments_is_sent_as_a_numeric_filter(fake: FakeHackerNews, make_source) -> None:
    fake.add_story(1, "Talked", "https://arxiv.org/abs/2603.01234", "a", at(1), num_comments=12)
    fake.add_story(2, "Quiet", "https://arxiv.org/abs/2603.02222", "b", at(2), num_comments=1)
    fake.add_story(3, "Null", "https://arxiv.org/abs/2603.03333", "c", at(3), num_comments=None)

    mentions = await make_source(min_comments=5).collect(DAY)

    assert [m.post_id for m in mentions] == ["1"]
    assert fake.requests[0].params["numericFilters"] == (
        "created_at_i>=1773014400,created_at_i<1773100800,num_comments>=5"
    )


async def test_points_and_comments_filters_combine(fake: FakeHackerNews, make_source) -> None:
    link = "https://arxiv.org/abs/2603.0{}"
    fake.add_story(1, "Both", link.format(1111), "a", at(1), points=50, num_comments=9)
    fake.add_story(2, "Points", link.format(2222), "b", at(2), points=50, num_comments=0)
    fake.add_story(3, "Comments", link.format(3333), "c", at(3), points=2, num_comments=9)

    mentions = await make_source(min_points=10, min_comments=5).collect(DAY)

    assert [m.post_id for m in mentions] == ["1"]
    assert fake.requests[0].params["numericFilters"].endswith(",points>=10,num_comments>=5")


async def test_no_comment_filter_by_default(fake: FakeHackerNews, make_source) -> None:
    await make_source().collect(DAY)
    assert "num_comments" not in fake.requests[0].params["numericFilters"]


@needs_real
async def test_real_search_fixture_parses_and_links_no_arxiv(fake, make_source) -> None:
    fake.serve_next((REAL / "communal_search_restrictSearchableAttributes_url.json").read_bytes())
    source = make_source()

    assert await source.collect(DAY) == []
    assert source.requests == 1


async def test_derived_real_shaped_page(fake: FakeHackerNews, make_source) -> None:
    fake.serve_next((DATA / "hn_search_by_date_arxiv_links.json").read_bytes())

    mentions = await make_source().collect(DAY)

    assert [(m.post_id, m.arxiv_ids) for m in mentions] == [
        ("47210001", ("2603.01234",)),
        ("47210002", ("2603.02222",)),
    ]
    assert dict(mentions[0].metrics) == {"points": 270, "comments": 103}
    assert dict(mentions[1].metrics) == {"points": 58, "comments": 0}
    assert mentions[0].created_at == at(20)


async def test_empty_result_is_no_mentions(make_source) -> None:
    source = make_source()
    assert await source.collect(DAY) == []
    assert source.requests == 1


# -- windows, pages and the hit cap ----------------------------------------------------------


async def test_window_is_half_open(fake: FakeHackerNews, make_source) -> None:
    window = Window(at(2) + dt.timedelta(milliseconds=300), at(6))
    link = "https://arxiv.org/abs/2603.01234"
    fake.add_story(1, "same second as start, before it", link, "a", at(2))
    fake.add_story(2, "first whole second inside", link, "a", at(2) + dt.timedelta(seconds=1))
    fake.add_story(3, "inside", link, "a", at(4))
    fake.add_story(4, "at end", link, "a", at(6))

    mentions = await make_source().collect(window)

    assert sorted(m.post_id for m in mentions) == ["2", "3"]


async def test_paginates_until_nb_pages(fake: FakeHackerNews, make_source) -> None:
    add_papers(fake, 12)
    source = make_source(hits_per_page=5)

    mentions = await source.collect(DAY)

    assert len(mentions) == 12
    assert source.requests == 3
    assert [r.params["page"] for r in fake.requests] == ["0", "1", "2"]


async def test_more_hits_than_max_pages_reach_splits_the_window(fake, make_source) -> None:
    add_papers(fake, 12)
    source = make_source(hits_per_page=5, max_pages=2)

    mentions = await source.collect(DAY)

    assert len(mentions) == 12
    filters = [r.params["numericFilters"] for r in fake.requests]
    assert filters[0] == "created_at_i>=1773014400,created_at_i<1773100800"
    assert "created_at_i>=1773014400,created_at_i<1773057600" in filters  # first half
    assert "created_at_i>=1773057600,created_at_i<1773100800" in filters  # second half


async def test_the_1000_hit_cap_splits_the_window(session, make_source) -> None:
    # A cap of 10 hits stands in for Algolia's 1,000 so the test stays small.
    async with FakeHackerNews(pagination_limit=10) as capped:
        add_papers(capped, 25)
        source = make_source(server=capped, hits_per_page=5, max_pages=10)

        mentions = await source.collect(DAY)

        assert len(mentions) == 25
        assert len({m.post_id for m in mentions}) == 25
        first = capped.requests[0]
        assert first.params["page"] == "0"
        assert len(capped.requests) == source.requests > 3


async def test_cap_message_mid_paging_splits_the_window(fake: FakeHackerNews, make_source):
    newest_first = add_papers(fake, 8)[::-1]
    # A server that promises two pages, then answers the second with the cap message.
    first_page = {
        "hits": newest_first[:5],
        "nbHits": 8,
        "page": 0,
        "nbPages": 2,
        "hitsPerPage": 5,
        "exhaustiveNbHits": True,
        "query": "arxiv.org",
        "params": "",
        "processingTimeMS": 1,
    }
    cap = {
        "hits": [],
        "page": 1,
        "nbHits": 0,
        "nbPages": 0,
        "hitsPerPage": 5,
        "exhaustiveNbHits": True,
        "processingTimeMS": 1,
        "message": CAP_MESSAGE.format(limit=5),
    }
    fake.serve_next(json.dumps(first_page))
    fake.serve_next(json.dumps(cap))

    mentions = await make_source(hits_per_page=5).collect(DAY)

    assert len(mentions) == 8
    assert fake.requests[2].params["numericFilters"].endswith("created_at_i<1773057600")


async def test_splitting_is_bounded(session, make_source, caplog) -> None:
    async with FakeHackerNews(pagination_limit=10) as capped:
        for i in range(15):  # all in the same second: no split can separate them
            capped.add_story(i, f"P{i}", f"https://arxiv.org/abs/2603.{10000 + i}", "u", at(3))
        source = make_source(server=capped, hits_per_page=5)

        with caplog.at_level(logging.WARNING, logger="bot.sources.hackernews"):
            mentions = await source.collect(DAY)

        assert len(mentions) == 10
        assert "cannot be split further" in caplog.text
        assert source.requests < 60


# -- failures --------------------------------------------------------------------------------


async def test_429_with_retry_after_is_honoured(fake, make_source, sleeps) -> None:
    add_papers(fake, 2)
    fake.fail_next(429, b'{"message":"Too many requests","status":429}', {"Retry-After": "3"})

    source = make_source()
    assert len(await source.collect(DAY)) == 2
    assert sleeps == [3.0]
    assert source.requests == 2


async def test_5xx_is_retried_then_succeeds(fake, make_source, sleeps) -> None:
    add_papers(fake, 2)
    fake.fail_next(502, times=3)

    source = make_source()
    assert len(await source.collect(DAY)) == 2
    assert source.requests == 4
    assert len(sleeps) == 3


async def test_retries_exhausted_is_source_unavailable(fake, make_source) -> None:
    fake.fail_next(503, times=5)

    with pytest.raises(SourceUnavailableError, match=r"^hackernews: HTTP 503 after 5 attempts"):
        await make_source().collect(DAY)


async def test_malformed_json_is_malformed_response(fake, make_source) -> None:
    fake.malformed_next()

    with pytest.raises(MalformedResponseError) as info:
        await make_source().collect(DAY)
    assert info.value.source == "hackernews"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"hits": {}, "nbHits": 0, "nbPages": 0}',
        b'{"hits": []}',
        b'{"hits": [], "nbHits": "0", "nbPages": 0}',
        b'{"hits": ["x"], "nbHits": 1, "nbPages": 1}',
        b'{"hits": [{"url": "https://arxiv.org/abs/2603.01234", "created_at_i": 1773014500}],'
        b' "nbHits": 1, "nbPages": 1}',
        b'{"hits": [{"objectID": "1", "url": "https://arxiv.org/abs/2603.01234"}],'
        b' "nbHits": 1, "nbPages": 1}',
        b'{"hits": [{"objectID": "1", "url": "https://arxiv.org/abs/2603.01234",'
        b' "created_at_i": 1773014500, "points": "many"}], "nbHits": 1, "nbPages": 1}',
    ],
)
async def test_wrong_shapes_are_malformed(fake, make_source, body: bytes) -> None:
    fake.serve_next(body)

    with pytest.raises(MalformedResponseError, match=r"^hackernews: "):
        await make_source().collect(DAY)


# -- the fake itself -------------------------------------------------------------------------


@needs_real
async def test_fake_hits_have_the_real_keys(fake: FakeHackerNews, session) -> None:
    real = json.loads((REAL / "communal_search_restrictSearchableAttributes_url.json").read_text())
    fake.add_story(8828543, "Why", "https://arxiv.org/abs/2603.01234", "dkua", at(1), points=270)
    params = {"query": "arxiv.org", "restrictSearchableAttributes": "url", "tags": "story"}
    async with session.get(f"{fake.api_url}/search_by_date", params=params) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        payload = await resp.json()

    assert set(real) - {"hits"} <= set(payload)
    [hit] = payload["hits"]
    # The 2020 capture's comment-only fields are gone from story hits in newer responses.
    dropped = {"relevancy_score", "comment_text", "story_title", "story_url", "parent_id"}
    assert set(real["hits"][0]) - dropped - {"story_text"} <= set(hit)
    assert hit["story_id"] == 8828543
    assert hit["_tags"] == ["story", "author_dkua", "story_8828543"]
    assert hit["_highlightResult"]["url"]["matchLevel"] == "full"
    assert "<em>arxiv</em>" in hit["_highlightResult"]["url"]["value"]


async def test_fake_caps_pagination_like_algolia(session) -> None:
    async with FakeHackerNews(pagination_limit=10) as capped:
        add_papers(capped, 25)
        url = f"{capped.api_url}/search_by_date"
        async with session.get(url, params={"hitsPerPage": "5", "page": "0"}) as resp:
            first = await resp.json()
        async with session.get(url, params={"hitsPerPage": "5", "page": "2"}) as resp:
            beyond = await resp.json()

    assert (first["nbHits"], first["nbPages"], len(first["hits"])) == (25, 2, 5)
    assert (beyond["nbHits"], beyond["nbPages"], beyond["hits"]) == (0, 0, [])
    assert beyond["message"].startswith("you can only fetch the 10 hits for this query.")


async def test_fake_rejects_bad_numeric_filters(fake: FakeHackerNews, session) -> None:
    params = {"numericFilters": "created_at_i~~3"}
    async with session.get(f"{fake.api_url}/search_by_date", params=params) as resp:
        assert resp.status == 400
        assert (await resp.json())["status"] == 400


async def test_fake_honours_num_comments_filters(fake: FakeHackerNews, session) -> None:
    link = "https://arxiv.org/abs/2603.01234"
    for oid, comments in ((1, 0), (2, 5), (3, 40), (4, None)):
        fake.add_story(oid, f"S{oid}", link, "a", at(oid), num_comments=comments)

    async def object_ids(filters: str) -> list[str]:
        params = {"query": "arxiv.org", "tags": "story", "numericFilters": filters}
        async with session.get(fake.api_url + "/search_by_date", params=params) as resp:
            assert resp.status == 200
            return [hit["objectID"] for hit in (await resp.json())["hits"]]

    assert await object_ids("num_comments>=5") == ["3", "2"]
    assert await object_ids("num_comments<5") == ["4", "1"]  # the fake reads a null count as 0
    assert await object_ids("num_comments>=5,num_comments<40") == ["2"]
    assert await object_ids("num_comments=0") == ["4", "1"]
