"""Streaming ingestion: follow a source's event stream, store what links arXiv, keep a cursor.

Bluesky is followed through Jetstream, which delivers every post on the network at least once.
The consumer keeps only posts that link an arXiv paper, applies creates, edits and deletes in
stream order, and saves its cursor (unix µs) only after the effects up to it are stored: a crash
at any point resumes a little before the cursor, and the replayed events are absorbed because
every write is idempotent. A cursor older than the stream's lookback cannot be resumed: that
stretch is recorded as a gap and shown to operators and moderators, never skipped in silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.core.errors import SourceError
from bot.core.models import Mention, Window
from bot.services.metrics import Metrics
from bot.sources.bluesky import (
    AccountDelete,
    BlueskySettings,
    MalformedEventError,
    PostDelete,
    PostUpsert,
    StreamEvent,
    micros,
)
from bot.sources.jetstream import Frame
from bot.storage.mentions import MentionRepository
from bot.storage.streams import StreamGap, StreamRepository

log = logging.getLogger(__name__)


async def stop_child(task: asyncio.Task[object]) -> None:
    """Cancel ``task``, a child of the running task, and wait until it has ended.

    The child's own cancellation is expected and not raised. A cancellation of the running task
    that arrives meanwhile is raised: ``contextlib.suppress(CancelledError)`` around the wait
    would swallow it too, and a stream's supervisor would then restart the stream instead of
    stopping (a shutdown that never ends)."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


Clock = Callable[[], dt.datetime]
# Stream events are written in batches of at most this many, or at least every few seconds.
FLUSH_EVENTS = 500
# A connection starting this much later than asked (beyond the rewind) lost posts: a gap. The
# real stream carries an event every few milliseconds, so a minute of nothing is never quiet.
GAP_TOLERANCE_SECONDS = 60.0
FUTURE_SLACK_US = 3_600_000_000  # clock skew tolerated in an event's time
# The live loop hands the event loop over at least every this many frames.
YIELD_EVERY = 20


class FrameStream(Protocol):
    """The transport: frames from a cursor on, across reconnects (``JetstreamClient``)."""

    def frames(self, cursor_us: int | None) -> AsyncIterator[Frame]: ...

    @property
    def instance(self) -> str: ...


@runtime_checkable
class StreamingSource(Protocol):
    """A source whose posts arrive on a stream: its transport and its decoder."""

    name: str
    stream: FrameStream

    def decode(self, frame: str) -> tuple[int | None, StreamEvent | None]: ...


@dataclass(slots=True)
class StreamStats:
    """Counters of one consumer, for logs, ``/digest status`` and metrics."""

    events: int = 0
    malformed: int = 0
    posts: int = 0  # creates and edits of posts linking arXiv
    deletes: int = 0
    accounts: int = 0
    position_us: int | None = None  # the last event read
    saved_us: int | None = None  # the cursor as stored
    last_event_at: dt.datetime | None = None
    running: bool = False

    @property
    def position(self) -> dt.datetime | None:
        if self.position_us is None:
            return None
        return dt.datetime.fromtimestamp(self.position_us / 1_000_000, dt.UTC)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What replaying a window of the stream gave."""

    window: Window
    events: int
    posts: int
    deletes: int
    malformed: int
    first_event: dt.datetime | None
    last_event: dt.datetime | None
    missed: tuple[dt.datetime, dt.datetime] | None = None  # the stretch the stream no longer had
    reached_end: bool = False  # events reached the window's end (else: the live edge)

    def describe(self) -> str:
        text = (
            f"replayed {self.events:,} events: {self.posts} posts linking arXiv, "
            f"{self.deletes} deletions, {self.malformed} malformed"
        )
        if self.missed is not None:
            start, end = self.missed
            hours = (end - start).total_seconds() / 3600
            text += (
                f"; WARNING: the stream no longer holds {start:%Y-%m-%d %H:%M} to "
                f"{end:%Y-%m-%d %H:%M} UTC ({hours:.1f} h missed)"
            )
        return text


class StreamConsumer:
    """Reads one streaming source into the mention store, with a durable cursor."""

    def __init__(
        self,
        *,
        source: StreamingSource,
        settings: BlueskySettings,
        mentions: MentionRepository,
        streams: StreamRepository,
        clock: Clock,
        write_lock: asyncio.Lock | None = None,
        on_stored: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.mentions = mentions
        self.streams = streams
        self.clock = clock
        self.stats = StreamStats()
        self._write_lock = write_lock or asyncio.Lock()
        self._on_stored = on_stored
        self._pending: list[StreamEvent] = []
        self._pending_us: int | None = None
        self._gap_reported = False  # the start's gap is recorded: skip the first resume check
        self._flush_lock = asyncio.Lock()
        self._flushes = 0
        # Its failures are counted, and its lag reported when Prometheus scrapes.
        self.metrics = metrics or Metrics()
        self.metrics.watch_stream(self.name, self.lag)

    @property
    def name(self) -> str:
        return self.source.name

    def lag(self) -> float | None:
        """Seconds from the last event read to now while following live (None otherwise)."""
        position = self.stats.position
        if not self.stats.running or position is None:
            return None
        return (self.clock() - position).total_seconds()

    # -- live ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the stream until cancelled, resuming from the saved cursor."""
        start = await self.resume_point()
        where = (
            "live (no saved cursor)"
            if start is None
            else f"from {_moment(start):%Y-%m-%d %H:%M:%S} UTC"
        )
        log.info("%s stream: starting %s", self.name, where)
        self.stats.running = True
        try:
            await self._consume(self.source.stream.frames(start))
        except SourceError as exc:
            self.metrics.source_failed(self.name, exc.kind)
            raise
        finally:
            self.stats.running = False

    async def resume_point(self) -> int | None:
        """The cursor to start from: a little before the saved one, or live when none is saved.

        A saved cursor older than the lookback is a gap: recorded and logged, then the stream
        starts at the oldest moment it still holds.
        """
        saved = await self.streams.cursor(self.name)
        if saved is None:
            return None
        now = self.clock()
        rewind = round(self.settings.resume_rewind_seconds * 1_000_000)
        start = saved.cursor_us - rewind
        floor = micros(now - dt.timedelta(hours=self.settings.lookback_hours))
        # Only the saved cursor itself being too old loses posts: a rewind that merely reaches
        # past the floor is clamped by the stream and misses nothing.
        if saved.cursor_us < floor:
            gap = await self.streams.record_gap(self.name, saved.moment, _moment(floor), now)
            log.warning(
                "%s stream: the saved cursor (%s UTC) is older than the %g h the stream keeps; "
                "posts from %s to %s UTC (%.1f h) are a gap that cannot be replayed",
                self.name,
                f"{saved.moment:%Y-%m-%d %H:%M}",
                self.settings.lookback_hours,
                f"{gap.start:%Y-%m-%d %H:%M}",
                f"{gap.end:%Y-%m-%d %H:%M}",
                gap.hours,
            )
            # Recorded once: a restart before the next save must not record it again.
            await self.streams.save_cursor(self.name, floor, saved.instance, now)
            # The first connection starts at the oldest moment the stream still holds: its
            # distance from `floor` is that same gap, not a new one.
            self._gap_reported = True
            start = floor
        return start

    # -- replay (hotpapers fetch) -------------------------------------------------------------

    async def replay(self, window: Window) -> ReplayReport:
        """Read the stream from ``window.start`` until its events reach ``window.end`` or the
        live edge (no frame for ``replay_idle_seconds``), storing what links arXiv.

        The stream only keeps ``lookback_hours``: a window starting earlier is still asked, and
        the hours the first events come later than ``window.start`` are reported as missed.
        """
        start_us, end_us = micros(window.start), micros(window.end)
        # The stream never falls silent: a window ending in the future ends at the live edge,
        # the moment the replay began.
        edge_us = min(end_us, micros(self.clock()))
        before = (self.stats.events, self.stats.posts, self.stats.deletes, self.stats.malformed)
        first: int | None = None
        reached_end = False
        last_frame = time.monotonic()
        storing = False  # a batch is being written: the stream is not quiet, we are busy
        idle = self.settings.replay_idle_seconds
        connect = self.settings.replay_connect_seconds

        async def read() -> None:
            nonlocal first, reached_end, last_frame, storing
            frames = self.source.stream.frames(start_us)
            try:
                async for frame in frames:
                    last_frame = time.monotonic()
                    time_us = await self._take(frame)
                    if time_us is None:
                        continue
                    if first is None:
                        first = time_us
                    if time_us >= edge_us:
                        reached_end = time_us >= end_us
                        return
                    if len(self._pending) >= FLUSH_EVENTS:
                        # A slow write (a busy database server) is no quiet spell of the
                        # stream: the next frame's wait is timed from the write's end.
                        storing = True
                        try:
                            await self._flush_whole(save=False)
                        finally:
                            storing = False
                            last_frame = time.monotonic()
                    elif self.stats.events % YIELD_EVERY == 0:
                        await asyncio.sleep(0)
            finally:
                # Leaving closes the socket now, not when the generator is collected.
                close = getattr(frames, "aclose", None)
                if close is not None:
                    await close()

        # One watchdog for the whole replay, not a timeout per frame (which costs more than
        # reading the frame): quiet for `idle` after the first frame is the live edge.
        reader = asyncio.create_task(read(), name=f"{self.name}:replay")
        timed_out = False
        try:
            while not reader.done():
                await asyncio.wait({reader}, timeout=min(idle, connect) / 4)
                limit = idle if first is not None else connect
                quiet = not storing and time.monotonic() - last_frame > limit
                if not reader.done() and quiet:
                    timed_out = True
                    await stop_child(reader)
            if not timed_out:
                reader.result()  # a failure of the stream or of storage is raised here
        finally:
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            await self._flush_whole(save=False)
        if timed_out and first is None:
            raise SourceError(
                self.name,
                f"the stream sent nothing within {connect:g} s ({self.source.stream.instance})",
                kind="unreachable",
            )
        missed = None
        tolerance = 60 * 1_000_000
        if first is None or first > start_us + tolerance:
            missed_end = min(_moment(first), window.end) if first is not None else window.end
            missed = (window.start, missed_end)
            log.warning(
                "%s replay: the stream's first event is %s, after the window's start %s: "
                "%.1f hours are missing (the stream keeps about %g h)",
                self.name,
                "none" if first is None else f"{_moment(first):%Y-%m-%d %H:%M} UTC",
                f"{window.start:%Y-%m-%d %H:%M} UTC",
                (missed_end - window.start).total_seconds() / 3600,
                self.settings.lookback_hours,
            )
        after = (self.stats.events, self.stats.posts, self.stats.deletes, self.stats.malformed)
        events, posts, deletes, malformed = (a - b for a, b in zip(after, before, strict=True))
        return ReplayReport(
            window=window,
            events=events,
            posts=posts,
            deletes=deletes,
            malformed=malformed,
            first_event=_moment(first) if first is not None else None,
            last_event=self.stats.position,
            missed=missed,
            reached_end=reached_end,
        )

    async def gaps(self, since: dt.datetime) -> list[StreamGap]:
        return await self.streams.gaps(self.name, since)

    # -- the loop -----------------------------------------------------------------------------

    async def _consume(self, frames: AsyncIterator[Frame]) -> None:
        every = self.settings.cursor_save_seconds
        last_flush = time.monotonic()
        # The loop only flushes when a frame arrives: on a quiet stream the last posts read
        # (and the cursor past them) would wait in memory for the next frame.
        quiet = asyncio.create_task(self._flush_when_quiet(every), name=f"{self.name}:flush")
        try:
            async for frame in frames:
                if frame.first:
                    await self._check_resume(frame)
                await self._take(frame)
                now = time.monotonic()
                if len(self._pending) >= FLUSH_EVENTS or now - last_flush >= every:
                    await self._flush_whole(save=True)
                    last_flush = now
                elif self.stats.events % YIELD_EVERY == 0:
                    # Frames already received are read without suspending (a catch-up reads
                    # hundreds per socket read): let the interactions in meanwhile.
                    await asyncio.sleep(0)
        finally:
            quiet.cancel()
            # Shutdown (cancellation) or a crash of the loop: store what was read, save the
            # cursor.
            await self._flush_whole(save=True)

    async def _check_resume(self, frame: Frame) -> None:
        """A connection that asked for moment T but starts later than T (the instance no longer
        holds it: it keeps only so many hours, and clamps an older cursor silently) lost the
        posts in between: record and log that gap rather than skip it."""
        if self._gap_reported:
            self._gap_reported = False
            return
        asked, got = frame.asked_us, frame.time_us
        tolerance = round((self.settings.resume_rewind_seconds + GAP_TOLERANCE_SECONDS) * 1e6)
        if asked is None or got is None or got - asked <= tolerance:
            return
        gap = await self.streams.record_gap(self.name, _moment(asked), _moment(got), self.clock())
        log.warning(
            "%s stream: %s resumed at %s UTC instead of %s UTC: posts from %s to %s UTC "
            "(%.1f h) are a gap that cannot be replayed",
            self.name,
            frame.instance,
            f"{gap.end:%Y-%m-%d %H:%M:%S}",
            f"{gap.start:%Y-%m-%d %H:%M:%S}",
            f"{gap.start:%Y-%m-%d %H:%M}",
            f"{gap.end:%Y-%m-%d %H:%M}",
            gap.hours,
        )

    async def _flush_when_quiet(self, every: float) -> None:
        """Flush when no flush happened for ``every`` seconds (no frame came to trigger one)."""
        while True:
            flushes = self._flushes
            await asyncio.sleep(every)
            if self._flushes != flushes:
                continue
            try:
                await self._flush_whole(save=True)
            except Exception as exc:  # noqa: BLE001 - still pending: the loop's next flush retries
                log.warning("%s stream: storing what was read failed: %r", self.name, exc)
                return

    async def _flush_whole(self, *, save: bool) -> None:
        """:meth:`_flush`, run to its end even if this task is cancelled meanwhile (the
        cancellation is raised once it is done). A write cut mid-transaction does not always
        roll back at once: its connection can keep SQLite's write lock, and the flush on the
        way out would then fail on "database is locked"."""
        flush = asyncio.ensure_future(self._flush(save=save))
        cancelled = False
        while not flush.done():
            try:
                await asyncio.shield(flush)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            flush.result()  # a failed write is the error to report
            raise asyncio.CancelledError

    async def _take(self, frame: Frame) -> int | None:
        """Decode one frame into the pending batch; returns its time (None if unreadable)."""
        self.stats.events += 1
        try:
            time_us, event = self.source.decode(frame.text)
        except MalformedEventError:
            # Skipped and counted; its envelope time (if any, and not in the future) still
            # moves the position past it.
            self.stats.malformed += 1
            time_us, event = frame.time_us, None
        if time_us is not None and time_us > micros(self.clock()) + FUTURE_SLACK_US:
            time_us = None  # a moment in the future is no position: resuming there skips posts
        if event is not None:
            self._pending.append(event)
        if time_us is not None:
            self.stats.position_us = time_us
            self.stats.last_event_at = self.clock()
            self._pending_us = time_us
        return time_us

    async def _flush(self, *, save: bool) -> None:
        """Apply the pending events in stream order, then (live) save the cursor after them."""
        # One at a time (the loop and _flush_when_quiet): each drops what it applied from the
        # head of the batch, which must not be what another is applying.
        async with self._flush_lock:
            self._flushes += 1
            await self._flush_now(save=save)

    async def _flush_now(self, *, save: bool) -> None:
        events = list(self._pending)
        cursor = self._pending_us
        if events:
            async with self._write_lock:
                await self._apply(events)
            # Dropped only once stored: a flush cut short (cancelled, or a failed write) leaves
            # them pending, so the flush on the way out applies them again (every write is
            # idempotent, and the batch is replayed in order) before any cursor past them.
            del self._pending[: len(events)]
            if self._on_stored is not None:
                self._on_stored()
        if save and cursor is not None and cursor != self.stats.saved_us:
            await self.streams.save_cursor(
                self.name, cursor, self.source.stream.instance, self.clock()
            )
            self.stats.saved_us = cursor

    async def _apply(self, events: Sequence[StreamEvent]) -> None:
        upserts: list[Mention] = []
        deletes: list[str] = []
        seen_at = self.clock()

        async def write_upserts() -> None:
            if upserts:
                await self.mentions.upsert_discovered(upserts, seen_at)
                self.stats.posts += len(upserts)
                upserts.clear()

        async def write_deletes() -> None:
            if deletes:
                await self.mentions.delete_posts(self.name, deletes)
                self.stats.deletes += len(deletes)
                deletes.clear()

        for event in events:
            if isinstance(event, PostUpsert):
                await write_deletes()
                upserts.append(event.mention)
            elif isinstance(event, PostDelete):
                await write_upserts()
                deletes.append(event.uri)
            elif isinstance(event, AccountDelete):
                await write_upserts()
                await write_deletes()
                removed = await self.mentions.delete_with_prefix(self.name, f"at://{event.did}/")
                self.stats.accounts += 1
                if removed:
                    log.info("%s: account deleted, %d posts forgotten", self.name, removed)
        await write_upserts()
        await write_deletes()


def _moment(time_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_us / 1_000_000, dt.UTC)


def describe_gap(gap: StreamGap) -> str:
    return f"{gap.start:%Y-%m-%d %H:%M} to {gap.end:%Y-%m-%d %H:%M} UTC ({gap.hours:.1f} h)"
