"""StreamRepository: one durable cursor per stream (overwritten), gaps appended and listed."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from bot.sources.bluesky import micros
from bot.storage.engine import Database
from bot.storage.streams import StreamCursor, StreamGap, StreamRepository
from bot.storage.tables import stream_gaps, stream_state
from tests.storage.factories import T0

HOUR = dt.timedelta(hours=1)
JETSTREAM = "wss://jetstream1.us-east.bsky.network/subscribe"


@pytest.fixture
def repo(db: Database) -> StreamRepository:
    return StreamRepository(db)


async def rows(db: Database, table: object) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_no_cursor_before_the_first_save(repo: StreamRepository) -> None:
    assert await repo.cursor("bluesky") is None


async def test_a_saved_cursor_reads_back_exactly(repo: StreamRepository) -> None:
    # Microsecond cursors are 16 digits: beyond a 32-bit column and a float's exactness.
    cursor_us = micros(T0) + 123_457
    await repo.save_cursor("bluesky", cursor_us, JETSTREAM, T0 + HOUR)
    saved = await repo.cursor("bluesky")
    assert saved == StreamCursor(cursor_us, JETSTREAM, T0 + HOUR)
    assert saved.updated_at.tzinfo is not None
    assert saved.moment == T0 + dt.timedelta(microseconds=123_457)


async def test_saving_again_overwrites_the_one_row(repo: StreamRepository, db: Database) -> None:
    await repo.save_cursor("bluesky", micros(T0), JETSTREAM, T0)
    await repo.save_cursor("bluesky", micros(T0 + HOUR), None, T0 + HOUR)
    assert await repo.cursor("bluesky") == StreamCursor(micros(T0 + HOUR), None, T0 + HOUR)
    assert await rows(db, stream_state) == 1


async def test_streams_keep_separate_cursors(repo: StreamRepository) -> None:
    await repo.save_cursor("bluesky", micros(T0), JETSTREAM, T0)
    await repo.save_cursor("other", micros(T0 + HOUR), "wss://other", T0)
    assert (await repo.cursor("bluesky")).cursor_us == micros(T0)  # type: ignore[union-attr]
    assert (await repo.cursor("other")).cursor_us == micros(T0 + HOUR)  # type: ignore[union-attr]


async def test_a_cursor_survives_reopening_the_database(database_url: str) -> None:
    url = database_url
    async with Database.connect(url) as db:
        await StreamRepository(db).save_cursor("bluesky", micros(T0), JETSTREAM, T0)
    async with Database.connect(url) as db:
        assert (await StreamRepository(db).cursor("bluesky")) == StreamCursor(
            micros(T0), JETSTREAM, T0
        )


async def test_times_in_other_zones_are_stored_as_utc(repo: StreamRepository) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    await repo.save_cursor("bluesky", micros(T0), None, T0.astimezone(paris))
    saved = await repo.cursor("bluesky")
    assert saved is not None
    assert saved.updated_at == T0
    assert saved.updated_at.utcoffset() == dt.timedelta(0)


async def test_naive_datetimes_are_refused(repo: StreamRepository) -> None:
    naive = T0.replace(tzinfo=None)
    with pytest.raises(ValueError, match="now"):
        await repo.save_cursor("bluesky", micros(T0), None, naive)
    with pytest.raises(ValueError, match="start"):
        await repo.record_gap("bluesky", naive, T0, T0)
    with pytest.raises(ValueError, match="since"):
        await repo.gaps("bluesky", naive)


async def test_a_recorded_gap_is_returned_and_listed(repo: StreamRepository) -> None:
    gap = await repo.record_gap("bluesky", T0 - 40 * HOUR, T0 - 36 * HOUR, T0)
    assert gap == StreamGap("bluesky", T0 - 40 * HOUR, T0 - 36 * HOUR, T0)
    assert gap.hours == 4.0
    assert await repo.gaps("bluesky", T0 - HOUR) == [gap]


async def test_gaps_are_per_stream_since_a_moment_oldest_first(
    repo: StreamRepository, db: Database
) -> None:
    late = await repo.record_gap("bluesky", T0, T0 + HOUR, T0 + 3 * HOUR)
    early = await repo.record_gap("bluesky", T0 - HOUR, T0, T0 + 2 * HOUR)
    old = await repo.record_gap("bluesky", T0 - 9 * HOUR, T0 - 8 * HOUR, T0 - HOUR)
    await repo.record_gap("other", T0, T0 + HOUR, T0 + 2 * HOUR)
    assert await repo.gaps("bluesky", T0) == [early, late]
    # ``since`` is inclusive.
    assert await repo.gaps("bluesky", T0 + 3 * HOUR) == [late]
    assert await repo.gaps("bluesky", T0 - 2 * HOUR) == [old, early, late]
    assert await repo.gaps("bluesky", T0 + 4 * HOUR) == []
    assert await repo.gaps("nothing", T0 - 9 * HOUR) == []
    assert await rows(db, stream_gaps) == 4


async def test_the_same_gap_twice_is_two_detections(repo: StreamRepository) -> None:
    # Each restart that finds the cursor too old is its own event for operators.
    first = await repo.record_gap("bluesky", T0, T0 + HOUR, T0 + 2 * HOUR)
    second = await repo.record_gap("bluesky", T0, T0 + HOUR, T0 + 2 * HOUR)
    assert await repo.gaps("bluesky", T0) == [first, second]
