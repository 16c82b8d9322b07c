"""Ingestion: collect mentions from every source, store them, resolve their papers on arXiv."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.core.errors import ArxivApiError, SourceError
from bot.core.models import Announcement, AnnounceType, Mention, Paper, Window
from bot.services.metrics import Metrics
from bot.sources.arxiv import ArxivClient
from bot.sources.base import PopularitySource
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository

if TYPE_CHECKING:
    from bot.services.stream import StreamConsumer

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
    notes: tuple[str, ...] = ()  # e.g. what a stream replay gave, hours it could not replay
    gone: int = 0  # posts the source says are deleted, forgotten

    @property
    def ok(self) -> bool:
        return self.error is None


class Refreshed(Protocol):
    mentions: Sequence[Mention]
    gone: Sequence[str]


@runtime_checkable
class RefreshingSource(Protocol):
    """A source that re-reads the metrics of the posts already stored (streamed posts carry
    none); the posts it no longer finds are gone and are forgotten."""

    name: str

    async def refresh(self, posts: Sequence[Mention]) -> Refreshed: ...


@dataclass(frozen=True, slots=True)
class IngestReport:
    """The outcome of one ingestion run, per source and for arXiv."""

    window: Window
    sources: tuple[SourceSummary, ...]
    resolved: int
    missing: tuple[str, ...] = ()
    arxiv_error: str | None = None
    failures: tuple[str, ...] = field(default=())
    feed: FeedSummary | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


FEED_SOURCE = "arxiv feed"
# A refreshed post missing from the source's answer is deleted only when at least this old: the
# AppView may not have indexed a post the stream delivered moments ago.
GONE_AFTER = dt.timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class FeedSummary:
    """What the day's arXiv announcements (RSS) gave."""

    categories: tuple[str, ...]
    new: int = 0
    cross: int = 0
    replaced: int = 0
    stored: int = 0
    empty: bool = False
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"FAILED: {self.error}"
        if self.empty:
            return "no announcements (arXiv announces nothing on weekends and holidays)"
        return (
            f"{self.new} new, {self.cross} cross-lists, {self.replaced} replacements; "
            f"{self.stored} papers stored"
        )


def _error_text(exc: SourceError, shown_as: str) -> str:
    """The error as recorded and shown beside the name ``shown_as``, without repeating it.

    "x: FAILED: HTTP 503…", not "x: FAILED: x: HTTP 503…"; an error naming another service
    keeps its prefix.
    """
    return exc.detail if exc.source == shown_as else exc.message


def _paper(item: Announcement) -> Paper:
    return Paper(
        arxiv_id=item.arxiv_id,
        title=item.title,
        abstract=item.abstract,
        authors=item.authors,
        primary_category=item.categories[0] if item.categories else "",
        categories=item.categories,
        published=item.announced,
        updated=item.announced,
        version=item.version,
    )


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
        on_stored: Callable[[], None] | None = None,
        consumers: Mapping[str, StreamConsumer] | None = None,
        write_lock: asyncio.Lock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.sources = list(sources)
        # Streaming sources: `replay` reads their stream for the window before counting.
        self.consumers = dict(consumers or {})
        self.arxiv = arxiv
        self.papers = papers
        self.mentions = mentions
        self.runs = runs
        self.clock = clock
        # Called when a run ends (whatever it stored): cached rankings are stale from then.
        self.on_stored = on_stored
        self._lock = asyncio.Lock()
        # Sources are collected concurrently, but their results are written one at a time: one
        # writer never waits on another (SQLite has one write lock, and an in-memory database
        # one connection for everybody).
        self._write_lock = write_lock or asyncio.Lock()
        # Each source's collection time and failures (real elapsed time, not the clock's).
        self.metrics = metrics or Metrics()

    @property
    def running(self) -> bool:
        return self._lock.locked()

    async def run(
        self,
        window: Window,
        progress: Progress | None = None,
        *,
        categories: Collection[str] = (),
        replay: bool = False,
    ) -> IngestReport:
        """One ingestion pass. Never raises for a source failure: it is reported instead.

        ``categories``: also read today's arXiv announcements (RSS) of these categories, so
        new papers are stored (and searchable) before anyone links them. ``replay``: read each
        streaming source's stream over the window first (``hotpapers fetch``; the bot's
        consumers follow the stream live instead).
        """
        say = progress or (lambda _msg: None)
        async with self._lock:
            try:
                results = await asyncio.gather(
                    *(self._collect(source, window, say, replay) for source in self.sources)
                )
                summaries = tuple(results)
                feed = await self._announcements(sorted(set(categories)), window, say)
                resolved, missing, arxiv_error = await self._resolve(say)
            finally:
                if self.on_stored is not None:
                    self.on_stored()
        failures = tuple(f"{s.source}: {s.error}" for s in summaries if s.error)
        if feed is not None and feed.error:
            failures += (f"arxiv feed: {feed.error}",)
        if arxiv_error:
            failures += (f"arxiv: {arxiv_error}",)
        return IngestReport(
            window, summaries, resolved, tuple(missing), arxiv_error, failures, feed
        )

    async def _announcements(
        self, categories: list[str], window: Window, say: Progress
    ) -> FeedSummary | None:
        if not categories:
            return None
        started = self.clock()
        timer = time.monotonic()
        joined = "+".join(categories)
        try:
            feed = await self.arxiv.announcements(categories)
        except SourceError as exc:
            log.warning("arXiv feed for %s failed: %s", joined, exc.message)
            summary = FeedSummary(tuple(categories), error=_error_text(exc, self.arxiv.name))
            error_kind = exc.kind
        else:
            error_kind = ArxivApiError.kind  # the feed's own error entry
            if feed.error:
                summary = FeedSummary(tuple(categories), error=feed.error)
            else:
                counts = Counter(a.announce_type.value for a in feed.announcements)
                fresh = [
                    a
                    for a in feed.announcements
                    if a.announce_type in (AnnounceType.NEW, AnnounceType.CROSS)
                ]
                known = await self.papers.known_ids(a.arxiv_id for a in fresh)
                papers = [_paper(a) for a in fresh if a.arxiv_id not in known]
                if papers:
                    async with self._write_lock:
                        await self.papers.upsert(papers, self.clock())
                summary = FeedSummary(
                    tuple(categories),
                    new=counts["new"],
                    cross=counts["cross"],
                    replaced=counts["replace"] + counts["replace-cross"],
                    stored=len(papers),
                    empty=feed.empty,
                )
        async with self._write_lock:
            await self.runs.record(
                FEED_SOURCE,
                window,
                started,
                self.clock(),
                summary.new + summary.cross + summary.replaced,
                1,
                summary.error,
                error_kind,
            )
        self.metrics.source_collected(
            FEED_SOURCE,
            time.monotonic() - timer,
            finished_at=time.time(),
            error_kind=error_kind if summary.error else None,
        )
        say(f"arxiv feed {joined}: {'FAILED' if summary.error else summary.describe()}")
        return summary

    async def _collect(
        self, source: PopularitySource, window: Window, say: Progress, replay: bool = False
    ) -> SourceSummary:
        started = self.clock()
        timer = time.monotonic()
        say(
            f"{source.name}: collecting {window.start:%Y-%m-%d %H:%M} → {window.end:%Y-%m-%d %H:%M}"
        )
        before = source.requests
        mentions: list[Mention] = []
        refreshed_posts: Sequence[Mention] = ()
        gone: list[str] = []
        notes: list[str] = []
        error: str | None = None
        error_kind: str | None = None
        replay_failed: SourceError | None = None
        try:
            consumer = self.consumers.get(source.name)
            if replay and consumer is not None:
                try:
                    replayed = await consumer.replay(window)
                except SourceError as exc:
                    # The stream failed: the posts already stored still get their counts.
                    replay_failed = exc
                    replay_note = f"replay failed: {_error_text(exc, source.name)}"
                    notes.append(replay_note)
                else:
                    notes.append(replayed.describe())
                    say(f"{source.name}: {replayed.describe()}")
            mentions = await source.collect(window)
            if isinstance(source, RefreshingSource):
                # Under the write lock: other sources write meanwhile, and an in-memory
                # database is one connection, on which a read cannot overlap a write.
                async with self._write_lock:
                    stored = await self.mentions.posts_to_refresh(source.name, window)
                refreshed = await source.refresh(stored)
                refreshed_posts = refreshed.mentions
                # A post the AppView doesn't know yet (seen on the stream moments ago) is not
                # gone: only one older than GONE_AFTER that it no longer returns.
                young = self.clock() - GONE_AFTER
                created = {m.post_id: m.created_at for m in stored}
                gone = [p for p in refreshed.gone if created.get(p, young) < young]
            if replay_failed is not None:
                # Now the source's error, reported as such: not as a note beside it as well.
                notes.remove(replay_note)
                raise replay_failed
        except SourceError as exc:
            error, error_kind = _error_text(exc, source.name), exc.kind
            log.warning("source %s failed: %s", source.name, error)
        except Exception as exc:  # a bug in one source must not take the others down
            error, error_kind = f"unexpected {type(exc).__name__}", SourceError.kind
            log.exception("source %s crashed", source.name)
        fetched_at = self.clock()
        requests = source.requests - before
        async with self._write_lock:
            if mentions:
                await self.mentions.upsert(mentions, fetched_at)
            if refreshed_posts:
                # Counts and names only, on the rows that still exist: a delete or an edit the
                # stream applied while the AppView answered stands.
                await self.mentions.record_refresh(refreshed_posts, fetched_at)
            if gone:
                await self.mentions.delete_posts(source.name, gone)
            counted = len(mentions) + len(refreshed_posts)
            await self.runs.record(
                source.name, window, started, fetched_at, counted, requests, error, error_kind
            )
        self.metrics.source_collected(
            source.name,
            time.monotonic() - timer,
            finished_at=time.time(),
            error_kind=error_kind if error else None,
        )
        mentions = [*mentions, *refreshed_posts]
        papers = len({i for m in mentions for i in m.arxiv_ids})
        say(
            f"{source.name}: {len(mentions)} mentions, {papers} papers, {requests} requests"
            + (f", {len(gone)} deleted posts forgotten" if gone else "")
            # The reason is the report's (the CLI's summary): said once, there.
            + (" — FAILED" if error else "")
        )
        return SourceSummary(
            source.name, len(mentions), papers, requests, error, tuple(notes), len(gone)
        )

    async def _resolve(self, say: Progress) -> tuple[int, list[str], str | None]:
        ids = await self.mentions.unresolved_ids(now=self.clock())
        if not ids:
            return 0, [], None
        say(f"arxiv: resolving {len(ids)} papers")
        try:
            result = await self.arxiv.fetch_papers(ids)
        except SourceError as exc:
            error = _error_text(exc, self.arxiv.name)
            self.metrics.source_failed(self.arxiv.name, exc.kind)
            log.warning("arXiv lookup failed: %s", error)
            say("arxiv: FAILED")
            return 0, [], error
        now = self.clock()
        await self.papers.upsert(result.papers.values(), now)
        if result.missing:
            refused = set(result.rejected)
            unknown = [i for i in result.missing if i not in refused]
            if unknown:
                await self.papers.mark_missing(unknown, "not found on arXiv", now)
            if refused:
                await self.papers.mark_missing(result.rejected, "refused by the arXiv API", now)
            log.info(
                "arXiv does not know %d ids: %s", len(result.missing), ", ".join(result.missing)
            )
        say(f"arxiv: {len(result.papers)} papers stored, {len(result.missing)} unknown")
        return len(result.papers), list(result.missing), None
