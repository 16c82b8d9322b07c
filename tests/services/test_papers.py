"""PaperService: by id (stored, else arXiv, then stored), by words (FTS, then arXiv), errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from bot.core.errors import InvalidArxivIdError, PaperNotFoundError, UserFacingError
from bot.fakes.arxiv import FakeArxiv
from bot.services.papers import (
    MAX_QUERY,
    PaperService,
    check_query,
    joined_variants,
    looks_like_id,
)
from bot.settings import ArxivSettings, HttpSettings
from bot.sources.arxiv import ArxivClient, ArxivRateLimiter
from bot.sources.http import HttpClient
from bot.storage.engine import Database
from bot.storage.papers import PaperRepository
from tests.storage.factories import make_paper

NOW = dt.datetime(2025, 3, 2, 6, 0, tzinfo=dt.UTC)
LIE = make_paper(
    "2012.10885",
    title="LieTransformer: Equivariant self-attention for Lie Groups",
    authors=("Michael Hutchinson", "Hyunjik Kim"),
    categories=("cs.LG", "stat.ML"),
)
BOW = make_paper(
    "2012.11552",
    title="Online Bag-of-Visual-Words Generation for Unsupervised Representation Learning",
    authors=("Spyros Gidaris",),
    categories=("cs.CV", "cs.LG"),
)
REMOTE = make_paper(
    "2012.11538",
    title="Evaluating Agents without Rewards",
    authors=("Brendon Matusch", "Jimmy Ba", "Danijar Hafner"),
)


@dataclass
class Lookup:
    service: PaperService
    papers: PaperRepository
    arxiv: FakeArxiv


@pytest.fixture
async def lookup(db: Database) -> AsyncIterator[Lookup]:
    async with (
        FakeArxiv() as arxiv,
        aiohttp.ClientSession() as session,
    ):
        arxiv.add_papers([LIE, BOW, REMOTE])
        client = ArxivClient(
            HttpClient(session, HttpSettings(retries=0), source="arxiv"),
            ArxivSettings(api_url=arxiv.api_url, min_interval_seconds=0),
            ArxivRateLimiter(0),
        )
        papers = PaperRepository(db)
        await papers.upsert([LIE, BOW], NOW)
        yield Lookup(PaperService(papers=papers, arxiv=client, clock=lambda: NOW), papers, arxiv)


# -- by id ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "2012.10885",
        "2012.10885v3",
        "arXiv:2012.10885",
        "https://arxiv.org/abs/2012.10885",
        "https://arxiv.org/pdf/2012.10885v1.pdf",
        "<https://arxiv.org/abs/2012.10885>",
        "https://huggingface.co/papers/2012.10885",
    ],
)
async def test_a_stored_id_comes_from_storage(lookup, query):
    result = await lookup.service.lookup(query)
    assert result.papers == (LIE,)
    assert result.origin == "stored"
    assert result.by_id
    assert lookup.arxiv.requests == []


async def test_an_id_not_stored_is_fetched_from_arxiv_then_stored(lookup):
    assert await lookup.papers.get(REMOTE.arxiv_id) is None
    result = await lookup.service.lookup("2012.11538")
    assert result.origin == "arxiv"
    assert result.by_id
    (paper,) = result.papers
    assert paper.arxiv_id == REMOTE.arxiv_id
    assert paper.title == REMOTE.title
    (request,) = lookup.arxiv.requests
    assert request.params["id_list"] == "2012.11538"
    assert await lookup.papers.get(REMOTE.arxiv_id) is not None
    again = await lookup.service.lookup("https://arxiv.org/abs/2012.11538")
    assert again.origin == "stored"
    assert len(lookup.arxiv.requests) == 1


async def test_by_id_returns_the_paper(lookup):
    assert (await lookup.service.by_id("2012.10885")).title == LIE.title


async def test_an_id_arxiv_does_not_know_is_not_found_and_remembered(lookup):
    with pytest.raises(PaperNotFoundError, match=r"arXiv has no paper `2012\.99999`"):
        await lookup.service.lookup("2012.99999")
    assert await lookup.papers.missing_ids(["2012.99999"]) == {"2012.99999"}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("2013.10885", "month 13"),
        ("2012.1088", "5-digit"),
        ("https://arxiv.org/abs/garbage", "not an arXiv id"),
        ("arxiv:foo", "not an arXiv id"),
        ("https://example.com/papers/2012.10885", "not an arXiv id"),
        ("hep-th/99", "not an arXiv id"),
    ],
)
async def test_a_bad_id_is_an_error_not_a_title_search(lookup, query, reason):
    with pytest.raises(InvalidArxivIdError, match=reason):
        await lookup.service.lookup(query)
    with pytest.raises(InvalidArxivIdError, match=reason):
        check_query(query)
    assert lookup.arxiv.requests == []


# -- by words -------------------------------------------------------------------------------------


async def test_words_search_stored_papers(lookup):
    result = await lookup.service.lookup("bag of visual words")
    assert result.papers == (BOW,)
    assert result.origin == "stored"
    assert not result.by_id
    assert lookup.arxiv.requests == []


async def test_words_run_together_in_a_title_are_found(lookup):
    # "LieTransformer" is one word to the index; "lie transformer" still finds it.
    result = await lookup.service.lookup("lie  transformer")
    assert result.papers == (LIE,)
    assert result.origin == "stored"
    assert lookup.arxiv.requests == []


async def test_words_not_stored_fall_back_to_arxiv_and_are_stored(lookup):
    result = await lookup.service.lookup("agents without rewards")
    assert result.origin == "arxiv"
    assert [p.arxiv_id for p in result.papers] == [REMOTE.arxiv_id]
    (request,) = lookup.arxiv.requests
    assert request.params["search_query"] == "ti:agents AND ti:without AND ti:rewards"
    assert await lookup.papers.get(REMOTE.arxiv_id) is not None
    # Now it is stored, the next search does not ask arXiv.
    assert (await lookup.service.lookup("agents without rewards")).origin == "stored"
    assert len(lookup.arxiv.requests) == 1


async def test_words_nobody_wrote_are_not_found(lookup):
    with pytest.raises(PaperNotFoundError, match="No paper matches"):
        await lookup.service.lookup("zyzzyva quux")


async def test_query_syntax_is_searched_as_words(lookup):
    for query in ('"lie" "groups"', "lie* (groups)", "groups: lie^", "equivariant-self-attention"):
        # Operators and quotes are words: none reaches FTS5 or arXiv as syntax.
        result = await lookup.service.lookup(query)
        assert [p.arxiv_id for p in result.papers] == [LIE.arxiv_id], query
    for query in ("title:lie AND (", "NEAR(lie groups, 2)"):
        with pytest.raises(PaperNotFoundError):
            await lookup.service.lookup(query)


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
async def test_an_empty_query_is_a_user_error(lookup, query):
    with pytest.raises(UserFacingError, match="Give an arXiv id"):
        await lookup.service.lookup(query)


async def test_a_too_long_query_is_a_user_error(lookup):
    with pytest.raises(UserFacingError, match=f"at most {MAX_QUERY} characters"):
        await lookup.service.lookup("x" * (MAX_QUERY + 1))
    assert lookup.arxiv.requests == []


def test_check_query_collapses_whitespace():
    assert check_query("  lie \n transformer ") == "lie transformer"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2012.10885", True),
        ("2013.10885", True),
        ("arXiv:2012.10885", True),
        ("https://arxiv.org/abs/garbage", True),
        ("https://example.com/x", True),
        ("hep-th/9901001", True),
        ("lie transformer", False),
        ("GPT-4 technical report", False),
        ("and/or", False),
        ("1706.03762 transformer", False),
        ("3.14 ways", False),
    ],
)
def test_looks_like_id(text, expected):
    assert looks_like_id(text) is expected


def test_joined_variants():
    assert joined_variants("lie transformer") == ["lietransformer"]
    assert joined_variants("a b c") == ["ab c", "a bc"]
    assert joined_variants("one") == []
    assert joined_variants(" ".join("abcdefg")) == []


# -- autocomplete ---------------------------------------------------------------------------------


async def test_autocomplete(lookup):
    assert await lookup.service.autocomplete("lietrans") == [(LIE.arxiv_id, LIE.title)]
    assert await lookup.service.autocomplete("bag of vis") == [(BOW.arxiv_id, BOW.title)]
    assert await lookup.service.autocomplete("2012.1") == [
        (BOW.arxiv_id, BOW.title),
        (LIE.arxiv_id, LIE.title),
    ]
    assert await lookup.service.autocomplete("gidaris") == [(BOW.arxiv_id, BOW.title)]
    assert await lookup.service.autocomplete("   ") == []
    assert await lookup.service.autocomplete("x" * 1000) == []
    assert len(await lookup.service.autocomplete("2012", limit=1)) == 1
    assert lookup.arxiv.requests == []  # autocomplete never goes to arXiv
