"""RunRepository: recording source runs and the latest one per source."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.core.models import Window
from bot.storage.engine import Database
from bot.storage.runs import RunRepository
from tests.storage.factories import T0

HOUR = dt.timedelta(hours=1)


async def test_latest_by_source(db: Database) -> None:
    runs = RunRepository(db)
    window = Window(T0 - 24 * HOUR, T0)
    await runs.record("x", window, T0, T0 + dt.timedelta(seconds=5), 10, 2)
    latest_x = await runs.record("x", window, T0 + HOUR, T0 + HOUR, 0, 1, "HTTP 429")
    hn = await runs.record("hackernews", window, T0, T0 + dt.timedelta(seconds=3), 7, 1)

    latest = await runs.latest_by_source()
    assert latest == {"x": latest_x, "hackernews": hn}
    assert not latest["x"].ok
    assert latest["hackernews"].ok
    assert latest["hackernews"].duration == dt.timedelta(seconds=3)
    assert latest["hackernews"].window == window

    healthy = await runs.latest_by_source(ok_only=True)
    assert healthy["x"].started_at == T0
    assert healthy["x"].mentions == 10


async def test_latest_by_source_overlapping_a_window(db: Database) -> None:
    runs = RunRepository(db)
    day = Window(T0, T0 + 24 * HOUR)
    before = Window(T0 - 24 * HOUR, T0)  # ends where the day starts: no overlap
    straddling = Window(T0 - 12 * HOUR, T0 + HOUR)
    after = Window(T0 + 24 * HOUR, T0 + 48 * HOUR)  # starts where the day ends: no overlap
    x_day = await runs.record("x", straddling, T0 + 30 * HOUR, T0 + 30 * HOUR, 5, 1)
    await runs.record("x", after, T0 + 50 * HOUR, T0 + 50 * HOUR, 0, 1, "HTTP 503")
    await runs.record("hackernews", before, T0 + 60 * HOUR, T0 + 60 * HOUR, 0, 1, "down")
    hn_day = await runs.record("hackernews", day, T0 + 25 * HOUR, T0 + 25 * HOUR, 0, 1, "down")

    assert await runs.latest_by_source(overlapping=day) == {"x": x_day, "hackernews": hn_day}
    assert await runs.latest_by_source(overlapping=day, ok_only=True) == {"x": x_day}
    assert await runs.latest_by_source(overlapping=Window(T0 + 72 * HOUR, T0 + 96 * HOUR)) == {}
    # Without a window, the latest run of each source whatever it covered.
    latest = await runs.latest_by_source()
    assert (latest["x"].window, latest["hackernews"].window) == (after, before)


async def test_no_runs(db: Database) -> None:
    assert await RunRepository(db).latest_by_source() == {}


async def test_naive_datetimes_are_refused(db: Database) -> None:
    window = Window(T0 - HOUR, T0)
    with pytest.raises(ValueError, match="started_at"):
        await RunRepository(db).record("x", window, dt.datetime(2025, 1, 1), T0, 0, 0)
