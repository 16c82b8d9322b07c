"""Stream edge cases found in review: gaps on a reconnection, a replay ending in the future,
gap rows recorded once, times in the future, and posts the AppView has not indexed yet."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from bot.core.models import Window
from bot.fakes.bluesky import frame
from bot.services.stream import stop_child
from bot.settings import RankingSettings
from bot.sources.bluesky import BlueskySettings
from bot.sources.jetstream import Frame, frame_time_us
from tests.services.test_stream import (
    ALICE,
    HOUR,
    INSTANCE,
    NOW,
    SECOND,
    ScriptedStream,
    at,
    harness,  # noqa: F401 - the fixture
    moment,
    paper,
    post,
)


class ReconnectingStream:
    """Two connections: the first breaks after its frames; the second (the next instance)
    no longer holds the moment it is asked for and starts later. Frames carry what the real
    client gives: the cursor each connection asked for, on its first frame."""

    instance = INSTANCE

    def __init__(self, first: list[dict[str, Any]], second: list[dict[str, Any]]) -> None:
        self.connections = [[frame(e) for e in first], [frame(e) for e in second]]

    async def frames(self, cursor_us: int | None) -> AsyncIterator[Frame]:
        asked = cursor_us
        for texts in self.connections:
            for i, text in enumerate(texts):
                time_us = frame_time_us(text)
                yield Frame(text, time_us, self.instance, asked if i == 0 else None, i == 0)
                await asyncio.sleep(0)
            asked = time_us  # the real client resumes from the last position (minus a rewind)


async def test_a_reconnection_that_lands_later_than_asked_records_the_gap(harness) -> None:  # noqa: F811
    first = [post(ALICE, f"a{i}", at(7200 - i), paper(i)) for i in range(3)]
    # The next instance starts 90 minutes after the last event read.
    second = [post(ALICE, f"b{i}", at(1800 - i), paper(10 + i)) for i in range(3)]
    consumer = harness.consumer(ReconnectingStream(first, second))
    await consumer.run()
    (gap,) = await harness.streams.gaps("bluesky", NOW - 48 * HOUR)
    assert gap.start == moment(at(7198))
    assert gap.end == moment(at(1800))
    assert 1.4 < gap.hours < 1.6


async def test_a_reconnection_within_the_rewind_is_no_gap(harness) -> None:  # noqa: F811
    first = [post(ALICE, f"a{i}", at(600 - i), paper(i)) for i in range(3)]
    second = [post(ALICE, f"b{i}", at(590 - i), paper(10 + i)) for i in range(3)]
    await harness.consumer(ReconnectingStream(first, second)).run()
    assert await harness.streams.gaps("bluesky", NOW - 48 * HOUR) == []


async def test_a_too_old_cursor_is_recorded_once_across_restarts(harness) -> None:  # noqa: F811
    await harness.streams.save_cursor("bluesky", at(48 * 3600), INSTANCE, NOW - 48 * HOUR)
    for _ in range(3):  # restarts before anything new is read
        await harness.consumer(ScriptedStream([])).run()
    gaps = await harness.streams.gaps("bluesky", NOW - 72 * HOUR)
    assert len(gaps) == 1


async def test_a_time_in_the_future_is_not_a_position(harness) -> None:  # noqa: F811
    future = int((NOW + dt.timedelta(days=400)).timestamp() * SECOND)
    events = [
        post(ALICE, "a1", at(30), paper(1)),
        '{"did":"did:plc:x","time_us":' + str(future) + ',"kind":"commit"}',
        post(ALICE, "a2", at(20), paper(2)),
    ]
    consumer = harness.consumer(ScriptedStream(events))
    await consumer.run()
    cursor = await harness.streams.cursor("bluesky")
    assert cursor is not None
    assert cursor.cursor_us == at(20)


async def test_a_replay_ending_in_the_future_stops_at_the_live_edge(harness) -> None:  # noqa: F811
    # Events keep coming (never a quiet spell), up to and past "now".
    events = [post(ALICE, f"a{i}", at(60 - i), paper(i % 5)) for i in range(120)]
    stream = ScriptedStream(events, then_wait=True)
    consumer = harness.consumer(stream, replay_idle_seconds=30.0)
    window = Window(NOW - HOUR / 60, NOW + 24 * HOUR)
    report = await asyncio.wait_for(consumer.replay(window), 5)
    assert not report.reached_end  # the edge, not the window's end
    assert report.last_event is not None
    assert report.last_event >= NOW


@pytest.mark.parametrize(
    "bad",
    [
        {"cursor_save_seconds": float("inf")},
        {"idle_timeout_seconds": float("nan")},
    ],
)
def test_settings_refuse_infinity_and_nan(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        BlueskySettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RankingSettings(threshold=float("inf"))


async def test_stopping_a_child_never_swallows_a_cancellation_of_the_task_that_stops_it() -> None:
    """stop_child: the child's own cancellation ends quietly; a cancellation of the waiting
    task that arrives while the child winds down is raised (a stream whose shutdown was
    swallowed there restarted instead of stopping, and the bot never finished closing)."""
    winding_down = asyncio.Event()
    release = asyncio.Event()

    async def child() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            winding_down.set()
            await release.wait()  # a child that takes a moment to end (closing a socket)
            raise

    async def parent() -> str:
        task = asyncio.create_task(child())
        await asyncio.sleep(0)
        await stop_child(task)
        return "went on"

    quiet = asyncio.create_task(parent())
    await asyncio.sleep(0)
    await asyncio.wait_for(winding_down.wait(), 5)
    release.set()
    assert await quiet == "went on"  # the child's own cancellation is not the parent's

    winding_down.clear()
    release.clear()
    stopped = asyncio.create_task(parent())
    await asyncio.wait_for(winding_down.wait(), 5)
    stopped.cancel()  # the shutdown arrives while the child winds down
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await stopped
    assert stopped.cancelled()
