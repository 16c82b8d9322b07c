"""The only APScheduler import: the ingestion job, one daily digest job per guild, and the
daily retention of old metric snapshots."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.schedule import parse_post_time
from bot.settings import DigestSettings, SchedulerSettings
from bot.storage.guilds import GuildConfig

log = logging.getLogger(__name__)

INGEST_JOB = "ingest"
SWEEP_JOB = "sweep"
RETENTION_JOB = "retention"
# When the retention runs each day (UTC): a quiet hour, before European mornings and after
# American evenings, when few servers' digests are due.
RETENTION_AT = dt.time(3, 40)


def digest_job_id(guild_id: int) -> str:
    return f"digest:{guild_id}"


def spread_second(guild_id: int) -> int:
    """The second of its minute at which a guild's digest starts: the same for a guild every
    day, spread evenly over the minute across guilds, so that thousands of servers due at 09:00
    don't all ask at 09:00:00 (Discord's limits are per second)."""
    digest = hashlib.blake2s(guild_id.to_bytes(8, "big", signed=False), digest_size=2).digest()
    return int.from_bytes(digest, "big") % 60


class Scheduler:
    """Wraps ``AsyncIOScheduler``. The database is the truth: jobs are rebuilt from it at start
    and whenever a guild's settings change, never persisted in a job store."""

    def __init__(
        self,
        *,
        settings: SchedulerSettings,
        digest_settings: DigestSettings,
        ingest: Callable[[], Awaitable[object]],
        deliver: Callable[[int], Awaitable[object]],
        sweep: Callable[[], Awaitable[object]],
        retention: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.settings = settings
        self.digest_settings = digest_settings
        self._ingest = ingest
        self._deliver = deliver
        self._sweep = sweep
        self._retention = retention
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._stopping = False
        self._defaults = {
            "coalesce": True,
            "max_instances": 1,
            # At least one second: APScheduler reads None as "however late", the opposite of 0.
            "misfire_grace_time": max(1, int(digest_settings.grace_hours * 3600)),
            "replace_existing": True,
        }

    @property
    def running(self) -> bool:
        """Started and not asked to stop (APScheduler stops on the loop's next turn)."""
        return bool(self._scheduler.running) and not self._stopping

    def start(self, guilds: Iterable[GuildConfig], *, ingest_first: bool = True) -> None:
        """Add the ingestion job, the retry sweep, the daily retention (when given) and every
        active guild's digest, then run."""
        interval = self.settings.ingest_interval_minutes
        first = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5 if ingest_first else interval * 60)
        self._scheduler.add_job(
            self._ingest,
            IntervalTrigger(minutes=interval, timezone=dt.UTC),
            id=INGEST_JOB,
            name="ingest popularity and papers",
            next_run_time=first,
            **self._defaults,
        )
        self._scheduler.add_job(
            self._sweep,
            IntervalTrigger(minutes=10, timezone=dt.UTC),
            id=SWEEP_JOB,
            name="post missed or failed digests within the grace period",
            **self._defaults,
        )
        if self._retention is not None:
            self._scheduler.add_job(
                self._retention,
                CronTrigger(hour=RETENTION_AT.hour, minute=RETENTION_AT.minute, timezone=dt.UTC),
                id=RETENTION_JOB,
                name="thin old metric snapshots to one a day per post",
                **self._defaults,
            )
        for config in guilds:
            self.schedule_guild(config)
        self._scheduler.start()
        log.info("scheduler started with %d jobs", len(self._scheduler.get_jobs()))

    def schedule_guild(self, config: GuildConfig) -> None:
        """(Re)build one guild's daily job from its settings; remove it if it can't post."""
        job_id = digest_job_id(config.guild_id)
        if config.channel_id is None or config.paused:
            self.unschedule_guild(config.guild_id)
            return
        post_time = parse_post_time(config.post_time)
        trigger = CronTrigger(
            hour=post_time.hour,
            minute=post_time.minute,
            second=spread_second(config.guild_id),
            timezone=config.timezone,
        )
        self._scheduler.add_job(
            self._deliver,
            trigger,
            args=[config.guild_id],
            id=job_id,
            name=f"daily digest of guild {config.guild_id}",
            **self._defaults,
        )

    def unschedule_guild(self, guild_id: int) -> None:
        job = self._scheduler.get_job(digest_job_id(guild_id))
        if job is not None:
            job.remove()

    def next_run(self, job_id: str) -> dt.datetime | None:
        job = self._scheduler.get_job(job_id)
        return job.next_run_time if job is not None else None

    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())

    @property
    def stopping(self) -> bool:
        """Shutting down: jobs cancelled now are cancelled by the shutdown, not by a fault."""
        return self._stopping

    def shutdown(self) -> None:
        """Stop starting jobs; running ones finish (``Jobs.drain`` waits for them).
        Safe to call twice: APScheduler's own shutdown happens on the loop's next turn."""
        if self._scheduler.running and not self._stopping:
            self._stopping = True
            self._scheduler.shutdown(wait=False)
            log.info("scheduler stopped")
