"""What the database holds and how fast it grows: rows and bytes per table, the database's size,
and the rows and bytes added per day, on SQLite and PostgreSQL (``hotpapers db stats``).

Growth is read from each table's own timestamps: rows whose time falls in the last 7 and 30
days, divided by the days the data actually covers (a week-old database is not averaged over a
month), and turned into bytes with the table's average row size (indexes and, for papers, the
search index included). Read only, in one snapshot, beside a running bot.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, case, func, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.core.errors import StorageError
from bot.storage.dialect import utcnow
from bot.storage.engine import Database
from bot.storage.engine import open as open_database
from bot.storage.lock import sqlite_file
from bot.storage.tables import (
    PAPER_TITLE_WORDS,
    PAPERS_FTS,
    PAPERS_TITLE_FTS,
    mentions,
    metadata,
    papers,
)

WINDOWS = (7, 30)  # days over which growth is measured
# The timestamp that says when a table's row was written, and what counting by it means.
# mention_papers has none of its own: a post's links are written with the post.
GROWTH: dict[str, tuple[str, str]] = {
    "papers": ("fetched_at", "stored or refreshed"),
    "paper_categories": ("papers.fetched_at", "with their papers"),
    "missing_ids": ("checked_at", "checked"),
    "mentions": ("first_seen_at", "first stored"),
    "mention_papers": ("mentions.first_seen_at", "with their posts"),
    "mention_metrics": ("fetched_at", "snapshots taken"),
    "source_runs": ("started_at", "runs"),
    "guilds": ("created_at", "servers set up"),
    "guild_categories": ("added_at", "added"),
    "digests": ("digest_date", "days posted"),
    "digest_papers": ("posted_at", "posted"),
    "stream_gaps": ("detected_at", "gaps seen"),
}
# Rows written with a row of another table: counted by that row's time (column "table.column"),
# joined on (own key, other key).
_WRITTEN_WITH: dict[str, tuple[Table, str, str]] = {
    "papers.fetched_at": (papers, "arxiv_id", "arxiv_id"),
    "mentions.first_seen_at": (mentions, "mention_id", "id"),
}
# SQLite's search indexes (FTS5 tables and their shadow tables) count as the papers' bytes:
# each paper stored adds to them.
_SEARCH_PREFIXES = (PAPERS_FTS, PAPERS_TITLE_FTS)


@dataclass(frozen=True)
class Growth:
    """Rows of one table written in the last ``days`` (as far as the data goes back)."""

    days: int  # the window asked: 7 or 30
    covered: float  # the days of it the data covers (at least one)
    rows: int

    @property
    def rows_per_day(self) -> float:
        return self.rows / self.covered


@dataclass(frozen=True)
class TableStats:
    name: str
    rows: int
    bytes: int | None  # None: the backend cannot tell (SQLite without dbstat)
    column: str | None  # the timestamp growth is counted by; None: not counted
    counts: str | None  # what counting by it means
    growth: tuple[Growth, ...] = ()

    @property
    def bytes_per_row(self) -> float | None:
        if self.bytes is None or not self.rows:
            return None
        return self.bytes / self.rows

    def bytes_per_day(self, growth: Growth) -> float | None:
        per_row = self.bytes_per_row
        return None if per_row is None else growth.rows_per_day * per_row

    def window(self, days: int) -> Growth | None:
        return next((g for g in self.growth if g.days == days), None)


@dataclass(frozen=True)
class DatabaseStats:
    database: str  # the URL, password hidden
    backend: str
    revision: str | None
    measured_at: dt.datetime
    bytes: int  # the whole database: file + WAL on SQLite, pg_database_size on PostgreSQL
    tables: tuple[TableStats, ...]
    file_bytes: int | None = None  # SQLite only, as the next ones
    wal_bytes: int | None = None
    page_size: int | None = None
    pages: int | None = None
    free_pages: int | None = None

    def bytes_per_day(self, days: int) -> float | None:
        """Bytes added per day over the window, from every table whose size is known."""
        total = 0.0
        known = False
        for table in self.tables:
            growth = table.window(days)
            added = None if growth is None else table.bytes_per_day(growth)
            if added is not None:
                total += added
                known = True
        return total if known else None

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "backend": self.backend,
            "revision": self.revision,
            "measured_at": self.measured_at.isoformat(),
            "size": {
                "bytes": self.bytes,
                "file_bytes": self.file_bytes,
                "wal_bytes": self.wal_bytes,
                "page_size": self.page_size,
                "pages": self.pages,
                "free_pages": self.free_pages,
            },
            "tables": [
                {
                    "name": t.name,
                    "rows": t.rows,
                    "bytes": t.bytes,
                    "growth": None
                    if t.column is None
                    else {
                        "column": t.column,
                        "counts": t.counts,
                        **{
                            f"{key}_{g.days}d": value
                            for g in t.growth
                            for key, value in (
                                ("days_covered", round(g.covered, 3)),
                                ("rows", g.rows),
                                ("rows_per_day", round(g.rows_per_day, 3)),
                                ("bytes_per_day", _rounded(t.bytes_per_day(g))),
                            )
                        },
                    },
                }
                for t in self.tables
            ],
            "growth": {f"bytes_per_day_{d}d": _rounded(self.bytes_per_day(d)) for d in WINDOWS},
        }

    def describe(self) -> str:
        """An aligned table for people: sizes, rows, and growth per day."""
        lines = [f"database  {self.database} (schema revision {self.revision or '(none)'})"]
        if self.backend == "sqlite":
            lines.append(
                f"size      {human_bytes(self.bytes)}: file {human_bytes(self.file_bytes)} + WAL "
                f"{human_bytes(self.wal_bytes)}; {self.pages or 0:,} pages of "
                f"{self.page_size or 0:,} bytes, {self.free_pages or 0:,} free"
            )
        else:
            lines.append(f"size      {human_bytes(self.bytes)} (pg_database_size)")
        lines.append(f"measured  {self.measured_at:%Y-%m-%d %H:%M} UTC")
        lines.append("")
        header = ["table", "rows", "size", "added/day 7 d", "added/day 30 d", "bytes/day 7 d"]
        header += ["bytes/day 30 d", "counted by"]
        rows = [header]
        for t in self.tables:
            week, month = t.window(7), t.window(30)
            rows.append(
                [
                    t.name,
                    f"{t.rows:,}",
                    human_bytes(t.bytes),
                    _per_day(week),
                    _per_day(month),
                    _bytes_per_day(t, week),
                    _bytes_per_day(t, month),
                    "" if t.column is None else f"{t.column} ({t.counts})",
                ]
            )
        total_rows = sum(t.rows for t in self.tables)
        known = [t.bytes for t in self.tables if t.bytes is not None]
        rows.append(
            [
                "total",
                f"{total_rows:,}",
                human_bytes(sum(known)) if known else "?",
                "",
                "",
                _human_rate(self.bytes_per_day(7)),
                _human_rate(self.bytes_per_day(30)),
                "",
            ]
        )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            cells = [
                cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        if any(t.bytes is None for t in self.tables):
            lines.append("sizes per table: this SQLite has no dbstat table, so they are unknown")
        return "\n".join(lines)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def human_bytes(count: float | None) -> str:
    """1,536 → ``1.5 KiB``; None → ``?``."""
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _human_rate(count: float | None) -> str:
    return "?" if count is None else human_bytes(count)


def _per_day(growth: Growth | None) -> str:
    if growth is None:
        return ""
    return f"{growth.rows_per_day:,.1f}"


def _bytes_per_day(table: TableStats, growth: Growth | None) -> str:
    if growth is None:
        return ""
    return _human_rate(table.bytes_per_day(growth))


# --- reading the database -----------------------------------------------------------------------


async def database_stats(url: str, *, now: dt.datetime | None = None) -> DatabaseStats:
    """Open the database of ``url`` (never creating or migrating it) and measure it."""
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise StorageError(f"no database at {path}")
    db = await open_database(url, migrate=False)
    try:
        return await measure(db, now=now or utcnow())
    finally:
        await db.close()


async def measure(db: Database, *, now: dt.datetime) -> DatabaseStats:
    """Rows, sizes and growth of every hotpapers table present in ``db``, in one snapshot."""
    revision = await db.current_revision()
    async with db.read() as conn:
        present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        tables = sorted((t for t in metadata.tables.values() if t.name in present), key=_name)
        sizes = await (_sqlite_sizes(conn) if db.is_sqlite else _postgres_sizes(conn, tables))
        measured = []
        for table in tables:
            rows = int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            column, counts = GROWTH.get(table.name, (None, None))
            growth = await _growth(conn, table, column, now) if column and rows else ()
            measured.append(
                TableStats(
                    table.name, rows, sizes.per_table.get(table.name), column, counts, growth
                )
            )
    return DatabaseStats(
        database=db.url.render_as_string(hide_password=True),
        backend=db.dialect,
        revision=revision,
        measured_at=now,
        bytes=sizes.total,
        tables=tuple(measured),
        file_bytes=sizes.file_bytes,
        wal_bytes=sizes.wal_bytes,
        page_size=sizes.page_size,
        pages=sizes.pages,
        free_pages=sizes.free_pages,
    )


def _name(table: Table) -> str:
    return table.name


async def _growth(
    conn: AsyncConnection, table: Table, column: str, now: dt.datetime
) -> tuple[Growth, ...]:
    """Rows written in each window, by ``column`` (``other.column``: the time of the row of
    ``other`` it belongs to), one pass over the table."""
    if column in _WRITTEN_WITH:
        other, own_key, other_key = _WRITTEN_WITH[column]
        moment = other.c[column.split(".")[1]]
        source: Any = table.join(other, table.c[own_key] == other.c[other_key])
    else:
        moment = table.c[column]
        source = table
    starts: dict[int, dt.datetime | dt.date] = {
        days: now - dt.timedelta(days=days) for days in WINDOWS
    }
    if column == "digest_date":  # a calendar day, not a moment
        starts = {days: (now - dt.timedelta(days=days)).date() for days in WINDOWS}
    stmt = select(
        func.min(moment),
        *(
            func.coalesce(func.sum(case((moment >= start, 1), else_=0)), 0)
            for start in starts.values()
        ),
    ).select_from(source)
    oldest, *counts = (await conn.execute(stmt)).one()
    if oldest is None:
        return ()
    if isinstance(oldest, dt.datetime):
        age = (now - oldest).total_seconds() / 86400
    else:
        age = (now.date() - oldest).days + 1
    return tuple(
        Growth(days, max(1.0, min(float(days), age)), int(count))
        for days, count in zip(WINDOWS, counts, strict=True)
    )


@dataclass(frozen=True)
class _Sizes:
    total: int
    per_table: dict[str, int]
    file_bytes: int | None = None
    wal_bytes: int | None = None
    page_size: int | None = None
    pages: int | None = None
    free_pages: int | None = None


async def _sqlite_sizes(conn: AsyncConnection) -> _Sizes:
    async def pragma(name: str) -> int:
        return int((await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one())

    page_size, pages, free = (
        await pragma("page_size"),
        await pragma("page_count"),
        await pragma("freelist_count"),
    )
    path = sqlite_file(conn.engine.url.render_as_string(hide_password=False))
    file_bytes = wal_bytes = None
    if path is not None:
        file_bytes = _size_of(path)
        wal_bytes = _size_of(path.with_name(path.name + "-wal"))
    total = (file_bytes if file_bytes is not None else page_size * pages) + (wal_bytes or 0)
    per_table: dict[str, int] = {}
    schema = await conn.execute(
        text("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")
    )
    owners = {str(row[0]): str(row[1]) for row in schema.all()}
    try:
        btrees = (
            await conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        ).all()
    except DBAPIError:  # a SQLite built without the dbstat table: sizes per table unknown
        btrees = []
    for row in btrees:
        name = str(row[0])
        owner = owners.get(name, name)
        if owner.startswith(_SEARCH_PREFIXES):
            owner = "papers"
        per_table[owner] = per_table.get(owner, 0) + int(row[1])
    return _Sizes(total, per_table, file_bytes, wal_bytes, page_size, pages, free)


def _size_of(path: os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


async def _postgres_sizes(conn: AsyncConnection, tables: list[Table]) -> _Sizes:
    total = int(
        (await conn.execute(text("SELECT pg_database_size(current_database())"))).scalar_one()
    )
    per_table = {}
    for table in tables:
        size = (
            await conn.execute(
                text("SELECT pg_total_relation_size(to_regclass(:name))"), {"name": table.name}
            )
        ).scalar_one()
        if size is not None:
            per_table[table.name] = int(size)
    # The title word index (migration 0011) counts as the papers' bytes, as the FTS5 tables do
    # on SQLite: each paper stored adds to it.
    words = (
        await conn.execute(
            text("SELECT pg_total_relation_size(to_regclass(:name))"), {"name": PAPER_TITLE_WORDS}
        )
    ).scalar_one()
    if words is not None and "papers" in per_table:
        per_table["papers"] += int(words)
    return _Sizes(total, per_table)
