"""The APScheduler wrapper: stable job ids, local-time cron, misfire rules, rebuilt from the DB."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zoneinfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.errors import StorageError
from bot.scheduling import INGEST_JOB, RETENTION_JOB, SWEEP_JOB, Scheduler, digest_job_id
from bot.settings import DigestSettings, SchedulerSettings
from bot.storage.guilds import GuildConfig

NOW = dt.datetime(2020, 12, 23, 10, 50, tzinfo=dt.UTC)


def guild(guild_id: int, **changes) -> GuildConfig:
    values = {
        "guild_id": guild_id,
        "channel_id": 42,
        "post_time": "09:00",
        "timezone": "UTC",
        "top_n": 10,
        "threshold": None,
        "style": "thread",
        "empty_day": "message",
        "paused": False,
        "pause_reason": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return GuildConfig(**(values | changes))


class Calls:
    def __init__(self) -> None:
        self.ingests = 0
        self.sweeps = 0
        self.delivered: list[int] = []

    async def ingest(self) -> None:
        self.ingests += 1

    async def sweep(self) -> None:
        self.sweeps += 1

    async def deliver(self, guild_id: int) -> None:
        self.delivered.append(guild_id)


@pytest.fixture
async def scheduler():
    calls = Calls()
    made = Scheduler(
        settings=SchedulerSettings(ingest_interval_minutes=30),
        digest_settings=DigestSettings(grace_hours=6),
        ingest=calls.ingest,
        deliver=calls.deliver,
        sweep=calls.sweep,
    )
    made.calls = calls  # type: ignore[attr-defined]
    yield made
    made.shutdown()


def job(scheduler: Scheduler, job_id: str):
    found = scheduler._scheduler.get_job(job_id)
    assert found is not None, job_id
    return found


async def test_jobs_have_stable_ids_and_run_once_at_a_time(scheduler):
    scheduler.start([guild(1), guild(2, paused=True), guild(3, channel_id=None), guild(4)])
    assert scheduler.running
    assert scheduler.job_ids() == ["digest:1", "digest:4", INGEST_JOB, SWEEP_JOB]
    for job_id in scheduler.job_ids():
        found = job(scheduler, job_id)
        assert found.coalesce is True
        assert found.max_instances == 1
        assert found.misfire_grace_time == 6 * 3600
    ingest = job(scheduler, INGEST_JOB)
    assert isinstance(ingest.trigger, IntervalTrigger)
    assert ingest.trigger.interval == dt.timedelta(minutes=30)
    # The first ingestion soon after start, not an interval later.
    assert ingest.next_run_time - dt.datetime.now(dt.UTC) < dt.timedelta(seconds=10)


@pytest.mark.parametrize(
    ("post_time", "zone"),
    [("09:00", "UTC"), ("07:30", "Europe/Paris"), ("23:45", "America/Los_Angeles")],
)
async def test_digest_job_is_a_cron_at_the_guilds_local_time(scheduler, post_time, zone):
    scheduler.start([guild(7, post_time=post_time, timezone=zone)])
    found = job(scheduler, digest_job_id(7))
    assert isinstance(found.trigger, CronTrigger)
    assert str(found.trigger.timezone) == zone
    fields = {f.name: str(f) for f in found.trigger.fields}
    hour, minute = post_time.split(":")
    assert (fields["hour"], fields["minute"]) == (str(int(hour)), str(int(minute)))
    local = found.next_run_time.astimezone(zoneinfo.ZoneInfo(zone))
    assert local.strftime("%H:%M") == post_time
    assert found.args == (7,)


async def test_rescheduling_replaces_the_job_and_pausing_removes_it(scheduler):
    scheduler.start([guild(1)])
    scheduler.schedule_guild(guild(1, post_time="18:15", timezone="Asia/Tokyo"))
    assert scheduler.job_ids().count("digest:1") == 1
    local = scheduler.next_run("digest:1").astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert local.strftime("%H:%M") == "18:15"
    scheduler.schedule_guild(guild(1, paused=True))
    assert "digest:1" not in scheduler.job_ids()
    assert scheduler.next_run("digest:1") is None
    scheduler.unschedule_guild(1)  # removing twice is fine


async def test_a_zero_grace_period_is_not_an_unlimited_one():
    made = Scheduler(
        settings=SchedulerSettings(),
        digest_settings=DigestSettings(grace_hours=0),
        ingest=Calls().ingest,
        deliver=Calls().deliver,
        sweep=Calls().sweep,
    )
    made.start([guild(1)])
    try:
        assert job(made, "digest:1").misfire_grace_time == 1
    finally:
        made.shutdown()
        made.shutdown()  # twice is fine
    assert not made.running
    await asyncio.sleep(0)  # APScheduler stops on the loop's next turn
    assert not made._scheduler.running


async def test_jobs_call_the_services(scheduler):
    scheduler.start([guild(5)], ingest_first=False)
    for job_id in (INGEST_JOB, SWEEP_JOB, digest_job_id(5)):
        job(scheduler, job_id).modify(next_run_time=dt.datetime.now(dt.UTC))
    scheduler._scheduler.wakeup()
    calls = scheduler.calls
    async with asyncio.timeout(5):
        while not (calls.ingests and calls.sweeps and calls.delivered):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert calls.delivered == [5]


# -- rebuilt from the database by the running bot ---------------------------------------------


async def test_services_rebuild_the_jobs_from_the_database(botworld):
    jobs = botworld.jobs
    gid = botworld.guild_id
    await botworld.configure(post_time="07:30", timezone="Europe/Paris")
    await botworld.rt.guild_settings.set_channel(99, 1234)
    await botworld.rt.guild_settings.pause(99)
    await botworld.rt.guild_settings.set_channel(100, 5678)
    jobs.start_scheduler()
    try:
        async with asyncio.timeout(3):
            while jobs.scheduler is None or not jobs.scheduler.running:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert jobs.scheduler.job_ids() == sorted(
            [digest_job_id(gid), "digest:100", INGEST_JOB, RETENTION_JOB, SWEEP_JOB]
        )
        local = jobs.next_run(gid).astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
        assert local.strftime("%H:%M") == "07:30"

        # A moderator changes the time: the job follows at once.
        await botworld.run(
            "digest", "time", member=botworld.mod, time="21:10", timezone="Asia/Tokyo"
        )
        local = jobs.next_run(gid).astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
        assert local.strftime("%H:%M") == "21:10"
        await botworld.run("digest", "pause", member=botworld.mod)
        assert digest_job_id(gid) not in jobs.scheduler.job_ids()
        await botworld.run("digest", "resume", member=botworld.mod)
        assert digest_job_id(gid) in jobs.scheduler.job_ids()
    finally:
        jobs.stop_scheduler()
    assert not jobs.scheduler.running


async def test_a_scheduler_that_cannot_start_says_so_in_the_log(botworld, caplog, monkeypatch):
    async def database_down():
        raise StorageError("database is locked")

    monkeypatch.setattr(botworld.rt.guilds, "active", database_down)
    botworld.jobs.start_scheduler()
    # The start runs in a task nobody awaits: its failure must be logged, not left in it.
    await asyncio.gather(*botworld.jobs._tasks)
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage().startswith("could not start the scheduler")
