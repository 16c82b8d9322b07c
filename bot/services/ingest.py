"""Ingestion: collect mentions from every source, store them, resolve their papers on arXiv."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.core.errors import SourceError
from bot.core.models import Mention, Window
from bot.sources.arxiv import ArxivClient
from bot.sources.base import PopularitySource
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """What one source gave in one ingestion run."""

    source: str
    mentions: int
    papers: int
    requests: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class IngestReport:
    """The outcome of one ingestion run, per source and for arXiv."""

    window: Window
    sources: tuple[SourceSummary, ...]
    resolved: int
    missing: tuple[str, ...] = ()
    arxiv_error: str | None = None
    failures: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.arxiv_error is None and all(s.ok for s in self.sources)


class IngestService:
    """Collects every source for a window, stores each fetch, resolves new ids on arXiv."""

    def __init__(
        self,
        *,
        sources: Sequence[PopularitySource],
        arxiv: ArxivClient,
        papers: PaperRepository,
        mentions: MentionRepository,
        runs: RunRepository,
        clock: Clock,
    ) -> None:
        self.sources = list(sources)
        self.arxiv = arxiv
        self.papers = papers
        self.mentions = mentions
        self.runs = runs
        self.clock = clock
        self._lock = asyncio.Lock()
        # Sources are collected concurrently, but their results are written one at a time: one
        # writer never waits on another (SQLite has one write lock, and an in-memory database
        # one connection for everybody).
        self._write_lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._lock.locked()

    async def run(self, window: Window, progress: Progress | None = None) -> IngestReport:
        """One ingestion pass. Never raises for a source failure: it is reported instead."""
        say = progress or (lambda _msg: None)
        async with self._lock:
            results = await asyncio.gather(
                *(self._collect(source, window, say) for source in self.sources)
            )
            summaries = tuple(results)
            resolved, missing, arxiv_error = await self._resolve(say)
        failures = tuple(f"{s.source}: {s.error}" for s in summaries if s.error)
        if arxiv_error:
            failures += (f"arxiv: {arxiv_error}",)
        return IngestReport(window, summaries, resolved, tuple(missing), arxiv_error, failures)

    async def _collect(
        self, source: PopularitySource, window: Window, say: Progress
    ) -> SourceSummary:
        started = self.clock()
        say(
            f"{source.name}: collecting {window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M}"
        )
        before = source.requests
        mentions: list[Mention] = []
        error: str | None = None
        try:
            mentions = await source.collect(window)
        except SourceError as exc:
            error = exc.message
            log.warning("source %s failed: %s", source.name, exc.message)
        except Exception as exc:  # a bug in one source must not take the others down
            error = f"unexpected {type(exc).__name__}"
            log.exception("source %s crashed", source.name)
        fetched_at = self.clock()
        requests = source.requests - before
        async with self._write_lock:
            if mentions:
                await self.mentions.upsert(mentions, fetched_at)
            await self.runs.record(
                source.name, window, started, fetched_at, len(mentions), requests, error
            )
        papers = len({i for m in mentions for i in m.arxiv_ids})
        say(
            f"{source.name}: {len(mentions)} mentions, {papers} papers, {requests} requests"
            + (f" — FAILED: {error}" if error else "")
        )
        return SourceSummary(source.name, len(mentions), papers, requests, error)

    async def _resolve(self, say: Progress) -> tuple[int, list[str], str | None]:
        ids = await self.mentions.unresolved_ids()
        if not ids:
            return 0, [], None
        say(f"arxiv: resolving {len(ids)} papers")
        try:
            result = await self.arxiv.fetch_papers(ids)
        except SourceError as exc:
            log.warning("arXiv lookup failed: %s", exc.message)
            say(f"arxiv: FAILED: {exc.message}")
            return 0, [], exc.message
        now = self.clock()
        await self.papers.upsert(result.papers.values(), now)
        if result.missing:
            await self.papers.mark_missing(result.missing, "not found on arXiv", now)
            log.info(
                "arXiv does not know %d ids: %s", len(result.missing), ", ".join(result.missing)
            )
        say(f"arxiv: {len(result.papers)} papers stored, {len(result.missing)} unknown")
        return len(result.papers), list(result.missing), None
