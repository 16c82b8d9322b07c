"""StreamConsumer: live following with a durable cursor, gaps, replays of a window, crash safety.

The transport is a scripted double (``ScriptedStream``) yielding real Jetstream v1 frames built
with ``bot.fakes.bluesky``; the decoder is the real ``parse_event``; the storage is a real
migrated database, SQLite and PostgreSQL. One test runs the real ``JetstreamClient`` against
``FakeJetstream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import random
import types
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import aiohttp
import pytest

from bot.core.errors import SourceError, StorageError
from bot.core.models import Mention, Window
from bot.fakes.bluesky import (
    account_deleted_event,
    account_event,
    commit_event,
    frame,
    identity_event,
    link_facet,
    post_deleted_event,
    post_record,
)
from bot.sources.bluesky import (
    BlueskySettings,
    StreamEvent,
    micros,
    parse_event,
    post_uri,
)
from bot.sources.jetstream import Frame, frame_time_us
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.streams import StreamRepository

UTC = dt.UTC
NOW = dt.datetime(2026, 8, 1, 12, 0, tzinfo=UTC)
SECOND = 1_000_000
HOUR = dt.timedelta(hours=1)
EVERYTHING = Window(NOW - 10 * 24 * HOUR, NOW + 24 * HOUR)
ALICE = "did:plc:alice4ufkqhhjq2n7xsf3c2r"
BOB = "did:plc:bobbyz6quxkuk6v5gjx3edwm"
CAROL = "did:plc:carolrnqo5fqyq7ggbwb4gvq"
INSTANCE = "wss://jetstream.test/subscribe"


# -- frames ----------------------------------------------------------------------------------


def at(seconds_ago: float) -> int:
    """``time_us`` of a moment ``seconds_ago`` before NOW."""
    return micros(NOW) - round(seconds_ago * SECOND)


def moment(time_us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_us / SECOND, UTC)


def post(
    did: str,
    rkey: str,
    time_us: int,
    *ids: str,
    operation: str = "create",
) -> dict[str, Any]:
    """A post event linking ``ids`` with link facets (none: a post about something else)."""
    text = " ".join(f"arxiv.org/abs/{i}…" for i in ids) or "good morning"
    facets = [link_facet(text, f"arxiv.org/abs/{i}…", f"https://arxiv.org/abs/{i}") for i in ids]
    record = post_record(text, moment(time_us) - dt.timedelta(milliseconds=250), facets=facets)
    return commit_event(did, rkey, record, time_us, operation=operation)


def paper(n: int) -> str:
    """A valid new-style arXiv id (``2607.00000`` is not one)."""
    return f"2607.{n + 1:05d}"


def like(did: str, time_us: int) -> dict[str, Any]:
    record = {"$type": "app.bsky.feed.like", "createdAt": "2026-08-01T11:00:00.000Z"}
    return commit_event(did, f"l{time_us}", record, time_us, collection="app.bsky.feed.like")


class ScriptedStream:
    """A ``FrameStream`` over prepared frames: from a cursor (inclusive, as Jetstream) to the end,
    then (``then_wait``) silence, as at the live edge. Records the cursors it is asked for."""

    instance = INSTANCE

    def __init__(self, events: Iterable[Mapping[str, Any] | str], *, then_wait: bool = False):
        self.texts = [e if isinstance(e, str) else frame(e) for e in events]
        self.then_wait = then_wait
        self.cursors: list[int | None] = []
        self.served = 0
        self.closed = 0
        self.exhausted = asyncio.Event()  # every frame was taken: the live edge

    async def frames(self, cursor_us: int | None) -> AsyncIterator[Frame]:
        self.cursors.append(cursor_us)
        try:
            for text in self.texts:
                time_us = frame_time_us(text)
                if cursor_us is not None and time_us is not None and time_us < cursor_us:
                    continue
                self.served += 1
                yield Frame(text, time_us, self.instance)
                await asyncio.sleep(0)
            self.exhausted.set()
            if self.then_wait:
                await asyncio.Event().wait()
        finally:
            self.closed += 1


@dataclasses.dataclass
class StreamSource:
    """The streaming side of the Bluesky source: its transport and the real decoder."""

    stream: Any
    name: str = "bluesky"

    def decode(self, text: str) -> tuple[int | None, StreamEvent | None]:
        return parse_event(text)


class Clock:
    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def settings(**overrides: Any) -> BlueskySettings:
    values: dict[str, Any] = {
        "enabled": True,
        "cursor_save_seconds": 3600.0,  # only FLUSH_EVENTS and the end flush (unless a test says)
        "resume_rewind_seconds": 5.0,
        "lookback_hours": 36.0,
        "replay_idle_seconds": 0.05,
        "replay_connect_seconds": 0.05,
    }
    values.update(overrides)
    return BlueskySettings(**values)


@dataclasses.dataclass
class Harness:
    db: Database
    clock: Clock
    mentions: MentionRepository
    streams: StreamRepository

    def consumer(self, stream: Any, **overrides: Any) -> Any:
        from bot.services.stream import StreamConsumer

        on_stored = overrides.pop("on_stored", None)
        return StreamConsumer(
            source=StreamSource(stream),
            settings=settings(**overrides),
            mentions=self.mentions,
            streams=self.streams,
            clock=self.clock,
            on_stored=on_stored,
        )

    async def stored(self) -> dict[str, tuple[str, ...]]:
        """post_id → linked arXiv ids, of every stored Bluesky post."""
        rows = await self.mentions.in_window(EVERYTHING, sources=["bluesky"])
        ids = [s.mention.post_id for s in rows]
        assert len(ids) == len(set(ids)), "a post is stored twice"
        return {s.mention.post_id: s.mention.arxiv_ids for s in rows}

    async def mentions_by_id(self) -> dict[str, Mention]:
        rows = await self.mentions.in_window(EVERYTHING, sources=["bluesky"])
        return {s.mention.post_id: s.mention for s in rows}


@pytest.fixture
def harness(db: Database) -> Harness:
    return Harness(db, Clock(), MentionRepository(db), StreamRepository(db))


def expected(events: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """What the store must hold after ``events``, applied in order by an independent model."""
    held: dict[str, tuple[str, ...]] = {}
    for event in events:
        if event.get("kind") == "account":
            account = event["account"]
            if account.get("active") is False and account.get("status") == "deleted":
                prefix = f"at://{event['did']}/"
                held = {k: v for k, v in held.items() if not k.startswith(prefix)}
            continue
        if event.get("kind") != "commit":
            continue
        commit = event["commit"]
        if commit["collection"] != "app.bsky.feed.post":
            continue
        uri = post_uri(event["did"], commit["rkey"])
        if commit["operation"] == "delete":
            held.pop(uri, None)
            continue
        ids = tuple(
            f["features"][0]["uri"].removeprefix("https://arxiv.org/abs/")
            for f in commit["record"].get("facets", ())
        )
        if ids:
            held[uri] = ids
        elif commit["operation"] == "update":
            held.pop(uri, None)
    return held


# -- live: what is stored ----------------------------------------------------------------------


async def test_a_first_run_follows_live_and_keeps_only_posts_linking_arxiv(
    harness: Harness,
) -> None:
    events = [
        post(ALICE, "a1", at(50), "2607.00001"),
        post(BOB, "b1", at(40)),  # no paper
        like(CAROL, at(35)),  # another collection
        identity_event(BOB, at(30), "bob.example.com"),
        post(BOB, "b2", at(20), "2607.00002", "2607.00003"),
    ]
    stream = ScriptedStream(events)
    stored_calls: list[None] = []
    consumer = harness.consumer(stream, on_stored=lambda: stored_calls.append(None))
    await consumer.run()  # the scripted stream ends: run returns after the final flush
    assert stream.cursors == [None]  # no saved cursor: live
    assert await harness.stored() == {
        post_uri(ALICE, "a1"): ("2607.00001",),
        post_uri(BOB, "b2"): ("2607.00002", "2607.00003"),
    }
    mention = (await harness.mentions_by_id())[post_uri(ALICE, "a1")]
    assert (mention.author, mention.url, mention.metrics) == (
        ALICE,
        f"https://bsky.app/profile/{ALICE}/post/a1",
        {},
    )
    saved = await harness.streams.cursor("bluesky")
    assert saved is not None
    assert (saved.cursor_us, saved.instance, saved.updated_at) == (at(20), INSTANCE, NOW)
    assert consumer.stats.events == 5
    assert consumer.stats.posts == 2
    assert consumer.stats.saved_us == at(20)
    assert consumer.stats.position == moment(at(20))
    assert not consumer.stats.running
    assert stored_calls  # the digest cache was told


async def test_edits_deletes_and_account_deletions_apply_in_stream_order(
    harness: Harness,
) -> None:
    events = [
        post(ALICE, "a1", at(100), "2607.00001"),
        post(ALICE, "a2", at(99), "2607.00002"),
        post(BOB, "b1", at(98), "2607.00003"),
        post(BOB, "b2", at(97), "2607.00004"),
        post(CAROL, "c1", at(96), "2607.00005"),
        post(CAROL, "c2", at(95), "2607.00006"),
        post_deleted_event(ALICE, "a1", at(90)),  # created then deleted: absent
        post(ALICE, "a2", at(89), "2607.00007", operation="update"),  # links replaced
        post(BOB, "b1", at(88), operation="update"),  # no longer links a paper: dropped
        account_deleted_event(CAROL, at(80)),  # every post of Carol's
        account_event(BOB, at(79), active=False, status="deactivated"),  # may come back: kept
        post_deleted_event(ALICE, "never-seen", at(78)),
        post(CAROL, "c3", at(70), "2607.00008"),  # after the deletion event: kept
    ]
    consumer = harness.consumer(ScriptedStream(events))
    await consumer.run()
    assert await harness.stored() == {
        post_uri(ALICE, "a2"): ("2607.00007",),
        post_uri(BOB, "b2"): ("2607.00004",),
        post_uri(CAROL, "c3"): ("2607.00008",),
    }
    assert await harness.stored() == expected(events)
    assert consumer.stats.accounts == 1


async def test_events_of_one_flush_are_not_reordered(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Creates, deletes and re-creates interleaved inside one batch: the batching by kind must
    # keep stream order across kinds.
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", 10_000)
    events = [
        post(ALICE, "a1", at(60), "2607.00001"),
        post_deleted_event(ALICE, "a1", at(59)),
        post(ALICE, "a1", at(58), "2607.00002"),  # the same rkey, written again
        account_deleted_event(BOB, at(57)),
        post(BOB, "b1", at(56), "2607.00003"),
        post_deleted_event(BOB, "b1", at(55)),
        post(BOB, "b2", at(54), "2607.00004"),
        account_deleted_event(BOB, at(53)),
    ]
    await harness.consumer(ScriptedStream(events)).run()
    assert await harness.stored() == expected(events) == {post_uri(ALICE, "a1"): ("2607.00002",)}


async def test_malformed_frames_are_counted_and_skipped(harness: Harness) -> None:
    events: list[Any] = [
        post(ALICE, "a1", at(30), "2607.00001"),
        '{"did":"did:plc:x","time_us":' + str(at(25)) + ',"kind":"commit"}',  # no commit
        "not json at all",
        post(ALICE, "a2", at(20), "2607.00002"),
        '{"did":"did:plc:x","time_us":' + str(at(10)) + ',"kind":"commit","commit":7}',
    ]
    consumer = harness.consumer(ScriptedStream(events))
    await consumer.run()
    assert set(await harness.stored()) == {post_uri(ALICE, "a1"), post_uri(ALICE, "a2")}
    assert (consumer.stats.events, consumer.stats.malformed) == (5, 3)
    # A malformed frame still moves the cursor past it (by its envelope time).
    assert (await harness.streams.cursor("bluesky")).cursor_us == at(10)  # type: ignore[union-attr]


# -- live: the cursor --------------------------------------------------------------------------


async def test_a_restart_resumes_a_little_before_the_saved_cursor(harness: Harness) -> None:
    await harness.streams.save_cursor("bluesky", at(600), INSTANCE, NOW - HOUR)
    events = [post(ALICE, f"a{i}", at(650 - 10 * i), paper(i)) for i in range(5)]
    stream = ScriptedStream(events)
    await harness.consumer(stream, resume_rewind_seconds=30.0).run()
    assert stream.cursors == [at(630)]
    # Frames from the rewind on are read again (absorbed), older ones are not asked for.
    assert set(await harness.stored()) == {post_uri(ALICE, f"a{i}") for i in (2, 3, 4)}
    assert await harness.streams.gaps("bluesky", NOW - 48 * HOUR) == []


async def test_a_cursor_older_than_the_lookback_is_a_recorded_gap(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    saved = NOW - 40 * HOUR
    await harness.streams.save_cursor("bluesky", micros(saved), INSTANCE, saved)
    stream = ScriptedStream([post(ALICE, "a1", at(60), "2607.00001")])
    consumer = harness.consumer(stream, lookback_hours=36.0)
    with caplog.at_level(logging.WARNING, logger="bot.services.stream"):
        await consumer.run()
    floor = NOW - 36 * HOUR
    assert stream.cursors == [micros(floor)]
    (gap,) = await consumer.gaps(NOW - HOUR)
    assert (gap.stream, gap.start, gap.end, gap.detected_at) == ("bluesky", saved, floor, NOW)
    assert gap.hours == pytest.approx(4.0)
    assert "gap" in caplog.text
    assert "4.0 h" in caplog.text


async def test_a_cursor_just_inside_the_lookback_is_no_gap(harness: Harness) -> None:
    # Saved one second after the oldest moment the stream keeps: the rewind reaches past that
    # moment, but no post was missed.
    floor = NOW - 36 * HOUR
    await harness.streams.save_cursor("bluesky", micros(floor) + SECOND, INSTANCE, floor)
    stream = ScriptedStream([post(ALICE, "a1", at(60), "2607.00001")])
    consumer = harness.consumer(stream, lookback_hours=36.0, resume_rewind_seconds=5.0)
    await consumer.run()
    assert await consumer.gaps(NOW - 48 * HOUR) == []
    (cursor,) = stream.cursors
    assert cursor is not None
    assert cursor <= micros(floor) + SECOND


async def test_no_flush_before_the_batch_size_or_the_interval(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", 3)
    events = [post(ALICE, f"a{i}", at(100 - i), paper(i)) for i in range(7)]
    seen: list[tuple[int, int | None, int]] = []  # (frame index, saved cursor, posts stored)

    class Watched(ScriptedStream):
        async def frames(self, cursor_us: int | None) -> AsyncIterator[Frame]:
            async for f in super().frames(cursor_us):
                saved = await harness.streams.cursor("bluesky")
                cursor = saved.cursor_us if saved is not None else None
                seen.append((self.served, cursor, len(await harness.stored())))
                yield f

    await harness.consumer(Watched(events)).run()
    # Before frame n is handed over, the batches of 3 before it are stored, and the cursor
    # stands at the last event of the last batch.
    assert seen == [
        (1, None, 0),
        (2, None, 0),
        (3, None, 0),
        (4, at(98), 3),
        (5, at(98), 3),
        (6, at(98), 3),
        (7, at(95), 6),
    ]
    assert (await harness.streams.cursor("bluesky")).cursor_us == at(94)  # type: ignore[union-attr]
    assert len(await harness.stored()) == 7


async def test_the_cursor_is_saved_every_cursor_save_seconds(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter(range(10_000))  # monotonic seconds: one per reading
    monkeypatch.setattr(
        "bot.services.stream.time", types.SimpleNamespace(monotonic=lambda: float(next(ticks)))
    )
    events = [post(ALICE, f"a{i}", at(100 - i), paper(i)) for i in range(6)]
    saves: list[int] = []

    class Recording(StreamRepository):
        async def save_cursor(self, stream: str, cursor_us: int, *args: Any) -> None:
            saves.append(cursor_us)
            await super().save_cursor(stream, cursor_us, *args)

    harness.streams = Recording(harness.db)
    await harness.consumer(ScriptedStream(events), cursor_save_seconds=2.0).run()
    # Readings 0 (start), 1, 2 → flush after the 2nd frame; 3, 4 → after the 4th; 5, 6 → 6th.
    assert saves == [at(99), at(97), at(95)]


async def test_the_cursor_is_saved_only_after_the_events_before_it_are_stored(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", 2)
    rng = random.Random(7)
    dids = [ALICE, BOB, CAROL]
    events: list[dict[str, Any]] = []
    for i in range(40):
        time_us = at(1000 - 10 * i)
        did = rng.choice(dids)
        roll = rng.random()
        if roll < 0.6:
            events.append(post(did, f"r{rng.randrange(12)}", time_us, paper(i)))
        elif roll < 0.9:
            events.append(post_deleted_event(did, f"r{rng.randrange(12)}", time_us))
        else:
            events.append(account_deleted_event(did, time_us))
    checks: list[int] = []

    class Checking(StreamRepository):
        async def save_cursor(self, stream: str, cursor_us: int, *args: Any) -> None:
            done = [e for e in events if e["time_us"] <= cursor_us]
            assert await harness.stored() == expected(done)
            checks.append(cursor_us)
            await super().save_cursor(stream, cursor_us, *args)

    harness.streams = Checking(harness.db)
    await harness.consumer(ScriptedStream(events)).run()
    assert len(checks) == 20
    assert await harness.stored() == expected(events)


async def test_cancellation_flushes_and_saves_the_cursor(harness: Harness) -> None:
    events = [post(ALICE, f"a{i}", at(100 - i), paper(i)) for i in range(4)]
    stream = ScriptedStream(events, then_wait=True)
    consumer = harness.consumer(stream)  # a 1 h save interval: nothing is written while running
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(stream.exhausted.wait(), 5)  # every frame taken, none written
    assert consumer.stats.running
    assert consumer.stats.events == len(events)
    assert await harness.stored() == {}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(await harness.stored()) == 4
    assert (await harness.streams.cursor("bluesky")).cursor_us == at(97)  # type: ignore[union-attr]
    assert not consumer.stats.running


async def test_a_restart_after_a_clean_stop_loses_and_doubles_nothing(harness: Harness) -> None:
    first = [post(ALICE, f"a{i}", at(100 - 10 * i), paper(i)) for i in range(3)]
    later = [post(BOB, "b1", at(60), "2607.00010"), post_deleted_event(ALICE, "a0", at(55))]
    await harness.consumer(ScriptedStream(first)).run()
    stream = ScriptedStream([*first, *later])
    await harness.consumer(stream).run()
    assert stream.cursors == [at(80) - 5 * SECOND]
    assert await harness.stored() == expected([*first, *later])


# -- crash safety --------------------------------------------------------------------------------


class PowerCut(Exception):
    """The process died: no write from this moment on happens."""


class Mortal:
    """Repositories whose writes all fail once ``dies_at`` writes have been attempted."""

    def __init__(self, dies_at: int) -> None:
        self.dies_at = dies_at
        self.writes = 0

    def check(self) -> None:
        self.writes += 1
        if self.writes >= self.dies_at:
            raise PowerCut

    def repositories(self, db: Database) -> tuple[MentionRepository, StreamRepository]:
        mortal = self

        class Mentions(MentionRepository):
            async def upsert_discovered(self, *args: Any) -> int:
                mortal.check()
                return await super().upsert_discovered(*args)

            async def delete_posts(self, *args: Any) -> int:
                mortal.check()
                return await super().delete_posts(*args)

            async def delete_with_prefix(self, *args: Any) -> int:
                mortal.check()
                return await super().delete_with_prefix(*args)

        class Streams(StreamRepository):
            async def save_cursor(self, *args: Any) -> None:
                mortal.check()
                await super().save_cursor(*args)

        return Mentions(db), Streams(db)


def mixed_events(rng: random.Random, n: int, *, step_seconds: float) -> list[dict[str, Any]]:
    """``n`` events, ``step_seconds`` apart: posts with and without papers, edits, deletes,
    account deletions, likes and identity events, over a few accounts."""
    dids = [f"did:plc:author{k:02d}xxxxxxxxxxxxxxx" for k in range(4)]
    events: list[dict[str, Any]] = []
    for i in range(n):
        time_us = at(5000 - step_seconds * i)
        did = rng.choice(dids)
        rkey = f"r{rng.randrange(8)}"
        roll = rng.random()
        if roll < 0.45:
            ids = [paper(rng.randrange(30)) for _ in range(rng.randrange(1, 3))]
            events.append(post(did, rkey, time_us, *dict.fromkeys(ids)))
        elif roll < 0.55:
            events.append(post(did, rkey, time_us))  # no paper
        elif roll < 0.65:
            ids = [paper(rng.randrange(30))] if rng.random() < 0.7 else []
            events.append(post(did, rkey, time_us, *ids, operation="update"))
        elif roll < 0.8:
            events.append(post_deleted_event(did, rkey, time_us))
        elif roll < 0.87:
            events.append(account_deleted_event(did, time_us))
        elif roll < 0.94:
            events.append(like(did, time_us))
        else:
            events.append(identity_event(did, time_us, f"h{i}.example.com"))
    return events


async def run_until_stopped(consumer: Any, stop: Callable[[asyncio.Task[None]], Any]) -> None:
    task = asyncio.create_task(consumer.run())
    await stop(task)
    with contextlib.suppress(asyncio.CancelledError, PowerCut):
        await task


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("rewind", [0.0, 5.0])
async def test_cancelled_at_random_points_and_restarted_nothing_is_lost_or_doubled(
    migrated_url: str, seed: int, rewind: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    # Batches of one to four events, each followed by a cursor save.
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", rng.randrange(1, 5))
    # 10 s apart: with no rewind, a restart reads nothing before the saved cursor again, so
    # an event whose effect was not stored before its cursor was saved is lost for good.
    events = mixed_events(rng, 40, step_seconds=10.0)
    async with Database.connect(migrated_url) as db:
        harness = Harness(db, Clock(), MentionRepository(db), StreamRepository(db))
        restarts = 0
        while True:
            stream = ScriptedStream(events)
            consumer = harness.consumer(stream, resume_rewind_seconds=rewind)
            if restarts >= 6:
                await consumer.run()
                break
            ticks = rng.randrange(1, 120)

            async def cancel_later(task: asyncio.Task[None], ticks: int = ticks) -> None:
                for _ in range(ticks):
                    await asyncio.sleep(0)
                task.cancel()

            await run_until_stopped(consumer, cancel_later)
            restarts += 1
        assert await harness.stored() == expected(events)


@pytest.mark.parametrize("seed", range(20))
async def test_a_power_cut_at_any_write_and_a_restart_lose_and_double_nothing(
    harness: Harness, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(1000 + seed)
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", rng.randrange(1, 6))
    events = mixed_events(rng, 40, step_seconds=10.0)
    for _ in range(4):
        mortal = Mortal(dies_at=rng.randrange(1, 30))
        mentions, streams = mortal.repositories(harness.db)
        dying = Harness(harness.db, harness.clock, mentions, streams)
        consumer = dying.consumer(ScriptedStream(events), resume_rewind_seconds=0.0)

        async def just_wait(task: asyncio.Task[None]) -> None:
            await asyncio.wait([task])

        await run_until_stopped(consumer, just_wait)
    await harness.consumer(ScriptedStream(events), resume_rewind_seconds=0.0).run()
    assert await harness.stored() == expected(events)


async def test_a_flush_cancelled_halfway_is_finished_before_the_cursor_moves(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while a batch is half written (its creates stored, its delete under way):
    the batch is written to its end before the cancellation is honoured, and no cursor ever
    stands past an event whose effect is not stored."""
    events = [
        post(ALICE, "a1", at(100), "2607.00001"),
        post(BOB, "b1", at(90), "2607.00002"),
        post_deleted_event(ALICE, "a1", at(80)),
        post(CAROL, "c1", at(70), "2607.00003"),
    ]
    entered, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    class Slow(MentionRepository):
        async def delete_posts(self, *args: Any) -> int:
            calls.append("start")
            entered.set()
            await release.wait()  # the consumer is cancelled while this write is under way
            removed = await super().delete_posts(*args)
            calls.append("done")
            return removed

    slow = Harness(harness.db, harness.clock, Slow(harness.db), harness.streams)
    # One batch of three: the creates are written, then the delete is cut short.
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", 3)
    consumer = slow.consumer(ScriptedStream(events, then_wait=True))
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == ["start", "done"]  # finished, not cut and written again
    saved = await harness.streams.cursor("bluesky")
    assert saved is not None
    assert saved.cursor_us == at(80)
    done = [e for e in events if e["time_us"] <= saved.cursor_us]
    assert await harness.stored() == expected(done)
    # And a restart (no rewind) ends where an uninterrupted run would.
    await harness.consumer(ScriptedStream(events), resume_rewind_seconds=0.0).run()
    assert await harness.stored() == expected(events)


async def test_a_failed_write_is_retried_on_the_way_out_before_the_cursor_moves(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose delete fails (its creates already stored): the loop ends with the error,
    and the flush on the way out writes the whole batch again before saving its cursor."""
    events = [
        post(ALICE, "a1", at(100), "2607.00001"),
        post(BOB, "b1", at(90), "2607.00002"),
        post_deleted_event(ALICE, "a1", at(80)),
        post(CAROL, "c1", at(70), "2607.00003"),
    ]
    failures = [StorageError("database error: disk I/O error")]

    class Flaky(MentionRepository):
        async def delete_posts(self, *args: Any) -> int:
            if failures:
                raise failures.pop()
            return await super().delete_posts(*args)

    flaky = Harness(harness.db, harness.clock, Flaky(harness.db), harness.streams)
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", 3)
    with pytest.raises(StorageError):
        await flaky.consumer(ScriptedStream(events, then_wait=True)).run()
    saved = await harness.streams.cursor("bluesky")
    assert saved is not None
    assert saved.cursor_us == at(80)
    assert await harness.stored() == expected(events[:3]) == {post_uri(BOB, "b1"): ("2607.00002",)}


# -- replay (hotpapers fetch) ----------------------------------------------------------------------


WINDOW = Window(NOW - 6 * HOUR, NOW - 2 * HOUR)


def w(hours_after_start: float) -> int:
    """``time_us`` of a moment ``hours_after_start`` into WINDOW."""
    return micros(WINDOW.start + dt.timedelta(hours=hours_after_start))


async def test_a_replay_reads_the_window_and_stops_at_its_end(harness: Harness) -> None:
    events = [
        post(ALICE, "a1", w(0), "2607.00001"),
        post(BOB, "b1", w(1), "2607.00002"),
        post_deleted_event(ALICE, "a1", w(2)),
        post(BOB, "b2", w(3), "2607.00003"),
        post(CAROL, "c1", w(4), "2607.00004"),  # at the end: read, the replay stops there
        post(CAROL, "c2", w(4.5), "2607.00005"),  # never read
    ]
    stream = ScriptedStream(events, then_wait=True)
    consumer = harness.consumer(stream)
    report = await consumer.replay(WINDOW)
    assert stream.cursors == [micros(WINDOW.start)]
    assert stream.served == 5
    assert stream.closed == 1  # the transport (and its socket) is closed
    assert report.reached_end
    assert report.missed is None
    assert (report.events, report.posts, report.deletes, report.malformed) == (5, 4, 1, 0)
    assert report.first_event == WINDOW.start
    assert report.last_event == WINDOW.end
    assert "WARNING" not in report.describe()
    assert set(await harness.stored()) >= {post_uri(BOB, "b1"), post_uri(BOB, "b2")}
    assert post_uri(ALICE, "a1") not in await harness.stored()
    assert post_uri(CAROL, "c2") not in await harness.stored()
    # A replay is not the live consumer's business: its cursor is left alone.
    assert await harness.streams.cursor("bluesky") is None


async def test_a_replay_stops_at_the_live_edge(harness: Harness) -> None:
    events = [post(ALICE, "a1", w(0), "2607.00001"), post(BOB, "b1", w(0.2), "2607.00002")]
    report = await harness.consumer(ScriptedStream(events, then_wait=True)).replay(WINDOW)
    assert not report.reached_end
    assert report.missed is None
    assert report.posts == 2
    assert len(await harness.stored()) == 2


async def test_a_replay_reports_the_hours_the_stream_no_longer_holds(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    events = [post(ALICE, "a1", w(1.5), "2607.00001"), post(BOB, "b1", w(5), "2607.00002")]
    with caplog.at_level(logging.WARNING, logger="bot.services.stream"):
        report = await harness.consumer(ScriptedStream(events)).replay(WINDOW)
    assert report.missed == (WINDOW.start, WINDOW.start + 1.5 * HOUR)
    assert report.first_event == WINDOW.start + 1.5 * HOUR
    assert "1.5 h missed" in report.describe()
    assert "WARNING" in report.describe()
    assert "1.5 hours are missing" in caplog.text


@pytest.mark.parametrize(("late_seconds", "missed"), [(0, False), (60, False), (61, True)])
async def test_a_first_event_within_a_minute_of_the_start_misses_nothing(
    harness: Harness, late_seconds: int, missed: bool
) -> None:
    events = [post(ALICE, "a1", micros(WINDOW.start) + late_seconds * SECOND, "2607.00001")]
    report = await harness.consumer(ScriptedStream(events, then_wait=True)).replay(WINDOW)
    assert (report.missed is not None) is missed


async def test_a_replay_after_the_window_missed_it_all(harness: Harness) -> None:
    events = [post(ALICE, "a1", w(7), "2607.00001")]  # the oldest event is past the end
    report = await harness.consumer(ScriptedStream(events)).replay(WINDOW)
    assert report.reached_end
    assert report.missed == (WINDOW.start, WINDOW.end)


async def test_a_silent_stream_is_unreachable(harness: Harness) -> None:
    stream = ScriptedStream([], then_wait=True)
    with pytest.raises(SourceError) as info:
        await harness.consumer(stream).replay(WINDOW)
    assert info.value.kind == "unreachable"
    assert INSTANCE in info.value.message
    assert stream.closed == 1


async def test_a_replay_flushes_in_batches(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", 2)
    writes: list[int] = []

    class Counting(MentionRepository):
        async def upsert_discovered(self, items: Any, seen_at: dt.datetime) -> int:
            n = await super().upsert_discovered(items, seen_at)
            writes.append(n)
            return n

    counting = Harness(harness.db, harness.clock, Counting(harness.db), harness.streams)
    events = [post(ALICE, f"a{i}", w(i / 10), paper(i)) for i in range(5)]
    report = await counting.consumer(ScriptedStream(events)).replay(WINDOW)
    assert report.posts == 5
    assert writes == [2, 2, 1]


async def test_a_write_slower_than_the_idle_spell_does_not_end_a_replay(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live edge is the stream falling quiet, not the database being slow: a batch that
    takes longer to store than ``replay_idle_seconds`` (a busy PostgreSQL server) is waited for,
    and the replay reads on."""
    monkeypatch.setattr("bot.services.stream.FLUSH_EVENTS", 2)
    idle = settings().replay_idle_seconds

    class Slow(MentionRepository):
        async def upsert_discovered(self, items: Any, seen_at: dt.datetime) -> int:
            await asyncio.sleep(3 * idle)
            return await super().upsert_discovered(items, seen_at)

    slow = Harness(harness.db, harness.clock, Slow(harness.db), harness.streams)
    events = [post(ALICE, f"a{i}", w(i / 10), paper(i)) for i in range(5)]
    report = await slow.consumer(ScriptedStream(events, then_wait=True)).replay(WINDOW)
    assert report.posts == 5
    assert len(await harness.stored()) == 5


# -- the real transport ------------------------------------------------------------------------


async def test_the_consumer_over_the_real_client_and_fake_jetstream(harness: Harness) -> None:
    from bot.fakes.jetstream import FakeJetstream
    from bot.sources.jetstream import JetstreamClient

    events = [
        post(ALICE, "a1", at(300), "2607.00001"),
        post(BOB, "b1", at(200), "2607.00002"),
        like(CAROL, at(150)),
        post_deleted_event(ALICE, "a1", at(100)),
        account_deleted_event(CAROL, at(90)),
    ]
    async with FakeJetstream(clock=harness.clock) as fake, aiohttp.ClientSession() as session:
        fake.add_many(events)
        config = settings(
            jetstream_urls=[fake.subscribe_url],
            idle_timeout_seconds=5.0,
            replay_idle_seconds=0.3,
            replay_connect_seconds=5.0,
        )
        client = JetstreamClient(session, config, clock=harness.clock)
        consumer = harness.consumer(client)
        consumer.settings = config
        report = await consumer.replay(Window(moment(at(330)), NOW))
        # The like is filtered out by the server (wantedCollections); account events are not.
        assert (report.events, report.posts, report.deletes) == (4, 2, 1)
        assert not report.reached_end  # the fake has nothing newer: the live edge
        assert report.missed is None
        assert await harness.stored() == {post_uri(BOB, "b1"): ("2607.00002",)}
        assert fake.cursors == [at(330)]
