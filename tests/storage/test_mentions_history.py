"""MentionRepository.paper_history: one paper's posts, every metrics snapshot, oldest first."""

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
PAPER, OTHER = "2503.00001", "2503.00002"


@pytest.fixture
def repo(db: Database) -> MentionRepository:
    return MentionRepository(db)


async def test_every_snapshot_of_every_post_oldest_first(repo: MentionRepository) -> None:
    await repo.upsert(
        [
            make_mention("a", metrics={"reposts": 1, "likes": 2}),
            make_mention("b", source="hackernews", metrics={"points": 5}, created_at=T0 + HOUR),
        ],
        T0 + HOUR,
    )
    await repo.upsert([make_mention("a", metrics={"reposts": 3, "likes": 9})], T0 + 3 * HOUR)
    # A fetch stored late still takes its place in time.
    await repo.upsert(
        [make_mention("b", source="hackernews", metrics={"points": 7}, created_at=T0 + HOUR)],
        T0 + 2 * HOUR,
    )

    history = await repo.paper_history(PAPER, DAY)

    assert [(m.source, m.post_id, dict(m.metrics), at) for m, at in history] == [
        ("x", "a", {"reposts": 1, "likes": 2}, T0 + HOUR),
        ("hackernews", "b", {"points": 5}, T0 + HOUR),
        ("hackernews", "b", {"points": 7}, T0 + 2 * HOUR),
        ("x", "a", {"reposts": 3, "likes": 9}, T0 + 3 * HOUR),
    ]
    assert all(at.tzinfo is not None for _, at in history)
    first, _ = history[0]
    assert first == make_mention("a", metrics={"reposts": 1, "likes": 2})


async def test_only_posts_linking_the_paper_created_in_the_window(
    repo: MentionRepository,
) -> None:
    await repo.upsert(
        [
            make_mention("both", arxiv_ids=(OTHER, PAPER)),
            make_mention("other", arxiv_ids=(OTHER,)),
            make_mention("start", created_at=DAY.start),
            make_mention("end", created_at=DAY.end),  # the window is half-open
            make_mention("before", created_at=DAY.start - dt.timedelta(microseconds=1)),
        ],
        T0,
    )
    # Fetched long after the window: the window is about when posts were made, not fetched.
    await repo.upsert([make_mention("start", created_at=DAY.start)], DAY.end + 48 * HOUR)

    history = await repo.paper_history(PAPER, DAY)

    assert [(m.post_id, at) for m, at in history] == [
        ("start", T0),
        ("both", T0),
        ("start", DAY.end + 48 * HOUR),
    ]
    # Every link of a post comes with it, in the post's order.
    assert history[1][0].arxiv_ids == (OTHER, PAPER)
    assert await repo.paper_history("2503.99999", DAY) == []


async def test_posts_without_a_snapshot_are_left_out(repo: MentionRepository) -> None:
    await repo.upsert_discovered([make_mention("seen", metrics={})], T0)
    await repo.upsert([make_mention("counted")], T0)
    assert [m.post_id for m, _ in await repo.paper_history(PAPER, DAY)] == ["counted"]


async def test_two_queries_whatever_the_number_of_posts(
    repo: MentionRepository, db: Database
) -> None:
    for fetch in range(4):
        await repo.upsert(
            [make_mention(str(i), metrics={"likes": i * fetch}) for i in range(120)],
            T0 + fetch * HOUR,
        )
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        history = await repo.paper_history(PAPER, DAY)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)

    assert len(history) == 4 * 120
    assert [at for _, at in history] == sorted(at for _, at in history)
    assert {m.metric("likes") for m, at in history if at == T0 + 3 * HOUR} == {
        i * 3 for i in range(120)
    }
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2
