"""Readiness: whether this process can do its work now, checked from facts.

The facts are the database answering, the age of the last ingestion (``source_runs``, shared by
every process on the database) against the scheduler's interval, each source's last run, and,
in the bot's process, its gateway connections, its leadership and its streams. ``hotpapers
web`` alone has no gateway: its readiness is the database's and ingestion's.

What fails readiness: the database not answering, ingestion stale, a gateway connection down.
What only degrades it (still ready): a source whose last run failed (the ranking goes on
without it, and says so), a stream stopped or lagging. The web layer turns the facts into JSON
(``bot/web/ops.py``); nothing here holds a secret, an error text from a service, or a URL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.core.errors import StorageError
from bot.services.metrics import ShardState
from bot.services.stream import StreamConsumer
from bot.settings import SchedulerSettings
from bot.storage.engine import Database
from bot.storage.runs import RunRepository, SourceRun

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
# A check that takes longer than this has failed: a probe must answer within its own timeout.
CHECK_TIMEOUT_SECONDS = 5.0
# Ingestion is stale past twice its interval (one run may be missed or slow), and never sooner
# than this: a run of many sources over a long window takes minutes.
MIN_STALE_AFTER = dt.timedelta(minutes=30)
# A stream this far behind the live edge (after a restart it catches up) is reported degraded.
STREAM_LAG_DEGRADED_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class LeaderState:
    """Whether processes compete for the leadership (PostgreSQL) and whether this one leads."""

    elected: bool
    leading: bool


class BotProbe(Protocol):
    """What the running bot tells about itself (``HotPapersBot`` implements it)."""

    def gateway_shards(self) -> Sequence[ShardState]:
        """Every shard this process should run (one, unsharded), connected or not."""

    def leader_state(self) -> LeaderState | None:
        """None until the bot's jobs are built (at login)."""


class DatabaseFailure(enum.StrEnum):
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DatabaseCheck:
    backend: str  # "sqlite" or "postgresql": never the URL
    failure: DatabaseFailure | None = None
    seconds: float | None = None  # how long the query took, when it answered

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class IngestionCheck:
    """The last ingestion against the schedule. ``last_run`` None: none recorded (then the age
    runs from this process's start); ``known`` False: the database could not say."""

    interval: dt.timedelta
    stale_after: dt.timedelta
    last_run: dt.datetime | None = None
    age: dt.timedelta | None = None
    known: bool = True

    @property
    def ok(self) -> bool:
        return self.known and self.age is not None and self.age <= self.stale_after


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A source's last run (None: never run on this database)."""

    name: str
    run: SourceRun | None

    @property
    def ok(self) -> bool | None:
        return None if self.run is None else self.run.ok


class StreamState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # this process leads but is not following it (crashed, restarting)
    FOLLOWER = "follower"  # another process leads and follows it
    STARTING = "starting"  # the bot's jobs are not built yet


@dataclass(frozen=True, slots=True)
class StreamHealth:
    name: str
    state: StreamState
    lag: float | None = None  # seconds behind the live edge
    position: dt.datetime | None = None  # the last event read
    events: int = 0

    @property
    def ok(self) -> bool:
        if self.state is StreamState.STOPPED:
            return False
        return self.lag is None or self.lag <= STREAM_LAG_DEGRADED_SECONDS


@dataclass(frozen=True, slots=True)
class Readiness:
    """Everything ``/readyz`` reports. ``gateway``, ``leader`` and ``streams`` are None in
    the standalone web process, which has none of them (``standalone``)."""

    checked_at: dt.datetime
    database: DatabaseCheck
    ingestion: IngestionCheck
    sources: tuple[SourceHealth, ...]
    gateway: tuple[ShardState, ...] | None = None
    leader: LeaderState | None = None
    streams: tuple[StreamHealth, ...] | None = None

    @property
    def standalone(self) -> bool:
        return self.gateway is None

    @property
    def gateway_ok(self) -> bool:
        return self.gateway is None or (
            bool(self.gateway) and all(s.connected for s in self.gateway)
        )

    @property
    def ready(self) -> bool:
        return self.database.ok and self.ingestion.ok and self.gateway_ok

    @property
    def degraded(self) -> bool:
        """Ready, but a source's last run failed or a stream is stopped or behind."""
        return any(s.ok is False for s in self.sources) or any(not s.ok for s in self.streams or ())


def stale_after(settings: SchedulerSettings) -> dt.timedelta:
    """How old the last ingestion may be before the process is not ready."""
    interval = dt.timedelta(minutes=settings.ingest_interval_minutes)
    return max(2 * interval, MIN_STALE_AFTER)


class HealthService:
    """Answers "is this process ready", for ``/readyz``; cheap enough to be asked every few
    seconds (one trivial query and one query of the last run per source)."""

    def __init__(
        self,
        *,
        db: Database,
        runs: RunRepository,
        scheduler: SchedulerSettings,
        clock: Clock,
        source_names: Sequence[str] = (),
        consumers: Sequence[StreamConsumer] = (),
        bot: BotProbe | None = None,
        timeout: float = CHECK_TIMEOUT_SECONDS,
    ) -> None:
        self.db = db
        self.runs = runs
        self.scheduler = scheduler
        self.clock = clock
        self.source_names = tuple(source_names)
        self.consumers = tuple(consumers)
        self.bot = bot
        self.timeout = timeout
        # With no ingestion recorded yet, the age counts from here (the first run is due soon).
        self.started_at = clock()
        self._db_failing = False  # said once per outage in the log, not at every probe

    async def readiness(self) -> Readiness:
        now = self.clock()
        database = await self._database()
        runs: dict[str, SourceRun] | None = None
        if database.ok:
            runs = await self._runs()
        ingestion = self._ingestion(runs, now)
        names = list(self.source_names)
        if runs is not None and "arxiv feed" in runs and "arxiv feed" not in names:
            names.append("arxiv feed")  # the day's announcements: read by every ingestion
        sources = tuple(SourceHealth(name, (runs or {}).get(name)) for name in names)
        if self.bot is None:
            return Readiness(now, database, ingestion, sources)
        leader = self.bot.leader_state()
        return Readiness(
            now,
            database,
            ingestion,
            sources,
            gateway=tuple(self.bot.gateway_shards()),
            leader=leader,
            streams=tuple(self._stream(c, leader) for c in self.consumers),
        )

    async def _database(self) -> DatabaseCheck:
        backend = self.db.dialect
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.db.ping(), self.timeout)
        except TimeoutError:
            self._db_down(f"no answer within {self.timeout:g} s")
            return DatabaseCheck(backend, DatabaseFailure.TIMEOUT)
        except (StorageError, OSError) as exc:
            self._db_down(str(exc))
            return DatabaseCheck(backend, DatabaseFailure.ERROR)
        if self._db_failing:
            self._db_failing = False
            log.info("readiness: the database answers again")
        return DatabaseCheck(backend, seconds=time.monotonic() - started)

    def _db_down(self, why: str) -> None:
        if not self._db_failing:
            self._db_failing = True
            log.warning("readiness: the database does not answer: %s", why)

    async def _runs(self) -> dict[str, SourceRun] | None:
        try:
            return await asyncio.wait_for(self.runs.latest_by_source(), self.timeout)
        except (TimeoutError, StorageError) as exc:
            log.warning("readiness: the last source runs could not be read: %r", exc)
            return None

    def _ingestion(self, runs: dict[str, SourceRun] | None, now: dt.datetime) -> IngestionCheck:
        interval = dt.timedelta(minutes=self.scheduler.ingest_interval_minutes)
        limit = stale_after(self.scheduler)
        if runs is None:
            return IngestionCheck(interval, limit, known=False)
        last = max((run.finished_at for run in runs.values()), default=None)
        age = now - (last if last is not None else self.started_at)
        return IngestionCheck(interval, limit, last_run=last, age=max(age, dt.timedelta(0)))

    @staticmethod
    def _stream(consumer: StreamConsumer, leader: LeaderState | None) -> StreamHealth:
        stats = consumer.stats
        if stats.running:
            state = StreamState.RUNNING
        elif leader is None:
            state = StreamState.STARTING
        elif not leader.leading:
            state = StreamState.FOLLOWER
        else:
            state = StreamState.STOPPED
        return StreamHealth(
            consumer.name, state, lag=consumer.lag(), position=stats.position, events=stats.events
        )
