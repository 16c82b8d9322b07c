"""JetstreamClient against FakeJetstream instances: replay, live, resume, rotation, faults."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, aclosing
from typing import Any

import aiohttp
import pytest

from bot.fakes.jetstream import (
    FakeJetstream,
    account_event,
    identity_event,
    post_event,
)
from bot.sources.bluesky import BlueskySettings, micros
from bot.sources.jetstream import Frame, JetstreamClient, frame_time_us
from tests.sources.conftest import RecordingSleep

NOW = dt.datetime(2026, 8, 1, 12, 0, tzinfo=dt.UTC)
SECOND = 1_000_000
POLL_SECONDS = 0.005


class Clock:
    """A clock the test moves by hand, shared by the client and the fakes."""

    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def at(seconds_ago: float) -> int:
    """``time_us`` of a moment ``seconds_ago`` before NOW."""
    return micros(NOW) - round(seconds_ago * SECOND)


def posts(n: int, *, start_ago: float = 600.0, step: float = 2.0) -> list[dict[str, Any]]:
    """``n`` post events ``step`` seconds apart, the first ``start_ago`` seconds before NOW."""
    return [
        post_event(f"did:plc:author{i}", at(start_ago - i * step), text=f"post {i}")
        for i in range(n)
    ]


def settings(*fakes: FakeJetstream, **overrides: Any) -> BlueskySettings:
    values: dict[str, Any] = {
        "jetstream_urls": [f.subscribe_url for f in fakes],
        "idle_timeout_seconds": 1.0,
        "reconnect_initial_seconds": 1.0,
        "reconnect_max_seconds": 8.0,
        "resume_rewind_seconds": 5.0,
    }
    values.update(overrides)
    return BlueskySettings(**values)


async def take(frames: AsyncIterator[Frame], n: int, within: float = 2.0) -> list[Frame]:
    got: list[Frame] = []
    async with asyncio.timeout(within):
        while len(got) < n:
            got.append(await anext(frames))
    return got


def next_frame(frames: AsyncIterator[Frame]) -> asyncio.Task[Frame]:
    """The next frame, fetched in the background (to act on the server meanwhile)."""

    async def fetch() -> Frame:
        return await anext(frames)

    return asyncio.create_task(fetch())


async def until(predicate: Callable[[], bool], within: float = 1.0) -> None:
    """Wait for a real socket to reach a state (tiny polls, bounded)."""
    for _ in range(round(within / POLL_SECONDS)):
        if predicate():
            return
        await asyncio.sleep(POLL_SECONDS)
    pytest.fail("condition not reached in time")


def times(frames: list[Frame]) -> list[int | None]:
    return [f.time_us for f in frames]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fakes(clock: Clock) -> AsyncIterator[list[FakeJetstream]]:
    """Three started instances sharing the test clock."""
    async with AsyncExitStack() as stack:
        started = [await stack.enter_async_context(FakeJetstream(clock=clock)) for _ in range(3)]
        yield started


def client_for(
    session: aiohttp.ClientSession,
    config: BlueskySettings,
    clock: Clock,
    sleep: RecordingSleep,
    **kwargs: Any,
) -> JetstreamClient:
    return JetstreamClient(session, config, clock=clock, sleep=sleep, **kwargs)


# -- replay and live ---------------------------------------------------------------------------


async def test_replays_from_the_cursor_then_streams_live(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    events = posts(5)
    fake.add_many(events)
    client = client_for(http_session, settings(fake), clock, sleep)
    cursor = events[2]["time_us"]

    async with aclosing(client.frames(cursor)) as frames:
        replayed = await take(frames, 3)
        assert times(replayed) == [e["time_us"] for e in events[2:]]
        assert json.loads(replayed[0].text) == events[2]
        assert client.lag_seconds == pytest.approx(600 - 4 * 2)
        assert not client.is_live()

        live = fake.publish(post_event("did:plc:live", at(0.5), text="live"))
        (frame,) = await take(frames, 1)

    assert frame.time_us == live["time_us"] == client.position_us
    assert client.is_live()
    assert frame.instance == fake.subscribe_url
    (record,) = fake.connections
    assert record.cursor_us == cursor
    assert record.wanted_collections == ("app.bsky.feed.post",)
    assert client.frames_received == 4
    assert client.connections == 1
    assert client.reconnects == 0
    assert sleep.waits == []


async def test_no_gap_and_no_duplicate_where_replay_meets_live(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    events = posts(3000, start_ago=3600, step=1.0)  # replayed at socket speed
    fake.add_many(events)
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        first = await take(frames, 1)
        # Published while the replay is still being sent: it must come once, after it.
        live = [fake.publish(post_event("did:plc:live", at(1 - i * 0.1))) for i in range(3)]
        rest = await take(frames, len(events) - 1 + len(live))

    assert times(first + rest) == [e["time_us"] for e in events + live]


async def test_no_cursor_is_live_only(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    fake.add_many(posts(3))
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(None)) as frames:
        pending = next_frame(frames)
        await until(lambda: fake.subscribers == 1)
        live = fake.publish(post_event("did:plc:live", at(0)))
        frame = await asyncio.wait_for(pending, 2)

    assert frame.time_us == live["time_us"]
    assert fake.cursors == [None]
    assert "cursor=" not in client.subscribe_url(fake.subscribe_url, None)


async def test_wanted_collections_filters_commits_but_not_account_or_identity(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    post = post_event("did:plc:a", at(50), text="arxiv.org/abs/2410.18533")
    like = post_event("did:plc:b", at(40), collection="app.bsky.feed.like")
    gone = account_event("did:plc:c", at(30), active=False, status="deleted")
    renamed = identity_event("did:plc:d", at(20), "new.bsky.social")
    deleted = post_event("did:plc:a", at(10), rkey=post["commit"]["rkey"], operation="delete")
    fake.add_many([post, like, gone, renamed, deleted])
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(at(60))) as frames:
        got = await take(frames, 4)

    assert [json.loads(f.text) for f in got] == [post, gone, renamed, deleted]
    assert "record" not in deleted["commit"]


# -- disconnects, resume, rotation ----------------------------------------------------------------


async def test_server_close_resumes_on_the_next_instance_by_time(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    first, second = fakes[0], fakes[1]
    events = posts(10)
    for fake in (first, second):  # every instance holds the same network history
        fake.add_many(events)
    first.close_after(4)
    client = client_for(http_session, settings(first, second), clock, sleep)

    seen: list[Frame] = []
    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        while {f.time_us for f in seen} != {e["time_us"] for e in events}:
            seen += await take(frames, 1)

    assert client.reconnects == 1
    assert "closed by server" in (client.last_disconnect or "")
    resumed = events[3]["time_us"] - 5 * SECOND  # the last time seen, less the rewind
    assert second.cursors == [resumed]
    assert [f.instance for f in seen[:4]] == [first.subscribe_url] * 4
    assert {f.instance for f in seen[4:]} == {second.subscribe_url}
    # At least once: the rewind re-sends what came within 5 s before the cut, nothing is lost.
    assert times(seen[4:7]) == [e["time_us"] for e in events[1:4]]
    assert len(sleep.waits) == 1
    assert 1.0 <= sleep.waits[0] <= 2.0


async def test_rotates_through_every_instance(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    events = posts(12)
    for fake in fakes:
        fake.add_many(events)
        fake.close_after(3)
    config = settings(*fakes, resume_rewind_seconds=0)
    client = client_for(http_session, config, clock, sleep)

    seen: list[Frame] = []
    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        while len({f.time_us for f in seen}) < len(events):
            seen += await take(frames, 1)

    urls = [f.subscribe_url for f in fakes]
    order = [f.instance for f in seen]
    assert list(dict.fromkeys(order)) == urls  # first, second, third, then the first again
    assert order[-1] == urls[0]
    assert [len(f.connections) for f in fakes] == [2, 1, 1]
    # With no rewind, each resume starts at the last time seen (that one frame repeats).
    assert fakes[1].cursors == [events[2]["time_us"]]
    assert fakes[2].cursors == [events[4]["time_us"]]
    assert fakes[0].cursors == [events[0]["time_us"], events[6]["time_us"]]
    assert client.reconnects == 3
    # Every connection delivered frames, so the backoff never grew.
    assert all(1.0 <= w <= 2.0 for w in sleep.waits)


async def test_refused_handshakes_back_off_growing_bounded_and_jittered(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    events = posts(1)
    fake.add_many(events)
    fake.refuse_connections(3, status=502)
    fake.refuse_connections(4, status=503)
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        await take(frames, 1)
        assert "HTTP 503" in (client.last_disconnect or "")
        refused = list(sleep.waits)
        fake.close_all()  # a connection that delivered frames resets the backoff
        await take(frames, 1)

    assert [c.refused for c in fake.connections] == [True] * 7 + [False, False]
    assert client.reconnects == 8
    # initial 1 s doubling, capped at max - initial = 7 s, plus up to 1 s of jitter.
    bases = [1, 2, 4, 7, 7, 7, 7]
    assert len(refused) == len(bases)
    for wait, base in zip(refused, bases, strict=True):
        assert base <= wait <= min(base + 1, 8.0)
    assert len({round(w - b, 9) for w, b in zip(refused, bases, strict=True)}) > 1  # jittered
    assert 1.0 <= sleep.waits[-1] <= 2.0  # reset after frames
    # Cursor preserved through the refusals: nothing was seen yet, so the original one.
    assert fake.cursors[:8] == [events[0]["time_us"]] * 8


async def test_unreachable_instance_is_skipped(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    dead, live = fakes[0], fakes[1]
    await dead.stop_listening()
    live.add_many(posts(2))
    client = client_for(http_session, settings(dead, live), clock, sleep)

    async with aclosing(client.frames(at(700))) as frames:
        (frame,) = await take(frames, 1)

    assert frame.instance == live.subscribe_url
    assert "connection failed" in (client.last_disconnect or "")
    assert live.cursors == [at(700)]


async def test_restarted_instance_is_reconnected(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    events = posts(4)
    fake.add_many(events[:2])
    client = client_for(http_session, settings(fake, resume_rewind_seconds=0), clock, sleep)

    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        await take(frames, 2)
        await fake.restart()
        fake.add_many(events[2:])
        again = await take(frames, 3)

    assert times(again) == [e["time_us"] for e in events[1:]]
    assert fake.cursors == [events[0]["time_us"], events[1]["time_us"]]


async def test_silence_trips_the_watchdog(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    quiet, other = fakes[0], fakes[1]
    events = posts(4)
    for fake in (quiet, other):
        fake.add_many(events[:2])
    config = settings(quiet, other, idle_timeout_seconds=0.2, resume_rewind_seconds=1)
    client = client_for(http_session, config, clock, sleep)

    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        await take(frames, 2)
        quiet.go_silent()
        for fake in (quiet, other):
            fake.publish(events[2])
        got = await take(frames, 2)  # the rewind repeats events[1] from the other instance

    assert times(got) == [events[1]["time_us"], events[2]["time_us"]]
    assert {f.instance for f in got} == {other.subscribe_url}
    assert client.last_disconnect == "no message for 0.2s"
    await until(lambda: quiet.subscribers == 0)


# -- odd frames ----------------------------------------------------------------------------------


async def test_garbage_frames_are_counted_or_passed_never_fatal(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    events = posts(2)
    fake.add_many(events)
    fake.send_raw_next(b"\xff\xfe\x00not utf-8")
    fake.send_raw_next("this is not json")
    fake.send_raw_next(b'{"did":"did:plc:bin","time_us":1785585000000000,"kind":"commit"}')
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        got = await take(frames, 4)
        fake.inject_garbage(b"\x80")
        fake.inject_garbage('{"kind":"info"}')
        (info,) = await take(frames, 1)

    assert got[0].text == "this is not json"
    assert got[0].time_us is None
    assert got[1].time_us == 1785585000000000  # a binary frame that is UTF-8 text passes
    assert times(got[2:]) == [e["time_us"] for e in events]
    assert info.time_us is None
    assert client.position_us == events[-1]["time_us"]  # untimed frames do not move it
    assert client.garbage == 2
    assert client.untimed == 2
    assert client.frames_received == 5
    assert client.reconnects == 0


async def test_a_frame_over_the_size_limit_is_a_disconnect(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    big, other = fakes[0], fakes[1]
    events = posts(2)
    for fake in (big, other):
        fake.add_many(events)
    big.send_raw_next("x" * 5000)
    client = client_for(http_session, settings(big, other), clock, sleep, max_msg_size=4096)

    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        got = await take(frames, 2)

    assert {f.instance for f in got} == {other.subscribe_url}
    assert (client.last_disconnect or "").startswith("websocket error")
    assert client.reconnects == 1


def test_time_us_is_read_from_the_envelope_without_parsing() -> None:
    event = post_event("did:plc:a", at(0), text='he wrote "time_us": 5')
    assert frame_time_us(json.dumps(event)) == at(0)
    assert frame_time_us('{"time_us" : 1785585000000001}') == 1785585000000001
    assert frame_time_us('{"kind":"commit"}') is None


# -- lookback --------------------------------------------------------------------------------------


async def test_a_cursor_older_than_the_lookback_is_clamped_silently(
    http_session: aiohttp.ClientSession, clock: Clock, sleep: RecordingSleep
) -> None:
    old = post_event("did:plc:old", at(3 * 3600))
    kept = post_event("did:plc:kept", at(1800))
    async with FakeJetstream(clock=clock, lookback_hours=1) as fake:
        fake.add_many([old, kept])
        client = client_for(http_session, settings(fake), clock, sleep)
        async with aclosing(client.frames(at(5 * 3600))) as frames:
            (frame,) = await take(frames, 1)

        assert frame.time_us == kept["time_us"]  # the client asked for 5 h ago; the gap is
        assert fake.cursors == [at(5 * 3600)]  # for the consumer to notice and report
        assert fake.clamped == 1


async def test_retained_from_models_an_instance_that_lost_history(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    events = posts(5)
    fake.add_many(events)
    fake.retained_from_us = events[3]["time_us"]
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        got = await take(frames, 2)

    assert times(got) == [e["time_us"] for e in events[3:]]


async def test_a_cursor_in_the_future_is_live(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    fake.add_many(posts(2))
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(at(-60))) as frames:
        pending = next_frame(frames)
        await until(lambda: fake.subscribers == 1)
        live = fake.publish(post_event("did:plc:live", at(0)))
        frame = await asyncio.wait_for(pending, 2)

    assert frame.time_us == live["time_us"]


async def test_a_sequence_cursor_is_refused(
    http_session: aiohttp.ClientSession, clock: Clock, sleep: RecordingSleep
) -> None:
    client = client_for(http_session, BlueskySettings(), clock, sleep)
    with pytest.raises(ValueError, match="unix microseconds"):
        await anext(client.frames(12345))


# -- leaving ---------------------------------------------------------------------------------------


async def test_leaving_the_loop_closes_the_socket(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    fake.add_many(posts(3))
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(at(700))) as frames:
        async for _frame in frames:
            assert client.connected
            break
    assert not client.connected
    await until(lambda: fake.subscribers == 0)

    frames = client.frames(at(700))
    await anext(frames)
    await frames.aclose()
    assert not client.connected
    await until(lambda: fake.subscribers == 0)


async def test_cancellation_propagates_and_closes_the_socket(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    fake.add_many(posts(1))
    client = client_for(http_session, settings(fake), clock, sleep)
    received: list[Frame] = []

    async def consume() -> None:
        async with aclosing(client.frames(at(700))) as frames:
            async for frame in frames:
                received.append(frame)

    task = asyncio.create_task(consume())
    await until(lambda: len(received) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert task.cancelled()
    assert not client.connected
    assert client.reconnects == 0
    await until(lambda: fake.subscribers == 0)


async def test_one_iteration_at_a_time_and_each_from_its_own_cursor(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
) -> None:
    fake = fakes[0]
    events = posts(3)
    fake.add_many(events)
    client = client_for(http_session, settings(fake), clock, sleep)

    async with aclosing(client.frames(events[2]["time_us"])) as frames:
        await take(frames, 1)
        with pytest.raises(RuntimeError, match="already"):
            await anext(client.frames(None))
    async with aclosing(client.frames(events[0]["time_us"])) as frames:
        (again,) = await take(frames, 1)

    assert again.time_us == events[0]["time_us"]
    assert fake.cursors == [events[2]["time_us"], events[0]["time_us"]]


async def test_reconnects_are_logged_with_instance_and_reason_but_no_content(
    fakes: list[FakeJetstream],
    http_session: aiohttp.ClientSession,
    clock: Clock,
    sleep: RecordingSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = fakes[0]
    events = posts(1)
    fake.add_many(events)
    fake.refuse_connections(1, status=503)
    client = client_for(http_session, settings(fake), clock, sleep)

    with caplog.at_level(logging.DEBUG, logger="bot.sources.jetstream"):
        async with aclosing(client.frames(events[0]["time_us"])) as frames:
            await take(frames, 1)

    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert fake.subscribe_url in warning.getMessage()
    assert "HTTP 503" in warning.getMessage()
    assert all("post 0" not in r.getMessage() for r in caplog.records)
