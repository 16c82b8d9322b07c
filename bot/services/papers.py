"""Paper look-up: by arXiv id or URL (stored, else fetched from arXiv) or by title words."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.core.arxiv_ids import is_arxiv_id, parse_arxiv_id
from bot.core.errors import InvalidArxivIdError, PaperNotFoundError, UserFacingError
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


def looks_like_id(text: str) -> bool:
    """True when the text is meant as an id or URL (even a bad one), not as title words."""
    t = text.strip().lower()
    return is_arxiv_id(t) or "arxiv.org/" in t or t.startswith("arxiv:") or "hf.co/papers" in t


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
        text = " ".join(query.split())
        if not text:
            raise UserFacingError("Give an arXiv id, an arXiv URL or some title words.")
        if len(text) > MAX_QUERY:
            raise UserFacingError(f"That query is too long (at most {MAX_QUERY} characters).")
        if looks_like_id(text):
            try:
                paper, origin = await self._by_id(text)
            except InvalidArxivIdError:
                if "/" in text:  # a mangled URL: say so rather than searching titles for it
                    raise
            else:
                return LookupResult((paper,), origin, by_id=True)
        found = await self.papers.search(text, limit=limit)
        if found:
            return LookupResult(tuple(found), "stored", by_id=False)
        remote = await self.arxiv.search(text, max_results=limit)
        if not remote:
            raise PaperNotFoundError(f"No paper matches “{text}”.")
        await self.papers.upsert(remote, self.clock())
        return LookupResult(tuple(remote), "arxiv", by_id=False)

    async def autocomplete(self, prefix: str, *, limit: int = 25) -> list[tuple[str, str]]:
        """Up to ``limit`` stored (id, title) pairs for a prefix."""
        text = " ".join(prefix.split())[:MAX_QUERY]
        if not text:
            return []
        return await self.papers.autocomplete(text, limit=limit)
