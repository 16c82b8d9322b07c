"""The real ``hotpapers run`` process, SIGKILLed in the middle of a digest, posts every part once.

As a checker would: the fakes (Discord, arXiv, X) run here on 127.0.0.1 and ``python -m bot run``
is a child process configured only through the documented environment. The database is set up
beforehand with the repositories: guilds whose digest fell due a minute or two ago, so the
start-up sweep posts it. The fake Discord holds, cuts or times the digest's requests
(``FakeDiscord.request_hook``) and the process is killed at each point of each message:

* ``before``: the request never reaches Discord;
* ``held``: Discord holds the request; the process dies; Discord posts the message after all;
* ``unanswered``: Discord posted the message, the process died before the answer came;
* ``unrecorded``: Discord answered, the process died before it wrote the id to its database
  (held there by a write lock this test takes);
* ``random``: 0 to 30 ms after Discord answered, again and again.

Then Discord forgets every nonce (as it does after a few minutes: only reading the channel
back can avoid a copy) and the process starts again. It must resume the dead process's digest
at once, without waiting for the claim to go stale, and in the end every part of every digest
exists once in its channel or thread, and each digest is recorded ``sent`` with every id.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.core.models import Window
from bot.fakes.arxiv import FakeArxiv
from bot.fakes.demo import dataset_papers, load_dataset
from bot.fakes.x import FakeX, XLink
from bot.runtime import open_runtime
from bot.services.guilds import GuildService
from bot.settings import Secrets, Settings
from bot.ui.embeds import read_marker
from tests.bot.conftest import posted_ids
from tests.cli.test_real_day import spawn_bot
from tests.fakes.discord import DiscordHarness, FakeChannel, FakeGuild
from tests.fakes.discord.server import RecordedRequest

# SQLite only: the test kills real `hotpapers run` processes on a SQLite file and reads (and
# locks) that file with sqlite3 meanwhile (processes sharing PostgreSQL are tested apart).
pytestmark = pytest.mark.sqlite_only

UTC = dt.UTC
X_TOKEN = "kill-process-bearer-token"  # the local fake X's credential
START_S = 30.0  # a process starts, migrates, logs in and reaches its first kill point
RESUME_S = 30.0  # a restart finishes the dead process's digests (the old staleness: 10 min)
STOP_S = 10.0
SIGTERM_RELEASE_S = 0.5  # how long the fake holds the message after SIGTERM
# The digest's papers: the top 6 of the 8 linked, in two messages (4 + 2).
TOP = 6
LINKED = [p.arxiv_id for p in dataset_papers(load_dataset())][:8]
RANKED = LINKED[:TOP]
# Each style's digest POSTs in order, and its number of paper messages.
STEPS = {
    "thread": ["header", "thread", "part 1", "part 2"],
    "channel": ["header", "part 1", "part 2"],
    "compact": ["message"],
}
PARTS = {"thread": 2, "channel": 2, "compact": 0}
# A message in a channel or thread, or a thread opened from a message.
DIGEST_POST = re.compile(r"^/channels/(\d+)/messages(?:/\d+/threads)?$")


# -- the world: fakes, guilds and a database whose digests are due ----------------------------


@dataclass
class Case:
    """One guild and its digest: the process dies at its POST number ``step``, as ``kind``
    says (see the module docstring)."""

    style: str
    step: int
    kind: str
    guild: FakeGuild
    channel: FakeChannel
    posts: int = 0  # digest POSTs received from the process under test

    @property
    def name(self) -> str:
        if self.kind not in KINDS:
            return f"{self.style}-{self.kind}"
        return f"{self.style}-{STEPS[self.style][self.step].replace(' ', '')}-{self.kind}"


@dataclass
class World:
    h: DiscordHarness
    tmp: Path
    db: Path
    env: dict[str, str]
    day: dt.date
    cases: list[Case]
    runs: list[BotRun] = field(default_factory=list)

    def case_of(self, record: RecordedRequest) -> Case | None:
        """The case a digest POST belongs to (by its channel's or thread's guild)."""
        found = DIGEST_POST.match(record.path) if record.method == "POST" else None
        channel = self.h.world.channels.get(int(found.group(1))) if found else None
        if channel is None:
            return None
        return next((c for c in self.cases if c.guild.id == channel.guild_id), None)


def add_recent_posts(x: FakeX, now: dt.datetime) -> None:
    """Posts of the last hours on X, each linking one paper, the first ones liked most."""
    for rank, arxiv_id in enumerate(LINKED):
        x.add_post(
            f"17{rank:017d}",
            f"Worth reading today ({rank})",
            f"reader{rank}",
            f"Reader {rank}",
            now - dt.timedelta(hours=1, minutes=rank),
            [XLink(f"https://arxiv.org/abs/{arxiv_id}")],
            retweets=10 * (len(LINKED) - rank),
            likes=100 * (len(LINKED) - rank),
        )


@asynccontextmanager
async def digest_world(
    tmp_path: Path, h: DiscordHarness, specs: list[tuple[str, int, str]]
) -> AsyncIterator[World]:
    """A guild per ``(style, step, kind)`` whose digest slot passed two minutes ago; the database
    holds the day's mentions (ingested through the real pipeline) and the guilds' settings."""
    async with AsyncExitStack() as stack:
        arxiv = await stack.enter_async_context(FakeArxiv())
        arxiv.add_papers(dataset_papers(load_dataset()))
        x = await stack.enter_async_context(FakeX(token=X_TOKEN))
        now = dt.datetime.now(UTC)
        add_recent_posts(x, now)
        slot = (now - dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
        db = tmp_path / "bot.db"
        env = {
            "DISCORD_TOKEN": h.token,
            "HOTPAPERS_DISCORD__API_BASE": h.fake.api_base,
            "HOTPAPERS_DISCORD__GATEWAY_URL": h.fake.gateway_url,
            "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{db}",
            "HOTPAPERS_ARXIV__API_URL": arxiv.api_url,
            "HOTPAPERS_ARXIV__RSS_URL": arxiv.rss_url,
            "HOTPAPERS_ARXIV__MIN_INTERVAL_SECONDS": "0",
            "HOTPAPERS_SOURCES__X__ENABLED": "true",
            "HOTPAPERS_SOURCES__X__API_URL": x.api_url,
            "X_BEARER_TOKEN": X_TOKEN,
            "HOTPAPERS_SOURCES__HACKERNEWS__ENABLED": "false",
            "HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED": "false",
            "HOTPAPERS_SOURCES__BLUESKY__ENABLED": "false",
        }
        settings = Settings.model_validate(
            {
                "database": {"url": env["HOTPAPERS_DATABASE__URL"]},
                "arxiv": {
                    "api_url": arxiv.api_url,
                    "rss_url": arxiv.rss_url,
                    "min_interval_seconds": 0,
                },
                "sources": {
                    "x": {"enabled": True, "api_url": x.api_url},
                    "hackernews": {"enabled": False},
                    "huggingface": {"enabled": False},
                    "bluesky": {"enabled": False},
                },
                "secrets": Secrets(sources={"X_BEARER_TOKEN": SecretStr(X_TOKEN)}),
            }
        )
        cases = []
        for n, (style, step, kind) in enumerate(specs):
            guild = h.world.add_guild(f"Guild {n} ({style})")
            channel = h.world.add_channel(guild, "hot-papers")
            cases.append(Case(style, step, kind, guild, channel))
        async with open_runtime(settings) as rt:
            report = await rt.ingest.run(Window(now - dt.timedelta(hours=6), now))
            assert not report.failures, report.failures
            # Set up yesterday: today's slot is owed.
            guilds = GuildService(rt.guilds, lambda: now - dt.timedelta(days=1))
            for case in cases:
                await guilds.set_channel(case.guild.id, case.channel.id)
                await guilds.set_time(case.guild.id, f"{slot:%H:%M}", "UTC")
                await guilds.set_options(case.guild.id, top=TOP, threshold=0, style=case.style)
        world = World(h, tmp_path, db, env, slot.date(), cases)
        try:
            yield world
        finally:
            for run in world.runs:
                if run.alive:
                    run.proc.kill()
                    await run.proc.wait()


# -- the processes -----------------------------------------------------------------------------


@dataclass
class BotRun:
    proc: asyncio.subprocess.Process
    stderr: Path
    started: float

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")


async def start_bot(world: World) -> BotRun:
    """``python -m bot run`` on the world's database (a first start or a restart)."""
    # A restart after a kill: the dead process's socket is closed before the new one connects.
    await world.h.fake.wait_until(lambda: world.h.fake.connected == 0, STOP_S, "sockets closed")
    stderr_path = world.tmp / f"run{len(world.runs)}.stderr"
    proc = await spawn_bot(env=world.env, cwd=world.tmp, stderr_path=stderr_path)
    run = BotRun(proc, stderr_path, time.monotonic())
    world.runs.append(run)
    return run


async def sigkill(run: BotRun) -> None:
    if run.alive:
        run.proc.kill()  # SIGKILL: no handler, no drain, nothing more is written
    await asyncio.wait_for(run.proc.wait(), STOP_S)


async def stop_cleanly(world: World, run: BotRun) -> None:
    """SIGTERM once the process listens for it (it is connected): exit 0, no traceback."""
    await world.h.wait_connected(timeout=START_S, alive=lambda: run.alive)
    run.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(run.proc.wait(), STOP_S)
    err = run.err()
    assert code == 0, err
    assert "Traceback" not in err, err


async def poll(
    condition: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109 - a bounded polling wait on another process
    what: str,
    run: BotRun,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not run.alive:
            raise AssertionError(f"the process died while waiting for {what}:\n{run.err()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{run.err()}")
        await asyncio.sleep(0.02)


# -- the database, read while another process writes it ----------------------------------------


@dataclass(frozen=True)
class Row:
    status: str
    message_ids: list[int]
    attempts: int
    takeovers: int


def records(world: World) -> dict[int, Row]:
    """Each guild's digest record of the day, by guild id."""
    with contextlib.closing(sqlite3.connect(f"file:{world.db}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute(
            "SELECT guild_id, status, message_ids, attempts, takeovers FROM digests "
            "WHERE digest_date = ?",
            (world.day.isoformat(),),
        ).fetchall()
    return {
        int(gid): Row(status, [int(i) for i in json.loads(ids)], attempts, takeovers)
        for gid, status, ids, attempts, takeovers in rows
    }


def all_sent(world: World) -> bool:
    found = records(world)
    return all(c.guild.id in found and found[c.guild.id].status == "sent" for c in world.cases)


@asynccontextmanager
async def write_locked(db: Path) -> AsyncIterator[None]:
    """Holds SQLite's write lock: the bot's next write waits (its busy timeout is 5 s)."""
    conn = sqlite3.connect(db, timeout=5, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
        try:
            yield
        finally:
            await asyncio.to_thread(conn.execute, "ROLLBACK")
    finally:
        conn.close()


# -- what Discord holds ------------------------------------------------------------------------


def bot_messages(world: World, case: Case) -> list[dict[str, Any]]:
    """Every message the bot has on Discord in the case's guild (channels and threads)."""
    fake = world.h.world
    me = str(fake.bot_user.id)
    return [
        m
        for m in fake.messages.values()
        if m["author"]["id"] == me and fake.channels[int(m["channel_id"])].guild_id == case.guild.id
    ]


def by_part(world: World, case: Case) -> dict[int, list[dict[str, Any]]]:
    parts: dict[int, list[dict[str, Any]]] = {}
    for message in bot_messages(world, case):
        footers = [(e.get("footer") or {}).get("text") or "" for e in message["embeds"]]
        marker = read_marker(message.get("content") or "", footers)
        if marker is not None and marker[0] == world.day:
            parts.setdefault(marker[1], []).append(message)
    return parts


def assert_posted_once(world: World, case: Case, row: Row) -> None:
    """Every part of the case's digest on Discord exactly once and nothing else from the bot;
    the record ``sent`` with every message id, in order."""
    what = f"{case.name} (guild {case.guild.id})"
    parts = PARTS[case.style]
    found = by_part(world, case)
    counts = {part: len(messages) for part, messages in sorted(found.items())}
    assert counts == dict.fromkeys(range(parts + 1), 1), f"{what}: parts on Discord {counts}"
    assert len(bot_messages(world, case)) == parts + 1, f"{what}: a stray message"
    ordered = [found[part][0] for part in range(parts + 1)]
    assert row.status == "sent", what
    assert row.message_ids == [int(m["id"]) for m in ordered], what
    header = ordered[0]
    assert int(header["channel_id"]) == case.channel.id, what
    threads = case.guild.live_threads()
    if case.style == "thread":
        assert [t.id for t in threads] == [int(header["id"])], what
        assert all(int(m["channel_id"]) == threads[0].id for m in ordered[1:]), what
    else:
        assert threads == [], what
        assert all(int(m["channel_id"]) == case.channel.id for m in ordered), what
    if case.style == "compact":
        description = header["embeds"][0]["description"]
        assert [i in description for i in RANKED] == [True] * TOP, what
    else:
        assert posted_ids(ordered[1:]) == RANKED, what


async def restart_and_finish(world: World) -> BotRun:
    """Discord forgets every nonce; a new process must finish every digest, promptly, and
    stop cleanly on SIGTERM."""
    world.h.fake.request_hook = None
    world.h.fake.honour_nonces = False
    run = await start_bot(world)
    await poll(lambda: all_sent(world), RESUME_S, "every digest sent after the restart", run)
    assert time.monotonic() - run.started < RESUME_S
    await stop_cleanly(world, run)
    found = records(world)
    for case in world.cases:
        assert_posted_once(world, case, found[case.guild.id])
    return run


# -- every kill point of every message of every style -------------------------------------------

KINDS = ("before", "held", "unanswered", "unrecorded")
# Every (style, step, kind) is a guild of its own, all in one process killed once: a start of
# the real process takes seconds (discord.py alone waits 2 s for GUILD_CREATEs before READY),
# so one process stopped at 32 points at once keeps the matrix fast.
EVERY_POINT = [
    (style, step, kind)
    for style, steps in STEPS.items()
    for step in range(len(steps))
    for kind in KINDS
]


def assert_died_as_planned(world: World, case: Case, row: Row) -> None:
    """What the dead process left: its record ``sending`` with the messages before the kill
    point, and on Discord one message more when Discord did the work (not for the thread,
    which is not a message: only its existence tells)."""
    what = f"{case.name} (guild {case.guild.id})"
    assert row.status == "sending", what
    at_thread = STEPS[case.style][case.step] == "thread"
    messages_before = case.step - (case.style == "thread" and case.step > 1)
    on_discord = {int(m["id"]) for m in bot_messages(world, case)}
    assert len(row.message_ids) == messages_before, what
    assert set(row.message_ids) <= on_discord, what
    # unrecorded at the thread: the bot went on to post part 1 before it died.
    done = case.kind != "before" and (not at_thread or case.kind == "unrecorded")
    assert len(on_discord - set(row.message_ids)) == int(done), what
    if at_thread:
        assert len(case.guild.live_threads()) == int(case.kind != "before"), what


class KillPoints:
    """The fake's request hook while the first process runs: each case's digest POST number
    ``case.step`` stops there as ``case.kind`` says, until the test lets it go."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.reached: set[int] = set()  # guild ids stopped at their point
        self.answered: dict[int, int] = {}  # guild id -> its last POST answered
        self.answer = asyncio.Event()  # unrecorded: let the answers go (the database locked)
        self.released = asyncio.Event()  # the others: after the kill
        self.active = 0  # hooks still holding a request
        self._step: dict[int, int] = {}  # id(record) -> its case's POST number

    async def __call__(self, phase: str, record: RecordedRequest) -> bool | None:
        case = self.world.case_of(record)
        if case is None:
            return None
        if phase == "received":
            self._step[id(record)] = case.posts
            case.posts += 1
        step = self._step[id(record)]
        if phase == "answered":
            self.answered[case.guild.id] = step
        if step != case.step:
            return None
        stop_at = "served" if case.kind in ("unanswered", "unrecorded") else "received"
        if phase != stop_at:
            return None
        self.active += 1
        try:
            self.reached.add(case.guild.id)
            if case.kind == "unrecorded":
                await self.answer.wait()
                return None  # answered; the process dies before it records the id
            await self.released.wait()
            # before: never served; held: served after the process died; unanswered: the
            # message is posted, its answer never sent.
            return case.kind == "held"
        finally:
            self.active -= 1


async def test_a_digest_killed_at_any_point_of_any_message_resumes_with_every_part_once(
    tmp_path: Path, discord_harness: DiscordHarness
) -> None:
    h = discord_harness
    async with digest_world(tmp_path, h, EVERY_POINT) as world:
        points = KillPoints(world)
        h.fake.request_hook = points
        first = await start_bot(world)
        await poll(
            lambda: len(points.reached) == len(world.cases),
            START_S,
            f"every digest at its kill point ({len(points.reached)} of {len(world.cases)})",
            first,
        )
        # The bot can't write to its database: let the unrecorded answers go (after the thread,
        # the bot posts part 1 at once, then waits to record it) and kill it.
        last = {
            c.guild.id: c.step + (STEPS[c.style][c.step] == "thread")
            for c in world.cases
            if c.kind == "unrecorded"
        }
        async with write_locked(world.db):
            points.answer.set()
            await poll(
                lambda: all(points.answered.get(g, -1) >= n for g, n in last.items()),
                STOP_S,
                "the answers",
                first,
            )
            await asyncio.sleep(0.2)  # the bot reads its answers and waits for the lock
            await sigkill(first)
        points.released.set()
        await h.fake.wait_until(lambda: points.active == 0, STOP_S, "held requests let go")
        assert "Traceback" not in first.err(), first.err()
        before = records(world)
        for case in world.cases:
            assert_died_as_planned(world, case, before[case.guild.id])

        await restart_and_finish(world)
        after = records(world)
        for case in world.cases:
            # Taken over from the dead process at once (not after the claim went stale).
            assert after[case.guild.id].takeovers == 1, case.name


# -- random kills right after an answer --------------------------------------------------------

KILLS = 7  # each followed by a restart (which may be killed in turn)
GUILDS = 3  # per style: each kill finds them at different points
SOON = 6  # the trigger: one of the next few answers


class KillAfterAnswer:
    """Kills the process ``delay`` seconds after the fake sent the answer to the ``trigger``-th
    digest POST (so that it lands before the bot recorded the message in some runs)."""

    def __init__(self, world: World, run: BotRun, trigger: int, delay: float) -> None:
        self.world, self.run, self.trigger, self.delay = world, run, trigger, delay
        self.answers = 0
        # (guild id, id of the message answered, None for a thread), once triggered
        self.killed: tuple[int, int | None] | None = None

    async def __call__(self, phase: str, record: RecordedRequest) -> bool | None:
        case = self.world.case_of(record)
        if case is None or phase != "answered" or self.killed is not None:
            return None
        self.answers += 1
        if self.answers == self.trigger + 1:
            found = DIGEST_POST.match(record.path)
            assert found is not None
            created = None
            if not record.path.endswith("/threads"):
                in_channel = self.world.h.world.messages_in(int(found.group(1)))
                created = max(int(m["id"]) for m in in_channel)
            self.killed = (case.guild.id, created)
            asyncio.get_running_loop().call_later(self.delay, self.run.proc.kill)
        return None


async def test_kills_right_after_discord_answered_never_double_a_part(
    tmp_path: Path, discord_harness: DiscordHarness
) -> None:
    seed = random.randrange(2**32)
    print(f"random seed {seed}")  # shown by pytest when the test fails
    rng = random.Random(seed)
    h = discord_harness
    specs = [(style, 0, "random") for style in STEPS for _ in range(GUILDS)]
    async with digest_world(tmp_path, h, specs) as world:
        total = GUILDS * sum(len(steps) for steps in STEPS.values())
        answered = kills = unrecorded = 0
        for n in range(KILLS):
            trigger = rng.randrange(max(1, min(SOON, total - answered)))
            delay = rng.uniform(0.0, 0.030)
            run = await start_bot(world)
            hook = KillAfterAnswer(world, run, trigger, delay)
            h.fake.request_hook = hook
            await poll(
                lambda: hook.killed is not None or all_sent(world),  # noqa: B023 - awaited here
                START_S,
                f"kill {n}",
                run,
            )
            h.fake.request_hook = None
            if hook.killed is None:
                await stop_cleanly(world, run)  # every digest went out before the trigger
                break
            await asyncio.wait_for(run.proc.wait(), STOP_S)
            assert "Traceback" not in run.err(), run.err()
            answered += hook.answers
            kills += 1
            guild_id, message_id = hook.killed
            if message_id is not None:
                unrecorded += message_id not in records(world)[guild_id].message_ids
            h.fake.honour_nonces = False  # for every later process: past the nonce window
        print(f"{kills} kills, {unrecorded} before the message id was recorded")
        await restart_and_finish(world)


# -- SIGTERM in the middle of a digest ---------------------------------------------------------


async def test_sigterm_while_discord_holds_a_message_finishes_the_digest_and_exits_0(
    tmp_path: Path, discord_harness: DiscordHarness
) -> None:
    h = discord_harness
    hold_at = STEPS["thread"].index("part 1")
    async with digest_world(tmp_path, h, [("thread", hold_at, "sigterm")]) as world:
        (case,) = world.cases
        reached = asyncio.Event()
        release = asyncio.Event()

        async def hold(phase: str, record: RecordedRequest) -> bool | None:
            found = world.case_of(record)
            if found is None or phase != "received":
                return None
            found.posts += 1
            if found.posts == hold_at + 1:
                reached.set()
                await release.wait()
            return None

        h.fake.request_hook = hold
        run = await start_bot(world)
        await poll(reached.is_set, START_S, "the held message", run)
        run.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(SIGTERM_RELEASE_S)  # Discord is slow to answer while it stops
        assert run.alive  # it waits for the digest being posted
        release.set()
        code = await asyncio.wait_for(run.proc.wait(), STOP_S)
        err = run.err()
        assert code == 0, err
        assert "ERROR" not in err, err
        assert "Traceback" not in err, err
        assert "shutting down" in err
        row = records(world)[case.guild.id]
        assert row.status in ("sent", "sending"), row
        assert row.takeovers == 0
        # A restart has nothing to repost, or resumes: either way every part is there once.
        await restart_and_finish(world)
