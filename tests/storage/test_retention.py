"""MentionRepository.thin_snapshots: old metric snapshots thinned to each post's last reading of
each UTC day, in bounded steps, without changing what scores and charts read."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import event, func, select

from bot.core.models import Window
from bot.core.series import score_series, total_series
from bot.services.digests import value_at
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.tables import mention_metrics
from tests.storage.factories import make_mention

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
D1 = dt.datetime(2025, 1, 10, tzinfo=UTC)  # a UTC midnight
WEIGHTS = {"x": {"reposts": 1.0, "likes": 1.0}, "hackernews": {"points": 1.0}}


@pytest.fixture
def repo(db: Database) -> MentionRepository:
    return MentionRepository(db)


async def snapshot(repo: MentionRepository, post: str, at: dt.datetime, likes: int) -> None:
    """One reading of ``post`` at ``at`` (cumulative: the counts only grow)."""
    await repo.upsert(
        [make_mention(post, created_at=D1 - DAY, metrics={"reposts": 0, "likes": likes})], at
    )


async def times(repo: MentionRepository, post: str) -> list[dt.datetime]:
    return [at for at, _ in await repo.history("x", post)]


async def rows(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(mention_metrics))).scalar())


async def test_each_old_day_keeps_each_posts_last_reading(repo: MentionRepository) -> None:
    a_day1 = [D1 + 1 * HOUR, D1 + 9 * HOUR, D1 + 23 * HOUR + 59 * dt.timedelta(minutes=1)]
    a_day2 = [D1 + DAY + 2 * HOUR, D1 + DAY + 3 * HOUR]
    b_day1 = [D1 + 5 * HOUR]  # alone on its day: kept
    recent = [D1 + 2 * DAY + h * HOUR for h in range(0, 24, 6)]  # the day `before` falls in
    for likes, at in enumerate(a_day1 + a_day2 + recent):
        await snapshot(repo, "a", at, likes)
    await snapshot(repo, "b", b_day1[0], 1)

    removed = await repo.thin_snapshots(D1 + 2 * DAY + 12 * HOUR)

    # Days wholly before `before` keep each post's last reading; the day it falls in is whole.
    assert removed == 2 + 1
    assert await times(repo, "a") == [a_day1[-1], a_day2[-1], *recent]
    assert await times(repo, "b") == b_day1
    history = await repo.history("x", "a")
    assert history[0][1] == {"reposts": 0, "likes": 2}  # the day's last counts, not its first
    # Again: nothing left to thin.
    assert await repo.thin_snapshots(D1 + 2 * DAY + 12 * HOUR) == 0


async def test_nothing_to_thin(repo: MentionRepository, db: Database) -> None:
    assert await repo.thin_snapshots(D1) == 0  # no snapshot at all
    for h in range(5):
        await snapshot(repo, "a", D1 + h * HOUR, h)
    assert await repo.thin_snapshots(D1 + 12 * HOUR) == 0  # its day is not over at the cutoff
    assert await rows(db) == 5
    with pytest.raises(ValueError, match="timezone-aware"):
        await repo.thin_snapshots(dt.datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="at least 1"):
        await repo.thin_snapshots(D1, batch_rows=0)


async def busy_history(repo: MentionRepository, seed: int = 3) -> None:
    """Forty posts on two sources linking three papers, each read at irregular times over five
    days (cumulative counts), some on only one day, some read by several fetches at once."""
    rng = random.Random(seed)
    fetches = sorted(D1 + dt.timedelta(minutes=rng.randrange(1, 5 * 24 * 60)) for _ in range(60))
    posts = [
        make_mention(
            f"p{i}",
            source="x" if i % 3 else "hackernews",
            arxiv_ids=(f"2501.0000{i % 3}",),
            created_at=D1 - DAY + i * HOUR,
            metrics={},
        )
        for i in range(40)
    ]
    counts = {p.post_id: 0 for p in posts}
    for at in fetches:
        seen = rng.sample(posts, rng.randint(1, 12))
        batch = []
        for post in seen:
            counts[post.post_id] += rng.randint(0, 30)
            metrics = (
                {"reposts": counts[post.post_id] // 3, "likes": counts[post.post_id]}
                if post.source == "x"
                else {"points": counts[post.post_id]}
            )
            batch.append(
                make_mention(
                    post.post_id,
                    source=post.source,
                    arxiv_ids=post.arxiv_ids,
                    created_at=post.created_at,
                    metrics=metrics,
                )
            )
        await repo.upsert(batch, at)


async def what_scores_read(repo: MentionRepository) -> dict[str, Any]:
    """What rankings and charts are made of: each post's latest snapshot, the ranking as of
    each UTC midnight, and each paper's chart (per source and total) at each midnight."""
    window = Window(D1 - 2 * DAY, D1 + 7 * DAY)
    midnights = [D1 + n * DAY for n in range(7)]
    seen: dict[str, Any] = {
        "latest": [(s.mention, s.fetched_at) for s in await repo.in_window(window)],
    }
    for midnight in midnights:
        stored = await repo.in_window(window, as_of=midnight)
        seen[f"as of {midnight:%d}"] = [(s.mention, s.fetched_at) for s in stored]
    for paper in ("2501.00000", "2501.00001", "2501.00002"):
        series = score_series(await repo.paper_history(paper, window), WEIGHTS)
        total = total_series(series)
        seen[paper] = {
            "end": total[-1],
            "midnights": [value_at(total, m) for m in midnights],
            "sources": {
                source: [value_at(points, m) for m in midnights]
                for source, points in series.items()
            },
        }
    return seen


async def test_scores_and_charts_read_the_same_after_thinning(
    repo: MentionRepository, db: Database
) -> None:
    await busy_history(repo)
    before = await what_scores_read(repo)
    snapshots = await rows(db)

    removed = await repo.thin_snapshots(D1 + 6 * DAY)

    assert removed > snapshots / 3  # most readings of each day went
    assert await rows(db) == snapshots - removed
    assert await what_scores_read(repo) == before
    # One reading per post per UTC day is left.
    async with db.read() as conn:
        kept = [
            (m, at.date())
            for m, at in await conn.execute(
                select(mention_metrics.c.mention_id, mention_metrics.c.fetched_at)
            )
        ]
    assert len(kept) == len(set(kept))


async def test_steps_are_bounded_and_add_up_to_one_pass(
    repo: MentionRepository, db: Database
) -> None:
    await busy_history(repo)
    whole = await what_scores_read(repo)
    cutoff = D1 + 6 * DAY
    # The most readings one post has to lose: a step may take all of its last post's.
    async with db.read() as conn:
        readings = (
            await conn.execute(
                select(mention_metrics.c.mention_id, mention_metrics.c.fetched_at).where(
                    mention_metrics.c.fetched_at < cutoff
                )
            )
        ).all()
    per_post: dict[int, list[dt.date]] = {}
    for mention_id, at in readings:
        per_post.setdefault(mention_id, []).append(at.date())
    most = max(len(days) - len(set(days)) for days in per_post.values())
    deleted: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM MENTION_METRICS"):
            deleted.append(cursor.rowcount)

    event.listen(db.engine.sync_engine, "after_cursor_execute", count)
    try:
        removed = await repo.thin_snapshots(cutoff, batch_rows=5, span_ids=7)
    finally:
        event.remove(db.engine.sync_engine, "after_cursor_execute", count)

    assert sum(deleted) == removed
    assert len(deleted) > removed // (5 + most) > 1  # many short write transactions, not one
    assert max(deleted) <= 5 + most
    assert await what_scores_read(repo) == whole


async def test_keep_going_stops_between_steps_and_the_next_run_goes_on(
    repo: MentionRepository, db: Database
) -> None:
    await busy_history(repo)
    asked = 0

    def twice() -> bool:
        nonlocal asked
        asked += 1
        return asked <= 2

    first = await repo.thin_snapshots(D1 + 6 * DAY, batch_rows=5, span_ids=3, keep_going=twice)
    assert asked == 3  # two steps, then asked again and stopped
    assert first > 0
    rest = await repo.thin_snapshots(D1 + 6 * DAY)
    assert rest > 0

    fresh = await rows(db)
    await repo.thin_snapshots(D1 + 6 * DAY)
    assert await rows(db) == fresh  # the two runs did all there was


@pytest.mark.postgresql_only
async def test_days_are_utc_days_whatever_the_sessions_time_zone(
    repo: MentionRepository, db: Database
) -> None:
    """A PostgreSQL session in UTC+14 sees 11:00 UTC as the next local day: the thinning still
    cuts days at UTC midnight."""

    def far_east(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.run_async(lambda conn: conn.execute("SET TIME ZONE 'Pacific/Kiritimati'"))

    await db.engine.dispose()
    event.listen(db.engine.sync_engine, "connect", far_east)
    try:
        # 09:00 and 11:00 UTC are one UTC day (two local days in Kiritimati, 23:00 and 01:00).
        await snapshot(repo, "a", D1 + 9 * HOUR, 1)
        await snapshot(repo, "a", D1 + 11 * HOUR, 2)
        # 23:00 UTC and 01:00 the next day UTC are two UTC days (one local day, 13:00 and 15:00).
        await snapshot(repo, "a", D1 + 23 * HOUR, 3)
        await snapshot(repo, "a", D1 + 25 * HOUR, 4)
        async with db.read() as conn:
            zone = (await conn.exec_driver_sql("SHOW TIME ZONE")).scalar()
        assert zone == "Pacific/Kiritimati"

        assert await repo.thin_snapshots(D1 + 3 * DAY) == 2
        assert await times(repo, "a") == [D1 + 23 * HOUR, D1 + 25 * HOUR]
    finally:
        event.remove(db.engine.sync_engine, "connect", far_east)
        await db.engine.dispose()
