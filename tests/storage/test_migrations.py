"""Migrations from an empty database, step by step both ways, on SQLite and PostgreSQL; the
engine's SQLite setup."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import io
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, TextClause, bindparam, func, inspect, select, text

from bot.core.errors import ConfigError, StorageError
from bot.storage.engine import Database, alembic_config, head_revision
from bot.storage.engine import open as open_database
from bot.storage.papers import PaperRepository
from bot.storage.tables import (
    PAPER_TITLE_WORDS,
    PAPERS_SEARCH_VECTOR,
    PAPERS_TITLE_VECTOR,
    digests,
    guild_categories,
    guilds,
    metadata,
)
from bot.storage.types import UTCDateTime
from tests.storage.title_words import title_words

MEMORY = "sqlite+aiosqlite:///:memory:"
FTS_TABLES = {"papers_fts", "papers_title_fts"}
SEARCH_VECTORS = {PAPERS_SEARCH_VECTOR, PAPERS_TITLE_VECTOR}  # PostgreSQL's, on papers
AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)


def search_tables(db: Database) -> set[str]:
    """The tables of the search index: FTS5's on SQLite; on PostgreSQL (columns there) the title
    word index of 0011."""
    return FTS_TABLES if db.is_sqlite else {PAPER_TITLE_WORDS}


def stamped(sql: str, *names: str) -> TextClause:
    """Raw SQL whose ``names`` parameters are aware datetimes, bound as each backend stores
    them (ISO text on SQLite, timestamptz on PostgreSQL)."""
    return text(sql).bindparams(*(bindparam(name, type_=UTCDateTime) for name in names))


async def column_names(db: Database, table: str) -> set[str]:
    async with db.read() as conn:
        return await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns(table)})


async def table_names(db: Database) -> set[str]:
    async with db.read() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    # FTS5 shadow tables (papers_fts_data, …) are implementation details.
    return {n for n in names if not n.startswith(tuple(f"{t}_" for t in FTS_TABLES))}


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def test_empty_database_upgrades_to_head(database_url: str) -> None:
    async with Database.connect(database_url) as db:
        assert await db.current_revision() == head_revision()
        assert await table_names(db) == {
            *metadata.tables,
            *search_tables(db),
            "alembic_version",
        }
        await db.check_schema()


async def test_each_revision_up_then_all_the_way_down_and_up_again(database_url: str) -> None:
    async with Database.connect(database_url, migrate=False) as db:
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
        assert await table_names(db) >= search_tables(db)
        if not db.is_sqlite:
            assert await column_names(db, "papers") >= SEARCH_VECTORS


async def test_migrated_schema_matches_the_tables_module(db: Database) -> None:
    def include(obj: object, name: str | None, type_: str, reflected: bool, _other: object) -> bool:
        if type_ == "table":
            return not (name in {"alembic_version", PAPER_TITLE_WORDS} or "_fts" in (name or ""))
        # PostgreSQL's search vectors and their indexes exist only there (migration 0007), as
        # does the BRIN index on papers.id that its search reads in bands (0008).
        return not (
            (type_ == "column" and name in SEARCH_VECTORS)
            or (type_ == "index" and name in {f"ix_papers_{v}" for v in SEARCH_VECTORS})
            or (type_ == "index" and name == "ix_papers_id_brin")
        )

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include}
        )
        return compare_metadata(context, metadata)

    async with db.read() as conn:
        assert await conn.run_sync(diff) == []


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    async with Database.connect(database_url):
        pass
    async with Database.connect(database_url) as db:
        await db.upgrade()
        assert await db.current_revision() == head_revision()


@pytest.mark.postgresql_only
async def test_processes_starting_together_migrate_one_at_a_time(database_url: str) -> None:
    """Shards started at once on one empty PostgreSQL database: one creates the schema, the
    others wait for it (an advisory lock) and find it at head, instead of failing on tables
    that already exist."""
    databases = [Database(database_url) for _ in range(4)]
    try:
        async with asyncio.timeout(60):  # without the lock they would wait on each other
            await asyncio.gather(*(db.upgrade() for db in databases))
        assert {await db.current_revision() for db in databases} == {head_revision()}
    finally:
        for db in databases:
            await db.close()


@pytest.mark.sqlite_only
async def test_foreign_keys_are_enforced(db: Database) -> None:
    async with db.read() as conn:
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1


@pytest.mark.sqlite_only
async def test_file_database_uses_wal_and_foreign_keys(file_db: Database) -> None:
    async with file_db.read() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() > 0


@pytest.mark.sqlite_only
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
    with pytest.raises(ConfigError, match=r"database\.url.*SQLite.*PostgreSQL"):
        await open_database("mysql+aiomysql://bot:s3cret@db/hotpapers")


async def test_an_unreachable_postgresql_server_is_a_storage_error(
    unused_tcp_port: int,
) -> None:
    url = f"postgresql+asyncpg://bot:s3cret@127.0.0.1:{unused_tcp_port}/hotpapers"
    with pytest.raises(StorageError, match="cannot open database") as info:
        await open_database(url)
    assert "s3cret" not in str(info.value)


async def test_database_newer_than_the_code_is_refused(database_url: str) -> None:
    async with Database.connect(database_url) as db, db.write() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(StorageError, match="newer hotpapers"):
        await open_database(database_url)
    db = await open_database(database_url, migrate=False)
    try:
        with pytest.raises(StorageError, match="does not know"):
            await db.check_schema()
    finally:
        await db.close()


async def test_check_schema_asks_for_an_upgrade(database_url: str) -> None:
    db = await open_database(database_url, migrate=False)
    try:
        with pytest.raises(StorageError, match="hotpapers db upgrade"):
            await db.check_schema()
        await db.upgrade()
        await db.check_schema()
    finally:
        await db.close()


async def test_database_errors_become_storage_errors(db: Database) -> None:
    with pytest.raises(StorageError, match=r"no such table|does not exist"):
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
    # 0007: the PostgreSQL search index and byte-ordered ids.
    assert "tsvector GENERATED ALWAYS AS" in sql
    assert "USING gin (title_vector)" in sql
    assert "USING gin (search_vector)" in sql
    assert 'TYPE VARCHAR(32) COLLATE "C"' in sql


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


async def test_a_read_sees_one_snapshot(file_db: Database) -> None:
    """Writes committed while a read is open are not seen by it (SQLite: WAL snapshots;
    PostgreSQL: REPEATABLE READ), so a read made of several queries is consistent."""
    from bot.storage.guilds import GuildRepository

    repo = GuildRepository(file_db)
    await repo.ensure(1)
    count = select(func.count()).select_from(guilds)
    async with file_db.read() as conn:
        before = (await conn.execute(count)).scalar_one()
        await repo.ensure(2)  # committed on another connection meanwhile
        during = (await conn.execute(count)).scalar_one()
    assert (before, during) == (1, 1)
    assert [g.guild_id for g in await repo.all()] == [1, 2]


@pytest.mark.postgresql_only
async def test_a_read_cannot_write(db: Database) -> None:
    with pytest.raises(StorageError, match="read-only transaction"):
        async with db.read() as conn:
            await conn.execute(text("DELETE FROM guilds"))


async def test_0002_adds_active_since_and_keeps_every_guild_row_both_ways(
    database_url: str,
) -> None:
    """Upgrade a 0001 database holding a guild, its category and a digest; then downgrade. The
    SQLite table rebuild of the downgrade must not cascade into the rows that reference it."""
    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0001")
        stamp = {"at": AT}
        async with db.write() as conn:
            await conn.execute(
                stamped(
                    "INSERT INTO guilds (guild_id, channel_id, created_at, updated_at) "
                    "VALUES (1, 10, :at, :at)",
                    "at",
                ),
                stamp,
            )
            await conn.execute(
                stamped(
                    "INSERT INTO guild_categories (guild_id, category, added_at) "
                    "VALUES (1, 'cs.LG', :at)",
                    "at",
                ),
                stamp,
            )
            await conn.execute(
                text("INSERT INTO digests (guild_id, digest_date) VALUES (1, '2025-01-01')")
            )

        async def columns() -> set[str]:
            return await column_names(db, "guilds")

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


async def test_0003_adds_the_error_kind_and_keeps_the_runs(database_url: str) -> None:
    """A 0002 database's failed run survives the upgrade (its kind unknown: the generic phrase)
    and the downgrade."""
    from bot.storage.runs import RunRepository

    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0002")
        async with db.write() as conn:
            await conn.execute(
                stamped(
                    "INSERT INTO source_runs (source, window_start, window_end, started_at, "
                    "finished_at, mentions, requests, error) "
                    "VALUES ('x', :at, :end, :end, :end, 0, 3, 'HTTP 503 after 3 attempts')",
                    "at",
                    "end",
                ),
                {"at": AT, "end": END},
            )
        await db.upgrade("0003")
        run = (await RunRepository(db).latest_by_source())["x"]
        assert (run.error, run.error_kind) == ("HTTP 503 after 3 attempts", None)
        await db.downgrade("0002")
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM source_runs"))).scalar_one() == 1
        await db.upgrade()
        await db.check_schema()


async def test_0004_adds_the_stream_tables_and_keeps_the_data_both_ways(
    database_url: str,
) -> None:
    """A 0003 database's mentions survive the upgrade; the cursor and gaps work on 0004; the
    downgrade drops just the two stream tables (and their index) and keeps the mentions."""
    from bot.storage.streams import StreamRepository

    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0003")
        assert not {"stream_state", "stream_gaps"} & await table_names(db)
        async with db.write() as conn:
            await conn.execute(
                stamped(
                    "INSERT INTO mentions (source, post_id, url, author, text, created_at, "
                    "first_seen_at) VALUES ('x', '1', 'https://x.com/u/status/1', 'u', 't', "
                    ":at, :at)",
                    "at",
                ),
                {"at": AT},
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
        catalog = (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE :n"
            if db.is_sqlite
            else "SELECT indexname FROM pg_indexes WHERE indexname LIKE :n"
        )
        async with db.read() as conn:
            indexes = (await conn.execute(text(catalog), {"n": "ix_stream%"})).all()
        assert indexes == []
        assert await mention_rows() == 1
        await db.upgrade()
        await db.check_schema()
        assert await StreamRepository(db).cursor("bluesky") is None


async def test_0004_upgrades_an_empty_database_and_down_to_empty(database_url: str) -> None:
    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0004")
        assert {"stream_state", "stream_gaps"} <= await table_names(db)
        await db.downgrade("base")
        assert await table_names(db) == {"alembic_version"}


async def test_0007_indexes_the_papers_already_stored_and_keeps_them_both_ways(
    database_url: str,
) -> None:
    """Papers stored at 0006 are searchable after 0007 (on PostgreSQL its generated vectors are
    computed for the existing rows) and survive the downgrade, which removes only the vectors,
    their indexes and the ids' collation."""
    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0006")
        async with db.write() as conn:
            await conn.execute(
                stamped(
                    "INSERT INTO papers (arxiv_id, title, abstract, authors, primary_category, "
                    "published, updated, fetched_at) VALUES ('2503.00001', 'Über Schrödinger', "
                    "'Cats in boxes.', '[\"José Pérez\"]', 'quant-ph', :at, :at, :at)",
                    "at",
                ),
                {"at": AT},
            )

        async def papers_stored() -> int:
            async with db.read() as conn:
                return (await conn.execute(text("SELECT count(*) FROM papers"))).scalar_one()

        async def id_collations() -> set[str | None]:
            async with db.read() as conn:
                rows = await conn.execute(
                    text(
                        "SELECT collation_name FROM information_schema.columns "
                        "WHERE column_name IN ('arxiv_id', 'post_id', 'category') "
                        "AND table_schema = current_schema()"
                    )
                )
                return set(rows.scalars())

        await db.upgrade("0007")
        if not db.is_sqlite:
            assert await column_names(db, "papers") >= SEARCH_VECTORS
            assert await id_collations() == {"C"}
            # The repository's queries need 0008's functions: ask the vectors themselves.
            async with db.read() as conn:
                found = await conn.execute(
                    text(
                        "SELECT arxiv_id FROM papers "
                        "WHERE title_vector @@ to_tsquery('simple', 'schrodinger & perez') "
                        "AND search_vector @@ to_tsquery('simple', 'boxes')"
                    )
                )
                assert list(found.scalars()) == ["2503.00001"]
        await db.upgrade("0008")
        repo = PaperRepository(db)
        assert [p.arxiv_id for p in await repo.search("schrodinger perez")] == ["2503.00001"]
        assert [p.arxiv_id for p in await repo.search("boxes")] == ["2503.00001"]
        if db.is_sqlite:  # PostgreSQL's autocomplete needs 0010's function
            assert await repo.autocomplete("über schr") == [("2503.00001", "Über Schrödinger")]

        await db.downgrade("0006")
        assert await papers_stored() == 1
        if not db.is_sqlite:
            assert not await column_names(db, "papers") & SEARCH_VECTORS
            assert await id_collations() == {None}
        await db.upgrade()
        await db.check_schema()
        assert [p.arxiv_id for p in await PaperRepository(db).search("pérez")] == ["2503.00001"]


async def store_transformers_paper(db: Database) -> None:
    """One paper, written with SQL (the repository's code may need a later revision)."""
    async with db.write() as conn:
        await conn.execute(
            stamped(
                "INSERT INTO papers (arxiv_id, title, abstract, authors, primary_category, "
                "published, updated, fetched_at) VALUES ('2503.00001', 'Transformers "
                "everywhere', 'Cats in boxes.', '[\"Ana Translator\"]', 'cs.LG', :at, :at, "
                ":at)",
                "at",
            ),
            {"at": AT},
        )


async def test_0008_rebuilds_the_prefix_index_and_adds_the_banded_search_both_ways(
    database_url: str,
) -> None:
    """Papers stored at 0007 are found after 0008 (SQLite: the title index rebuilt with prefix
    indexes of 2 to 8 letters; PostgreSQL: the search functions, a BRIN index on id, GIN
    indexes without a pending list), and the downgrade puts 0007's schema back, papers kept."""

    async def schema_facts() -> dict[str, object]:
        async with db.read() as conn:
            if db.is_sqlite:
                sql = await conn.scalar(
                    text("SELECT sql FROM sqlite_master WHERE name = 'papers_title_fts'")
                )
                for table in FTS_TABLES:
                    await conn.execute(
                        text(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")  # noqa: S608
                    )
                return {"prefix": str(sql).split("prefix=")[1].split("'")[1]}
            functions = await conn.execute(
                text("SELECT proname FROM pg_proc WHERE proname LIKE 'hotpapers_%'")
            )
            indexes = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'papers'")
            )
            options = await conn.execute(
                text(
                    "SELECT relname, reloptions FROM pg_class "
                    "WHERE relname IN ('ix_papers_title_vector', 'ix_papers_search_vector')"
                )
            )
            return {
                "functions": set(functions.scalars()),
                "brin": "ix_papers_id_brin" in set(indexes.scalars()),
                "options": {name: tuple(opts or ()) for name, opts in options},
            }

    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0007")
        await store_transformers_paper(db)
        before = await schema_facts()

        await db.upgrade("0008")
        repo = PaperRepository(db)
        if db.is_sqlite:  # PostgreSQL's autocomplete needs 0010's function (its own test)
            for typed in ("transf", "transform", "translat", "transformers", "every"):
                assert [a for a, _ in await repo.autocomplete(typed)] == ["2503.00001"], typed
        assert [p.arxiv_id for p in await repo.search("boxes transformers")] == ["2503.00001"]
        after = await schema_facts()
        if db.is_sqlite:
            assert (before["prefix"], after["prefix"]) == ("2 3 4", "2 3 4 5 6 7 8")
        else:
            assert after["functions"] >= {"hotpapers_newest_matches", "hotpapers_estimate"}
            assert after["brin"]
            assert after["options"] == {
                "ix_papers_title_vector": ("fastupdate=off",),
                "ix_papers_search_vector": ("fastupdate=off",),
            }

        await db.downgrade("0007")
        assert await schema_facts() == before
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM papers"))).scalar_one() == 1
        await db.upgrade()
        await db.check_schema()
        assert [a for a, _ in await PaperRepository(db).autocomplete("transfo")] == ["2503.00001"]


async def test_0010_adds_the_bounded_suggestions_and_title_statistics_both_ways(
    database_url: str,
) -> None:
    """PostgreSQL: 0010 adds hotpapers_suggestions, raises the title vector's statistics target
    and keeps the search's results; the downgrade drops the function and resets the target
    (SQLite: nothing changes). Papers stored before are suggested after."""

    async def schema_facts() -> dict[str, object]:
        async with db.read() as conn:
            if db.is_sqlite:
                return {"tables": await conn.run_sync(lambda c: inspect(c).get_table_names())}
            functions = await conn.execute(
                text("SELECT proname FROM pg_proc WHERE proname LIKE 'hotpapers_%'")
            )
            target = await conn.scalar(
                text(
                    "SELECT attstattarget FROM pg_attribute "
                    "WHERE attrelid = 'papers'::regclass AND attname = 'title_vector'"
                )
            )
            return {"functions": set(functions.scalars()), "target": target}

    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0009")
        await store_transformers_paper(db)
        before = await schema_facts()
        await db.upgrade("0010")
        after = await schema_facts()
        repo = PaperRepository(db)
        for typed in ("tr", "transf", "translat", "transformers every", "every", "ana tr"):
            assert [a for a, _ in await repo.autocomplete(typed)] == ["2503.00001"], typed
        assert await repo.autocomplete("transformers nowhere") == []
        assert [p.arxiv_id for p in await repo.search("boxes transformers")] == ["2503.00001"]
        if db.is_sqlite:
            assert after == before
        else:
            assert after["functions"] == {*before["functions"], "hotpapers_suggestions"}
            assert after["target"] == 300
            assert before["target"] in (-1, None)  # the default (NULL from PostgreSQL 17)

        await db.downgrade("0009")
        assert await schema_facts() == before
        await db.upgrade()
        await db.check_schema()
        assert [a for a, _ in await PaperRepository(db).autocomplete("transfo")] == ["2503.00001"]


async def test_0011_builds_the_title_word_index_both_ways(database_url: str) -> None:
    """PostgreSQL: 0011 builds paper_title_words from the papers already stored, with the
    triggers that keep it, serves the title tier from it and raises the abstracts' statistics
    target; the downgrade drops them and puts 0010's search back. SQLite: nothing changes."""

    async def schema_facts() -> dict[str, object]:
        async with db.read() as conn:
            if db.is_sqlite:
                return {"tables": await conn.run_sync(lambda c: inspect(c).get_table_names())}
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            triggers = await conn.execute(
                text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'papers'::regclass")
            )
            target = await conn.scalar(
                text(
                    "SELECT attstattarget FROM pg_attribute "
                    "WHERE attrelid = 'papers'::regclass AND attname = 'search_vector'"
                )
            )
            function = await conn.scalar(
                text("SELECT prosrc FROM pg_proc WHERE proname = 'hotpapers_newest_matches'")
            )
            functions = await conn.execute(
                text("SELECT proname FROM pg_proc WHERE proname LIKE 'hotpapers_%'")
            )
            return {
                "functions": set(functions.scalars()),
                "words": PAPER_TITLE_WORDS in tables,
                "triggers": {t for t in triggers.scalars() if not t.startswith("RI_")},
                "target": target,
                "function": function,
            }

    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0010")
        await store_transformers_paper(db)
        before = await schema_facts()
        await db.upgrade("0011")
        after = await schema_facts()
        repo = PaperRepository(db)
        for query in ("transformers everywhere", "translator", "boxes transformers", "cats"):
            assert [p.arxiv_id for p in await repo.search(query)] == ["2503.00001"], query
        for typed in ("tr", "transformers ev", "transformers everywhere ", "ana tr", "every"):
            assert [a for a, _ in await repo.autocomplete(typed)] == ["2503.00001"], typed
        assert await repo.autocomplete("transformers nowhere") == []
        if db.is_sqlite:
            assert after == before
        else:
            assert await title_words(db) == await title_words(db, from_vectors=True)
            assert {w for w, _ in await title_words(db)} == {
                "transformers",
                "everywhere",
                "ana",
                "translator",
            }
            assert after["words"]
            assert not before["words"]
            assert after["triggers"] == {
                "papers_title_words",
                "papers_title_words_update",
                "papers_title_words_truncate",
            }
            assert not before["triggers"]
            assert (before["target"] in (-1, None), after["target"]) == (True, 1000)
            assert "paper_title_words" in str(after["function"])
            assert after["functions"] == {
                *before["functions"],
                "hotpapers_title_words_sync",
                "hotpapers_suggestions_banded",
            }

        await db.downgrade("0010")
        assert await schema_facts() == before
        assert [p.arxiv_id for p in await repo.search("transformers")] == ["2503.00001"]
        await db.upgrade()
        await db.check_schema()


async def test_0012_replaces_the_suggestions_both_ways(database_url: str) -> None:
    """PostgreSQL: 0012 replaces hotpapers_suggestions (same signature) with one that counts the
    word index's lists first; the downgrade puts 0011's back. Suggestions are the same on both
    sides for a stored paper. SQLite: nothing changes."""

    async def body() -> object:
        if db.is_sqlite:
            async with db.read() as conn:
                return await conn.run_sync(lambda c: sorted(inspect(c).get_table_names()))
        async with db.read() as conn:
            return await conn.scalar(
                text("SELECT prosrc FROM pg_proc WHERE proname = 'hotpapers_suggestions'")
            )

    async def helpers() -> set[str]:
        if db.is_sqlite:
            return set()
        async with db.read() as conn:
            found = await conn.execute(
                text(
                    "SELECT proname FROM pg_proc WHERE proname IN "
                    "('hotpapers_started_words', 'hotpapers_window_matches')"
                )
            )
            return set(found.scalars())

    async with Database.connect(database_url, migrate=False) as db:
        await db.upgrade("0011")
        await store_transformers_paper(db)
        before = await body()
        await db.upgrade("0012")
        after = await body()
        repo = PaperRepository(db)
        for typed in (
            "tr",
            "transformers ev",
            "ana tr",
            "every",
            "translator tr",
            "ana translator ev",
        ):
            assert [a for a, _ in await repo.autocomplete(typed)] == ["2503.00001"], typed
        assert await repo.autocomplete("transformers nowhere") == []
        if db.is_sqlite:
            assert after == before
        else:
            assert "LIMIT CASE WHEN cardinality(words) = 1" in str(after)  # 0012's counts
            assert "LIMIT CASE WHEN" not in str(before)
            assert await helpers() == {"hotpapers_started_words", "hotpapers_window_matches"}
        await db.downgrade("0011")
        assert await body() == before
        assert await helpers() == set()
        assert [a for a, _ in await repo.autocomplete("transformers ev")] == ["2503.00001"]
        await db.upgrade()
        await db.check_schema()
