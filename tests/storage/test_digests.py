"""DigestRepository: the exactly-once claim, crash recovery, outcomes and recently posted papers."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot.core.errors import StorageError
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.guilds import GuildRepository
from tests.storage.factories import T0

GUILD = 42
DAY = dt.date(2025, 3, 1)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
async def repo(db: Database) -> DigestRepository:
    await GuildRepository(db).ensure(GUILD)
    return DigestRepository(db, stale_after=10 * MINUTE, max_attempts=3)


async def test_begin_claims_once(repo: DigestRepository) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    assert (record.status, record.attempts, record.started_at) == ("sending", 1, T0)
    assert record.message_ids == ()
    assert not record.resuming
    assert await repo.begin(GUILD, DAY, now=T0 + MINUTE) is None
    # Another day is another digest.
    assert await repo.begin(GUILD, DAY + dt.timedelta(days=1), now=T0) is not None


@pytest.mark.parametrize("status", ["sent", "empty"])
async def test_finished_digests_are_never_claimed_again(
    repo: DigestRepository, status: str
) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    done = await repo.finish(record.id, status, paper_count=3, now=T0 + MINUTE)
    assert (done.status, done.paper_count, done.finished_at) == (status, 3, T0 + MINUTE)
    assert done.done
    assert await repo.begin(GUILD, DAY, now=T0 + dt.timedelta(days=3)) is None


async def test_failed_digests_are_retried_until_max_attempts(repo: DigestRepository) -> None:
    for attempt in range(1, 4):
        record = await repo.begin(GUILD, DAY, now=T0 + attempt * MINUTE)
        assert record is not None
        assert record.attempts == attempt
        assert record.error is None  # the previous error is cleared on a new claim
        failed = await repo.finish(record.id, "failed", error="HTTP 503")
        assert (failed.status, failed.error) == ("failed", "HTTP 503")
    assert await repo.begin(GUILD, DAY, now=T0 + dt.timedelta(hours=1)) is None


async def test_planned_digest_is_claimed(repo: DigestRepository) -> None:
    planned = await repo.plan(GUILD, DAY)
    assert (planned.status, planned.attempts) == ("pending", 0)
    assert await repo.plan(GUILD, DAY) == planned
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    assert record.id == planned.id
    assert (record.status, record.attempts) == ("sending", 1)


async def test_crash_while_sending_resumes_after_the_last_message(
    db: Database, repo: DigestRepository
) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    await repo.add_message(record.id, 1111, now=T0 + MINUTE)
    await repo.add_message(record.id, 2222, now=T0 + 2 * MINUTE)
    await repo.add_message(record.id, 2222, now=T0 + 2 * MINUTE)  # recorded twice: kept once
    # The process dies here: no finish(). A restart builds a new repository on the database.
    restarted = DigestRepository(db, stale_after=10 * MINUTE)
    # Soon after the last sign of life the sender may still be alive: do not post.
    assert await restarted.begin(GUILD, DAY, now=T0 + 5 * MINUTE) is None
    # Once the heartbeat is stale the digest is claimed again, with what was already posted.
    resumed = await restarted.begin(GUILD, DAY, now=T0 + 13 * MINUTE)
    assert resumed is not None
    assert resumed.id == record.id
    assert resumed.attempts == 2
    assert resumed.resuming
    assert resumed.message_ids == (1111, 2222)
    await restarted.add_message(resumed.id, 3333, now=T0 + 14 * MINUTE)
    sent = await restarted.finish(resumed.id, "sent", paper_count=10, now=T0 + 15 * MINUTE)
    assert sent.message_ids == (1111, 2222, 3333)
    assert await restarted.begin(GUILD, DAY, now=T0 + dt.timedelta(days=1)) is None


async def test_restart_of_a_single_process_bot_resumes_at_once(
    db: Database, repo: DigestRepository
) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    await repo.add_message(record.id, 1111, now=T0 + MINUTE)
    restarted_at = T0 + 2 * MINUTE
    restarted = DigestRepository(db)
    assert await restarted.release_abandoned(restarted_at) == 1
    resumed = await restarted.begin(GUILD, DAY, now=restarted_at)
    assert resumed is not None
    assert resumed.message_ids == (1111,)
    # The new claim is alive: releasing again with the same start time leaves it alone.
    assert await restarted.release_abandoned(restarted_at) == 0
    assert await restarted.begin(GUILD, DAY, now=restarted_at + MINUTE) is None


async def test_heartbeat_keeps_a_slow_send_alive(repo: DigestRepository) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    for minute in range(5, 60, 5):
        await repo.add_message(record.id, minute, now=T0 + minute * MINUTE)
        assert await repo.begin(GUILD, DAY, now=T0 + (minute + 9) * MINUTE) is None


async def test_explicit_heartbeat(repo: DigestRepository) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    assert await repo.heartbeat(record.id, now=T0 + 9 * MINUTE) is True
    assert await repo.begin(GUILD, DAY, now=T0 + 15 * MINUTE) is None
    await repo.finish(record.id, "sent")
    assert await repo.heartbeat(record.id) is False  # nothing being sent any more


async def test_a_send_that_keeps_crashing_stops_being_retried(repo: DigestRepository) -> None:
    now = T0
    for attempt in (1, 2, 3):
        record = await repo.begin(GUILD, DAY, now=now)
        assert record is not None
        assert record.attempts == attempt
        now += 11 * MINUTE  # crashed: no finish, heartbeat goes stale
    assert await repo.begin(GUILD, DAY, now=now) is None
    stuck = await repo.get(GUILD, DAY)
    assert stuck is not None
    assert (stuck.status, stuck.attempts) == ("sending", 3)


async def test_concurrent_begins_claim_exactly_once(file_db: Database) -> None:
    await GuildRepository(file_db).ensure(GUILD)
    repos = [DigestRepository(file_db) for _ in range(8)]
    results = await asyncio.gather(*(r.begin(GUILD, DAY, now=T0) for r in repos))
    assert sum(r is not None for r in results) == 1


async def test_concurrent_begins_from_separate_engines_claim_exactly_once(
    migrated_url: str,
) -> None:
    """Two processes (two engines, two pools) racing for one digest: one claim in all."""
    async with Database.connect(migrated_url) as first, Database.connect(migrated_url) as second:
        await GuildRepository(first).ensure(GUILD)
        repos = [DigestRepository(db) for db in (first, second) for _ in range(4)]
        results = await asyncio.gather(*(r.begin(GUILD, DAY, now=T0) for r in repos))
        assert sum(r is not None for r in results) == 1


async def test_finish_rejects_unknown_status_and_id(repo: DigestRepository) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    with pytest.raises(ValueError, match="sent"):
        await repo.finish(record.id, "sending")
    with pytest.raises(StorageError, match="no digest"):
        await repo.finish(9999, "sent")
    with pytest.raises(StorageError, match="no digest"):
        await repo.add_message(9999, 1)


async def test_begin_for_an_unknown_guild_is_a_storage_error(repo: DigestRepository) -> None:
    with pytest.raises(StorageError, match=r"(?i)foreign key"):
        await repo.begin(7, DAY, now=T0)


async def test_get_and_latest(repo: DigestRepository) -> None:
    assert await repo.latest(GUILD) is None
    first = await repo.begin(GUILD, DAY, now=T0)
    second = await repo.begin(GUILD, DAY + dt.timedelta(days=1), now=T0)
    assert first is not None
    assert second is not None
    assert await repo.get(GUILD, DAY) == first
    assert await repo.get(GUILD, DAY - dt.timedelta(days=1)) is None
    assert await repo.latest(GUILD) == second


async def test_recently_posted(repo: DigestRepository) -> None:
    old = await repo.begin(GUILD, DAY, now=T0)
    new = await repo.begin(GUILD, DAY + dt.timedelta(days=6), now=T0)
    assert old is not None
    assert new is not None
    await repo.record_papers(old.id, GUILD, ["2503.00001", "2503.00002"], T0)
    later = T0 + dt.timedelta(days=6)
    await repo.record_papers(new.id, GUILD, ["2503.00003", "2503.00002"], later)
    await repo.record_papers(new.id, GUILD, ["2503.00003", "2503.00002"], later)  # resumed
    await repo.finish(old.id, "sent", paper_count=2, now=T0)
    await repo.finish(new.id, "sent", paper_count=2, now=later)
    assert await repo.recently_posted(GUILD, T0) == {"2503.00001", "2503.00002", "2503.00003"}
    assert await repo.recently_posted(GUILD, T0 + MINUTE) == {"2503.00002", "2503.00003"}
    assert await repo.recently_posted(GUILD, later + MINUTE) == set()
    assert await repo.recently_posted(GUILD + 1, T0) == set()


async def test_recently_posted_counts_only_digests_members_saw(repo: DigestRepository) -> None:
    async def digest(offset: int, arxiv_id: str, *, message: bool, status: str | None) -> None:
        record = await repo.begin(GUILD, DAY + dt.timedelta(days=offset), now=T0)
        assert record is not None
        await repo.record_papers(record.id, GUILD, [arxiv_id], T0)
        if message:
            await repo.add_message(record.id, 100 + offset, now=T0)
        if status is not None:
            await repo.finish(record.id, status, now=T0)

    await digest(0, "2503.00001", message=True, status="sent")
    await digest(1, "2503.00002", message=False, status="failed")  # refused before posting
    await digest(2, "2503.00003", message=True, status="failed")  # posted in part, then failed
    await digest(3, "2503.00004", message=False, status=None)  # planned, still being sent
    assert await repo.recently_posted(GUILD, T0) == {"2503.00001", "2503.00003"}


async def test_a_restart_leaves_alone_a_send_that_is_still_beating(
    db: Database, repo: DigestRepository
) -> None:
    """An overlapping deploy: the old process still sends (it beat 30 s ago) when the new one
    starts; only two minutes of silence make the digest the new process's to resume."""
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    await repo.heartbeat(record.id, now=T0 + 10 * MINUTE)
    started = T0 + 10 * MINUTE + dt.timedelta(seconds=30)
    new = DigestRepository(db)
    assert await new.release_abandoned(started, now=started) == 0
    assert await new.begin(GUILD, DAY, now=started) is None
    assert await new.release_abandoned(started, now=started + 2 * MINUTE) == 1
    resumed = await new.begin(GUILD, DAY, now=started + 2 * MINUTE)
    assert resumed is not None
    assert resumed.attempts == 2


async def test_planned_papers_come_back_in_rank_order(repo: DigestRepository) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    await repo.record_papers(record.id, GUILD, ["2503.00009", "2503.00001", "2503.00005"], T0)
    assert await repo.planned(record.id) == ["2503.00009", "2503.00001", "2503.00005"]
    assert await repo.planned(9999) == []


async def test_claim_records_the_papers_with_the_claim_and_keeps_an_earlier_plan(
    repo: DigestRepository,
) -> None:
    claimed = await repo.claim(GUILD, DAY, papers=["2501.00002", "2501.00001"], now=T0)
    assert claimed is not None
    record, planned = claimed
    assert planned == ["2501.00002", "2501.00001"]
    assert await repo.planned(record.id) == planned
    assert await repo.claim(GUILD, DAY, papers=["2501.00003"], now=T0) is None  # live claim
    await repo.finish(record.id, "failed", error="HTTP 503", now=T0 + MINUTE)
    # A retry keeps what the first attempt planned (it may have posted some of it).
    again = await repo.claim(GUILD, DAY, papers=["2501.00003"], now=T0 + 2 * MINUTE)
    assert again is not None
    assert again[0].attempts == 2
    assert again[1] == ["2501.00002", "2501.00001"]
    assert await repo.planned(record.id) == ["2501.00002", "2501.00001"]


async def test_a_claim_without_papers_plans_them_on_a_later_attempt(repo: DigestRepository) -> None:
    claimed = await repo.claim(GUILD, DAY, now=T0)
    assert claimed is not None
    assert claimed[1] == []
    await repo.finish(claimed[0].id, "failed", error="could not build", now=T0)
    again = await repo.claim(GUILD, DAY, papers=["2501.00009"], now=T0 + MINUTE)
    assert again is not None
    assert again[1] == ["2501.00009"]


async def test_finish_records_the_last_messages_with_the_outcome(repo: DigestRepository) -> None:
    record = await repo.begin(GUILD, DAY, now=T0)
    assert record is not None
    await repo.add_message(record.id, 1111, now=T0)
    done = await repo.finish(record.id, "sent", paper_count=2, message_ids=[1111, 2222, 2222])
    assert done.message_ids == (1111, 2222)
    assert done.status == "sent"
    # Without message_ids, what was recorded stays.
    other = await repo.begin(GUILD, DAY + dt.timedelta(days=1), now=T0)
    assert other is not None
    await repo.add_message(other.id, 3333, now=T0)
    failed = await repo.finish(other.id, "failed", error="HTTP 503")
    assert failed.message_ids == (3333,)


async def test_states_reads_every_guilds_digest_of_some_days_at_once(
    db: Database, repo: DigestRepository
) -> None:
    await GuildRepository(db).ensure(GUILD + 1)
    first = await repo.begin(GUILD, DAY, now=T0)
    assert first is not None
    await repo.finish(first.id, "sent", now=T0)
    await repo.begin(GUILD + 1, DAY, now=T0)
    await repo.begin(GUILD, DAY + dt.timedelta(days=5), now=T0)  # another day: not asked
    assert await repo.states([DAY, DAY]) == {(GUILD, DAY): "sent", (GUILD + 1, DAY): "sending"}
    assert await repo.states([]) == {}
