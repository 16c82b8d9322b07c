"""MentionRepository: idempotent upserts, metrics snapshots over time, windows, unresolved ids."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, func, select

from bot.core.models import Window
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.tables import mention_metrics, mention_papers, mentions
from tests.storage.factories import T0, make_mention, make_paper

HOUR = dt.timedelta(hours=1)
DAY = Window(T0 - 12 * HOUR, T0 + 12 * HOUR)


@pytest.fixture
def repo(db: Database) -> MentionRepository:
    return MentionRepository(db)


async def count(db: Database, table: object) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def test_same_fetch_twice_does_not_duplicate(repo: MentionRepository, db: Database) -> None:
    batch = [make_mention("1"), make_mention("2", arxiv_ids=("2503.00001", "2503.00002"))]
    assert await repo.upsert(batch, T0) == 2
    assert await repo.upsert(batch, T0) == 2
    assert await count(db, mentions) == 2
    assert await count(db, mention_papers) == 3
    assert await count(db, mention_metrics) == 2


async def test_refetch_at_the_same_time_updates_the_snapshot(repo: MentionRepository) -> None:
    await repo.upsert([make_mention(metrics={"likes": 5})], T0)
    await repo.upsert([make_mention(metrics={"likes": 7})], T0)
    assert await repo.history("x", "1") == [(T0, {"likes": 7})]


async def test_later_fetch_adds_a_snapshot_and_window_uses_the_latest(
    repo: MentionRepository, db: Database
) -> None:
    await repo.upsert([make_mention(metrics={"reposts": 1, "likes": 10})], T0)
    await repo.upsert([make_mention(metrics={"reposts": 4, "likes": 30})], T0 + 2 * HOUR)
    # An older fetch stored late must not win over the newer one.
    await repo.upsert([make_mention(metrics={"reposts": 2, "likes": 20})], T0 + HOUR)
    assert await count(db, mentions) == 1
    assert await repo.history("x", "1") == [
        (T0, {"reposts": 1, "likes": 10}),
        (T0 + HOUR, {"reposts": 2, "likes": 20}),
        (T0 + 2 * HOUR, {"reposts": 4, "likes": 30}),
    ]
    (stored,) = await repo.in_window(DAY)
    assert stored.fetched_at == T0 + 2 * HOUR
    assert stored.mention.metrics == {"reposts": 4, "likes": 30}
    assert stored.mention.metric("likes") == 30


async def test_round_trip_of_every_field(repo: MentionRepository) -> None:
    mention = make_mention(
        "abc",
        source="hackernews",
        arxiv_ids=("2503.00002", "2503.00001"),
        metrics={"points": 120, "comments": 0},
        text="Show HN: 🔥 ünïcödé",
    )
    await repo.upsert([mention], T0)
    (stored,) = await repo.in_window(DAY)
    assert stored.mention == mention
    assert stored.mention.created_at.tzinfo is not None
    # A metric of 0 is a count; a metric the source lacks is absent, not 0.
    assert stored.mention.metrics == {"points": 120, "comments": 0}


async def test_links_are_replaced_on_refetch(repo: MentionRepository) -> None:
    await repo.upsert([make_mention(arxiv_ids=("2503.00001", "2503.00002"))], T0)
    await repo.upsert([make_mention(arxiv_ids=("2503.00003",))], T0 + HOUR)
    (stored,) = await repo.in_window(DAY)
    assert stored.mention.arxiv_ids == ("2503.00003",)


async def test_window_is_half_open_and_filters_sources(repo: MentionRepository) -> None:
    await repo.upsert(
        [
            make_mention("start", created_at=DAY.start),
            make_mention("inside", created_at=T0, source="bluesky"),
            make_mention("end", created_at=DAY.end),
            make_mention("before", created_at=DAY.start - dt.timedelta(microseconds=1)),
        ],
        T0,
    )
    assert [s.mention.post_id for s in await repo.in_window(DAY)] == ["start", "inside"]
    only_x = await repo.in_window(DAY, sources=["x"])
    assert [s.mention.post_id for s in only_x] == ["start"]
    assert await repo.in_window(DAY, sources=[]) == []


async def test_window_compares_instants_across_offsets(repo: MentionRepository) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    # 20:30 in Tokyo is 11:30 UTC, inside the window; as text "20:30" it would look later.
    await repo.upsert([make_mention(created_at=dt.datetime(2025, 3, 1, 20, 30, tzinfo=tokyo))], T0)
    window = Window(T0 - HOUR, T0)
    (stored,) = await repo.in_window(window)
    assert stored.mention.created_at == T0 - dt.timedelta(minutes=30)


async def test_in_window_runs_a_constant_number_of_queries(
    repo: MentionRepository, db: Database
) -> None:
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
        stored = await repo.in_window(DAY)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert len(stored) == 50
    assert all(s.fetched_at == T0 + 2 * HOUR for s in stored)
    assert [s.mention.metric("likes") for s in stored] == [i + 2 for i in range(50)]
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2


async def test_unresolved_ids(repo: MentionRepository, db: Database) -> None:
    papers = PaperRepository(db)
    await repo.upsert(
        [
            make_mention("1", arxiv_ids=("2503.00001", "2503.00002")),
            make_mention("2", arxiv_ids=("2503.00002", "2503.00003", "2503.00004")),
        ],
        T0,
    )
    await papers.upsert([make_paper("2503.00001")], T0)
    await papers.mark_missing(["2503.00004"], "not found", T0)
    assert await repo.unresolved_ids() == ["2503.00002", "2503.00003"]
    assert await repo.unresolved_ids(limit=1) == ["2503.00002"]


async def test_missing_ids_are_retried_while_recently_linked(
    repo: MentionRepository, db: Database
) -> None:
    papers = PaperRepository(db)
    fresh, stale, both = "2503.00001", "2403.00002", "2503.00003"
    await repo.upsert(
        [
            make_mention("new", arxiv_ids=(fresh, both), created_at=T0),
            # A post from ten days ago: its bogus id is not worth asking about again.
            make_mention("old", arxiv_ids=(stale, both), created_at=T0 - 240 * HOUR),
        ],
        T0,
    )
    await papers.mark_missing([fresh, stale, both], "not found on arXiv", T0)

    assert await repo.unresolved_ids() == []  # without a clock, missing stays missing
    assert await repo.unresolved_ids(now=T0 + 5 * HOUR) == []  # checked too recently
    # Six hours on, the ids some recent post links are due again (one old post is not enough).
    assert await repo.unresolved_ids(now=T0 + 6 * HOUR) == [fresh, both]
    assert await repo.unresolved_ids(now=T0 + 6 * HOUR, limit=1) == [fresh]
    # Checked again and still missing: the six hours start over.
    await papers.mark_missing([fresh], "not found on arXiv", T0 + 6 * HOUR)
    assert await repo.unresolved_ids(now=T0 + 7 * HOUR) == [both]
    # Once every post linking them is more than three days old, nobody asks any more.
    assert await repo.unresolved_ids(now=T0 + 72 * HOUR) == [fresh, both]
    assert await repo.unresolved_ids(now=T0 + 72 * HOUR + dt.timedelta(seconds=1)) == []
    # The interval and the horizon are parameters.
    later = T0 + 7 * HOUR
    assert await repo.unresolved_ids(now=later, missing_retry=HOUR) == [fresh, both]
    assert await repo.unresolved_ids(now=later, recent=HOUR) == []


async def test_history_of_an_unknown_post_is_empty(repo: MentionRepository) -> None:
    assert await repo.history("x", "nope") == []


async def test_naive_created_at_is_refused(repo: MentionRepository) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await repo.upsert([make_mention(created_at=dt.datetime(2025, 3, 1))], T0)


async def test_many_mentions_are_batched(repo: MentionRepository, db: Database) -> None:
    assert await repo.upsert([make_mention(str(i)) for i in range(1234)], T0) == 1234
    assert await count(db, mentions) == 1234
    assert len(await repo.in_window(DAY)) == 1234
