"""Paper look-up: by arXiv id or URL (stored, else fetched from arXiv) or by title words."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.core.arxiv_ids import is_arxiv_id, parse_arxiv_id
from bot.core.errors import PaperNotFoundError, UserFacingError
from bot.core.models import Paper
from bot.sources.arxiv import ArxivClient
from bot.storage.papers import PaperRepository

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
MAX_QUERY = 300


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Papers found for a query, and where they came from."""

    papers: tuple[Paper, ...]
    origin: Literal["stored", "arxiv"]
    by_id: bool


# One token shaped like an id (new style ``2013.10885``, old style ``hep-th/99``), a URL, or an
# ``arXiv:``/``doi:`` prefix: the user meant an id, so a bad one is reported, not title-searched.
_ID_SHAPED = re.compile(
    r"(?:arxiv:|doi:|10\.48550/)\S*"
    r"|[0-9]{4}\.[0-9]+(?:v[0-9]*)?(?:\.pdf)?"
    r"|[a-z]+(?:-[a-z]+)?(?:\.[a-z-]+)?/[0-9]+(?:v[0-9]*)?"
    r"|\S*(?:https?://|www\.|arxiv\.org/|hf\.co/|huggingface\.co/|doi\.org/)\S*",
    re.IGNORECASE,
)


def looks_like_id(text: str) -> bool:
    """True when the text is meant as an id or URL (even a bad one), not as title words."""
    t = text.strip()
    if t.startswith("<") and t.endswith(">"):
        t = t[1:-1].strip()
    return is_arxiv_id(t) or _ID_SHAPED.fullmatch(t) is not None


def joined_variants(text: str, *, max_words: int = 6) -> list[str]:
    """``a b c`` → ``ab c``, ``a bc``: the query with each pair of adjacent words joined."""
    words = text.split()
    if not 2 <= len(words) <= max_words:
        return []
    return [
        " ".join([*words[:i], words[i] + words[i + 1], *words[i + 2 :]])
        for i in range(len(words) - 1)
    ]


def check_query(query: str) -> str:
    """The query with its whitespace collapsed, or :class:`UserFacingError` saying what is wrong.

    No I/O: the CLI calls it before opening anything, so a bad query costs nothing. An id or URL
    that cannot be an arXiv id raises :class:`InvalidArxivIdError` with the reason.
    """
    text = " ".join(query.split())
    if not text:
        raise UserFacingError("Give an arXiv id, an arXiv URL or some title words.")
    if len(text) > MAX_QUERY:
        raise UserFacingError(f"That query is too long (at most {MAX_QUERY} characters).")
    if looks_like_id(text):
        parse_arxiv_id(text)
    return text


class PaperService:
    """Finds papers for ``/paper`` and ``hotpapers paper``."""

    def __init__(self, *, papers: PaperRepository, arxiv: ArxivClient, clock: Clock) -> None:
        self.papers = papers
        self.arxiv = arxiv
        self.clock = clock

    async def by_id(self, text: str) -> Paper:
        """The paper for an id or URL: from storage, else from arXiv (then stored)."""
        return (await self._by_id(text))[0]

    async def _by_id(self, text: str) -> tuple[Paper, Literal["stored", "arxiv"]]:
        arxiv_id = parse_arxiv_id(text).id
        stored = await self.papers.get(arxiv_id)
        if stored is not None:
            return stored, "stored"
        result = await self.arxiv.fetch_papers([arxiv_id])
        paper = result.papers.get(arxiv_id)
        if paper is None:
            await self.papers.mark_missing([arxiv_id], "not found on arXiv", self.clock())
            raise PaperNotFoundError(f"arXiv has no paper `{arxiv_id}`.")
        await self.papers.upsert([paper], self.clock())
        return paper, "arxiv"

    async def lookup(self, query: str, *, limit: int = 5) -> LookupResult:
        """An id or URL gives that paper; words search stored papers, then arXiv."""
        text = check_query(query)
        if looks_like_id(text):
            paper, origin = await self._by_id(text)
            return LookupResult((paper,), origin, by_id=True)
        found = await self._search_stored(text, limit)
        if found:
            return LookupResult(tuple(found), "stored", by_id=False)
        remote = await self.arxiv.search(text, max_results=limit)
        if not remote:
            raise PaperNotFoundError(f"No paper matches “{text}”.")
        await self.papers.upsert(remote, self.clock())
        return LookupResult(tuple(remote), "arxiv", by_id=False)

    async def _search_stored(self, text: str, limit: int) -> list[Paper]:
        """Stored papers with every word; failing that, with two adjacent words run together.

        The index splits words on spaces and punctuation only, so the title "LieTransformer"
        is one word: "lie transformer" finds it as "lietransformer". A few extra index
        look-ups, each a millisecond, and only when the plain search found nothing.
        """
        found = await self.papers.search(text, limit=limit)
        if found:
            return found
        for variant in joined_variants(text):
            found = await self.papers.search(variant, limit=limit)
            if found:
                return found
        return []

    async def autocomplete(self, prefix: str, *, limit: int = 25) -> list[tuple[str, str]]:
        """Up to ``limit`` stored (id, title) pairs for a prefix."""
        text = " ".join(prefix.split())[:MAX_QUERY]
        if not text:
            return []
        return await self.papers.autocomplete(text, limit=limit)
