"""Migrations from an empty database, step by step both ways, and the engine's SQLite setup."""

from __future__ import annotations

import importlib.util
import io
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, inspect, select, text

from bot.core.errors import ConfigError, StorageError
from bot.storage.engine import Database, alembic_config, head_revision
from bot.storage.engine import open as open_database
from bot.storage.tables import digests, guild_categories, guilds, metadata

MEMORY = "sqlite+aiosqlite:///:memory:"
FTS_TABLES = {"papers_fts", "papers_title_fts"}


async def table_names(db: Database) -> set[str]:
    async with db.read() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    # FTS5 shadow tables (papers_fts_data, …) are implementation details.
    return {n for n in names if not n.startswith(tuple(f"{t}_" for t in FTS_TABLES))}


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def test_empty_database_upgrades_to_head() -> None:
    async with Database.connect(MEMORY) as db:
        assert await db.current_revision() == head_revision()
        assert await table_names(db) == {
            *metadata.tables,
            *FTS_TABLES,
            "alembic_version",
        }
        await db.check_schema()


async def test_each_revision_up_then_all_the_way_down_and_up_again() -> None:
    async with Database.connect(MEMORY, migrate=False) as db:
        assert await db.current_revision() is None
        for revision in revisions_oldest_first():
            await db.upgrade(revision)
            assert await db.current_revision() == revision
        for revision in reversed(revisions_oldest_first()):
            assert await db.current_revision() == revision
            await db.downgrade("-1")
        assert await db.current_revision() is None
        assert await table_names(db) == {"alembic_version"}
        await db.upgrade()
        assert await db.current_revision() == head_revision()
        assert await table_names(db) >= FTS_TABLES


async def test_migrated_schema_matches_the_tables_module(db: Database) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, type_, _parent: (
                    not (type_ == "table" and (name == "alembic_version" or "_fts" in (name or "")))
                ),
            },
        )
        return compare_metadata(context, metadata)

    async with db.read() as conn:
        assert await conn.run_sync(diff) == []


async def test_upgrade_twice_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    async with Database.connect(url):
        pass
    async with Database.connect(url) as db:
        await db.upgrade()
        assert await db.current_revision() == head_revision()


async def test_foreign_keys_are_enforced(db: Database) -> None:
    async with db.read() as conn:
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1


async def test_file_database_uses_wal_and_foreign_keys(file_db: Database) -> None:
    async with file_db.read() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() > 0


async def test_foreign_keys_back_on_after_a_migration(file_db: Database) -> None:
    await file_db.downgrade("base")
    await file_db.upgrade()
    async with file_db.read() as conn:
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1


async def test_missing_directory_is_a_clear_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        await open_database(f"sqlite+aiosqlite:///{tmp_path / 'nope' / 'a.db'}")


async def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a database"):
        await open_database(f"sqlite+aiosqlite:///{path}")


async def test_invalid_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"database\.url"):
        await open_database("not a url")
    with pytest.raises(ConfigError, match=r"database\.url"):
        await open_database("nosuchdialect://x")


async def test_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    async with Database.connect(f"sqlite+aiosqlite:///{path}"):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(StorageError, match="newer hotpapers"):
        await open_database(f"sqlite+aiosqlite:///{path}")
    db = await open_database(f"sqlite+aiosqlite:///{path}", migrate=False)
    try:
        with pytest.raises(StorageError, match="does not know"):
            await db.check_schema()
    finally:
        await db.close()


async def test_check_schema_asks_for_an_upgrade() -> None:
    db = await open_database(MEMORY, migrate=False)
    try:
        with pytest.raises(StorageError, match="hotpapers db upgrade"):
            await db.check_schema()
        await db.upgrade()
        await db.check_schema()
    finally:
        await db.close()


async def test_database_errors_become_storage_errors(db: Database) -> None:
    with pytest.raises(StorageError, match="no such table"):
        async with db.read() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))


def test_errors_and_repr_never_show_the_password() -> None:
    assert "memory" in repr(Database(MEMORY))
    url = "postgresql+asyncpg://bot:s3cret@db.internal/hotpapers"
    if importlib.util.find_spec("asyncpg") is None:
        # Without the driver the engine cannot be built; the error names the URL, masked.
        with pytest.raises(ConfigError) as info:
            Database(url)
        shown = str(info.value)
    else:
        shown = repr(Database(url))
    assert "s3cret" not in shown
    assert "***" in shown


def test_migrations_render_for_postgresql_without_fts5() -> None:
    # Offline mode (`alembic upgrade --sql`) needs no server: it proves the DDL compiles for
    # PostgreSQL and that the SQLite-only FTS5 branch is skipped there.
    buffer = io.StringIO()
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "postgresql://")
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    sql = buffer.getvalue()
    assert "CREATE TABLE papers" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
    assert "BIGINT" in sql
    assert "fts5" not in sql.lower()


async def insert_guild_then_fail(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(
            text(
                "INSERT INTO guilds (guild_id, created_at, updated_at) "
                "VALUES (1, '2025-01-01T00:00:00.000000+00:00', "
                "'2025-01-01T00:00:00.000000+00:00')"
            )
        )
        raise RuntimeError("boom")


async def test_write_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError):
        await insert_guild_then_fail(db)
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM guilds"))).scalar_one() == 0


async def test_0002_adds_active_since_and_keeps_every_guild_row_both_ways(tmp_path: Path) -> None:
    """Upgrade a 0001 database holding a guild, its category and a digest; then downgrade. The
    SQLite table rebuild of the downgrade must not cascade into the rows that reference it."""
    async with Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", migrate=False) as db:
        await db.upgrade("0001")
        stamp = {"at": "2025-01-01T00:00:00.000000+00:00"}
        async with db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO guilds (guild_id, channel_id, created_at, updated_at) "
                    "VALUES (1, 10, :at, :at)"
                ),
                stamp,
            )
            await conn.execute(
                text(
                    "INSERT INTO guild_categories (guild_id, category, added_at) "
                    "VALUES (1, 'cs.LG', :at)"
                ),
                stamp,
            )
            await conn.execute(
                text("INSERT INTO digests (guild_id, digest_date) VALUES (1, '2025-01-01')")
            )

        async def columns() -> set[str]:
            async with db.read() as conn:
                return await conn.run_sync(
                    lambda c: {col["name"] for col in inspect(c).get_columns("guilds")}
                )

        async def counts() -> list[int]:
            async with db.read() as conn:
                return [
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                    for table in (guilds, guild_categories, digests)
                ]

        await db.upgrade("0002")
        assert "active_since" in await columns()
        # Read as of 0002 (the repository reads the newest schema).
        async with db.read() as conn:
            row = (
                await conn.execute(
                    text("SELECT channel_id, active_since FROM guilds WHERE guild_id = 1")
                )
            ).one()
        assert (row.channel_id, row.active_since) == (10, None)
        assert await counts() == [1, 1, 1]

        await db.downgrade("0001")
        assert "active_since" not in await columns()
        assert await counts() == [1, 1, 1]
        await db.upgrade()
        await db.check_schema()


async def test_0003_adds_the_error_kind_and_keeps_the_runs(tmp_path: Path) -> None:
    """A 0002 database's failed run survives the upgrade (its kind unknown: the generic phrase)
    and the downgrade."""
    from bot.storage.runs import RunRepository

    async with Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", migrate=False) as db:
        await db.upgrade("0002")
        stamps = {
            "at": "2025-01-01T00:00:00.000000+00:00",
            "end": "2025-01-02T00:00:00.000000+00:00",
        }
        async with db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO source_runs (source, window_start, window_end, started_at, "
                    "finished_at, mentions, requests, error) "
                    "VALUES ('x', :at, :end, :end, :end, 0, 3, 'HTTP 503 after 3 attempts')"
                ),
                stamps,
            )
        await db.upgrade("0003")
        run = (await RunRepository(db).latest_by_source())["x"]
        assert (run.error, run.error_kind) == ("HTTP 503 after 3 attempts", None)
        await db.downgrade("0002")
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM source_runs"))).scalar_one() == 1
        await db.upgrade()
        await db.check_schema()


async def test_0004_adds_the_stream_tables_and_keeps_the_data_both_ways(tmp_path: Path) -> None:
    """A 0003 database's mentions survive the upgrade; the cursor and gaps work on 0004; the
    downgrade drops just the two stream tables (and their index) and keeps the mentions."""
    import datetime as dt

    from bot.storage.streams import StreamRepository

    async with Database.connect(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", migrate=False) as db:
        await db.upgrade("0003")
        assert not {"stream_state", "stream_gaps"} & await table_names(db)
        stamps = {"at": "2025-01-01T00:00:00.000000+00:00"}
        async with db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO mentions (source, post_id, url, author, text, created_at, "
                    "first_seen_at) VALUES ('x', '1', 'https://x.com/u/status/1', 'u', 't', "
                    ":at, :at)"
                ),
                stamps,
            )

        async def mention_rows() -> int:
            async with db.read() as conn:
                return (await conn.execute(text("SELECT count(*) FROM mentions"))).scalar_one()

        await db.upgrade("0004")
        assert {"stream_state", "stream_gaps"} <= await table_names(db)
        assert await mention_rows() == 1
        streams = StreamRepository(db)
        now = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
        await streams.save_cursor("bluesky", 1_735_689_600_000_000, "wss://j", now)
        await streams.record_gap("bluesky", now - dt.timedelta(hours=2), now, now)
        assert (await streams.cursor("bluesky")).cursor_us == 1_735_689_600_000_000  # type: ignore[union-attr]
        assert len(await streams.gaps("bluesky", now)) == 1

        await db.downgrade("0003")
        assert await db.current_revision() == "0003"
        assert not {"stream_state", "stream_gaps"} & await table_names(db)
        async with db.read() as conn:
            indexes = (
                await conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE :n"),
                    {"n": "ix_stream%"},
                )
            ).all()
        assert indexes == []
        assert await mention_rows() == 1
        await db.upgrade()
        await db.check_schema()
        assert await StreamRepository(db).cursor("bluesky") is None


async def test_0004_upgrades_an_empty_database_and_down_to_empty(tmp_path: Path) -> None:
    async with Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", migrate=False) as db:
        await db.upgrade("0004")
        assert {"stream_state", "stream_gaps"} <= await table_names(db)
        await db.downgrade("base")
        assert await table_names(db) == {"alembic_version"}
