"""Background work on a running bot: ingestion, the streams, the daily posts, the sweep, the
retention of old metric snapshots, and draining them at shutdown.

Built by ``HotPapersBot.setup_hook`` with the publisher that posts to Discord, so that no job
waits for a client attached later, and nothing here imports discord.

Several processes may share one PostgreSQL database (each with its shards): every one schedules
and posts its own shards' digests, but only the leader (``services/leader.py``) runs ingestion,
the streams and the retention. On SQLite the one process always leads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from bot.core.models import Window
from bot.core.schedule import local_date
from bot.core.shards import Shards
from bot.runtime import Runtime
from bot.scheduling import Scheduler, digest_job_id
from bot.services.delivery import Publisher
from bot.services.leader import Leadership
from bot.services.owner import is_dead
from bot.services.stream import StreamConsumer
from bot.storage.leader import leader_lock

log = logging.getLogger(__name__)

# A crashed stream consumer restarts after 2 s, doubling up to 5 minutes while it keeps failing.
STREAM_RESTART_SECONDS = 2.0
STREAM_RESTART_MAX_SECONDS = 300.0


class Jobs:
    """The scheduler's jobs and the tasks they start, tracked so that shutdown drains them."""

    def __init__(
        self, rt: Runtime, publisher: Publisher, *, started_at: dt.datetime | None = None
    ) -> None:
        self.rt = rt
        # Posts to Discord, under the one request budget of the process.
        self.publisher = publisher
        self.started_at = started_at or rt.clock()
        # The guilds this process posts for: those of its shards (all of them unsharded).
        discord = rt.settings.discord
        self.shards = Shards.of(discord.shard_count, discord.shard_ids)
        self.scheduler: Scheduler | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        # Guilds whose digest this process is posting now: a sweep or a second job skips them.
        self._delivering: set[int] = set()
        # Digests under way at once (``discord.max_concurrent_digests``): bounds memory and the
        # writers waiting on the database, not the pace (the request budget sets that).
        self._delivery_slots = asyncio.Semaphore(rt.settings.discord.max_concurrent_digests)
        self._ingesting: asyncio.Task[None] | None = None
        self._ingest_started: float | None = None  # time.monotonic() at the last one's start
        self._ingest_stop_reason = "for shutdown"
        self._recovered = False
        self._streams: list[asyncio.Task[None]] = []
        # Ingestion and the streams run in one process at a time: the leader.
        poll = rt.settings.scheduler.leader_poll_seconds
        self.leadership = Leadership(
            leader_lock(rt.db, poll_seconds=poll),
            poll_seconds=poll,
            on_lead=self._lead,
            on_follow=self._follow,
        )
        self._electing: asyncio.Task[None] | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this process runs ingestion and the streams (always, on SQLite)."""
        return self.leadership.is_leader

    # --- scheduling -------------------------------------------------------------------------

    def start_scheduler(self) -> None:
        """Schedule every active guild's digest and the ingestion, and follow the streams when
        this process leads (on PostgreSQL: once elected, see :meth:`_lead`)."""
        self.scheduler = Scheduler(
            settings=self.rt.settings.scheduler,
            digest_settings=self.rt.settings.digest,
            ingest=self.scheduled_ingest,
            deliver=self.deliver_guild,
            sweep=self.sweep,
            retention=self.retention,
        )
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._start_jobs())
        self.track(task)
        if self.leadership.elected:
            self._electing = loop.create_task(self.leadership.run(), name="leadership")
        else:
            self.start_streams()

    # --- leadership -------------------------------------------------------------------------

    async def _lead(self) -> None:
        """Elected: follow the streams (each resumes from the cursor saved in the database, by
        whichever process saved it) and ingest now, not at the next hourly run."""
        self.start_streams()
        self._start_ingestion()

    async def _follow(self) -> None:
        """No longer the leader (its lock's connection is gone): another process may be leading
        already, so stop the streams (each saves its cursor) and any ingestion at once."""
        await self.stop_streams()
        await self.stop_ingestion(reason="as this process no longer leads")

    async def stop_leading(self) -> None:
        """Shutdown: stop standing for the lock, stop the leader's work, then let the lock go so
        that a follower takes over now (the streams' cursors are saved by then)."""
        electing, self._electing = self._electing, None
        if electing is not None:
            electing.cancel()
            await asyncio.wait([electing], timeout=5.0)
        await self.stop_streams()
        await self.stop_ingestion()
        await self.leadership.release()

    # --- streams ----------------------------------------------------------------------------

    def start_streams(self) -> None:
        """Follow every streaming source in the background, each under a supervisor."""
        loop = asyncio.get_running_loop()
        for consumer in self.rt.consumers:
            task = loop.create_task(self._supervise(consumer), name=f"stream:{consumer.name}")
            self._streams.append(task)

    async def _supervise(self, consumer: StreamConsumer) -> None:
        """Run a consumer for good: a crash is logged and the consumer restarted (from its
        saved cursor) after a growing pause; only cancellation (shutdown) ends it."""
        pause = STREAM_RESTART_SECONDS
        while True:
            started = time.monotonic()
            try:
                await consumer.run()
                log.warning("%s stream ended: restarting", consumer.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s stream crashed: restarting in %.0f s", consumer.name, pause)
            if time.monotonic() - started > STREAM_RESTART_MAX_SECONDS:
                pause = STREAM_RESTART_SECONDS  # it ran a good while: not a crash loop
            await asyncio.sleep(pause)
            pause = min(pause * 2, STREAM_RESTART_MAX_SECONDS)

    async def stop_streams(self, seconds: float = 10.0) -> None:
        """Cancel the consumers; each stores what it read and saves its cursor on the way out."""
        tasks, self._streams = self._streams, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)

    async def _start_jobs(self) -> None:
        assert self.scheduler is not None
        try:
            guilds = [c for c in await self.rt.guilds.active() if self.shards.owns(c.guild_id)]
            if not self.shards.every_guild:
                log.info(
                    "%s: scheduling the digests of %d guilds", self.shards.describe(), len(guilds)
                )
            # Elected (PostgreSQL): the leader ingests when it is elected (_lead); the hourly
            # job follows. The one process on SQLite ingests 5 s after start.
            self.scheduler.start(guilds, ingest_first=not self.leadership.elected)
        except Exception:
            # A background task: nobody awaits it, so say it here (no digest will be posted).
            log.exception("could not start the scheduler: no digest or ingestion will run")

    def track(self, task: asyncio.Task[object]) -> None:
        """Keep ``task`` until it ends: drain waits for it before the database closes."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reschedule(self, guild_id: int) -> None:
        if self.scheduler is None or not self.scheduler.running:
            return
        if not self.shards.owns(guild_id):
            # Another process's guild (its events come to that process's shard): not ours to post.
            self.scheduler.unschedule_guild(guild_id)
            return
        config = await self.rt.guild_settings.config(guild_id)
        self.scheduler.schedule_guild(config)

    def next_run(self, guild_id: int) -> dt.datetime | None:
        return self.scheduler.next_run(digest_job_id(guild_id)) if self.scheduler else None

    async def scheduled_ingest(self) -> None:
        """The hourly ingestion job: the leader's only. A run due less than half an interval
        after this process's last one (it ran one when elected) is skipped."""
        if not self.is_leader:
            log.debug("follower: the leader ingests, not this process")
            return
        interval = self.rt.settings.scheduler.ingest_interval_minutes * 60
        last = self._ingest_started
        if last is not None and time.monotonic() - last < interval / 2:
            log.info("ingestion ran %.0f s ago: this run is skipped", time.monotonic() - last)
            return
        await self.ingest()

    async def ingest(self) -> None:
        """One ingestion now: the last ``ingest_lookback_hours``; never raises. Tracked, so
        shutdown stops it before the database and the HTTP session close under it."""
        task = self._start_ingestion()
        if task is None:
            log.info("ingestion still running: this run is skipped")
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            stopping = self.scheduler is not None and self.scheduler.stopping
            if not task.cancelled() and not stopping:
                raise  # the job itself is cancelled, not the ingestion: not ours to hide
            # Shutdown: stop_ingestion() ends the ingestion (and logs so); the job ends cleanly.

    def _start_ingestion(self) -> asyncio.Task[None] | None:
        """Start an ingestion in the background; None when one is running already."""
        if self._ingesting is not None and not self._ingesting.done():
            return None
        self._ingest_started = time.monotonic()
        task = asyncio.get_running_loop().create_task(self._ingest(), name="ingest")
        self._ingesting = task
        return task

    async def stop_ingestion(self, seconds: float = 5.0, *, reason: str = "for shutdown") -> None:
        """Cancel an ingestion in progress and wait for it (it is safe to redo any time)."""
        task = self._ingesting
        if task is None or task.done():
            return
        self._ingest_stop_reason = reason
        task.cancel()
        await asyncio.wait([task], timeout=seconds)

    async def _ingest(self) -> None:
        try:
            await self._ingest_once()
        except asyncio.CancelledError:
            log.info("ingestion stopped %s", self._ingest_stop_reason)
            raise
        except Exception:
            log.exception("ingestion failed")

    async def _ingest_once(self) -> None:
        now = self.rt.clock()
        window = Window(
            now - dt.timedelta(hours=self.rt.settings.scheduler.ingest_lookback_hours), now
        )
        categories = set(self.rt.settings.arxiv.categories)
        for config in await self.rt.guilds.active():
            categories.update(config.categories)
        log.info(
            "ingestion started: %s to %s",
            f"{window.start:%Y-%m-%d %H:%M}",
            f"{window.end:%Y-%m-%d %H:%M} UTC",
        )
        try:
            report = await self.rt.ingest.run(window, categories=sorted(categories))
        except Exception:
            log.exception("ingestion failed")
            return
        log.info(
            "ingestion: %s",
            ", ".join(
                f"{s.source} {s.mentions}" + ("" if s.ok else " FAILED") for s in report.sources
            ),
        )

    async def deliver_guild(self, guild_id: int) -> None:
        """The daily job of one guild; never raises. Tracked, so shutdown lets it finish.

        One at a time per guild in this process: the record's claim already stops a second
        sender, but not once it has gone stale during a long wait (a 429), so a sweep or a
        late job never starts a second send of a digest this process is still posting.
        """
        if guild_id in self._delivering:
            log.info("guild %s: digest already being posted, not started again", guild_id)
            return
        self._delivering.add(guild_id)
        task = asyncio.get_running_loop().create_task(self._deliver_guild(guild_id))
        self.track(task)
        task.add_done_callback(lambda _task: self._delivering.discard(guild_id))
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if self.scheduler is None or not self.scheduler.stopping or task.cancelled():
                raise
            # Shutdown cancels the job waiting here, not the send (drain waits for it, and it
            # records every message): the job ends quietly, not as an ERROR with a traceback.
            log.info("guild %s: shutting down, the digest being posted finishes first", guild_id)

    async def _deliver_guild(self, guild_id: int) -> None:
        async with self._delivery_slots:
            await self._deliver_guild_now(guild_id)

    async def _deliver_guild_now(self, guild_id: int) -> None:
        try:
            config = await self.rt.guilds.get(guild_id)
            if config is None:
                return
            now = self.rt.clock()
            slot = self.rt.delivery.last_slot(config, now)
            result = await self.rt.delivery.deliver(
                config, local_date(slot, config.timezone), self.publisher, now
            )
            log.info(
                "guild %s digest %s: %s %s", guild_id, result.day, result.status, result.detail
            )
            if result.status == "failed":
                await self.reschedule(guild_id)  # a 404 pauses the guild: drop its job
        except Exception:
            log.exception("digest job of guild %s crashed", guild_id)

    async def retention(self) -> None:
        """The daily retention job, the leader's only (one process thins, whichever leads):
        metric snapshots older than ``storage.keep_snapshots_days`` are thinned to each post's
        last reading of each UTC day. Never raises. Tracked, so shutdown waits for its current
        step, and it stops there (the next run goes on from what is left)."""
        if not self.is_leader:
            log.debug("follower: the leader applies the retention, not this process")
            return
        task = asyncio.get_running_loop().create_task(self._thin_snapshots(), name="retention")
        self.track(task)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if self.scheduler is None or not self.scheduler.stopping or task.cancelled():
                raise

    async def _thin_snapshots(self) -> None:
        days = self.rt.settings.storage.keep_snapshots_days
        before = self.rt.clock() - dt.timedelta(days=days)
        started = time.monotonic()
        try:
            removed = await self.rt.mentions.thin_snapshots(before, keep_going=self._may_thin)
        except Exception:
            log.exception("retention failed: the next run tries again")
            return
        log.info(
            "retention: removed %d metric snapshots older than %d days in %.1f s (each post "
            "keeps its last of each UTC day)%s",
            removed,
            days,
            time.monotonic() - started,
            "" if self._may_thin() else "; stopped early, the next run goes on",
        )

    def _may_thin(self) -> bool:
        stopping = self.scheduler is not None and self.scheduler.stopping
        return self.is_leader and not stopping

    async def sweep(self) -> None:
        """Post digests missed while the bot was down or that failed, within the grace period.

        Never raises: at start it runs as a bare task, where an exception would only surface
        as "Task exception was never retrieved"; the next sweep (every 10 minutes) tries again.
        """
        try:
            if not self._recovered:
                await self.recover()
            await self.rt.delivery.settle_exhausted(self.publisher)
            due = await self.rt.delivery.due(owns=self.shards.owns)
            # Side by side (a few at a time, see deliver_guild): one guild waiting out a long
            # rate limit must not hold the others back.
            await asyncio.gather(*(self.deliver_guild(config.guild_id) for config, _day in due))
        except asyncio.CancelledError:
            if self.scheduler is None or not self.scheduler.stopping:
                raise
            log.info("shutting down: the sweep stops, digests being posted finish first")
        except Exception:
            log.exception("digest sweep failed: the next one tries again")

    async def recover(self) -> None:
        """Make digests a dead process left half-sent resumable now, not after they go stale.

        A digest still ``sending`` with no sign of life since before this process started,
        and none for two minutes (a live sender beats every minute), belongs to a process that
        died. (Ours all began at or after ``started_at``, so a reconnect or a second sweep can
        never release them; the old process of an overlapping deploy keeps beating, and keeps
        its digest.)
        """
        # A claim of a process of this host that is gone is resumed at once; any other is
        # released once quiet since before this start (or when it goes stale).
        await self.rt.digest_log.take_over_dead(is_dead)
        await self.rt.digest_log.release_abandoned(self.started_at, now=self.rt.clock())
        self._recovered = True

    async def catch_up(self) -> None:
        """Sweep in the background once connected: digests missed while the bot was down."""
        task = asyncio.get_running_loop().create_task(self.sweep())
        self.track(task)

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()

    async def drain(self, seconds: float = 30.0) -> None:
        """Stop an ingestion in progress and the streams, and give up the leadership; let sends
        in flight finish (they record each message) before the client and the database close;
        cancel what still runs after ``seconds``."""
        await self.stop_leading()
        current = asyncio.current_task()
        waiting = [t for t in self._tasks if t is not current and not t.done()]
        if not waiting:
            return
        log.info("waiting for %d digest tasks to finish", len(waiting))
        _done, pending = await asyncio.wait(waiting, timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "%d digest tasks did not finish in %.0f s: cancelled", len(pending), seconds
            )
            await asyncio.wait(pending, timeout=1.0)
