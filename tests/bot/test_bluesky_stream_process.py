"""The real ``hotpapers run`` process, SIGKILLed while it follows Bluesky's stream, loses nothing.

As a checker would: the fakes (Discord, arXiv, Jetstream, AppView) run here on 127.0.0.1;
``python -m bot run`` is a child process configured only through the documented environment.
Posts linking arXiv (and chatter, edits, deletions, an account deletion) are published on the
fake Jetstream without pause; the process is killed with SIGKILL at random moments and started
again on the same database, against the same Jetstream, which keeps its log so that the resume
cursor replays what the dead process had read but not stored. At the end the database holds
every post that links arXiv and was not deleted, exactly once, with its links, and the cursor
is at the last event.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.fakes.arxiv import FakeArxiv
from bot.fakes.bluesky import (
    FakeBlueskyAppView,
    account_deleted_event,
    commit_event,
    external_embed,
    fake_did,
    link_facet,
    post_deleted_event,
    post_record,
)
from bot.fakes.demo import dataset_papers, load_dataset
from bot.fakes.jetstream import FakeJetstream
from bot.sources.bluesky import micros, post_uri
from tests.cli.test_real_day import spawn_bot
from tests.fakes.discord import DiscordHarness

# SQLite only: `hotpapers run` is SIGKILLed mid-stream on a SQLite file, which the test reads
# with sqlite3 while the process writes it.
pytestmark = pytest.mark.sqlite_only

UTC = dt.UTC
KILLS = 3  # SIGKILLs, each at a random moment, each followed by a restart
SAVE_S = 0.2  # sources.bluesky.cursor_save_seconds
REWIND_S = 2.0  # sources.bluesky.resume_rewind_seconds
START_S = 30.0  # a process starts, migrates, logs in and subscribes within this
CATCH_UP_S = 20.0
STOP_S = 10.0
PAPERS = [p.arxiv_id for p in dataset_papers(load_dataset())]
# Ids arXiv does not know (yet): linked all the same, stored all the same.
UNKNOWN = [f"2101.{n:05d}" for n in range(1, 25)]


# -- what was published, and what the database must hold -------------------------------------


@dataclass
class Published:
    """The stream as published, and the posts that must be stored in the end (a model kept
    apart from the bot's parser: what each post links is decided here, by construction)."""

    jetstream: FakeJetstream
    appview: FakeBlueskyAppView
    rng: random.Random
    last_us: int = 0
    events: int = 0
    n: int = 0
    # at-uri -> the arXiv ids it links, in reading order (only posts that link arXiv)
    expected: dict[str, list[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)  # at-uris of posts that must be absent
    chatter: list[tuple[str, str]] = field(default_factory=list)  # (did, rkey), no arXiv link
    dead_accounts: set[str] = field(default_factory=set)
    by_author: dict[str, list[str]] = field(default_factory=dict)
    likes: dict[str, int] = field(default_factory=dict)
    handles: dict[str, str] = field(default_factory=dict)

    def _time(self) -> int:
        self.last_us = max(micros(dt.datetime.now(UTC)), self.last_us + 1)
        return self.last_us

    def _publish(self, event: dict[str, Any]) -> None:
        self.jetstream.publish(event)
        self.events += 1

    def _author(self) -> tuple[str, str]:
        while True:
            handle = f"reader{self.rng.randrange(40)}.bsky.social"
            did = fake_did(handle)
            if did not in self.dead_accounts:
                self.handles[did] = handle
                return did, handle

    def _paper_record(self, ids: list[str], moment: dt.datetime) -> dict[str, Any]:
        """A post linking ``ids`` in this reading order: through a link facet (plus a link
        card for a second paper), bare ``arXiv:`` ids, or a link card after the text."""
        style = self.rng.randrange(3)
        if style == 0:
            shown = f"arxiv.org/abs/{ids[0]}"
            text = f"Worth reading: {shown} 🎉"
            facets = [link_facet(text, shown, f"https://arxiv.org/abs/{ids[0]}")]
            embed = external_embed(f"https://arxiv.org/pdf/{ids[1]}") if len(ids) > 1 else None
            return post_record(text, moment, facets=facets, embed=embed)
        if style == 1:
            text = "Reading " + " and ".join(f"arXiv:{i}" for i in ids) + " this morning"
            return post_record(text, moment)
        text = "this one" + "".join(f", after arxiv.org/abs/{i}" for i in ids[:-1])
        embed = external_embed(f"https://arxiv.org/abs/{ids[-1]}", f"[{ids[-1]}] A paper")
        return post_record(text, moment, embed=embed)

    def _ids(self) -> list[str]:
        pool = PAPERS + UNKNOWN
        ids = [self.rng.choice(pool)]
        if self.rng.random() < 0.3:
            other = self.rng.choice(pool)
            if other not in ids:
                ids.append(other)
        return ids

    def _store_on_appview(self, did: str, rkey: str, handle: str, record: dict[str, Any]) -> str:
        likes = self.rng.randrange(1, 500)
        uri = self.appview.add_post(
            did, rkey, handle=handle, record=record, likes=likes, reposts=likes // 3
        )
        self.likes[uri] = likes
        return uri

    def post(self) -> None:
        """A new post linking one or two papers."""
        did, handle = self._author()
        self.n += 1
        rkey = f"3kpost{self.n:07d}"
        time_us = self._time()
        ids = self._ids()
        record = self._paper_record(ids, _moment(time_us))
        uri = self._store_on_appview(did, rkey, handle, record)
        self._publish(commit_event(did, rkey, record, time_us))
        self.expected[uri] = ids
        self.by_author.setdefault(did, []).append(uri)

    def chat(self) -> None:
        """A post linking nothing (most of the network)."""
        did, _ = self._author()
        self.n += 1
        rkey = f"3kchat{self.n:07d}"
        time_us = self._time()
        record = post_record(f"good morning {self.n} 🌅", _moment(time_us))
        self._publish(commit_event(did, rkey, record, time_us))
        self.chatter.append((did, rkey))

    def delete(self) -> None:
        """An earlier post linking arXiv is deleted."""
        if not self.expected:
            return
        uri = self.rng.choice(sorted(self.expected))
        did, rkey = _split(uri)
        self._publish(post_deleted_event(did, rkey, self._time()))
        self.appview.delete_post(uri)
        del self.expected[uri]
        self.deleted.add(uri)

    def edit(self) -> None:
        """An earlier post is edited: chatter that now links a paper, a post that links other
        papers, or one that links none any more (its stored copy must go)."""
        if self.chatter and self.rng.random() < 0.3:
            did, rkey = self.chatter.pop(self.rng.randrange(len(self.chatter)))
            links = True
        elif self.expected:
            did, rkey = _split(self.rng.choice(sorted(self.expected)))
            links = self.rng.random() < 0.6
        else:
            return
        uri = post_uri(did, rkey)
        time_us = self._time()
        if links:
            ids = self._ids()
            record = self._paper_record(ids, _moment(time_us))
            self._store_on_appview(did, rkey, self.handles[did], record)
            self.expected[uri] = ids
            self.by_author.setdefault(did, []).append(uri)
        else:
            record = post_record(f"never mind {self.n}", _moment(time_us))
            self.appview.delete_post(uri)
            del self.expected[uri]
            self.deleted.add(uri)
        self._publish(commit_event(did, rkey, record, time_us, operation="update"))

    def delete_account(self) -> None:
        """An account with posts is deleted for good: all its posts go."""
        candidates = [
            d for d, uris in self.by_author.items() if any(u in self.expected for u in uris)
        ]
        if not candidates:
            return
        did = self.rng.choice(sorted(candidates))
        self._publish(account_deleted_event(did, self._time()))
        self.dead_accounts.add(did)
        for uri in self.by_author.pop(did):
            if uri in self.expected:
                del self.expected[uri]
                self.appview.delete_post(uri)
                self.deleted.add(uri)
        self.chatter = [(d, r) for d, r in self.chatter if d != did]

    def step(self) -> None:
        roll = self.rng.random()
        if roll < 0.45:
            self.post()
        elif roll < 0.75:
            self.chat()
        elif roll < 0.85:
            self.delete()
        elif roll < 0.995:
            self.edit()
        else:
            self.delete_account()


def _moment(time_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_us / 1_000_000, UTC)


def _split(uri: str) -> tuple[str, str]:
    did, _collection, rkey = uri.removeprefix("at://").split("/")
    return did, rkey


async def publish_continuously(published: Published, stop: asyncio.Event) -> None:
    """A few events every few milliseconds until ``stop``: the stream never pauses, not even
    while the bot is down (the fake Jetstream logs them for the next subscriber's cursor)."""
    while not stop.is_set():
        for _ in range(published.rng.randrange(1, 4)):
            published.step()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.01)


# -- reading the database (another process writes it) ----------------------------------------


def _query(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)) as db:
            return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # not migrated yet
        raise


def saved_cursor(path: Path) -> int | None:
    rows = _query(path, "SELECT cursor_us FROM stream_state WHERE stream = 'bluesky'")
    return int(rows[0][0]) if rows else None


def stored_links(path: Path) -> dict[str, list[str]]:
    rows = _query(
        path,
        "SELECT m.post_id, p.arxiv_id FROM mentions m "
        "LEFT JOIN mention_papers p ON p.mention_id = m.id "
        "WHERE m.source = 'bluesky' ORDER BY m.post_id, p.position",
    )
    links: dict[str, list[str]] = {}
    for post_id, arxiv_id in rows:
        links.setdefault(post_id, [])
        if arxiv_id is not None:
            links[post_id].append(arxiv_id)
    return links


async def poll(
    condition: Callable[[], bool],
    timeout: float,  # noqa: ASYNC109 - a bounded polling wait on another process
    what: str,
    alive: Callable[[], bool],
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not alive():
            raise AssertionError(f"the process died while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


# -- the world and the process ---------------------------------------------------------------


@dataclass
class World:
    env: dict[str, str]
    db: Path
    arxiv: FakeArxiv
    appview: FakeBlueskyAppView
    jetstream: FakeJetstream


@asynccontextmanager
async def stream_world(tmp_path: Path, h: DiscordHarness) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        arxiv = await stack.enter_async_context(FakeArxiv())
        arxiv.add_papers(dataset_papers(load_dataset()))
        appview = await stack.enter_async_context(FakeBlueskyAppView())
        jetstream = await stack.enter_async_context(FakeJetstream())
        db = tmp_path / "stream.db"
        env = {
            "DISCORD_TOKEN": h.token,
            "HOTPAPERS_DISCORD__API_BASE": h.fake.api_base,
            "HOTPAPERS_DISCORD__GATEWAY_URL": h.fake.gateway_url,
            "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{db}",
            "HOTPAPERS_ARXIV__API_URL": arxiv.api_url,
            "HOTPAPERS_ARXIV__RSS_URL": arxiv.rss_url,
            "HOTPAPERS_ARXIV__MIN_INTERVAL_SECONDS": "0",
            "HOTPAPERS_SOURCES__X__ENABLED": "false",
            "HOTPAPERS_SOURCES__HACKERNEWS__ENABLED": "false",
            "HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED": "false",
            "HOTPAPERS_SOURCES__BLUESKY__JETSTREAM_URLS": jetstream.subscribe_url,
            "HOTPAPERS_SOURCES__BLUESKY__API_URL": appview.url,
            "HOTPAPERS_SOURCES__BLUESKY__AUTH_URL": appview.url,
            "HOTPAPERS_SOURCES__BLUESKY__CURSOR_SAVE_SECONDS": str(SAVE_S),
            "HOTPAPERS_SOURCES__BLUESKY__RESUME_REWIND_SECONDS": str(REWIND_S),
        }
        yield World(env, db, arxiv, appview, jetstream)


@dataclass
class Run:
    proc: asyncio.subprocess.Process
    stderr: Path

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")


async def start_bot(world: World, tmp_path: Path, n: int) -> Run:
    """``python -m bot run``; returns once it has subscribed to the fake Jetstream."""
    subscribed = len(world.jetstream.connections)
    stderr_path = tmp_path / f"run{n}.stderr"
    proc = await spawn_bot(env=world.env, cwd=tmp_path, stderr_path=stderr_path)
    run = Run(proc, stderr_path)
    try:
        await poll(
            lambda: len(world.jetstream.connections) > subscribed,
            START_S,
            f"process {n} to subscribe to Jetstream",
            lambda: run.alive,
        )
    except AssertionError as exc:
        await kill(run)
        raise AssertionError(f"{exc}\n{run.err()}") from None
    return run


async def kill(run: Run) -> None:
    if run.alive:
        run.proc.kill()  # SIGKILL: no handler, no flush, no cursor save
    await asyncio.wait_for(run.proc.wait(), STOP_S)


# -- the test --------------------------------------------------------------------------------


async def test_sigkill_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, discord_harness: DiscordHarness
) -> None:
    seed = random.randrange(2**32)
    print(f"random seed {seed}")  # shown by pytest when the test fails
    rng = random.Random(seed)
    async with stream_world(tmp_path, discord_harness) as world:
        published = Published(world.jetstream, world.appview, rng)
        stop = asyncio.Event()
        runs: list[Run] = []
        publisher: asyncio.Task[None] | None = None
        try:
            runs.append(await start_bot(world, tmp_path, 0))
            # No cursor saved yet: the first process follows the live tip, so the stream
            # begins once it listens.
            assert world.jetstream.cursors == [None]
            publisher = asyncio.create_task(publish_continuously(published, stop))
            lost_in_flight = 0  # kills after which events past the saved cursor were logged
            for n in range(1, KILLS + 1):
                run = runs[-1]
                before = saved_cursor(world.db)
                # Mid-stream: after this process saved progress of its own, then a random while.
                await poll(
                    lambda before=before: (
                        (c := saved_cursor(world.db)) is not None and (before is None or c > before)
                    ),
                    CATCH_UP_S,
                    f"process {n - 1} to save a cursor",
                    lambda run=run: run.alive,
                )
                await asyncio.sleep(rng.uniform(0.0, 1.2))
                read_up_to = published.last_us
                await kill(run)
                cursor = saved_cursor(world.db)
                assert cursor is not None
                assert cursor <= read_up_to
                if read_up_to > cursor:
                    lost_in_flight += 1
                await asyncio.sleep(rng.uniform(0.0, 0.5))  # down a moment; posts go on
                runs.append(await start_bot(world, tmp_path, n))
                # The restart resumes a little before the saved cursor: what the dead process
                # read after its last save is replayed, and a little before it again.
                resumed = world.jetstream.cursors[-1]
                assert resumed == cursor - round(REWIND_S * 1_000_000), (resumed, cursor)
                print(
                    f"kill {n}: {(read_up_to - cursor) / 1000:.0f} ms of events past the saved "
                    f"cursor; restart {n} resumed {REWIND_S:g} s before it"
                )
            assert lost_in_flight >= 1, "no kill left events past the saved cursor to replay"

            # Let the last process follow the live stream a moment, then stop the posts.
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            stop.set()
            await publisher
            last = runs[-1]
            await poll(
                lambda: (saved_cursor(world.db) or 0) >= published.last_us,
                CATCH_UP_S,
                "the cursor to reach the last event",
                lambda: last.alive,
            )
            # The hourly ingestion runs 5 s after start: it refreshes the stored posts' counts
            # through the AppView (and must neither lose nor double any).
            await poll(
                lambda: "ingestion: bluesky" in last.err(),
                CATCH_UP_S,
                "the first ingestion",
                lambda: last.alive,
            )
            last.proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(last.proc.wait(), STOP_S)
        finally:
            stop.set()
            if publisher is not None:
                await publisher
            for run in runs:
                if run.alive:
                    await kill(run)

        assert code == 0, last.err()
        for n, run in enumerate(runs):
            err = run.err()
            assert "Traceback" not in err, f"process {n}:\n{err}"
            assert "stream crashed" not in err, f"process {n}:\n{err}"
        assert "shutting down" in last.err()
        assert world.jetstream.subscribers == 0

        # -- the database --------------------------------------------------------------------
        stored = stored_links(world.db)
        print(
            f"{published.events} events, {len(published.expected)} posts to keep, "
            f"{len(published.deleted)} deleted or unlinked, {len(stored)} stored"
        )
        assert published.events >= 200, published.events
        assert len(published.expected) >= 50, len(published.expected)
        assert published.deleted, "no post was deleted"
        missing = set(published.expected) - set(stored)
        extra = set(stored) - set(published.expected)
        assert not missing, f"{len(missing)} posts lost, e.g. {sorted(missing)[:3]}"
        assert not extra, f"{len(extra)} posts that must be absent, e.g. {sorted(extra)[:3]}"
        assert not (set(stored) & published.deleted)
        wrong = {u: (stored[u], ids) for u, ids in published.expected.items() if stored[u] != ids}
        assert not wrong, f"{len(wrong)} posts with wrong links, e.g. {list(wrong.items())[:3]}"
        # Exactly once (the unique key makes a double impossible; say so anyway).
        doubles = _query(
            world.db,
            "SELECT post_id, COUNT(*) FROM mentions WHERE source = 'bluesky' "
            "GROUP BY post_id HAVING COUNT(*) > 1",
        )
        assert doubles == []
        # The cursor is at the last event, and no gap was recorded (no stretch was lost).
        final = saved_cursor(world.db)
        assert final is not None
        assert final >= published.last_us
        assert _query(world.db, "SELECT * FROM stream_gaps") == []
        # The ingestion refreshed every stored post's counts from the AppView.
        likes = dict(
            _query(
                world.db,
                "SELECT m.post_id, mm.likes FROM mentions m JOIN mention_metrics mm "
                "ON mm.mention_id = m.id WHERE m.source = 'bluesky' AND mm.fetched_at = "
                "(SELECT MAX(fetched_at) FROM mention_metrics WHERE mention_id = m.id)",
            )
        )
        assert likes == {uri: published.likes[uri] for uri in published.expected}
