"""PaperRepository: upserts, lookups, missing ids, full-text search, autocomplete and hostile
input, on SQLite (FTS5) and PostgreSQL (tsvector)."""

from __future__ import annotations

import datetime as dt
import random
import re

import pytest
from sqlalchemy import delete, text

from bot.core.models import Paper
from bot.storage.engine import Database
from bot.storage.papers import (
    SEARCH_POOL,
    PaperRepository,
    fold_diacritics,
    id_prefix,
    match_expression,
    prefix_expression,
    quote_lexeme,
    quote_term,
    tsquery_text,
    tsquery_words,
    typed_terms,
)
from bot.storage.tables import papers
from tests.storage.factories import T0, make_paper
from tests.storage.title_words import title_words

UTC = dt.UTC


@pytest.fixture
def repo(db: Database) -> PaperRepository:
    return PaperRepository(db)


async def fts_integrity(db: Database) -> None:
    """FTS5's own check that the external-content indexes agree with papers (raises if not).

    PostgreSQL's vectors are generated columns: the server computes them, nothing can drift."""
    if not db.is_sqlite:
        return
    async with db.read() as conn:
        for table in ("papers_fts", "papers_title_fts"):
            await conn.execute(
                text(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")  # noqa: S608
            )


async def test_round_trip(repo: PaperRepository) -> None:
    paper = make_paper(
        "2503.00001",
        title="Attention is all you need",
        authors=("Ashish Vaswani", "Noam Shazeer"),
        categories=("cs.CL", "cs.LG", "stat.ML"),
        version=3,
        comment="15 pages",
        journal_ref="NeurIPS 2017",
        doi="10.1/abc",
    )
    assert await repo.upsert([paper], T0) == 1
    stored = await repo.get("2503.00001")
    assert stored == paper
    assert stored is not None
    assert stored.published.tzinfo is not None
    assert stored.published.utcoffset() == dt.timedelta(0)
    assert await repo.get("2503.99999") is None
    assert await repo.count() == 1


async def test_datetimes_are_normalised_to_utc(repo: PaperRepository) -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    await repo.upsert([make_paper(published=dt.datetime(2025, 3, 1, 13, 0, tzinfo=cet))], T0)
    stored = await repo.get("2503.00001")
    assert stored is not None
    assert stored.published == T0
    assert stored.published.tzinfo == UTC


async def test_naive_datetimes_are_refused(repo: PaperRepository) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await repo.upsert([make_paper()], dt.datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        await repo.upsert([make_paper(published=dt.datetime(2025, 1, 1))], T0)


async def test_upsert_twice_updates_in_place(repo: PaperRepository, db: Database) -> None:
    await repo.upsert([make_paper(title="Old title about llamas", categories=("cs.LG",))], T0)
    newer = make_paper(title="New title about alpacas", categories=("cs.CV", "cs.LG"), version=2)
    await repo.upsert([newer, newer], T0 + dt.timedelta(hours=1))
    await repo.upsert([newer], T0 + dt.timedelta(hours=2))  # unchanged text: FTS untouched
    assert await repo.count() == 1
    assert await repo.get("2503.00001") == newer
    assert await repo.search("llamas") == []
    assert [p.arxiv_id for p in await repo.search("alpacas")] == ["2503.00001"]
    await fts_integrity(db)


async def test_deleting_a_paper_removes_it_from_the_index(
    repo: PaperRepository, db: Database
) -> None:
    await repo.upsert([make_paper(title="Quokka dynamics")], T0)
    async with db.write() as conn:
        await conn.execute(delete(papers))
    assert await repo.search("quokka") == []
    assert await repo.autocomplete("quok") == []
    await fts_integrity(db)


async def test_get_many_and_known_ids(repo: PaperRepository) -> None:
    await repo.upsert([make_paper(f"2503.0000{i}") for i in range(1, 4)], T0)
    found = await repo.get_many(["2503.00001", "2503.00003", "2503.09999"])
    assert set(found) == {"2503.00001", "2503.00003"}
    assert await repo.known_ids(["2503.00002", "2503.09999"]) == {"2503.00002"}
    assert await repo.get_many([]) == {}


async def test_many_ids_are_batched(repo: PaperRepository) -> None:
    ids = [f"2503.{i:05d}" for i in range(1200)]
    await repo.upsert([make_paper(i) for i in ids], T0)
    assert len(await repo.get_many(ids)) == 1200
    assert await repo.known_ids([*ids, "nope"]) == set(ids)


async def test_missing_ids(repo: PaperRepository) -> None:
    await repo.mark_missing(["2503.77777", "2503.88888"], "arXiv: no such id", T0)
    await repo.mark_missing(["2503.77777"], "still unknown", T0 + dt.timedelta(days=1))
    assert await repo.missing_ids(["2503.77777", "2503.00001"]) == {"2503.77777"}
    # A paper that turns up after all is no longer missing.
    await repo.upsert([make_paper("2503.88888")], T0)
    assert await repo.missing_ids(["2503.77777", "2503.88888"]) == {"2503.77777"}


# -- search ---------------------------------------------------------------------------------------


async def test_search_ranks_title_matches_above_abstract_matches(repo: PaperRepository) -> None:
    await repo.upsert(
        [
            make_paper(
                "2503.00001",
                title="Scaling laws for neural language models",
                abstract="We study power laws of cross-entropy loss in deep networks.",
            ),
            make_paper(
                "2503.00002",
                title="Graph networks for physics",
                abstract="A diffusion model and a graph: we compare with diffusion baselines.",
            ),
            make_paper(
                "2503.00003",
                title="Diffusion models beat GANs on image synthesis",
                abstract="We show that models of this kind reach a new state of the art.",
            ),
        ],
        T0,
    )
    found = await repo.search("diffusion")
    assert [p.arxiv_id for p in found] == ["2503.00003", "2503.00002"]
    assert [p.arxiv_id for p in await repo.search("diffusion GANs")] == ["2503.00003"]
    assert [p.arxiv_id for p in await repo.search("neural scaling")] == ["2503.00001"]
    assert await repo.search("diffusion", limit=1) == found[:1]


async def test_search_tiers(repo: PaperRepository) -> None:
    # Stored oldest first: ids grow with storage order, which is what "newest" means here.
    await repo.upsert(
        [
            make_paper("2503.00001", title="Sparse attention", abstract="Nothing else."),
            make_paper("2503.00002", title="On models", abstract="We use sparse attention."),
            make_paper(
                "2503.00003",
                title="Sparse attention for long sparse attention contexts",
                abstract="Sparse attention again.",
            ),
            make_paper("2503.00004", title="Other work", abstract="Sparse attention, too."),
            make_paper("2503.00005", title="Sparse", abstract="No second word here."),
        ],
        T0,
    )
    found = [p.arxiv_id for p in await repo.search("sparse attention")]
    # Title matches first, by bm25 (the denser title wins; it is also older than others),
    # then papers with the words only in the abstract, newest first. 00005 lacks "attention".
    assert found == ["2503.00003", "2503.00001", "2503.00004", "2503.00002"]
    assert [p.arxiv_id for p in await repo.search("sparse attention", limit=3)] == found[:3]


async def test_search_finds_authors_and_ignores_case(repo: PaperRepository) -> None:
    await repo.upsert([make_paper(authors=("Geoffrey Hinton", "Yann LeCun"))], T0)
    assert len(await repo.search("lecun")) == 1
    assert len(await repo.search("HINTON")) == 1


async def test_punctuation_separates_words_on_every_backend(repo: PaperRepository) -> None:
    # PostgreSQL's parser alone would keep "arxiv.org" (a host), "GPT-4" ("gpt", "-4"), "1.5"
    # (a number) or "<tags>" (markup, dropped) as tokens FTS5 never makes.
    await repo.upsert(
        [
            make_paper(
                title="GPT-4 on arxiv.org: self-supervised scaling to 1.5 billion <tags>",
                abstract="Write to a@b.example or see https://example.org/x_y?z=1.",
            )
        ],
        T0,
    )
    for query in (
        "GPT-4",
        "gpt 4",
        "arxiv",
        "org",
        "self-supervised",
        "supervised",
        "1.5",
        "5 billion",
        "tags",
        "example",
        "x_y",
        "z",
    ):
        assert [p.arxiv_id for p in await repo.search(query)] == ["2503.00001"], query
    assert [a for a, _ in await repo.autocomplete("arxiv.or")] == ["2503.00001"]
    assert await repo.search("arxivorg") == []


async def test_diacritics_are_folded(repo: PaperRepository) -> None:
    await repo.upsert(
        [
            make_paper("2503.00001", authors=("José Pérez",), title="Über Schrödinger"),
            make_paper("2503.00002", title="Perez and the naive Bayes"),
        ],
        T0,
    )
    assert {p.arxiv_id for p in await repo.search("perez")} == {"2503.00001", "2503.00002"}
    assert {p.arxiv_id for p in await repo.search("Pérez")} == {"2503.00001", "2503.00002"}
    assert [p.arxiv_id for p in await repo.search("schrodinger uber")] == ["2503.00001"]
    assert [p.arxiv_id for p in await repo.search("naïve")] == ["2503.00002"]
    # Decomposed input (e + combining acute) is normalised before tokenising.
    assert len(await repo.search("Pe\u0301rez")) == 2
    assert {a for a, _ in await repo.autocomplete("pér")} == {"2503.00001", "2503.00002"}
    assert [a for a, _ in await repo.autocomplete("schrö")] == ["2503.00001"]


HOSTILE = [
    "",
    "   ",
    '"',
    '""',
    'a"b',
    "'",
    "AND",
    "OR NOT",
    "diffusion AND",
    "NOT diffusion",
    "NEAR(",
    "NEAR(diffusion models, 2)",
    "*",
    "diff*",
    "^diffusion",
    "-diffusion",
    "diffusion -models",
    "title:diffusion",
    "{title abstract}: diffusion",
    "abstract : x",
    "(((",
    "diffusion)",
    "(diffusion OR",
    "+",
    ":",
    "🔥🔥🔥",
    "diffusion 🔥 models",
    "\x00",
    "diffusion\x00models",
    "💥" * 500,
    "a" * 5000,
    " ".join(["diffusion"] * 500),
    "rank:1",
    "papers_fts",
    "'); DROP TABLE papers; --",
    "\\",
    "%_",
    "テスト 拡散",
    "ﷺ",
]


@pytest.mark.parametrize("query", HOSTILE)
async def test_hostile_input_never_raises(repo: PaperRepository, db: Database, query: str) -> None:
    await repo.upsert(
        [make_paper(title="Diffusion models", abstract="Denoising diffusion: NEAR and AND.")], T0
    )
    found = await repo.search(query)
    suggestions = await repo.autocomplete(query)
    assert isinstance(found, list)
    assert isinstance(suggestions, list)
    assert await repo.count() == 1  # nothing dropped, whatever the input
    await fts_integrity(db)


async def test_operators_are_searched_as_words(repo: PaperRepository) -> None:
    await repo.upsert(
        [
            make_paper("2503.00001", title="Diffusion models"),
            make_paper("2503.00002", title="Diffusion NOT models"),
        ],
        T0,
    )
    # As FTS syntax this would exclude 2503.00002; as words it requires "not".
    assert [p.arxiv_id for p in await repo.search("diffusion NOT models")] == ["2503.00002"]
    # "title:" is not a column filter: it is the word "title", which no paper contains.
    assert await repo.search("title:diffusion") == []
    assert len(await repo.search("diffusion*")) == 2  # "*" is a separator, not a prefix


async def test_empty_and_symbol_only_input_returns_nothing(repo: PaperRepository) -> None:
    await repo.upsert([make_paper(title="Anything")], T0)
    for query in ("", "   ", "***", "()", '"', "🔥"):
        assert await repo.search(query) == []
        assert await repo.autocomplete(query) == []


# -- autocomplete ---------------------------------------------------------------------------------


async def test_autocomplete_completes_the_last_word(repo: PaperRepository) -> None:
    await repo.upsert(
        [
            make_paper("2503.00001", title="Attention is all you need"),
            make_paper("2503.00002", title="Attention mechanisms in vision"),
            make_paper("2503.00003", title="Tension in lattice gauge theory"),
            make_paper("2503.00004", title="Other", abstract="attention everywhere"),
        ],
        T0,
    )
    assert {a for a, _ in await repo.autocomplete("atten")} == {"2503.00001", "2503.00002"}
    assert await repo.autocomplete("attention is al") == [
        ("2503.00001", "Attention is all you need")
    ]
    assert [a for a, _ in await repo.autocomplete("attention vis")] == ["2503.00002"]
    # A separator after the last word means it is complete: "ten" is not a prefix any more.
    assert await repo.autocomplete("ten ") == []
    assert [a for a, _ in await repo.autocomplete("tens")] == ["2503.00003"]
    # One letter is too short to complete alone; with words before it, it is ignored.
    assert await repo.autocomplete("a") == []
    assert [a for a, _ in await repo.autocomplete("vision a")] == ["2503.00002"]
    assert len(await repo.autocomplete("attention", limit=1)) == 1


async def test_autocomplete_by_id_prefix(repo: PaperRepository) -> None:
    await repo.upsert(
        [
            make_paper("2503.01234", title="One"),
            make_paper("2503.01299", title="Two"),
            make_paper("2504.00001", title="Three"),
            make_paper("hep-th/9901001", title="Old style"),
        ],
        T0,
    )
    assert await repo.autocomplete("2503.012") == [("2503.01299", "Two"), ("2503.01234", "One")]
    # Ranges compare bytes on every backend: a linguistic collation that skips punctuation
    # would put "2503.01234" after "2503/", the end of the range of "2503.".
    assert [a for a, _ in await repo.autocomplete("2503.")] == ["2503.01299", "2503.01234"]
    assert [a for a, _ in await repo.autocomplete("2504")] == ["2504.00001"]
    assert [a for a, _ in await repo.autocomplete("arXiv:2503.01234v2")] == ["2503.01234"]
    assert [a for a, _ in await repo.autocomplete("https://arxiv.org/abs/2504.0")] == ["2504.00001"]
    assert [a for a, _ in await repo.autocomplete("hep-th/99")] == ["hep-th/9901001"]
    assert await repo.autocomplete("2599") == []


# -- query building -------------------------------------------------------------------------------


def test_quote_term_doubles_quotes() -> None:
    assert quote_term('say "hi"') == '"say ""hi"""'


@pytest.mark.parametrize(
    ("user_text", "expected"),
    [
        ("diffusion models", '"diffusion" "models"'),
        ('title:x AND "y', '"title" "x" "AND" "y"'),
        ("NEAR(a b)", '"NEAR" "a" "b"'),
        ("self-supervised", '"self" "supervised"'),
        ("snake_case", '"snake" "case"'),
        ("data Data information data", '"data" "information"'),
        ("🔥", None),
        ("", None),
    ],
)
def test_match_expression(user_text: str, expected: str | None) -> None:
    assert match_expression(user_text) == expected


@pytest.mark.parametrize(
    ("user_text", "expected"),
    [
        ("attention is al", '"attention" "is" "al"*'),
        ("attention ", '"attention"'),
        ("attention-", '"attention"'),
        ("x", None),
        ("deep x", '"deep"'),
        ("", None),
    ],
)
def test_prefix_expression(user_text: str, expected: str | None) -> None:
    assert prefix_expression(user_text) == expected


@pytest.mark.parametrize(
    ("user_text", "prefix", "expected"),
    [
        ("diffusion models", False, "'diffusion' & 'models'"),
        ('title:x AND "y', False, "'title' & 'x' & 'AND' & 'y'"),
        ("a & b | !c <-> d:*", False, "'a' & 'b' & 'c' & 'd'"),
        ("Schrödinger naïve", False, "'Schrodinger' & 'naive'"),
        ("attention is al", True, "'attention' & 'is' & 'al':*"),
        ("attention ", True, "'attention'"),
        ("pér", True, "'per':*"),
        ("deep x", True, "'deep'"),
        ("x", True, None),
        ("🔥", False, None),
        ("", False, None),
    ],
)
def test_tsquery_text(user_text: str, prefix: bool, expected: str | None) -> None:
    assert tsquery_text(user_text, prefix=prefix) == expected


def test_quote_lexeme_escapes_quotes_and_backslashes() -> None:
    assert quote_lexeme("it's") == "'it''s'"
    assert quote_lexeme("a\\b") == "'a\\\\b'"


def test_fold_diacritics_as_fts5_does() -> None:
    # Accents come off Latin letters only; letters without a decomposition stay.
    assert fold_diacritics("Ångström Pérez Nguyễn") == "Angstrom Perez Nguyen"
    assert fold_diacritics("ø ł ß") == "ø ł ß"
    assert fold_diacritics("ά й") == "ά й"


@pytest.mark.parametrize(
    ("user_text", "expected"),
    [
        ("2401.12345", "2401.12345"),
        ("2401.", "2401."),
        ("24", "24"),
        ("arxiv:2401.1", "2401.1"),
        ("2401.12345v3", "2401.12345"),
        ("hep-th/9901", "hep-th/9901"),
        ("math.AG/0101", "math.ag/0101"),
        ("attention", None),
        ("2", None),
    ],
)
def test_id_prefix(user_text: str, expected: str | None) -> None:
    assert id_prefix(user_text) == expected


# -- ranking and scale (bot.storage.papers SEARCH_POOL, migration 0008) ---------------------------


async def test_title_tier_prefers_more_of_the_words_in_a_shorter_title(
    repo: PaperRepository,
) -> None:
    await repo.upsert(
        [
            make_paper("2503.00001", title="Attention is all you need"),
            make_paper("2503.00002", title="Is attention all you need for graphs and sets"),
            make_paper("2503.00003", title="Attention is all you need", authors=("Need Yu",)),
            make_paper("2503.00004", title="Other", abstract="Attention is all you need."),
            make_paper(
                "2503.00005",
                title="On graphs",
                authors=("Attention Isall", "You Need"),
                abstract="all is attention",
            ),
        ],
        T0,
    )
    found = [p.arxiv_id for p in await repo.search("attention is all you need")]
    # The exact title first (the one with a matching author too above the other), then the
    # longer title, then the paper whose authors hold the words, then the abstract's.
    assert found == ["2503.00003", "2503.00001", "2503.00002", "2503.00005", "2503.00004"]


async def test_a_word_in_the_title_outranks_the_same_word_among_authors(
    repo: PaperRepository,
) -> None:
    await repo.upsert(
        [
            make_paper("2503.00001", title="Hinton diagrams for networks"),
            make_paper("2503.00002", title="Deep belief nets", authors=("Geoffrey Hinton",)),
        ],
        T0,
    )
    assert [p.arxiv_id for p in await repo.search("hinton")] == ["2503.00001", "2503.00002"]


async def test_long_prefixes_complete(repo: PaperRepository) -> None:
    # 5 to 8 letters have prefix indexes of their own on SQLite (0008); longer ones merge.
    await repo.upsert(
        [
            make_paper("2503.00001", title="Transformers for translation"),
            make_paper("2503.00002", title="Transformation groups", authors=("Ana Translator",)),
            make_paper("2503.00003", title="Transient dynamics"),
        ],
        T0,
    )
    for typed, expected in [
        ("trans", {"2503.00001", "2503.00002", "2503.00003"}),
        ("transf", {"2503.00001", "2503.00002"}),
        ("transfor", {"2503.00001", "2503.00002"}),
        ("transform", {"2503.00001", "2503.00002"}),
        ("transformer", {"2503.00001"}),
        ("transla", {"2503.00001", "2503.00002"}),
        ("groups transfo", {"2503.00002"}),
    ]:
        assert {a for a, _ in await repo.autocomplete(typed)} == expected, typed


# A corpus where some words are in most papers and others in a handful, spread over time, so that
# the PostgreSQL search takes each of its paths (a walk back from the newest, GIN bitmaps in
# bands, the rest of the table) and SQLite's tiers see broad and narrow queries.
SCALE_PAPERS = 1500
SCALE_WORDS = ["model", "data", "graph", "quantum", "sparse", "kernel", "zeta", "omicron"]


def scale_corpus() -> list[Paper]:
    rng = random.Random(8)
    weights = [0.5, 0.3, 0.15, 0.05, 0.02, 0.01, 0.004, 0.002]
    out = []
    for n in range(SCALE_PAPERS):

        def words(k: int) -> list[str]:
            return [w for w, p in zip(SCALE_WORDS, weights, strict=True) if rng.random() < p * k]

        title = " ".join(["Study", *words(1)])
        abstract = " ".join(["We", *words(3), "end"])
        authors = (rng.choice(["Ana Zeta", "Bo Li", "Cy Graph", "Di Kernel"]),)
        out.append(make_paper(f"2503.{n + 1:05d}", title=title, abstract=abstract, authors=authors))
    return out


def tokens(*texts: str) -> set[str]:
    return {w.casefold() for t in texts for w in re.findall(r"[^\W_]+", t)}


@pytest.fixture
async def scale_repo(repo: PaperRepository, db: Database) -> PaperRepository:
    corpus = scale_corpus()
    await repo.upsert(corpus, T0)
    if not db.is_sqlite:
        async with db.write() as conn:  # the planner's statistics, which the search reads
            await conn.execute(text("ANALYZE papers"))
    return repo


SCALE_QUERIES = [
    "model",
    "model data",
    "data graph",
    "graph quantum",
    "quantum sparse",
    "sparse kernel",
    "kernel zeta",
    "zeta",
    "omicron",
    "omicron zeta",
    "model omicron",
    "study model data graph",
    "nothing",
]


@pytest.mark.parametrize("query", SCALE_QUERIES)
async def test_search_tiers_hold_at_every_density(scale_repo: PaperRepository, query: str) -> None:
    """Tier 1 is drawn from the newest SEARCH_POOL title/author matches and is as long as it
    can be; tier 2 is exactly the newest papers with every word anywhere, after those."""
    corpus = scale_corpus()
    words = tokens(query)
    titled = [p for p in reversed(corpus) if words <= tokens(p.title, *p.authors)]
    anywhere = [p for p in reversed(corpus) if words <= tokens(p.title, *p.authors, p.abstract)]
    limit = 10
    found = [p.arxiv_id for p in await scale_repo.search(query, limit=limit)]
    first = min(limit, len(titled))
    pool = {p.arxiv_id for p in titled[:SEARCH_POOL]}
    assert set(found[:first]) <= pool
    assert len(set(found[:first])) == first
    rest = [p.arxiv_id for p in anywhere if p.arxiv_id not in set(found[:first])]
    assert found[first:] == rest[: limit - first]


@pytest.mark.parametrize(
    "typed",
    [
        "mo",
        "mod",
        "model da",
        "st",
        "stu",
        "da",
        "gr",
        "qua",
        "spa",
        "ker",
        "zet",
        "omi",
        "o",
        "zeta ke",
        "omicron st",
        "study mo",
        "li",
        "zeta an",
        "xy",
        "kernel",
        "study ",
    ],
)
async def test_autocomplete_gives_the_newest_matches_at_every_density(
    scale_repo: PaperRepository, typed: str
) -> None:
    corpus = scale_corpus()
    complete, last = typed_terms(typed)
    words = {w.casefold() for w in complete}
    expected = [
        (p.arxiv_id, p.title)
        for p in reversed(corpus)
        if words <= (have := tokens(p.title, *p.authors))
        and (last is None or any(w.startswith(last.casefold()) for w in have))
    ][:25]
    if not complete and last is None:
        expected = []
    assert await scale_repo.autocomplete(typed) == expected


def holds(paper: Paper, words: set[str], prefixes: set[str], *, titles: bool) -> bool:
    """Whether ``paper`` has every word (those in ``prefixes`` as a prefix) in its title or
    authors (``titles``) or anywhere."""
    have = tokens(paper.title, *paper.authors, *([] if titles else [paper.abstract]))
    return all(any(h.startswith(w) for h in have) if w in prefixes else w in have for w in words)


@pytest.mark.postgresql_only
@pytest.mark.parametrize("wanted", [1, 3, 10, 40])
async def test_newest_matches_by_every_path(
    scale_repo: PaperRepository, db: Database, wanted: int
) -> None:
    """hotpapers_newest_matches (0008, 0011) gives exactly the newest matches whichever way it
    reads them: a walk back, GIN bitmaps in BRIN bands, the rest of the table, the title word
    index (a short list looked up in the others, two long ones merged); with and without an
    anchor, over titles and over whole papers, minus the excluded ids, newest first."""
    corpus = scale_corpus()
    excluded = [SCALE_PAPERS - 1, SCALE_PAPERS - 7]
    cases = [
        ("'model'", None),
        ("'sparse'", None),
        ("'omicron'", None),
        ("'data' & 'graph'", None),
        # The title tier's word index (0011): two long lists merged, with a third looked up;
        # a long list and a short one; four words, few matches (the GIN index then).
        ("'model' & 'data'", None),
        ("'model' & 'data' & 'ana'", None),
        ("'study' & 'sparse'", None),
        ("'study' & 'model' & 'data' & 'kernel'", None),
        ("'zeta':*", None),
        ("'st':*", None),
        ("'model' & 'da':*", "'model'"),
        ("'omicron' & 'st':*", "'omicron'"),
    ]
    for query, anchor in cases:
        words = {w.strip("'").split("'")[0] for w in query.split(" & ")}
        prefixes = {w for w in words if query.count(f"'{w}':*")}
        for titles in (True, False):
            skip = set() if titles else set(excluded)
            expected = [
                n
                for n, paper in reversed(list(enumerate(corpus, start=1)))
                if n not in skip and holds(paper, words, prefixes, titles=titles)
            ][:wanted]
            async with db.read() as conn:
                result = await conn.execute(
                    text(
                        "SELECT id FROM hotpapers_newest_matches(CAST(:q AS tsquery), :titles, "
                        "CAST(:wanted AS integer), CAST(:anchor AS tsquery), "
                        "CAST(:excluded AS integer[]))"
                    ),
                    {
                        "q": query,
                        "titles": titles,
                        "wanted": wanted,
                        "anchor": anchor,
                        "excluded": [] if titles else excluded,
                    },
                )
                assert list(result.scalars()) == expected, (query, titles)


@pytest.mark.postgresql_only
@pytest.mark.parametrize("wanted", [1, 3, 25, 80])
async def test_suggestions_by_every_path(
    scale_repo: PaperRepository, db: Database, wanted: int
) -> None:
    """hotpapers_suggestions (0010) gives exactly the newest matches of the titles whichever
    plan its estimates choose (the GIN index for the query or its whole words, the walk of
    the newest papers, a band): its bounded walk covers every paper of a table this small."""
    corpus = scale_corpus()
    cases = [
        ("'model'", None, None),
        ("'omicron'", None, None),
        ("'data' & 'graph'", None, None),
        ("'m':*", None, "'m':*"),
        ("'zeta':*", None, "'zeta':*"),
        ("'st':*", None, "'st':*"),
        ("'model' & 'da':*", "'model'", "'da':*"),
        ("'omicron' & 'st':*", "'omicron'", "'st':*"),
        ("'zeta' & 'omicron' & 'k':*", "'zeta' & 'omicron'", "'k':*"),
        ("'quantum' & 'zz':*", "'quantum'", "'zz':*"),
        # Not the app's shape (the query holds more than the anchor and the prefix): the ways
        # that read the word index instead of the query are not taken (0012).
        ("'model' & 'da':*", None, "'da':*"),
        ("'zeta' & 'omicron' & 'k':*", "'zeta'", "'k':*"),
    ]
    for query, anchor, prefix in cases:
        words = {w.strip("'").split("'")[0] for w in query.split(" & ")}
        prefixes = {w for w in words if query.count(f"'{w}':*")}
        expected = [
            n
            for n, paper in reversed(list(enumerate(corpus, start=1)))
            if holds(paper, words, prefixes, titles=True)
        ][:wanted]
        rows = await db.fetch(
            text(
                "SELECT id FROM hotpapers_suggestions(CAST(:q AS tsquery), "
                "CAST(:anchor AS tsquery), CAST(:prefix AS tsquery), CAST(:wanted AS integer)) "
                "ORDER BY id DESC"
            ),
            {"q": query, "anchor": anchor, "prefix": prefix, "wanted": wanted},
        )
        assert [row.id for row in rows] == expected, query


@pytest.mark.postgresql_only
async def test_stale_statistics_that_count_more_matches_than_papers(
    repo: PaperRepository, db: Database
) -> None:
    """After many papers were deleted since the last ANALYZE, the planner may estimate more
    matches than the table has papers (seen in CI: a division by zero). Search still answers."""
    await repo.upsert(
        [make_paper(f"2503.{n:05d}", title=f"Graph and model {n}") for n in range(1, 2001)], T0
    )
    async with db.write() as conn:
        await conn.execute(text("ANALYZE papers"))
        await conn.execute(text("DELETE FROM paper_categories"))
        await conn.execute(text("DELETE FROM papers"))
        await conn.execute(text("SELECT setval(pg_get_serial_sequence('papers', 'id'), 1, false)"))
    await repo.upsert([make_paper("2504.00001", title="Graph and model")], T0)
    for query in ("and", "graph model", "AND"):
        assert [p.arxiv_id for p in await repo.search(query)] == ["2504.00001"], query
    for typed in ("and", "graph mod", "gra"):
        assert [arxiv_id for arxiv_id, _ in await repo.autocomplete(typed)] == ["2504.00001"]


@pytest.mark.postgresql_only
async def test_the_title_word_index_follows_every_change_to_papers(
    repo: PaperRepository, db: Database
) -> None:
    """paper_title_words (0011) holds exactly the words of each paper's title vector through
    inserts, upserts that change the title or the authors or change nothing, deletions and
    TRUNCATE; the title tier finds papers by it at each step."""

    async def words_of(arxiv_id: str) -> set[str]:
        async with db.read() as conn:
            paper_id = await conn.scalar(
                text("SELECT id FROM papers WHERE arxiv_id = :a"), {"a": arxiv_id}
            )
        return {w for w, p in await title_words(db) if p == paper_id}

    async def found(query: str) -> list[str]:
        return [p.arxiv_id for p in await repo.search(query)]

    first = make_paper("2503.00001", title="Graph neural networks", authors=("Ana Zeta",))
    second = make_paper("2503.00002", title="Kernel methods", authors=("Bo Li",))
    await repo.upsert([first, second], T0)
    assert await title_words(db) == await title_words(db, from_vectors=True)
    assert await words_of("2503.00001") == {"graph", "neural", "networks", "ana", "zeta"}
    assert await found("neural networks") == ["2503.00001"]

    renamed = make_paper("2503.00001", title="Graph transformers", authors=("Cy Müller",))
    await repo.upsert([renamed, second], T0)  # one changed, one fetched again as it was
    assert await title_words(db) == await title_words(db, from_vectors=True)
    assert await words_of("2503.00001") == {"graph", "transformers", "cy", "muller"}
    assert await found("neural networks") == []
    assert await found("graph muller") == ["2503.00001"]

    async with db.write() as conn:
        await conn.execute(text("DELETE FROM papers WHERE arxiv_id = '2503.00002'"))
    assert await title_words(db) == await title_words(db, from_vectors=True)
    assert await found("kernel methods") == []

    async with db.write() as conn:
        await conn.execute(text("TRUNCATE papers CASCADE"))
    assert await title_words(db) == []
    await repo.upsert([second], T0)
    assert await title_words(db) == await title_words(db, from_vectors=True)
    assert await found("kernel methods") == ["2503.00002"]


@pytest.mark.postgresql_only
async def test_suggestions_after_a_long_word_list_without_them(
    repo: PaperRepository, db: Database
) -> None:
    """hotpapers_suggestions (0011): a common prefix after a word with a long list is looked for
    in that list's newest papers first; when none of them has it, the banded plan gives the
    rest, below the last paper looked at: exactly the newest matches still."""
    older = [
        make_paper(f"2501.{n:05d}", title=f"Study of kappa {n}", authors=("Bo Li",))
        for n in range(1, 41)
    ]
    common = [
        make_paper(f"2502.{n:05d}", title=f"Kaon and kappa decays {n}", authors=("Cy Graph",))
        for n in range(1, 1201)
    ]
    newer = [
        make_paper(f"2503.{n:05d}", title=f"Study of graphs {n}", authors=("Di Kernel",))
        for n in range(1, 701)
    ]
    for batch in (older, common, newer):  # ids in this order: the studies of kappa are oldest
        await repo.upsert(batch, T0)
    async with db.write() as conn:  # the estimates say that ka:* is common
        await conn.execute(text("ANALYZE papers"))
    suggested = [arxiv_id for arxiv_id, _ in await repo.autocomplete("study ka")]
    assert suggested == [p.arxiv_id for p in reversed(older)][:25]


@pytest.mark.postgresql_only
async def test_suggestions_of_a_rare_prefix_from_the_words_it_starts(
    repo: PaperRepository, db: Database
) -> None:
    """hotpapers_suggestions (0011): a prefix that the newest papers hardly have is served by the
    words it starts (a loose scan of the word index), each one's newest papers; a prefix that
    starts more words than that scan takes goes to the banded plan. Exact either way."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    few = [f"alm{a}{b}" for a in letters[:4] for b in letters[:5]]  # 20 words
    many = [f"xq{a}{b}" for a in letters for b in letters[:10]]  # 260 words
    older = [
        make_paper(f"2501.{n:05d}", title=f"Notes on {few[n % 20]} and {many[n % 260]}")
        for n in range(1, 601)
    ]
    newer = [make_paper(f"2502.{n:05d}", title=f"Graph study {n}") for n in range(1, 501)]
    for batch in (older, newer):
        await repo.upsert(batch, T0)
    expected = [p.arxiv_id for p in reversed(older)][:25]
    for typed in ("alm", "almb", "xq", "xqc"):
        suggested = [arxiv_id for arxiv_id, _ in await repo.autocomplete(typed)]
        wanted = [
            p.arxiv_id for p in reversed(older) if any(w.startswith(typed) for w in tokens(p.title))
        ][:25]
        assert suggested == wanted, typed
    assert [a for a, _ in await repo.autocomplete("alm")] == expected


async def calls_made(db: Database, typed: str) -> dict[str, int]:
    """How many times autocomplete's functions were called for ``typed``, with the arguments
    PaperRepository.autocomplete gives ``hotpapers_suggestions`` (PostgreSQL, a superuser)."""
    complete, last = typed_terms(typed)
    params = {
        "q": tsquery_text(typed, prefix=True),
        "a": tsquery_words(complete) if complete and last else None,
        "p": quote_lexeme(last) + ":*" if last else None,
    }
    counts = text(
        "SELECT proname, coalesce(pg_stat_get_xact_function_calls(oid), 0) FROM pg_proc "
        "WHERE proname IN ('hotpapers_suggestions_banded', 'hotpapers_window_matches')"
    )
    async with db.read() as conn:
        await conn.execute(text("SET LOCAL track_functions = 'pl'"))
        # Counts not yet reported may include earlier transactions': the difference is this one.
        before = {row[0]: int(row[1]) for row in (await conn.execute(counts)).all()}
        await conn.execute(
            text(
                "SELECT count(*) FROM hotpapers_suggestions(to_tsquery('simple', :q), "
                "to_tsquery('simple', CAST(:a AS text)), to_tsquery('simple', CAST(:p AS text)), "
                "25)"
            ),
            params,
        )
        after = {row[0]: int(row[1]) for row in (await conn.execute(counts)).all()}
    return {name: after[name] - before[name] for name in after}


@pytest.mark.postgresql_only
async def test_suggestions_from_the_word_index_by_every_path(
    repo: PaperRepository, db: Database
) -> None:
    """hotpapers_suggestions (0012) gives exactly the newest matches, all of them up to 25,
    whichever way the word index's counts choose. 14,000 titles built for the paths (after a
    whole word, by the word's papers, the words the prefix starts and their entries):

    - a rare word (350 papers): its list, each paper checked;
    - a prefix of few words after a word of 1,750 or 3,500 papers: the word's newest papers (all
      of the 1,750) joined with the prefix's among them, hashed (``po``) or looked up (``pp``),
      then, when that window holds too few matches, merges below it (``rr``, whose second word
      has 15 papers: looked up instead);
    - a prefix of 20 words: its 2,000 entries looked up in the word's list (``qa``), its 4,667
      sorted and merged with it (``zq``), its 14,000 too many: the word's list checked (1,750
      papers) or, for 3,500 or 7,000, the estimates' check of the newest and the banded plan;
    - a common word (7,000) and a rare prefix (``vv``: 280 entries), looked up;
    - several words, one rare or none; and prefixes alone."""
    letters = "abcdefghijklmnopqrst"
    titles = []
    for n in range(14_000):
        words = ["paper"]
        if n % 2 == 0:
            words.append("omega")  # 7,000: common
        if n % 8 == 0:
            words.append("delta")  # 1,750
        if n % 4 == 1:
            words.append("gamma")  # 3,500
        if n % 40 == 3:
            words.append("rho")  # 350: rare
        if n % 7 == 0:
            words.append(("qaone", "qatwo")[n % 2])  # 2 words, 2,000 entries
        if n % 3 == 0:
            words.append("zq" + letters[n % 20])  # 20 words, 4,667 entries
        words.append("xk" + letters[(n // 3) % 20])  # 20 words, 14,000 entries
        words.append(("poa", "pob", "paper")[n % 3])  # 2 words, 9,333 entries
        words.extend(("ppx", "ppy"))  # 2 words, 28,000 entries
        if n % 5 == 0 and n % 4 != 1:
            words.append("rra")  # 2,100 entries, never with gamma
        if n % 997 == 1:
            words.append("rrb")  # 15 entries, with gamma
        if n % 50 == 8:
            words.append("vv" + letters[(n // 50) % 20])  # 20 words, 280 entries
        if n % 997 == 5:
            words.append("zqmix")  # with the rare word below: a rare intersection
        titles.append(" ".join(words))
    async with db.write() as conn:
        await conn.execute(
            text(
                "INSERT INTO papers (arxiv_id, title, abstract, authors, primary_category, "
                "published, updated, fetched_at) "
                "SELECT a, t, '', '[]', 'cs.LG', now(), now(), now() "
                "FROM unnest(CAST(:ids AS text[]), CAST(:titles AS text[])) WITH ORDINALITY "
                "AS u(a, t, n) ORDER BY n"
            ),
            {"ids": [f"2501.{n:05d}" for n in range(len(titles))], "titles": titles},
        )
        await conn.execute(text("ANALYZE papers"))
        await conn.execute(text("ANALYZE paper_title_words"))
        stored = await conn.execute(text("SELECT arxiv_id, title FROM papers ORDER BY id DESC"))
        newest_first = [(row.arxiv_id, row.title.split()) for row in stored]

    def expected(typed: str) -> list[str]:
        *whole, last = typed.split()
        return [
            arxiv_id
            for arxiv_id, words in newest_first
            if all(w in words for w in whole) and any(w.startswith(last) for w in words)
        ][:25]

    cases = [
        "rho xk",  # a rare word: its list checked
        "rho zqmi",  # ... with no match
        "delta qa",  # 1,500 papers, a prefix of two words: looked up in their lists
        "gamma qat",  # 3,000 papers, likewise
        "delta zq",  # a prefix of 20 words and 4,000 entries: merged
        "gamma zqc",  # one word of the prefix, merged or looked up
        "delta xk",  # a prefix of 12,000 entries: the list checked
        "omega vv",  # a common word and a rare prefix: its papers looked up
        "omega vvb",
        "omega xk",  # a common word and a common prefix: the word's newest papers checked
        "omega zqmix",
        "omega rho xk",  # several words, one rare
        "delta po",  # the whole list of the word, the prefix's papers among it hashed
        "gamma po",  # its newest papers, likewise
        "gamma pp",  # ... the prefix's papers too many there: looked up
        "delta pp",
        "gamma rr",  # too few in the window: merges below it, and a short list looked up
        "delta rr",
        "gamma xk",
        "omega zq",
        "omega po",
        "omega gamma zq",  # several words of many papers: banded
        "omega delta vv",
        "gamma delta qa",  # no paper has both words
        "xk",  # prefixes alone
        "zqm",
        "vv",
        "vvc",
        "qa",
    ]
    for typed in cases:
        want = expected(typed)
        suggested = [arxiv_id for arxiv_id, _ in await repo.autocomplete(typed)]
        assert suggested == want, typed

    # Which way each took, by the calls it made in its transaction (function statistics, which
    # only a superuser may turn on): the bounded banded plan for several common words only.
    async with db.read() as conn:
        superuser = await conn.scalar(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        )
    banded = {"omega gamma zq", "omega delta vv", "gamma delta qa"}
    windows = {"delta po", "gamma po", "gamma pp", "delta pp", "gamma rr", "delta rr", "omega po"}
    windows |= {"omega xk", "gamma xk"}  # a common prefix of 20 words: the wide window
    for typed in cases if superuser else ():
        calls = await calls_made(db, typed)
        assert (calls["hotpapers_suggestions_banded"] > 0) == (typed in banded), (typed, calls)
        assert (calls["hotpapers_window_matches"] > 0) == (typed in windows), (typed, calls)

    assert expected("omega vvb")
    assert expected("rho xk")
    assert not expected("gamma delta qa")

    # Called in another shape than the app's (a query holding more than the anchor and the
    # prefix, or a prefix that is a whole word), the function reads the query, not the word
    # index: the banded plan's newest matches, perhaps fewer, never others.
    for query, anchor, prefix in (
        ("'delta' & 'vv':*", None, "'vv':*"),
        ("'omega' & 'vv':*", "'omega'", "'vv'"),
        ("'delta' & 'poa' & 'ppx':*", "'delta'", "'ppx':*"),
    ):
        params = {"q": query, "a": anchor, "p": prefix}
        got = await db.fetch(
            text(
                "SELECT id FROM hotpapers_suggestions(CAST(:q AS tsquery), CAST(:a AS tsquery), "
                "CAST(:p AS tsquery), 25) ORDER BY id DESC"
            ),
            params,
        )
        async with db.read() as conn:
            matches = await conn.execute(
                text(
                    "SELECT id FROM papers WHERE title_vector @@ CAST(:q AS tsquery) "
                    "ORDER BY id DESC LIMIT 25"
                ),
                params,
            )
            want = list(matches.scalars())
        assert want
        assert [row.id for row in got] == want[: len(got)], query
