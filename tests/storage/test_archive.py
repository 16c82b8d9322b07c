"""The public archive's storage on both backends: opt-in and slugs, the sent digests the pages
show, and migration 0009 up and down (from empty and from 0008 with rows)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from bot.core.models import DigestState
from bot.storage.archive import ArchiveRepository
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.guilds import GuildRepository
from bot.storage.mentions import MentionRepository
from tests.storage.factories import make_mention
from tests.storage.test_migrations import AT, column_names, stamped, table_names

NOW = dt.datetime(2025, 3, 2, 10, 0, tzinfo=dt.UTC)


async def sent(db: Database, guild_id: int, day: dt.date, papers: list[str], status: str) -> None:
    await GuildRepository(db).ensure(guild_id)
    log = DigestRepository(db)
    claimed = await log.claim(guild_id, day, papers=papers, now=NOW, owner="t")
    assert claimed is not None
    await log.finish(claimed[0].id, status, paper_count=len(papers), now=NOW)


# -- opt-in and slugs ---------------------------------------------------------------------------


async def test_a_new_server_is_unpublished_and_has_no_slug(db: Database) -> None:
    repo = ArchiveRepository(db)
    state = await repo.state(1)
    assert (state.enabled, state.slug) == (False, None)
    await GuildRepository(db).ensure(1)
    assert (await repo.state(1)).enabled is False
    config = await GuildRepository(db).get(1)
    assert config is not None
    assert (config.archive, config.archive_slug) == (False, None)


async def test_opting_in_makes_the_slug_once_and_keeps_it_when_off(db: Database) -> None:
    repo = ArchiveRepository(db)
    on = await repo.set_enabled(1, True, slug_base="ml-club")
    assert (on.enabled, on.slug) == (True, "ml-club")
    assert await repo.published("ml-club") == 1
    off = await repo.set_enabled(1, False)
    assert (off.enabled, off.slug) == (False, "ml-club")
    assert await repo.published("ml-club") is None  # off: as unknown as a slug never made
    # Renamed server, back on: the same address as before.
    again = await repo.set_enabled(1, True, slug_base="renamed-club")
    assert again.slug == "ml-club"
    config = await GuildRepository(db).get(1)
    assert config is not None
    assert (config.archive, config.archive_slug) == (True, "ml-club")


async def test_slugs_are_deduplicated_with_a_suffix_even_against_unpublished_ones(
    db: Database,
) -> None:
    repo = ArchiveRepository(db)
    assert (await repo.set_enabled(1, True, slug_base="lab")).slug == "lab"
    await repo.set_enabled(1, False)  # its slug stays reserved
    assert (await repo.set_enabled(2, True, slug_base="lab")).slug == "lab-2"
    assert (await repo.set_enabled(3, True, slug_base="lab")).slug == "lab-3"
    # A name that merely starts the same is another slug.
    assert (await repo.set_enabled(4, True, slug_base="lab-2")).slug == "lab-2-2"
    assert (await repo.set_enabled(5, True, slug_base="labs")).slug == "labs"
    assert await repo.published("lab") is None
    assert await repo.published("lab-3") == 3


async def test_two_rows_cannot_share_a_slug(db: Database) -> None:
    from bot.core.errors import StorageError

    await ArchiveRepository(db).set_enabled(1, True, slug_base="same")
    await GuildRepository(db).ensure(2)
    with pytest.raises(StorageError):
        async with db.write() as conn:
            await conn.execute(text("UPDATE guilds SET archive_slug = 'same' WHERE guild_id = 2"))


@pytest.mark.parametrize("bad", ["", "UPPER", "with space", "a--b", "-a", "a%", "a_b", "x" * 49])
async def test_a_bad_slug_base_is_refused(db: Database, bad: str) -> None:
    with pytest.raises(ValueError, match="slug_base"):
        await ArchiveRepository(db).set_enabled(1, True, slug_base=bad)


async def test_turning_on_needs_a_slug_base(db: Database) -> None:
    with pytest.raises(ValueError, match="slug_base"):
        await ArchiveRepository(db).set_enabled(1, True)


# -- what was sent -------------------------------------------------------------------------------


async def test_only_sent_digests_are_listed_newest_first_and_paged(db: Database) -> None:
    repo = ArchiveRepository(db)
    days = [dt.date(2025, 3, d) for d in range(1, 8)]
    for day in days:
        await sent(db, 1, day, [f"2503.0000{day.day}"], DigestState.SENT)
    await sent(db, 1, dt.date(2025, 3, 8), ["2503.00008"], DigestState.FAILED)
    await sent(db, 1, dt.date(2025, 3, 9), [], DigestState.EMPTY)
    await sent(db, 2, dt.date(2025, 3, 1), ["2503.00001"], DigestState.SENT)  # another server
    await DigestRepository(db).plan(1, dt.date(2025, 3, 10))  # pending

    first, total = await repo.sent(1, limit=3)
    assert total == 7
    assert [d.day for d in first] == days[::-1][:3]
    assert first[0].paper_count == 1
    assert first[0].papers == ()  # a listing doesn't carry them
    last, _ = await repo.sent(1, limit=3, offset=6)
    assert [d.day for d in last] == [days[0]]
    assert await repo.sent(9, limit=3) == ([], 0)


async def test_a_sent_digest_has_its_papers_in_rank_order(db: Database) -> None:
    repo = ArchiveRepository(db)
    day = dt.date(2025, 3, 2)
    await sent(db, 1, day, ["2503.00003", "2503.00001", "2503.00002"], DigestState.SENT)
    found = await repo.sent_on(1, day)
    assert found is not None
    assert found.papers == ("2503.00003", "2503.00001", "2503.00002")
    assert found.chosen_at == NOW
    assert found.finished_at == NOW
    assert await repo.sent_on(2, day) is None
    assert await repo.sent_on(1, day + dt.timedelta(days=1)) is None
    await sent(db, 1, day + dt.timedelta(days=1), ["2503.00009"], DigestState.FAILED)
    assert await repo.sent_on(1, day + dt.timedelta(days=1)) is None  # failed: not shown


async def test_recent_digests_carry_their_papers(db: Database) -> None:
    repo = ArchiveRepository(db)
    for d in range(1, 5):
        await sent(db, 1, dt.date(2025, 3, d), [f"2503.0000{d}", "2503.00009"], "sent")
    recent = await repo.recent(1, 3)
    assert [r.day.day for r in recent] == [4, 3, 2]
    assert recent[0].papers == ("2503.00004", "2503.00009")
    assert await repo.recent(2, 3) == []


async def test_the_neighbours_of_a_day_are_the_nearest_sent_digests(db: Database) -> None:
    repo = ArchiveRepository(db)
    for d in (1, 4, 9):
        await sent(db, 1, dt.date(2025, 3, d), ["2503.00001"], DigestState.SENT)
    await sent(db, 1, dt.date(2025, 3, 6), ["2503.00001"], DigestState.FAILED)
    assert await repo.sent_around(1, dt.date(2025, 3, 4)) == (
        dt.date(2025, 3, 1),
        dt.date(2025, 3, 9),
    )
    assert await repo.sent_around(1, dt.date(2025, 3, 1)) == (None, dt.date(2025, 3, 4))
    assert await repo.sent_around(2, dt.date(2025, 3, 1)) == (None, None)


async def test_the_first_post_is_the_oldest_mention(db: Database) -> None:
    repo = ArchiveRepository(db)
    assert await repo.first_post_at() is None
    early = dt.datetime(2025, 2, 27, 23, 0, tzinfo=dt.UTC)
    await MentionRepository(db).upsert(
        [make_mention("1"), make_mention("2", created_at=early)], NOW
    )
    assert await repo.first_post_at() == early


# -- migration 0009 ------------------------------------------------------------------------------


async def test_0009_adds_the_archive_to_every_server_unpublished_and_keeps_them_both_ways(
    database_url: str,
) -> None:
    """A 0008 database's servers (with a digest) are unpublished after 0009 and may opt in;
    the downgrade drops the two columns and their unique index and keeps every row."""
    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0008")
        async with db.write() as conn:
            for guild_id in (1, 2):
                await conn.execute(
                    stamped(
                        "INSERT INTO guilds (guild_id, channel_id, created_at, updated_at) "
                        "VALUES (:g, 10, :at, :at)",
                        "at",
                    ),
                    {"g": guild_id, "at": AT},
                )
            await conn.execute(
                text("INSERT INTO digests (guild_id, digest_date) VALUES (1, '2025-01-01')")
            )
        assert not {"archive", "archive_slug"} & await column_names(db, "guilds")

        await db.upgrade("0009")
        assert {"archive", "archive_slug"} <= await column_names(db, "guilds")
        async with db.read() as conn:
            rows = (
                await conn.execute(
                    text("SELECT guild_id, archive, archive_slug FROM guilds ORDER BY guild_id")
                )
            ).all()
        assert [(r.guild_id, bool(r.archive), r.archive_slug) for r in rows] == [
            (1, False, None),
            (2, False, None),
        ]
        repo = ArchiveRepository(db)
        assert (await repo.set_enabled(1, True, slug_base="one")).slug == "one"
        assert await repo.published("one") == 1

        await db.downgrade("0008")
        assert not {"archive", "archive_slug"} & await column_names(db, "guilds")
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM guilds"))).scalar_one() == 2
            assert (await conn.execute(text("SELECT count(*) FROM digests"))).scalar_one() == 1
            catalog = (
                "SELECT name FROM sqlite_master WHERE name LIKE :n"
                if db.is_sqlite
                else "SELECT conname FROM pg_constraint WHERE conname LIKE :n"
            )
            assert (await conn.execute(text(catalog), {"n": "uq_guilds_archive%"})).all() == []
        await db.upgrade()
        await db.check_schema()
        assert await ArchiveRepository(db).published("one") is None  # the opt-in went with 0009


async def test_0009_upgrades_an_empty_database_and_down_to_empty(database_url: str) -> None:
    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0009")
        assert {"archive", "archive_slug"} <= await column_names(db, "guilds")
        await db.downgrade("base")
        assert await table_names(db) == {"alembic_version"}
