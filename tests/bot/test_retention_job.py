"""The daily retention job: scheduled with a stable id, run by the leader only, logged with what
it removed, stopped by a shutdown, and never raising."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, cast

import pytest
from apscheduler.triggers.cron import CronTrigger

from bot.jobs import Jobs
from bot.runtime import Runtime, open_runtime
from bot.scheduling import RETENTION_AT, RETENTION_JOB, Scheduler
from bot.services.delivery import Publisher
from bot.settings import Settings
from tests.bot.conftest import MutableClock
from tests.storage.factories import make_mention

UTC = dt.UTC
NOW = dt.datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
KEEP_DAYS = 30
HOUR = dt.timedelta(hours=1)


class NoPublisher:
    """Nothing is posted here."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"nothing is posted in this test (publisher.{name})")


def settings_for(url: str) -> Settings:
    return Settings.model_validate(
        {
            "database": {"url": url},
            "sources": {
                name: {"enabled": False} for name in ("x", "hackernews", "huggingface", "bluesky")
            },
            "storage": {"keep_snapshots_days": KEEP_DAYS},
        }
    )


@pytest.fixture
async def runtimes(migrated_url: str) -> AsyncIterator[list[Runtime]]:
    """Two processes' runtimes on one database, on a clock the test sets."""
    async with AsyncExitStack() as stack:
        clock = MutableClock(NOW)
        yield [
            await stack.enter_async_context(open_runtime(settings_for(migrated_url), clock=clock))
            for _ in range(2)
        ]


def jobs_of(rt: Runtime) -> Jobs:
    return Jobs(rt, cast("Publisher", NoPublisher()))


async def lead(jobs: Jobs) -> None:
    """Stand for the leader lock once (PostgreSQL); on SQLite the process leads already."""
    if jobs.leadership.elected:
        await jobs.leadership.step()


async def old_and_new(rt: Runtime) -> None:
    """A post read hourly on a day older than the retention (24 readings) and on yesterday."""
    old = NOW - dt.timedelta(days=KEEP_DAYS + 5)
    yesterday = NOW - dt.timedelta(days=1)
    for day in (old, yesterday):
        start = day.replace(hour=0)
        for hour in range(24):
            post = make_mention("p", created_at=old - HOUR, metrics={"reposts": hour, "likes": 1})
            await rt.mentions.upsert([post], start + hour * HOUR)


async def started(jobs: Jobs) -> Scheduler:
    """Start the scheduler and wait until it runs (its jobs are added in a task)."""
    jobs.start_scheduler()
    async with asyncio.timeout(3):
        while jobs.scheduler is None or not jobs.scheduler.running:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return jobs.scheduler


async def readings(rt: Runtime) -> list[dt.datetime]:
    return [at for at, _ in await rt.mentions.history("x", "p")]


async def test_the_job_is_scheduled_daily_with_a_stable_id(runtimes: list[Runtime]) -> None:
    jobs = jobs_of(runtimes[0])
    scheduler = await started(jobs)
    try:
        assert RETENTION_JOB in scheduler.job_ids()
        job = scheduler._scheduler.get_job(RETENTION_JOB)
        assert job is not None
        assert isinstance(job.trigger, CronTrigger)
        fields = {f.name: str(f) for f in job.trigger.fields}
        assert (fields["hour"], fields["minute"]) == (str(RETENTION_AT.hour), "40")
        assert fields["day"] == "*"
        assert str(job.trigger.timezone) == "UTC"
        assert (job.coalesce, job.max_instances) == (True, 1)
        assert job.func == jobs.retention
    finally:
        jobs.stop_scheduler()
        await jobs.drain(seconds=5)


async def test_the_leader_thins_old_snapshots_and_says_how_many(
    runtimes: list[Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs")
    rt = runtimes[0]
    await old_and_new(rt)
    jobs = jobs_of(rt)
    await lead(jobs)
    assert jobs.is_leader
    try:
        await jobs.retention()
    finally:
        await jobs.leadership.release()

    kept = await readings(rt)
    old_day = (NOW - dt.timedelta(days=KEEP_DAYS + 5)).date()
    assert [at for at in kept if at.date() == old_day] == [
        dt.datetime.combine(old_day, dt.time(23), UTC)
    ]
    assert len(kept) == 1 + 24  # yesterday is within the retention: every reading stays
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention")]
    assert line.startswith(f"retention: removed 23 metric snapshots older than {KEEP_DAYS} days")
    assert "stopped early" not in line


@pytest.mark.postgresql_only
async def test_a_follower_leaves_the_retention_to_the_leader(
    runtimes: list[Runtime], backend: str
) -> None:
    leader_rt, follower_rt = runtimes
    await old_and_new(leader_rt)
    leader, follower = jobs_of(leader_rt), jobs_of(follower_rt)
    await lead(leader)
    await lead(follower)
    try:
        assert leader.is_leader
        assert not follower.is_leader
        await follower.retention()
        assert len(await readings(follower_rt)) == 48  # untouched
        await leader.retention()
        assert len(await readings(follower_rt)) == 25
    finally:
        await leader.leadership.release()
        await follower.leadership.release()


async def test_a_shutdown_stops_it_between_steps(
    runtimes: list[Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs")
    rt = runtimes[0]
    await old_and_new(rt)
    jobs = jobs_of(rt)
    await lead(jobs)
    await started(jobs)
    jobs.stop_scheduler()  # shutting down: the next step does not start
    try:
        await jobs.retention()
    finally:
        await jobs.drain(seconds=5)
    assert len(await readings(rt)) == 48
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention")]
    assert "removed 0 metric snapshots" in line
    assert line.endswith("stopped early, the next run goes on")


async def test_a_failure_is_logged_and_the_job_carries_on(
    runtimes: list[Runtime], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtimes[0]
    jobs = jobs_of(rt)
    await lead(jobs)

    async def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(rt.mentions, "thin_snapshots", broken)
    try:
        await jobs.retention()  # does not raise
    finally:
        await jobs.leadership.release()
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == "retention failed: the next run tries again"
    assert record.exc_info is not None
