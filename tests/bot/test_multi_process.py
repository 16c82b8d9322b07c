"""Two and three real ``hotpapers run`` processes share one PostgreSQL database and one Discord.

As an operator runs them: each ``python -m bot run --shard-count N --shard-ids I`` is a child
process configured only through the documented environment, against the fakes here on
127.0.0.1 (a sharded Discord gateway, arXiv, X, Bluesky's Jetstream and AppView) and a fresh
database on the PostgreSQL server of ``HOTPAPERS_TEST_POSTGRES_URL`` (skipped without it,
failing under ``CI=true``).

* Every process posts its own shards' digests; every server's digest goes out exactly once.
* One process at a time leads (ingests and follows the stream): read from each process's log,
  the leaders' spans never overlap and every ingestion lies in its process's span; the fake
  Jetstream never has two subscribers.
* The leader is SIGKILLed during an ingestion: another process takes over (within a poll of the
  lock, far inside the issue's 60 s), finishes the ingestion, and resumes the stream from the
  saved cursor. It is SIGKILLed again while Discord holds its digests: a replacement for the
  dead shard (in Discord's model a shard belongs to its process; the realistic recovery is a new
  process for the same ids) finishes them exactly once, and the stream moves to the survivor.
  In the end every post published on the stream is stored once, none that was deleted.
* A process that joins late takes its shards and posts their digests; a leader stopped with
  SIGTERM hands over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import random
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import text

from bot.core.models import Window
from bot.fakes.arxiv import API_PATH, FakeArxiv
from bot.fakes.bluesky import (
    FakeBlueskyAppView,
    fake_did,
    link_facet,
    post_deleted_event,
    post_record,
)
from bot.fakes.demo import dataset_papers, load_dataset
from bot.fakes.jetstream import FakeJetstream
from bot.fakes.x import FakeX, XLink
from bot.runtime import open_runtime
from bot.services.guilds import GuildService
from bot.settings import Secrets, Settings
from bot.sources.bluesky import micros
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.streams import StreamRepository
from bot.ui.embeds import read_marker
from tests.bot.postgres import postgres_url, requires_postgres
from tests.cli.test_real_day import spawn_bot
from tests.fakes.discord import DiscordHarness, FakeChannel, FakeGuild
from tests.fakes.discord.server import RecordedRequest

__all__ = ["postgres_url"]  # the fixture, imported for the tests below

pytestmark = requires_postgres

UTC = dt.UTC
X_TOKEN = "multi-process-bearer-token"  # the local fake X's credential
POLL_S = 0.5  # scheduler.leader_poll_seconds
SAVE_S = 0.2  # sources.bluesky.cursor_save_seconds
REWIND_S = 2.0  # sources.bluesky.resume_rewind_seconds
# One arXiv id per request, 0.3 s apart: an ingestion resolving FRESH takes about 9 s, long
# enough to kill its process in the middle.
ARXIV_INTERVAL_S = 0.3
START_S = 45.0  # a process starts, logs in and connects its shard (2 cores, shared)
TAKEOVER_S = 60.0  # the issue: "another process takes over within 60 s"
DONE_S = 60.0
STOP_S = 15.0
TOP = 6
DATASET = dataset_papers(load_dataset())
LINKED = [p.arxiv_id for p in DATASET][:8]  # the papers of the digests, ingested beforehand
# Papers linked on X that the database does not know yet: each one costs the leader's
# ingestion an arXiv request.
FRESH = [
    dataclasses.replace(DATASET[n % len(DATASET)], arxiv_id=f"2102.{n + 1:05d}", title=f"Fresh {n}")
    for n in range(30)
]
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+)\s+(\S+): (.*)$")
# A message in a channel or thread, or a thread opened from a message.
DIGEST_POST = re.compile(r"^/channels/(\d+)/messages(?:/\d+/threads)?$")
LEADS = "leader: this process runs ingestion and the streams"
STEPS_DOWN = ("follower: the leader lock is lost", "leader: stepping down for shutdown")
INGESTION = ("ingestion started", "ingestion: ", "ingestion stopped")
POSTED = re.compile(r"^guild (\d+) digest \S+: sent")


# -- the stream: posts linking arXiv, and deletions, published without pause ------------------


@dataclass
class Stream:
    """What is published on the fake Jetstream, and what the database must hold in the end."""

    jetstream: FakeJetstream
    appview: FakeBlueskyAppView
    rng: random.Random
    last_us: int = 0
    events: int = 0
    expected: dict[str, list[str]] = field(default_factory=dict)  # at-uri -> linked ids
    deleted: set[str] = field(default_factory=set)

    def _time(self) -> int:
        self.last_us = max(micros(dt.datetime.now(UTC)), self.last_us + 1)
        return self.last_us

    def post(self) -> None:
        n = self.events
        handle = f"reader{self.rng.randrange(30)}.bsky.social"
        arxiv_id = self.rng.choice(LINKED)
        time_us = self._time()
        shown = f"arxiv.org/abs/{arxiv_id}"
        body = f"Reading {shown} today"
        record = post_record(
            body,
            dt.datetime.fromtimestamp(time_us / 1e6, UTC),
            facets=[link_facet(body, shown, f"https://arxiv.org/abs/{arxiv_id}")],
        )
        uri = self.appview.add_post(
            fake_did(handle), f"3kmulti{n:07d}", handle=handle, record=record, likes=n % 50 + 1
        )
        self.jetstream.publish(self.appview.jetstream_event(uri, time_us=time_us))
        self.expected[uri] = [arxiv_id]
        self.events += 1

    def delete(self) -> None:
        uri = self.rng.choice(sorted(self.expected))
        did, _collection, rkey = uri.removeprefix("at://").split("/")
        self.jetstream.publish(post_deleted_event(did, rkey, self._time()))
        self.appview.delete_post(uri)
        del self.expected[uri]
        self.deleted.add(uri)
        self.events += 1

    def step(self) -> None:
        if self.expected and self.rng.random() < 0.15:
            self.delete()
        else:
            self.post()


async def publish_continuously(stream: Stream, stop: asyncio.Event) -> None:
    """A few events every 20 ms until ``stop``, also while no process follows the stream (the
    fake Jetstream keeps them for the next subscriber's cursor)."""
    while not stop.is_set():
        for _ in range(stream.rng.randrange(1, 3)):
            stream.step()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)


# -- the processes ----------------------------------------------------------------------------


@dataclass
class Proc:
    """One ``hotpapers run`` child process."""

    name: str
    shards: tuple[int, ...]
    proc: asyncio.subprocess.Process
    stderr: Path
    killed_at: dt.datetime | None = None  # just before SIGKILL: it logs nothing after

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")

    def log(self) -> list[tuple[dt.datetime, str]]:
        """(time, message) of every log line (continuation lines are left out)."""
        lines = []
        for line in self.err().splitlines():
            found = LOG_LINE.match(line)
            if found:
                # The log's local time, as this process reads the clock (same host).
                moment = dt.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone()
                lines.append((moment, found.group(4)))
        return lines

    def said(self, prefix: str) -> bool:
        return any(message.startswith(prefix) for _, message in self.log())

    def first(self, prefix: str) -> dt.datetime:
        return next(t for t, message in self.log() if message.startswith(prefix))

    @property
    def leads(self) -> bool:
        """Alive, and its log's last word on the leadership is that it leads."""
        standing = [m for _, m in self.log() if m.startswith(LEADS) or m.startswith(STEPS_DOWN)]
        return self.alive and bool(standing) and standing[-1].startswith(LEADS)

    def spans(self, now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        """When it led: from each "leader:" line to its stepping down (or its kill, or now)."""
        spans = []
        start: dt.datetime | None = None
        for moment, message in self.log():
            if message.startswith(LEADS):
                assert start is None, f"{self.name} elected twice without stepping down"
                start = moment
            elif message.startswith(STEPS_DOWN) and start is not None:
                spans.append((start, moment))
                start = None
        if start is not None:
            spans.append((start, self.killed_at or now))
        return spans


@dataclass
class Case:
    """A server whose digest fell due two minutes ago, on a given shard."""

    shard: int
    guild: FakeGuild
    channel: FakeChannel


@dataclass
class World:
    h: DiscordHarness
    tmp: Path
    url: str
    db: Database  # the test's own connection, to read what the processes wrote
    env: dict[str, str]
    count: int
    day: dt.date
    cases: list[Case]
    arxiv: FakeArxiv
    stream: Stream
    x_posts: int
    procs: list[Proc] = field(default_factory=list)

    def on_shard(self, shard: int) -> list[Case]:
        return [c for c in self.cases if c.shard == shard]

    def arxiv_requests(self) -> int:
        return len(self.arxiv.requests_to(API_PATH))

    async def start(self, name: str, *shards: int) -> Proc:
        """``python -m bot run --shard-count N --shard-ids …``; returns at once."""
        stderr_path = self.tmp / f"{name}.stderr"
        ids = ",".join(str(s) for s in shards)
        proc = await spawn_bot(
            "--shard-count",
            str(self.count),
            "--shard-ids",
            ids,
            env=self.env,
            cwd=self.tmp,
            stderr_path=stderr_path,
        )
        run = Proc(name, shards, proc, stderr_path)
        self.procs.append(run)
        return run

    async def until(
        self,
        condition: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109 - a bounded polling wait on other processes
        what: str,
    ) -> float:
        """Wait for ``condition``; fails at once if a process died that the test did not kill.
        Returns the seconds it took."""
        started = time.monotonic()
        while not condition():
            for run in self.procs:
                if not run.alive and run.killed_at is None and run.proc.returncode != 0:
                    raise AssertionError(f"{run.name} died while waiting for {what}:\n{run.err()}")
            if time.monotonic() - started > timeout:
                logs = "\n".join(f"--- {r.name}\n{r.err()}" for r in self.procs)
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    async def until_async(
        self,
        condition: Callable[[], Any],
        timeout: float,  # noqa: ASYNC109 - a bounded polling wait on other processes
        what: str,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not await condition():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {r.name}\n{r.err()}" for r in self.procs)
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")
            await asyncio.sleep(0.05)

    async def connected(self, run: Proc) -> None:
        await self.until(lambda: run.said("connected as"), START_S, f"{run.name} to connect")

    async def kill(self, run: Proc) -> None:
        """SIGKILL: no handler, no drain; the kernel closes its sockets."""
        run.killed_at = dt.datetime.now().astimezone()
        run.proc.kill()
        await asyncio.wait_for(run.proc.wait(), STOP_S)

    async def terminate(self, run: Proc) -> None:
        """SIGTERM: a clean stop, exit 0, no traceback."""
        run.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(run.proc.wait(), STOP_S)
        assert code == 0, run.err()

    # -- the database --------------------------------------------------------------------

    async def records(self) -> dict[int, Any]:
        repo = DigestRepository(self.db)
        found = {}
        for case in self.cases:
            record = await repo.get(case.guild.id, self.day)
            if record is not None:
                found[case.guild.id] = record
        return found

    async def sent(self, cases: list[Case]) -> bool:
        records = await self.records()
        return all(c.guild.id in records and records[c.guild.id].status == "sent" for c in cases)

    async def cursor(self) -> int | None:
        saved = await StreamRepository(self.db).cursor("bluesky")
        return None if saved is None else saved.cursor_us

    async def rows(self, sql: str, **params: object) -> list[Any]:
        async with self.db.read() as conn:
            return list((await conn.execute(text(sql), params)).all())


def add_posts(x: FakeX, now: dt.datetime, ids: list[str], tag: str) -> None:
    """Posts on X of the last hours, one linking each of ``ids``, the first ones liked most."""
    for rank, arxiv_id in enumerate(ids):
        x.add_post(
            f"{tag}{rank:016d}",
            f"Worth reading today ({tag} {rank})",
            f"reader{rank}",
            f"Reader {rank}",
            now - dt.timedelta(hours=1, minutes=rank),
            [XLink(f"https://arxiv.org/abs/{arxiv_id}")],
            retweets=10 * (len(ids) - rank),
            likes=100 * (len(ids) - rank),
        )


@asynccontextmanager
async def shared_world(
    tmp_path: Path, h: DiscordHarness, url: str, *, count: int, per_shard: int = 2
) -> AsyncIterator[World]:
    """``per_shard`` servers on each of ``count`` shards whose compact digest fell due two
    minutes ago; the database migrated and holding the day's X posts (of LINKED) and the
    servers' settings; FRESH linked on X since, not yet ingested."""
    async with AsyncExitStack() as stack:
        arxiv = await stack.enter_async_context(FakeArxiv())
        arxiv.add_papers([*DATASET, *FRESH])
        x = await stack.enter_async_context(FakeX(token=X_TOKEN))
        appview = await stack.enter_async_context(FakeBlueskyAppView())
        jetstream = await stack.enter_async_context(FakeJetstream())
        now = dt.datetime.now(UTC)
        add_posts(x, now, LINKED, "17")
        slot = (now - dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
        sources = {
            "x": {"enabled": True, "api_url": x.api_url},
            "hackernews": {"enabled": False},
            "huggingface": {"enabled": False},
            "bluesky": {"enabled": False},
        }
        settings = Settings.model_validate(
            {
                "database": {"url": url},
                "arxiv": {
                    "api_url": arxiv.api_url,
                    "rss_url": arxiv.rss_url,
                    "min_interval_seconds": 0,
                },
                "sources": sources,
                "secrets": Secrets(sources={"X_BEARER_TOKEN": SecretStr(X_TOKEN)}),
            }
        )
        cases = []
        for shard in range(count):
            for n in range(per_shard):
                guild = h.world.add_guild(f"Shard {shard} #{n}", shard=(shard, count))
                channel = h.world.add_channel(guild, "hot-papers")
                cases.append(Case(shard, guild, channel))
        async with open_runtime(settings) as rt:  # migrates the new database
            report = await rt.ingest.run(Window(now - dt.timedelta(hours=6), now))
            assert not report.failures, report.failures
            guilds = GuildService(rt.guilds, lambda: now - dt.timedelta(days=1))
            for case in cases:
                await guilds.set_channel(case.guild.id, case.channel.id)
                await guilds.set_time(case.guild.id, f"{slot:%H:%M}", "UTC")
                await guilds.set_options(case.guild.id, top=TOP, threshold=0, style="compact")
        add_posts(x, now, [p.arxiv_id for p in FRESH], "18")
        env = {
            "DISCORD_TOKEN": h.token,
            "HOTPAPERS_DISCORD__API_BASE": h.fake.api_base,
            "HOTPAPERS_DISCORD__GATEWAY_URL": h.fake.gateway_url,
            "HOTPAPERS_DATABASE__URL": url,
            "HOTPAPERS_SCHEDULER__LEADER_POLL_SECONDS": str(POLL_S),
            "HOTPAPERS_ARXIV__API_URL": arxiv.api_url,
            "HOTPAPERS_ARXIV__RSS_URL": arxiv.rss_url,
            "HOTPAPERS_ARXIV__MIN_INTERVAL_SECONDS": str(ARXIV_INTERVAL_S),
            "HOTPAPERS_ARXIV__BATCH_SIZE": "1",
            "HOTPAPERS_SOURCES__X__ENABLED": "true",
            "HOTPAPERS_SOURCES__X__API_URL": x.api_url,
            "X_BEARER_TOKEN": X_TOKEN,
            "HOTPAPERS_SOURCES__HACKERNEWS__ENABLED": "false",
            "HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED": "false",
            "HOTPAPERS_SOURCES__BLUESKY__JETSTREAM_URLS": jetstream.subscribe_url,
            "HOTPAPERS_SOURCES__BLUESKY__API_URL": appview.url,
            "HOTPAPERS_SOURCES__BLUESKY__AUTH_URL": appview.url,
            "HOTPAPERS_SOURCES__BLUESKY__CURSOR_SAVE_SECONDS": str(SAVE_S),
            "HOTPAPERS_SOURCES__BLUESKY__RESUME_REWIND_SECONDS": str(REWIND_S),
        }
        seed = random.randrange(2**32)
        print(f"random seed {seed}")  # shown by pytest when the test fails
        stream = Stream(jetstream, appview, random.Random(seed))
        db = Database(url)
        stack.push_async_callback(db.close)
        world = World(
            h, tmp_path, url, db, env, count, slot.date(), cases, arxiv, stream,
            x_posts=len(LINKED) + len(FRESH),
        )  # fmt: skip
        try:
            yield world
        finally:
            for run in world.procs:
                if run.alive:
                    run.proc.kill()
                    await run.proc.wait()


# -- what Discord holds, and the digests' records ----------------------------------------------


def digest_messages(world: World, case: Case) -> list[dict[str, Any]]:
    """The bot's digest messages of the day in the case's guild (channels and threads)."""
    fake = world.h.world
    me = str(fake.bot_user.id)
    found = []
    for message in fake.messages.values():
        if message["author"]["id"] != me:
            continue
        if fake.channels[int(message["channel_id"])].guild_id != case.guild.id:
            continue
        footers = [(e.get("footer") or {}).get("text") or "" for e in message["embeds"]]
        marker = read_marker(message.get("content") or "", footers)
        if marker is not None and marker[0] == world.day:
            found.append(message)
    return found


async def assert_each_digest_once(world: World) -> None:
    """Every server's compact digest on Discord exactly once, recorded ``sent`` with its id."""
    records = await world.records()
    counts = {c.guild.name: len(digest_messages(world, c)) for c in world.cases}
    assert counts == dict.fromkeys(counts, 1), counts
    for case in world.cases:
        (message,) = digest_messages(world, case)
        assert int(message["channel_id"]) == case.channel.id
        record = records[case.guild.id]
        assert record.status == "sent", (case.guild.name, record)
        assert list(record.message_ids) == [int(message["id"])], case.guild.name


class HoldDigests:
    """The fake Discord's request hook: every digest message waits until its guild is let go,
    then Discord posts it, whether its sender still lives or not."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.reached: set[int] = set()  # guilds whose digest message is held (or was)
        self.active = 0
        self._go = {c.guild.id: asyncio.Event() for c in world.cases}

    def let_go(self, cases: list[Case]) -> None:
        for case in cases:
            self._go[case.guild.id].set()

    async def __call__(self, phase: str, record: RecordedRequest) -> bool | None:
        found = DIGEST_POST.match(record.path) if record.method == "POST" else None
        channel = self.world.h.world.channels.get(int(found.group(1))) if found else None
        if phase != "received" or channel is None or channel.guild_id not in self._go:
            return None
        self.reached.add(channel.guild_id)
        self.active += 1
        try:
            await self._go[channel.guild_id].wait()
        finally:
            self.active -= 1
        return True


def assert_one_leader_at_a_time(world: World) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """From the logs: the processes' spans as leader never overlap, and every ingestion line of
    a process lies within one of its spans. Returns the spans in order."""
    now = dt.datetime.now().astimezone()
    spans = sorted(
        ((run.name, start, end) for run in world.procs for start, end in run.spans(now)),
        key=lambda span: span[1],
    )
    for (name, _start, end), (after, start, _end) in itertools.pairwise(spans):
        assert end <= start, f"{name} led until {end}, {after} from {start}"
    for run in world.procs:
        own = run.spans(now)
        for moment, message in run.log():
            if message.startswith(INGESTION):
                # The log's milliseconds are truncated: a line in the span's last ms counts.
                inside = any(a <= moment <= b + dt.timedelta(milliseconds=1) for a, b in own)
                assert inside, f"{run.name} ingested at {moment} without leading: {message}"
    return spans


async def sample_subscribers(world: World, seen: list[int], stop: asyncio.Event) -> None:
    """The fake Jetstream's open sockets, every 10 ms: the leader's, and nobody else's."""
    while not stop.is_set():
        seen.append(world.stream.jetstream.subscribers)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.01)


# -- two processes: the leader killed during ingestion, then during delivery --------------------


async def test_two_processes_one_leader_killed_in_ingestion_then_in_delivery(
    tmp_path: Path, discord_harness: DiscordHarness, postgres_url: str
) -> None:
    h = discord_harness
    began = time.monotonic()
    async with shared_world(tmp_path, h, postgres_url, count=2) as world:
        stop = asyncio.Event()
        subscribers: list[int] = []
        sampler = asyncio.create_task(sample_subscribers(world, subscribers, stop))
        publisher: asyncio.Task[None] | None = None
        hold = HoldDigests(world)
        h.fake.request_hook = hold
        try:
            # -- two processes start together; one leads ------------------------------------
            procs = [await world.start("p0", 0), await world.start("p1", 1)]
            await world.until(lambda: any(p.leads for p in procs), START_S, "a leader")
            (leader,) = [p for p in procs if p.leads]
            (follower,) = [p for p in procs if p is not leader]
            await world.until(lambda: follower.said("follower:"), START_S, "the follower")
            assert not follower.leads
            # The leader's digests go out; the follower's wait in Discord until its own kill.
            hold.let_go(world.on_shard(leader.shards[0]))
            await world.until(lambda: world.stream.jetstream.subscribers == 1, START_S, "stream")
            # No cursor saved yet: the leader follows the live tip, so the posts begin now.
            assert world.stream.jetstream.cursors == [None]
            publisher = asyncio.create_task(publish_continuously(world.stream, stop))

            # -- kill #1: the leader, in the middle of an ingestion ---------------------------
            asked = world.arxiv_requests()
            await world.until(
                lambda: world.arxiv_requests() >= asked + 2, START_S, "the leader's ingestion"
            )
            assert leader.said("ingestion started")
            assert not leader.said("ingestion: "), "the ingestion ended before the kill"
            connections = len(world.stream.jetstream.connections)
            await world.kill(leader)
            cursor = await world.cursor()
            assert cursor is not None
            await world.until(lambda: follower.leads, TAKEOVER_S, "the takeover")
            taken = (follower.first(LEADS) - _killed(leader)).total_seconds()
            print(f"kill 1 (ingestion): {follower.name} leads {taken:.2f} s after the SIGKILL")
            assert taken < 10 * POLL_S
            # It resumes the stream from the cursor the dead leader saved (a little before it).
            await world.until(
                lambda: len(world.stream.jetstream.connections) > connections,
                TAKEOVER_S,
                "the new leader to follow the stream",
            )
            resumed = world.stream.jetstream.cursors[connections]
            assert resumed == cursor - round(REWIND_S * 1_000_000), (resumed, cursor)

            # -- a replacement for the dead shard (a follower now) posts its digests ------
            h.fake.honour_nonces = False  # past the nonce window: only reading back helps
            replacement = await world.start(f"{leader.name}-again", *leader.shards)
            await world.connected(replacement)
            await world.until_async(
                lambda: world.sent(world.on_shard(leader.shards[0])), DONE_S, "its digests"
            )
            assert replacement.said("follower:")
            assert not replacement.leads
            # ...while the new leader ingests: every fresh paper is resolved in the end.
            await world.until(lambda: follower.said("ingestion: "), DONE_S, "the ingestion")
            stored = await world.rows(
                "SELECT arxiv_id FROM papers WHERE arxiv_id LIKE '2102.%' ORDER BY arxiv_id"
            )
            assert [r[0] for r in stored] == sorted(p.arxiv_id for p in FRESH)

            # -- kill #2: the leader again, while Discord holds its digests ---------------
            held = world.on_shard(follower.shards[0])
            await world.until(
                lambda: {c.guild.id for c in held} <= hold.reached, DONE_S, "digests held"
            )
            records = await world.records()
            assert {records[c.guild.id].status for c in held} == {"sending"}
            connections = len(world.stream.jetstream.connections)
            await world.kill(follower)
            cursor = await world.cursor()
            assert cursor is not None
            hold.let_go(held)  # Discord posts them after all: the replacement must read back
            await h.fake.wait_until(lambda: hold.active == 0, STOP_S, "held requests let go")
            h.fake.request_hook = None
            await world.until(lambda: replacement.leads, TAKEOVER_S, "the second takeover")
            taken = (replacement.first(LEADS) - _killed(follower)).total_seconds()
            print(f"kill 2 (delivery): {replacement.name} leads {taken:.2f} s after the SIGKILL")
            assert taken < 10 * POLL_S
            await world.until(
                lambda: len(world.stream.jetstream.connections) > connections,
                TAKEOVER_S,
                "the third leader to follow the stream",
            )
            resumed = world.stream.jetstream.cursors[connections]
            assert resumed == cursor - round(REWIND_S * 1_000_000), (resumed, cursor)

            # -- a replacement for that shard finishes the dead leader's digests, once ----
            last = await world.start(f"{follower.name}-again", *follower.shards)
            await world.connected(last)
            await world.until_async(lambda: world.sent(held), DONE_S, "the held digests")
            await assert_each_digest_once(world)
            records = await world.records()
            assert {records[c.guild.id].takeovers for c in held} == {1}

            # -- the stream: every post stored once, deletions applied --------------------
            stop.set()
            await publisher
            await world.until_async(
                lambda: _cursor_at(world, world.stream.last_us), DONE_S, "the last event"
            )
            await world.until(lambda: replacement.said("ingestion: "), DONE_S, "its ingestion")
            await asyncio.gather(world.terminate(replacement), world.terminate(last))
        finally:
            stop.set()
            await asyncio.gather(sampler, *([publisher] if publisher is not None else []))
            h.fake.request_hook = None

        # -- what the processes did, from the outside --------------------------------------
        spans = assert_one_leader_at_a_time(world)
        order = [name for name, _, _ in spans][:3]
        assert order == [leader.name, follower.name, replacement.name], spans
        assert max(subscribers) == 1, "two processes followed the stream at once"
        for run in world.procs:
            assert "Traceback" not in run.err(), f"{run.name}:\n{run.err()}"
        await assert_each_digest_once(world)
        stored = dict(
            await world.rows(
                "SELECT m.post_id, p.arxiv_id FROM mentions m JOIN mention_papers p "
                "ON p.mention_id = m.id WHERE m.source = 'bluesky'"
            )
        )
        expected = {uri: ids[0] for uri, ids in world.stream.expected.items()}
        missing = set(expected) - set(stored)
        extra = set(stored) - set(expected)
        assert not missing, f"{len(missing)} posts lost, e.g. {sorted(missing)[:3]}"
        assert not extra, f"{len(extra)} posts that must be absent, e.g. {sorted(extra)[:3]}"
        assert stored == expected
        assert await world.rows("SELECT * FROM stream_gaps") == []
        x_rows = await world.rows(
            "SELECT post_id, COUNT(*) FROM mentions WHERE source = 'x' GROUP BY post_id"
        )
        assert len(x_rows) == world.x_posts
        assert {n for _, n in x_rows} == {1}
        print(
            f"{world.stream.events} stream events, {len(expected)} posts kept, "
            f"{len(world.stream.deleted)} deleted; {len(world.cases)} digests; "
            f"{time.monotonic() - began:.1f} s"
        )


def _killed(run: Proc) -> dt.datetime:
    assert run.killed_at is not None
    return run.killed_at


async def _cursor_at(world: World, last_us: int) -> bool:
    saved = await world.cursor()
    return saved is not None and saved >= last_us


# -- three processes: a late joiner takes its shards; a leader stopped hands over --------------


async def test_three_processes_a_late_joiner_takes_its_shards(
    tmp_path: Path, discord_harness: DiscordHarness, postgres_url: str
) -> None:
    h = discord_harness
    began = time.monotonic()
    async with shared_world(tmp_path, h, postgres_url, count=3) as world:
        world.env["HOTPAPERS_ARXIV__MIN_INTERVAL_SECONDS"] = "0"
        procs = [await world.start("p0", 0), await world.start("p1", 1)]
        await world.until(lambda: any(p.leads for p in procs), START_S, "a leader")
        (leader,) = [p for p in procs if p.leads]
        (follower,) = [p for p in procs if p is not leader]
        for run in procs:
            await world.connected(run)
        await world.until_async(
            lambda: world.sent(world.on_shard(0) + world.on_shard(1)), DONE_S, "shards 0 and 1"
        )
        assert follower.said("follower:")
        # Nobody runs shard 2 yet: its servers have nothing, and no record.
        records = await world.records()
        for case in world.on_shard(2):
            assert case.guild.id not in records
            assert world.h.fake.messages(case.channel) == []

        # The leader stops (a deploy): it saves its cursor and lets the lock go at once.
        await world.until(lambda: leader.said("ingestion: "), DONE_S, "the first ingestion")
        await world.terminate(leader)
        await world.until(lambda: follower.leads, TAKEOVER_S, "the takeover")
        handed = (follower.first(LEADS) - leader.first(STEPS_DOWN[1])).total_seconds()
        print(f"SIGTERM: {follower.name} leads {handed:.2f} s after {leader.name} stepped down")
        assert handed < 2 * POLL_S + 1.0

        # The third process joins late: it takes shard 2 and posts its servers' digests.
        late = await world.start("p2", 2)
        await world.connected(late)
        await world.until_async(lambda: world.sent(world.on_shard(2)), DONE_S, "shard 2")
        assert late.said("follower:")
        assert not late.leads
        assert h.fake.sessions_on((2, 3)) == 1
        await assert_each_digest_once(world)
        await asyncio.gather(world.terminate(follower), world.terminate(late))
        assert_one_leader_at_a_time(world)
        for run in world.procs:
            err = run.err()
            assert "Traceback" not in err, f"{run.name}:\n{err}"
            assert " ERROR " not in err, f"{run.name}:\n{err}"
            # Each process posted its own shard's digests, and no other.
            posted = {int(f[1]) for _, m in run.log() if (f := POSTED.match(m))}
            assert posted == {c.guild.id for c in world.on_shard(run.shards[0])}, run.name
        print(f"{len(world.cases)} digests by 3 processes; {time.monotonic() - began:.1f} s")
