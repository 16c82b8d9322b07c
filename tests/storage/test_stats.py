"""bot.storage.stats: rows, sizes and growth per day of a database, on both backends."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bot.core.errors import StorageError
from bot.storage.engine import Database, head_revision
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.stats import GROWTH, DatabaseStats, database_stats, human_bytes, measure
from bot.storage.tables import metadata
from tests.storage.deployment import counts
from tests.storage.factories import make_mention, make_paper

UTC = dt.UTC
NOW = dt.datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
DAY = dt.timedelta(days=1)


async def a_month_of_data(db: Database) -> None:
    """Papers stored 2, 20 and 60 days ago; posts first seen 1 and 10 days ago, read again
    hourly (three readings each)."""
    papers = PaperRepository(db)
    await papers.upsert([make_paper(f"2506.0000{i}") for i in range(3)], NOW - 2 * DAY)
    await papers.upsert([make_paper(f"2506.0001{i}") for i in range(2)], NOW - 20 * DAY)
    await papers.upsert([make_paper("2504.00001")], NOW - 60 * DAY)
    mentions = MentionRepository(db)
    for days, posts in ((1, ("a", "b", "c", "d")), (10, ("e", "f"))):
        first = NOW - days * DAY
        for hour in range(3):
            await mentions.upsert(
                [make_mention(p, arxiv_ids=("2506.00000", "2506.00010")) for p in posts],
                first + dt.timedelta(hours=hour),
            )


async def test_rows_sizes_and_growth_of_each_table(file_db: Database, backend: str) -> None:
    await a_month_of_data(file_db)
    stats = await measure(file_db, now=NOW)

    assert stats.backend == backend
    assert stats.revision == head_revision()
    by_name = {t.name: t for t in stats.tables}
    expected = await counts(file_db)
    assert {name: t.rows for name, t in by_name.items()} == expected
    assert [t.name for t in stats.tables] == sorted(by_name)  # easy to scan: by name
    # Every table's size is known (dbstat on SQLite, pg_total_relation_size on PostgreSQL).
    assert all(t.bytes is not None and t.bytes > 0 for t in stats.tables)
    assert sum(t.bytes or 0 for t in stats.tables) <= stats.bytes

    papers = by_name["papers"]
    assert papers.column == "fetched_at"
    week, month = papers.window(7), papers.window(30)
    assert week is not None
    assert month is not None
    assert (week.rows, week.covered, month.rows, month.covered) == (3, 7.0, 5, 30.0)
    assert month.rows_per_day == pytest.approx(5 / 30)
    assert papers.bytes_per_row is not None
    assert papers.bytes_per_day(month) == pytest.approx(5 / 30 * papers.bytes_per_row)
    # Rows counted by the time of the row they belong to.
    assert by_name["paper_categories"].window(7).rows == 3  # type: ignore[union-attr]
    assert by_name["mention_papers"].window(7).rows == 4 * 2  # type: ignore[union-attr]
    snapshots = by_name["mention_metrics"]
    assert snapshots.window(7).rows == 4 * 3  # type: ignore[union-attr]
    assert snapshots.window(30).rows == 6 * 3  # type: ignore[union-attr]
    # The posts began 10 days ago: a month's rate is over the 10 days the data covers.
    assert snapshots.window(30).covered == pytest.approx(10.0)  # type: ignore[union-attr]
    assert snapshots.window(30).rows_per_day == pytest.approx(1.8)  # type: ignore[union-attr]
    # Tables without rows, or without a time, have no growth.
    assert by_name["guilds"].growth == ()
    assert by_name["stream_state"].column is None
    total = stats.bytes_per_day(7)
    assert total == pytest.approx(
        sum(t.bytes_per_day(g) or 0 for t in stats.tables if (g := t.window(7)) is not None)
    )


@pytest.mark.sqlite_only
async def test_sqlite_size_is_the_file_and_its_wal(file_db: Database, backend: str) -> None:
    await a_month_of_data(file_db)
    stats = await measure(file_db, now=NOW)
    path = Path(file_db.url.database or "")
    assert (stats.file_bytes, stats.wal_bytes) == sizes(path)
    assert stats.bytes == stats.file_bytes + stats.wal_bytes
    assert stats.pages is not None
    assert stats.free_pages is not None
    assert 0 <= stats.free_pages < stats.pages
    # The papers' size holds their search indexes (FTS5 tables and their shadow tables).
    papers = next(t for t in stats.tables if t.name == "papers")
    assert papers.bytes == btree_bytes(path, "papers")


def sizes(path: Path) -> tuple[int, int]:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def btree_bytes(path: Path, table: str) -> int:
    """The bytes of a table, its indexes and its search indexes, straight from dbstat."""
    with closing(sqlite3.connect(path)) as conn, conn:
        owned = conn.execute(
            "SELECT name FROM sqlite_master WHERE tbl_name = ? OR name LIKE ? OR name LIKE ?",
            (table, f"{table}_fts%", f"{table}_title_fts%"),
        ).fetchall()
        names = [name for (name,) in owned]
        marks = ", ".join("?" * len(names))
        query = f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})"  # noqa: S608
        return int(conn.execute(query, names).fetchone()[0])


async def test_json_and_the_aligned_table(file_db: Database) -> None:
    await a_month_of_data(file_db)
    stats = await measure(file_db, now=NOW)

    data = json.loads(json.dumps(stats.as_json()))
    assert data["revision"] == head_revision()
    assert data["measured_at"] == NOW.isoformat()
    assert data["size"]["bytes"] == stats.bytes
    tables = {t["name"]: t for t in data["tables"]}
    assert set(tables) == {t.name for t in metadata.sorted_tables}
    papers = tables["papers"]["growth"]
    assert papers["column"] == "fetched_at"
    assert (papers["rows_7d"], papers["rows_30d"]) == (3, 5)
    assert papers["rows_per_day_30d"] == pytest.approx(5 / 30, abs=1e-3)
    assert tables["stream_state"]["growth"] is None
    assert data["growth"]["bytes_per_day_7d"] == pytest.approx(stats.bytes_per_day(7), abs=0.1)

    text = stats.describe()
    lines = text.splitlines()
    assert lines[0] == f"database  {stats.database} (schema revision {head_revision()})"
    assert lines[2] == "measured  2025-06-30 12:00 UTC"
    header = next(i for i, line in enumerate(lines) if line.startswith("table "))
    rows_end = lines[header].index("rows") + len("rows")
    body = lines[header + 1 : header + 2 + len(stats.tables)]
    for line, table in zip(body, [*stats.tables, None], strict=True):
        name = "total" if table is None else table.name
        count = sum(t.rows for t in stats.tables) if table is None else table.rows
        assert line.split()[0] == name
        assert line[:rows_end].endswith(f"{count:,}")  # right-aligned under "rows"
    assert "fetched_at (stored or refreshed)" in text


async def test_a_missing_sqlite_file_is_named_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    with pytest.raises(StorageError, match=f"no database at {missing}"):
        await database_stats(f"sqlite+aiosqlite:///{missing}")
    assert not missing.exists()


async def test_stats_of_an_empty_database(migrated_url: str) -> None:
    stats = await database_stats(migrated_url, now=NOW)
    assert isinstance(stats, DatabaseStats)
    assert all(t.rows == 0 and t.growth == () for t in stats.tables)
    assert stats.bytes_per_day(7) is None
    assert "total" in stats.describe()


def test_every_growth_column_exists() -> None:
    for table, (column, _) in GROWTH.items():
        owner, _, name = column.rpartition(".")
        assert name in metadata.tables[owner or table].c, (table, column)


@pytest.mark.parametrize(
    ("count", "text"),
    [(None, "?"), (0, "0 B"), (1023, "1,023 B"), (1536, "1.5 KiB"), (5 * 2**30, "5.0 GiB")],
)
def test_human_bytes(count: float | None, text: str) -> None:
    assert human_bytes(count) == text
