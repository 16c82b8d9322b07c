"""MentionRepository.in_window(as_of=…): the mentions of a window as their metrics stood then."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from bot.core.models import Window
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from tests.storage.factories import T0, make_mention

HOUR = dt.timedelta(hours=1)
DAY = Window(T0 - 12 * HOUR, T0 + 12 * HOUR)


@pytest.fixture
def repo(db: Database) -> MentionRepository:
    return MentionRepository(db)


async def three_fetches(repo: MentionRepository) -> None:
    await repo.upsert([make_mention(metrics={"reposts": 1, "likes": 10})], T0)
    await repo.upsert([make_mention(metrics={"reposts": 4, "likes": 30})], T0 + 2 * HOUR)
    # Stored late, fetched in between: as_of goes by when it was fetched.
    await repo.upsert([make_mention(metrics={"reposts": 2, "likes": 20})], T0 + HOUR)


async def test_each_mention_carries_its_latest_snapshot_by_then(repo: MentionRepository) -> None:
    await three_fetches(repo)
    (then,) = await repo.in_window(DAY, as_of=T0 + 90 * dt.timedelta(minutes=1))
    assert then.fetched_at == T0 + HOUR
    assert then.mention.metrics == {"reposts": 2, "likes": 20}
    (now,) = await repo.in_window(DAY)
    assert now.fetched_at == T0 + 2 * HOUR
    assert now.mention.metrics == {"reposts": 4, "likes": 30}


async def test_a_snapshot_taken_at_as_of_counts(repo: MentionRepository) -> None:
    await three_fetches(repo)
    (stored,) = await repo.in_window(DAY, as_of=T0)
    assert (stored.fetched_at, stored.mention.metric("likes")) == (T0, 10)
    (stored,) = await repo.in_window(DAY, as_of=T0 + 5 * HOUR)
    assert (stored.fetched_at, stored.mention.metric("likes")) == (T0 + 2 * HOUR, 30)


async def test_mentions_without_a_snapshot_by_then_are_left_out(repo: MentionRepository) -> None:
    await repo.upsert([make_mention("early", metrics={"likes": 1})], T0 - HOUR)
    await repo.upsert([make_mention("late", metrics={"likes": 2})], T0 + HOUR)
    # Found on a stream, never refreshed: no snapshot at all.
    await repo.upsert_discovered([make_mention("streamed")], T0 - 2 * HOUR)
    assert [s.mention.post_id for s in await repo.in_window(DAY)] == ["early", "late", "streamed"]
    then = await repo.in_window(DAY, as_of=T0)
    assert [s.mention.post_id for s in then] == ["early"]
    assert await repo.in_window(DAY, as_of=T0 - 2 * HOUR) == []


async def test_as_of_compares_instants_and_combines_with_sources(repo: MentionRepository) -> None:
    await repo.upsert([make_mention("x1", metrics={"likes": 1})], T0)
    await repo.upsert([make_mention("x1", metrics={"likes": 9})], T0 + HOUR)
    await repo.upsert([make_mention("hn", source="hackernews", metrics={"points": 5})], T0)
    tokyo = dt.timezone(dt.timedelta(hours=9))
    # 21:30 in Tokyo is 12:30 UTC: between the two fetches of x1.
    as_of = dt.datetime(2025, 3, 1, 21, 30, tzinfo=tokyo)
    (stored,) = await repo.in_window(DAY, sources=["x"], as_of=as_of)
    assert (stored.mention.post_id, stored.mention.metric("likes")) == ("x1", 1)
    assert len(await repo.in_window(DAY, as_of=as_of)) == 2


async def test_naive_as_of_is_refused(repo: MentionRepository) -> None:
    with pytest.raises(ValueError, match="as_of"):
        await repo.in_window(DAY, as_of=dt.datetime(2025, 3, 1, 12, 0))


async def test_as_of_still_runs_two_queries(repo: MentionRepository, db: Database) -> None:
    for fetch in range(3):
        await repo.upsert(
            [make_mention(str(i), metrics={"likes": i + fetch}) for i in range(50)],
            T0 + fetch * HOUR,
        )
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        stored = await repo.in_window(DAY, as_of=T0 + HOUR)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert [s.mention.metric("likes") for s in stored] == [i + 1 for i in range(50)]
    assert all(s.fetched_at == T0 + HOUR for s in stored)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2
