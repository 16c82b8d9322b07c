"""Only the leader ingests and follows the streams: the election's transitions, and the jobs of
two bots on one PostgreSQL database (in one process here; tests/bot/test_multi_process.py runs
real processes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text

from bot.core.errors import ConfigError
from bot.core.models import Window
from bot.fakes.arxiv import FakeArxiv
from bot.fakes.bluesky import FakeBlueskyAppView, fake_did, link_facet
from bot.fakes.demo import dataset_papers, load_dataset
from bot.fakes.jetstream import FakeJetstream
from bot.jobs import Jobs
from bot.runtime import Runtime, open_runtime
from bot.services.delivery import Publisher
from bot.services.leader import Leadership
from bot.settings import Settings, load_settings
from bot.sources.bluesky import micros
from bot.storage.leader import LEADER_LOCK_KEY, SoleProcessLock
from tests.bot.conftest import BotWorld
from tests.bot.postgres import postgres_url, requires_postgres

__all__ = ["postgres_url"]  # the fixture, imported for the tests below

UTC = dt.UTC
POLL_S = 0.2  # scheduler.leader_poll_seconds
REWIND_S = 1.0  # sources.bluesky.resume_rewind_seconds
WAIT_S = 10.0


async def until(
    condition: Callable[[], bool],
    what: str,
    timeout: float = WAIT_S,  # noqa: ASYNC109 - a bounded polling wait
) -> float:
    """Wait for ``condition``; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


# -- the election, with a lock the test controls ----------------------------------------------


@dataclass
class FakeLock:
    """A leader lock the test hands out and takes away."""

    free: bool = True
    reachable: bool = True
    held: bool = False
    elected: bool = True
    error: str | None = None
    released: int = 0

    async def acquire(self) -> bool:
        if not self.reachable:
            self.error = "connection refused"
            return False
        self.error = None
        self.held = self.held or self.free
        return self.held

    async def holds(self) -> bool:
        if not self.reachable:
            self.held = False
            self.error = "the database did not answer in time"
        return self.held

    async def release(self) -> None:
        self.held = False
        self.released += 1


@dataclass
class Transitions:
    seen: list[str] = field(default_factory=list)
    fail_next_lead: bool = False

    async def lead(self) -> None:
        self.seen.append("lead")
        if self.fail_next_lead:
            self.fail_next_lead = False
            raise RuntimeError("the streams could not start")

    async def follow(self) -> None:
        self.seen.append("follow")


def messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bot.services.leader"]


async def test_transitions_between_leader_and_follower_are_logged_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    lock = FakeLock(free=False)
    seen = Transitions()
    leadership = Leadership(lock, poll_seconds=10, on_lead=seen.lead, on_follow=seen.follow)
    assert leadership.elected
    assert not leadership.is_leader
    for _ in range(3):
        await leadership.step()
    assert not leadership.is_leader
    assert seen.seen == []
    assert messages(caplog) == [
        (
            logging.INFO,
            "follower: another process runs ingestion and the streams; this one takes over if "
            "it stops (checking every 10 s)",
        )
    ]
    caplog.clear()

    lock.free = True  # the leader died
    await leadership.step()
    await leadership.step()  # still holds it: nothing new
    assert leadership.is_leader
    assert leadership.describe() == "leader"
    assert seen.seen == ["lead"]
    assert messages(caplog) == [
        (logging.INFO, "leader: this process runs ingestion and the streams")
    ]
    caplog.clear()

    lock.reachable = False  # its connection is gone
    await leadership.step()
    assert not leadership.is_leader
    assert seen.seen == ["lead", "follow"]
    await leadership.step()  # can't reach the database: said once
    await leadership.step()
    assert messages(caplog) == [
        (
            logging.WARNING,
            "follower: the leader lock is lost (the database did not answer in time): this "
            "process stops ingestion and the streams, and stands for the lock again every 10 s",
        ),
        (
            logging.WARNING,
            "follower: cannot stand for the leader lock (connection refused); trying again "
            "every 10 s",
        ),
    ]
    caplog.clear()

    lock.reachable = True
    await leadership.step()
    assert leadership.is_leader
    await leadership.release()
    assert not leadership.is_leader
    assert lock.released == 1
    assert messages(caplog) == [
        (logging.INFO, "leader: this process runs ingestion and the streams"),
        (logging.INFO, "leader: stepping down for shutdown; another process can take over"),
    ]


async def test_a_failing_transition_is_logged_and_the_polling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = FakeLock()
    seen = Transitions(fail_next_lead=True)
    leadership = Leadership(lock, poll_seconds=0.01, on_lead=seen.lead, on_follow=seen.follow)
    running = asyncio.create_task(leadership.run())
    try:
        await until(lambda: any(r.levelno == logging.ERROR for r in caplog.records), "the error")
        lock.held = False  # lost, then taken again: the loop is still polling
        await until(lambda: seen.seen.count("lead") == 2, "a second election")
    finally:
        running.cancel()
    (error,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage().startswith("leader election: a poll failed")


async def test_without_an_election_the_process_leads_from_the_start() -> None:
    seen = Transitions()
    leadership = Leadership(
        SoleProcessLock(), poll_seconds=10, on_lead=seen.lead, on_follow=seen.follow
    )
    assert not leadership.elected
    assert leadership.is_leader
    await leadership.step()
    await leadership.release()
    assert leadership.is_leader
    assert seen.seen == []


# -- one bot alone: it leads (at once on SQLite, once elected on PostgreSQL) ---------------------


async def test_a_bot_alone_leads_and_follows_the_streams(botworld: BotWorld, backend: str) -> None:
    jobs = botworld.jobs
    jetstream = botworld.world.jetstream
    assert jobs.leadership.elected is (backend == "postgresql")
    # SQLite: the one process on the file leads from the start, with no lock to take.
    assert jobs.is_leader is (backend == "sqlite")
    jobs.start_scheduler()
    try:
        if backend == "sqlite":
            assert jobs._streams  # started with the scheduler, no election to wait for
        await until(lambda: jobs.is_leader, "the leadership")
        await until(lambda: jetstream.subscribers == 1, "the stream")
    finally:
        jobs.stop_scheduler()
        await jobs.drain()
    assert jetstream.subscribers == 0
    assert jobs.is_leader is (backend == "sqlite")  # PostgreSQL: the lock is given back


class StuckSource:
    """A source whose collect waits until cancelled: an ingestion caught in the middle."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = 0
        self.entered = asyncio.Event()

    async def collect(self, window: Window) -> list[Any]:
        self.entered.set()
        await asyncio.Event().wait()
        return []


async def test_a_leader_that_loses_its_lock_stops_ingesting_and_streaming_at_once(
    botworld: BotWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    jobs = botworld.jobs
    jetstream = botworld.world.jetstream
    lock = FakeLock()
    jobs.leadership = Leadership(
        lock, poll_seconds=0.01, on_lead=jobs._lead, on_follow=jobs._follow
    )
    ingest = botworld.rt.ingest
    stuck = StuckSource(ingest.sources[0].name)
    ingest.sources[0] = stuck
    jobs.start_scheduler()
    try:
        # Elected: the streams start and an ingestion begins at once.
        await until(lambda: jobs.is_leader, "the leadership")
        await until(lambda: jetstream.subscribers == 1, "the stream")
        await asyncio.wait_for(stuck.entered.wait(), WAIT_S)
        assert ingest.running

        lock.reachable = False  # its connection is gone: another process may lead already
        await until(lambda: not jobs.is_leader, "the step-down")
        await until(lambda: not ingest.running and jetstream.subscribers == 0, "the stop")
        assert jobs._streams == []
        stopped = [r for r in caplog.records if r.getMessage().startswith("ingestion stopped")]
        assert [r.getMessage() for r in stopped] == [
            "ingestion stopped as this process no longer leads"
        ]
        # A follower's hourly job ingests nothing.
        stuck.entered.clear()
        await jobs.scheduled_ingest()
        assert not stuck.entered.is_set()

        lock.reachable = True  # back: it stands again, and leads again
        await until(lambda: jobs.is_leader, "the leadership again")
        await until(lambda: jetstream.subscribers == 1, "the stream again")
        await asyncio.wait_for(stuck.entered.wait(), WAIT_S)
    finally:
        jobs.stop_scheduler()
        await jobs.drain()
    assert lock.released == 1
    assert jetstream.subscribers == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- two bots on one PostgreSQL database -------------------------------------------------------


class NoPublisher:
    """These bots have no guild to post to."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"nothing is posted in this test (publisher.{name})")


@dataclass
class Bot:
    rt: Runtime
    jobs: Jobs
    ingestions: int = 0

    @property
    def streaming(self) -> bool:
        return any(c.stats.running for c in self.rt.consumers)


@dataclass
class Shared:
    """Two bots' runtimes on one database, the fakes they read, and a way to post."""

    url: str
    jetstream: FakeJetstream
    appview: FakeBlueskyAppView
    bots: list[Bot]
    posted: list[str] = field(default_factory=list)

    def post(self, arxiv_id: str) -> str:
        """A post linking ``arxiv_id``, on the AppView and (live) on the stream."""
        n = len(self.posted)
        now = dt.datetime.now(UTC)
        shown = f"arxiv.org/abs/{arxiv_id}"
        text = f"Worth reading: {shown}"
        facets = [link_facet(text, shown, f"https://arxiv.org/abs/{arxiv_id}")]
        uri = self.appview.add_post(
            fake_did(f"reader{n}.bsky.social"),
            f"3kleader{n:06d}",
            handle=f"reader{n}.bsky.social",
            text=text,
            created_at=now,
            facets=facets,
            likes=10 + n,
        )
        self.jetstream.publish(self.appview.jetstream_event(uri, time_us=micros(now)))
        self.posted.append(uri)
        return uri

    def leaders(self) -> list[Bot]:
        return [b for b in self.bots if b.jobs.is_leader]


async def stored_posts(rt: Runtime) -> list[str]:
    now = dt.datetime.now(UTC)
    rows = await rt.mentions.in_window(
        Window(now - dt.timedelta(days=1), now + dt.timedelta(hours=1)), sources=["bluesky"]
    )
    return sorted(s.mention.post_id for s in rows)


async def saved_cursor(rt: Runtime) -> int | None:
    cursor = await rt.streams.cursor("bluesky")
    return None if cursor is None else cursor.cursor_us


async def holder_pid(rt: Runtime) -> int | None:
    async with rt.db.read() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :high AND objid = :low AND objsubid = 1"
                ),
                {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFFFFFF},
            )
        ).scalar_one_or_none()


@pytest.fixture
async def shared(postgres_url: str, tmp_path: Path) -> AsyncIterator[Shared]:
    async with AsyncExitStack() as stack:
        arxiv = await stack.enter_async_context(FakeArxiv())
        arxiv.add_papers(dataset_papers(load_dataset()))
        appview = await stack.enter_async_context(FakeBlueskyAppView())
        jetstream = await stack.enter_async_context(FakeJetstream())
        settings = Settings.model_validate(
            {
                "database": {"url": postgres_url},
                "arxiv": {
                    "api_url": arxiv.api_url,
                    "rss_url": arxiv.rss_url,
                    "min_interval_seconds": 0,
                },
                "sources": {
                    "x": {"enabled": False},
                    "hackernews": {"enabled": False},
                    "huggingface": {"enabled": False},
                    "bluesky": {
                        "enabled": True,
                        "jetstream_urls": [jetstream.subscribe_url],
                        "api_url": appview.url,
                        "auth_url": appview.url,
                        "cursor_save_seconds": 0.1,
                        "resume_rewind_seconds": REWIND_S,
                    },
                },
                "scheduler": {"leader_poll_seconds": POLL_S},
            }
        )
        bots = []
        for _ in range(2):
            rt = await stack.enter_async_context(open_runtime(settings))
            bot = Bot(rt, Jobs(rt, cast("Publisher", NoPublisher())))
            real_run = rt.ingest.run

            async def counting(*args: Any, _bot: Bot = bot, _run: Any = real_run, **kw: Any) -> Any:
                _bot.ingestions += 1
                return await _run(*args, **kw)

            rt.ingest.run = counting  # type: ignore[method-assign]
            bots.append(bot)
        world = Shared(postgres_url, jetstream, appview, bots)
        try:
            yield world
        finally:
            for bot in bots:
                bot.jobs.stop_scheduler()
                await bot.jobs.drain(seconds=5)


async def one_leader(shared: Shared) -> Bot:
    await until(lambda: len(shared.leaders()) == 1, "a leader")
    (leader,) = shared.leaders()
    await until(lambda: shared.jetstream.subscribers == 1, "the leader's stream")
    return leader


async def stored_once(shared: Shared, rt: Runtime) -> None:
    async def check() -> bool:
        return await stored_posts(rt) == sorted(shared.posted)

    deadline = time.monotonic() + WAIT_S
    while not await check():
        assert time.monotonic() < deadline, "the posts were not stored"
        await asyncio.sleep(0.05)


@requires_postgres
async def test_only_the_leader_ingests_and_follows_the_stream_and_a_follower_takes_over(
    shared: Shared, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first, second = shared.bots
    first.jobs.start_scheduler()
    second.jobs.start_scheduler()
    leader = await one_leader(shared)
    follower = second if leader is first else first
    assert leader.jobs.leadership.elected
    await until(lambda: leader.ingestions == 1, "the leader's ingestion on election")
    assert leader.streaming
    assert not follower.streaming
    assert follower.jobs._streams == []
    # No cursor yet: the stream was followed live.
    assert shared.jetstream.cursors == [None]

    shared.post("2012.10885")
    await stored_once(shared, leader.rt)
    # The hourly job does nothing in a follower, and in the leader that just ingested.
    await follower.jobs.scheduled_ingest()
    await leader.jobs.scheduled_ingest()
    assert (leader.ingestions, follower.ingestions) == (1, 0)
    assert shared.jetstream.subscribers == 1
    deadline = time.monotonic() + WAIT_S
    while (cursor := await saved_cursor(leader.rt)) is None:  # saved just after the posts
        assert time.monotonic() < deadline, "no cursor saved"
        await asyncio.sleep(0.05)

    # The leader's lock connection is killed (a DBA, a network blip): it steps down at its next
    # check, and the other takes over within a poll or two, resuming from the saved cursor.
    pid = await holder_pid(leader.rt)
    assert pid is not None
    async with leader.rt.db.write() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    took = await until(lambda: follower.jobs.is_leader, "the takeover")
    assert took < 5 * POLL_S + 1.0
    await until(lambda: not leader.jobs.is_leader, "the old leader's step-down")
    await until(
        lambda: (
            not leader.streaming
            and follower.streaming
            and len(shared.jetstream.connections) == 2
            and shared.jetstream.subscribers == 1
        ),
        "the stream to move",
    )
    resumed = shared.jetstream.cursors[-1]
    saved = await saved_cursor(leader.rt)
    assert saved is not None
    assert saved >= cursor
    assert resumed == saved - round(REWIND_S * 1_000_000)
    await until(lambda: follower.ingestions == 1, "the new leader's ingestion")
    assert leader.ingestions == 1
    assert any(m.startswith("follower: the leader lock is lost") for _, m in messages(caplog)), (
        messages(caplog)
    )

    # Posts published now reach the database once, through the new leader.
    shared.post("2012.10885")
    shared.post("2012.11111")
    await stored_once(shared, follower.rt)

    # The new leader shuts down: it saves its cursor, releases the lock, and the first one
    # (a follower since) takes over at its next poll.
    started = time.monotonic()
    follower.jobs.stop_scheduler()
    await follower.jobs.drain(seconds=5)
    assert not follower.jobs.is_leader
    await until(lambda: leader.jobs.is_leader, "the takeover after a clean stop")
    assert time.monotonic() - started < 2 * POLL_S + 2.0
    await until(lambda: leader.streaming, "the stream, back in the first bot")
    shared.post("2012.10885")
    await stored_once(shared, leader.rt)
    assert shared.jetstream.subscribers == 1
    await until(lambda: leader.ingestions == 2, "its ingestion on taking over again")


def test_the_poll_is_a_setting_of_at_most_30_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().scheduler.leader_poll_seconds == 10.0
    monkeypatch.setenv("HOTPAPERS_SCHEDULER__LEADER_POLL_SECONDS", "0.5")
    assert load_settings().scheduler.leader_poll_seconds == 0.5
    # A dead leader must be replaced within a minute: 30 s of polling plus 25 s of keepalives.
    monkeypatch.setenv("HOTPAPERS_SCHEDULER__LEADER_POLL_SECONDS", "31")
    with pytest.raises(ConfigError, match=r"scheduler\.leader_poll_seconds"):
        load_settings()
