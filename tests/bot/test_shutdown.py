"""Graceful shutdown: the scheduler stops, digests being posted finish, then the client closes."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from bot.ui.publisher import DiscordPublisher

DAY = dt.date(2020, 12, 23)


@pytest.fixture
async def held(botworld, monkeypatch):
    """The reference day ingested, a 10:30 digest due, and paper messages that wait for the
    test: a digest caught in the middle of sending."""
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30", style="channel")
    gate = asyncio.Event()
    entered = asyncio.Event()
    real = DiscordPublisher.send_papers

    async def slow_send_papers(self, *args, **kwargs):
        entered.set()
        await gate.wait()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(DiscordPublisher, "send_papers", slow_send_papers)
    botworld.gate = gate
    botworld.entered = entered
    return botworld


async def test_drain_lets_a_digest_in_flight_finish(held):
    jobs = held.jobs
    jobs.start_scheduler()
    delivery = asyncio.create_task(jobs.deliver_guild(held.guild_id))
    await asyncio.wait_for(held.entered.wait(), 3)

    jobs.stop_scheduler()
    assert not jobs.scheduler.running
    draining = asyncio.create_task(jobs.drain(seconds=10))
    await asyncio.sleep(0.05)
    assert not draining.done()  # waiting for the digest, not abandoning it
    held.gate.set()
    await asyncio.wait_for(draining, 5)
    await delivery
    record = await held.rt.digest_log.get(held.guild_id, DAY)
    assert record.status == "sent"
    assert len(held.fake.messages(held.harness.channel)) == 3  # header and two paper messages
    assert not jobs.scheduler._scheduler.running


async def test_drain_gives_up_after_its_timeout_and_the_digest_resumes_later(held):
    jobs = held.jobs
    delivery = asyncio.create_task(jobs.deliver_guild(held.guild_id))
    await asyncio.wait_for(held.entered.wait(), 3)
    await jobs.drain(seconds=0.1)
    with pytest.raises(asyncio.CancelledError):
        await delivery
    record = await held.rt.digest_log.get(held.guild_id, DAY)
    assert record.status == "sending"  # left for the next start, which resumes it
    assert len(record.message_ids) == 1

    held.gate.set()
    held.clock.advance(minutes=3)  # no heartbeat for more than two minutes: it died
    await held.restart()
    await held.jobs.sweep()
    record = await held.rt.digest_log.get(held.guild_id, DAY)
    assert record.status == "sent"
    assert len(held.fake.messages(held.harness.channel)) == 3  # header and two paper messages


async def test_closing_the_bot_drains_before_the_http_session_closes(held):
    delivery = asyncio.create_task(held.jobs.deliver_guild(held.guild_id))
    await asyncio.wait_for(held.entered.wait(), 3)
    closing = asyncio.create_task(held.harness.stop_client(held.bot))
    await asyncio.sleep(0.05)
    assert not closing.done()
    held.gate.set()
    await asyncio.wait_for(closing, 10)
    await delivery
    assert held.bot.is_closed()
    record = await held.rt.digest_log.get(held.guild_id, DAY)
    assert record.status == "sent"
    assert len(held.fake.messages(held.harness.channel)) == 3  # header and two paper messages


async def test_drain_from_inside_a_tracked_task_does_not_wait_for_itself(botworld):
    jobs = botworld.jobs
    finished = asyncio.Event()

    async def close_like_a_signal_handler() -> None:
        await jobs.drain(seconds=5)
        finished.set()

    task = asyncio.get_running_loop().create_task(close_like_a_signal_handler())
    jobs.track(task)
    await asyncio.wait_for(finished.wait(), 1)


class HeldSource:
    """A source stuck on a slow service: its collect waits until cancelled."""

    def __init__(self, inner) -> None:
        self.name = inner.name
        self.requests = 0
        self.entered = asyncio.Event()

    async def collect(self, window):
        self.entered.set()
        await asyncio.Event().wait()


async def test_closing_the_bot_stops_an_ingestion_before_resources_close(botworld, caplog):
    ingest = botworld.rt.ingest
    held = HeldSource(ingest.sources[0])
    ingest.sources[0] = held
    # The scheduler's ingestion job, as APScheduler runs it.
    job = asyncio.create_task(botworld.jobs.ingest())
    await asyncio.wait_for(held.entered.wait(), 3)
    caplog.set_level(logging.INFO)
    await asyncio.wait_for(botworld.harness.stop_client(botworld.bot), 10)
    # Stopped by close, before the database and the HTTP session close under it...
    assert job.done()
    assert job.exception() is None  # ...and ended cleanly: APScheduler logs no traceback
    assert not ingest.running
    stopped = [r for r in caplog.records if r.getMessage() == "ingestion stopped for shutdown"]
    assert [r.levelno for r in stopped] == [logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_closing_during_discords_wait_for_the_guilds_cancels_that_wait(botworld):
    """A stop within discord.py's wait for the guilds after READY (up to 2 s, then it
    dispatches `ready`): the wait is cancelled before the client closes, not left to dispatch
    on a closed client (a traceback at exit, seen from a real process in CI)."""
    state = botworld.bot._connection
    waiting = asyncio.create_task(asyncio.sleep(60))  # stands for ConnectionState._delay_ready
    state._ready_task = waiting
    await asyncio.wait_for(botworld.harness.stop_client(botworld.bot), 10)
    await asyncio.sleep(0)
    assert waiting.cancelled()
