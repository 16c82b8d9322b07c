"""Copy a deployment's data to another database (SQLite ↔ PostgreSQL), verified table by table.

``hotpapers db copy --from URL --to URL`` moves a deployment, typically from its SQLite file to
PostgreSQL when it outgrows one process, or back. The rules, and why:

- **Schemas at head on both sides.** The source must already be at this code's head revision:
  a copy only reads its source (it may be the production database, or the last copy of one),
  so it never migrates it; the error says how to (``hotpapers db upgrade`` on it). The target
  is migrated to head, as ``hotpapers run`` would on start; its ``alembic_version`` row is its
  own migration's, never copied. Both at head means both hold exactly the tables of
  :mod:`bot.storage.tables`, which are copied; other tables are reported, not copied.
- **Never a silent merge.** The target must hold no row in any table, unless ``replace``
  empties it first. Emptying, copying and verifying are one transaction on the target: if
  anything fails, a mismatch included, it is rolled back and the target is as it was.
- **One snapshot of the source.** Every table is read in one read transaction (REPEATABLE READ
  on PostgreSQL, a read transaction on SQLite), so the copy is consistent even if something
  writes to the source meanwhile; rows written after the copy started are simply not in it.
- **Bounded memory.** Each table streams from a server-side cursor in batches of
  ``batch_rows``, in foreign-key order, primary keys preserved. PostgreSQL targets load each
  batch with ``COPY``; SQLite targets with one multi-row ``executemany``.
- **Indexes built once.** On a PostgreSQL target the indexes no constraint needs (the search
  GIN indexes, the BRIN and secondary b-trees) are dropped in the copy's transaction and built
  again after the load, as ``pg_restore`` does: a million papers copy in minutes, not the half
  hour that maintaining the GIN indexes row by row takes.
- **Derived data is not data.** SQLite's FTS5 indexes (virtual tables, their shadow tables and
  triggers) and PostgreSQL's generated ``tsvector`` columns are found by inspecting both
  databases and never copied: the target's own triggers index each paper as it is inserted
  (and FTS5's integrity check then proves the index matches the rows), PostgreSQL computes
  its generated columns itself.
- **Keys keep working.** PostgreSQL sequences (serial and identity columns) are set past the
  largest copied id, so the bot's next insert does not collide; SQLite needs nothing (a new
  rowid is always the largest plus one).
- **Verified.** Before committing, every table's row count and an order-independent checksum
  of its rows (as each side returns them, so type conversions are checked too) are compared
  between the source snapshot and the target.
- **Text PostgreSQL can hold.** SQLite stores the NUL character in text, PostgreSQL cannot:
  a copy to PostgreSQL drops it (as the bot's own writes do) and reports how many rows of
  each table had one.
- **No bot on a SQLite side.** The copy holds the file lock ``hotpapers run`` takes
  (:mod:`bot.storage.lock`) on a SQLite source and target: a running bot makes the copy
  refuse, and a bot started during the copy refuses. A PostgreSQL target's tables are locked
  against other writers until the copy commits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import (
    Column,
    MetaData,
    String,
    Table,
    cast,
    false,
    func,
    inspect,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import REGCLASS
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeDecorator, TypeEngine

from bot.core.errors import DatabaseInUseError, StorageError, UserFacingError
from bot.storage.engine import Database, alembic_config, head_revision
from bot.storage.engine import open as open_database
from bot.storage.lock import run_lock, sqlite_file
from bot.storage.tables import PAPER_TITLE_WORDS, metadata

log = logging.getLogger(__name__)

BATCH_ROWS = 5000
PROGRESS_SECONDS = 10.0  # a progress line at least this often while a big table copies
# How long the copy waits for another session's locks on a PostgreSQL target's tables.
LOCK_TIMEOUT = "10s"
INDEX_BUILD_MEMORY = "256MB"  # maintenance_work_mem while the target's indexes are built
_URL_FORMS = "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER[:PASSWORD]@HOST[:PORT]/DB"
# The async driver each backend is used with; a URL naming none gets it (``postgresql://…``).
_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_MASK = (1 << 64) - 1
NUL = "\x00"


# --- what the copy reports --------------------------------------------------------------------


@dataclass(frozen=True)
class TableCopy:
    """One table's rows and checksum on each side, after the copy (before its commit)."""

    name: str
    source_rows: int
    target_rows: int
    source_checksum: str
    target_checksum: str
    # Rows whose text lost NUL characters on the way to PostgreSQL (which cannot store them).
    nul_dropped: int = 0

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum

    def problem(self) -> str | None:
        """What differs, in words; None if nothing does."""
        if self.source_rows != self.target_rows:
            return (
                f"table {self.name}: {self.source_rows:,} rows in the source but "
                f"{self.target_rows:,} in the target"
            )
        if self.source_checksum != self.target_checksum:
            return (
                f"table {self.name}: the same {self.source_rows:,} rows in number, but their "
                "contents differ (checksums do not match)"
            )
        return None


@dataclass(frozen=True)
class CopyReport:
    """What a copy did: committed only if :attr:`ok`, else rolled back."""

    source: str  # URLs as shown: passwords hidden
    target: str
    tables: tuple[TableCopy, ...]
    seconds: float
    replaced: bool  # the target held rows that the copy removed
    source_search: tuple[str, ...]  # the source's search indexes: derived, so not copied
    target_search: tuple[str, ...]  # the target's, built from the copied rows
    skipped: tuple[str, ...]  # tables of neither the schema nor a search index: not copied

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.source_rows for t in self.tables)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def first_problem(self) -> str | None:
        return next((p for t in self.tables if (p := t.problem()) is not None), None)


# --- URLs ---------------------------------------------------------------------------------------


def shown(url: URL) -> str:
    """The URL as it may be printed: the password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def parse_url(value: str, option: str) -> URL:
    """The database URL given to ``option`` (``--from``/``--to``), with its async driver.

    ``postgresql://…`` and ``sqlite:///…`` are accepted and get asyncpg and aiosqlite. A bad
    URL is a :class:`UserFacingError` naming the option, never quoting the text (it may hold a
    password).
    """
    try:
        url = make_url(value.strip())
    except (ArgumentError, ValueError):
        raise UserFacingError(f"{option}: not a database URL; expected {_URL_FORMS}") from None
    backend = url.get_backend_name()
    if backend not in _DRIVERS:
        raise UserFacingError(
            f"{option}: {shown(url)} is a {backend} database; hotpapers stores its data in "
            f"SQLite or PostgreSQL: {_URL_FORMS}"
        )
    if url.drivername == backend:
        url = url.set(drivername=_DRIVERS[backend])
    elif url.drivername != _DRIVERS[backend]:
        raise UserFacingError(
            f"{option}: hotpapers talks to {backend} through {_DRIVERS[backend]}, not "
            f"{url.drivername}: {_URL_FORMS}"
        )
    if backend == "sqlite" and sqlite_file(url.render_as_string(hide_password=False)) is None:
        raise UserFacingError(f"{option}: an in-memory SQLite database cannot be copied to or from")
    return url


def _check_files(source: URL, target: URL) -> None:
    """Refuse a missing SQLite source, a target in a missing folder, and one file twice."""
    source_file = sqlite_file(source.render_as_string(hide_password=False))
    target_file = sqlite_file(target.render_as_string(hide_password=False))
    if source_file is not None and not source_file.is_file():
        raise UserFacingError(f"--from: there is no database file {source_file}")
    if target_file is not None:
        if target_file.is_dir():
            raise UserFacingError(f"--to: {target_file} is a directory")
        if not target_file.parent.is_dir():
            raise UserFacingError(f"--to: the directory {target_file.parent} does not exist")
    if source_file is not None and target_file is not None:
        same = source_file == target_file or (
            target_file.exists() and os.path.samefile(source_file, target_file)
        )
        if same:
            raise UserFacingError("--from and --to are the same database file")


# --- the two schemas ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Schema:
    """What one database holds beside this code's tables, as inspected."""

    tables: frozenset[str]
    columns: dict[str, frozenset[str]]  # of this code's tables, as the database has them
    generated: dict[str, frozenset[str]]  # computed columns of this code's tables
    # SQLite's virtual tables (FTS) and their shadow tables; PostgreSQL's title word index
    search_tables: frozenset[str]
    fts5: tuple[str, ...]  # the FTS5 indexes, to check after the copy

    def derived(self) -> list[str]:
        described = [f"{name} (FTS5 index)" for name in self.fts5]
        described += [
            f"{table}.{column} (generated column)"
            for table, columns in sorted(self.generated.items())
            for column in sorted(columns)
        ]
        if PAPER_TITLE_WORDS in self.search_tables:
            described.append(f"{PAPER_TITLE_WORDS} (word index)")
        return described

    def unknown(self) -> list[str]:
        """Tables that are neither this code's, nor Alembic's, nor part of a search index."""
        ours = {table.name for table in metadata.sorted_tables} | {"alembic_version"}
        return sorted(self.tables - ours - self.search_tables)


def _inspect(conn: Connection) -> _Schema:
    inspector = inspect(conn)
    tables = frozenset(inspector.get_table_names())
    search: set[str] = set()
    fts5: list[str] = []
    if conn.dialect.name == "sqlite":
        virtual = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
            "AND sql LIKE 'CREATE VIRTUAL TABLE%'"
        ).all()
        for name, sql in virtual:
            search.add(name)
            # A virtual table keeps its data in shadow tables named after it (FTS5: _data,
            # _idx, _content, _docsize, _config).
            search.update(t for t in tables if t.startswith(f"{name}_"))
            if "fts5" in sql.lower():
                fts5.append(name)
    elif PAPER_TITLE_WORDS in tables:
        # PostgreSQL's title word index (migration 0011), filled by triggers on papers.
        search.add(PAPER_TITLE_WORDS)
    columns: dict[str, frozenset[str]] = {}
    generated: dict[str, frozenset[str]] = {}
    for table in metadata.sorted_tables:
        if table.name not in tables:
            continue
        reflected = inspector.get_columns(table.name)
        columns[table.name] = frozenset(c["name"] for c in reflected)
        computed = frozenset(c["name"] for c in reflected if c.get("computed"))
        if computed:
            generated[table.name] = computed
    return _Schema(tables, columns, generated, frozenset(search), tuple(sorted(fts5)))


def _wire_type(column: Column[Any], same: Dialect | None) -> TypeEngine[Any]:
    """The type a column is copied as.

    Between two databases of one dialect (``same``), every value is copied as stored, with
    no conversion at all. Across dialects, a type stored the same way on both (JSON text, ISO
    date text) is copied as its stored text, untouched: decoding and re-encoding JSON could
    change its spelling; a type stored differently per dialect (UTC datetimes: text on
    SQLite, ``timestamptz`` on PostgreSQL) goes through its Python value.
    """
    kind = column.type
    if isinstance(kind, TypeDecorator):
        if same is not None:
            stored: TypeEngine[Any] = kind.load_dialect_impl(same)
            return stored
        if type(kind).load_dialect_impl is TypeDecorator.load_dialect_impl:
            impl: TypeEngine[Any] = kind.impl_instance
            return impl
    return kind


def _plan(source: _Schema, target: _Schema, same: Dialect | None) -> list[Table]:
    """The tables to copy, in foreign-key order, each with the columns to copy (generated ones
    left out), typed for the copy; refuses schemas that differ from this code's."""
    wire = MetaData()
    plan = []
    for table in metadata.sorted_tables:
        for side, schema in (("--from", source), ("--to", target)):
            if table.name not in schema.columns:
                raise StorageError(
                    f"{side}: the database has no table {table.name}, yet says it is at "
                    f"revision {head_revision()}: its schema was changed by hand"
                )
        generated = source.generated.get(table.name, frozenset()) | target.generated.get(
            table.name, frozenset()
        )
        names = [c.name for c in table.columns if c.name not in generated]
        for side, schema in (("--from", source), ("--to", target)):
            have = schema.columns[table.name]
            missing = [n for n in names if n not in have]
            if missing:
                raise StorageError(
                    f"{side}: table {table.name} has no column {missing[0]}, yet the database "
                    f"says it is at revision {head_revision()}: its schema was changed by hand"
                )
            extra = sorted(have - set(names) - schema.generated.get(table.name, frozenset()))
            if extra and side == "--from":
                raise StorageError(
                    f"--from: table {table.name} has a column {extra[0]} that hotpapers does "
                    "not know, so it would not be copied: its schema was changed by hand"
                )
        plan.append(
            Table(
                table.name,
                wire,
                *(
                    Column(
                        name,
                        _wire_type(table.c[name], same),
                        primary_key=table.c[name].primary_key,
                        autoincrement=False,
                    )
                    for name in names
                ),
            )
        )
    return plan


# --- rows -----------------------------------------------------------------------------------------


class _Checksum:
    """An order-independent checksum of rows: the sum of their hashes, modulo 2**64.

    Order-independent because the two backends need not return rows in the same order
    (PostgreSQL orders text by collation, SQLite by bytes), and sorting millions of rows to
    compare them would cost more than the copy. Rows are distinct (each has a primary key), so
    a sum cannot be fooled by a pair of duplicates as an XOR could. Python's own hash is used
    because it is computed in C (a cryptographic digest per row doubled the copy's time) and
    because it says what equality means here: Python equality (a REAL that comes back as
    ``40`` equals ``40.0``, an instant equals itself whatever its time zone). Its strings are
    salted per process, which is fine: both sides are hashed by this process, and the value is
    compared, never stored.
    """

    def __init__(self) -> None:
        self.total = 0

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        self.total = (self.total + sum(hash(tuple(row)) for row in rows)) & _MASK

    def hexdigest(self) -> str:
        return f"{self.total:016x}"


def _text_columns(table: Table) -> list[int]:
    return [i for i, column in enumerate(table.columns) if isinstance(column.type, String)]


def _without_nul(rows: Sequence[Any], columns: list[int]) -> tuple[Sequence[Any], int]:
    """``rows`` with the NUL characters of their text ``columns`` removed, and how many rows
    had some. SQLite stores NUL in text, PostgreSQL cannot (the bot drops them on the way in
    for the same reason): a copy to PostgreSQL drops them too, says how many, and verifies
    against the text without them."""
    cleaned: list[Any] | None = None
    for n, row in enumerate(rows):
        if any(row[i] is not None and NUL in row[i] for i in columns):
            if cleaned is None:
                cleaned = list(rows)
            cleaned[n] = tuple(
                value.replace(NUL, "") if i in columns and value is not None else value
                for i, value in enumerate(row)
            )
    if cleaned is None:
        return rows, 0
    return cleaned, sum(1 for a, b in zip(rows, cleaned, strict=True) if a is not b)


async def _batches(conn: AsyncConnection, table: Table, size: int) -> AsyncIterator[Sequence[Any]]:
    """The table's rows in lists of at most ``size``, from a server-side cursor."""
    result = await conn.stream(select(table).execution_options(yield_per=size))
    async for partition in result.partitions(size):
        yield partition


async def _count(conn: AsyncConnection, table: Table) -> int:
    return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _has_rows(conn: AsyncConnection, table: Table) -> bool:
    found = await conn.execute(select(text("1")).select_from(table).limit(1))
    return found.first() is not None


# --- the target: lock, empty, load, keys, indexes ---------------------------------------------


def _quoted(conn: AsyncConnection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote(name))


async def _lock_tables(conn: AsyncConnection, plan: list[Table], *, replace: bool) -> None:
    """PostgreSQL: keep other writers out until the copy commits (readers go on), so that no
    row arrives between the emptiness check and the copy; replacing takes the stronger lock
    TRUNCATE needs anyway. A session holding a lock on them makes the copy fail after
    ``LOCK_TIMEOUT`` rather than wait for it indefinitely."""
    mode = "ACCESS EXCLUSIVE" if replace else "EXCLUSIVE"
    names = ", ".join(_quoted(conn, t.name) for t in plan)
    await conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    await conn.exec_driver_sql(f"LOCK TABLE {names} IN {mode} MODE")


async def _empty(conn: AsyncConnection, plan: list[Table]) -> None:
    if conn.dialect.name == "postgresql":
        names = ", ".join(_quoted(conn, t.name) for t in plan)
        await conn.exec_driver_sql(f"TRUNCATE {names}")
        return
    # Children first; the FTS triggers take each paper out of the search index as it goes.
    for table in reversed(plan):
        await conn.execute(table.delete())


class _Loader:
    """Inserts batches into one table of the target: ``COPY`` on PostgreSQL (several times
    faster than INSERTs), the driver's ``executemany`` on SQLite, with the columns' own
    conversions (UTC datetimes to text) applied once per value and nothing else per row."""

    def __init__(self, conn: AsyncConnection, raw: Any | None, table: Table) -> None:
        self._conn = conn
        self._raw = raw  # the asyncpg connection, in the target's transaction
        self._table = table
        self._columns = [c.name for c in table.columns]
        dialect = conn.dialect
        self._processors = [
            (i, processor)
            for i, column in enumerate(table.columns)
            if (processor := column.type.dialect_impl(dialect).bind_processor(dialect))
        ]
        # Compiled once: INSERT INTO t (a, b, …) VALUES (?, ?, …), columns in table order.
        compiled = table.insert().compile(dialect=dialect)
        if compiled.positiontup is not None and compiled.positiontup != self._columns:
            raise StorageError(f"cannot compile a positional INSERT for table {table.name}")
        self._insert = str(compiled)

    async def load(self, rows: Sequence[Any]) -> None:
        if self._raw is not None:
            # Values are already what asyncpg encodes (datetimes, text, ints, bools).
            await self._raw.copy_records_to_table(
                self._table.name, records=[tuple(row) for row in rows], columns=self._columns
            )
            return
        if not self._processors:
            await self._conn.exec_driver_sql(self._insert, [tuple(row) for row in rows])
            return
        records = [list(row) for row in rows]
        for i, processor in self._processors:
            for record in records:
                record[i] = processor(record[i])
        await self._conn.exec_driver_sql(self._insert, [tuple(r) for r in records])


async def _raw_asyncpg(conn: AsyncConnection) -> Any:
    raw = (await conn.get_raw_connection()).driver_connection
    if raw is None or not raw.is_in_transaction():  # pragma: no cover - a bug, not a state
        raise StorageError("the target's transaction is not open: refusing to COPY outside it")
    return raw


@dataclass(frozen=True)
class _Index:
    name: str
    definition: str  # CREATE INDEX …, as pg_indexes gives it (storage parameters included)


async def _drop_secondary_indexes(conn: AsyncConnection, plan: list[Table]) -> list[_Index]:
    """PostgreSQL: drop the indexes of the copied tables that no constraint needs, to build
    them again after the load (as ``pg_restore`` does); returns them in order.

    Building an index once over the loaded rows is many times faster than maintaining it row
    by row: the papers' GIN indexes (``fastupdate`` off) made a million-paper copy take half an
    hour. Primary keys, unique and foreign-key constraints stay, so every row is still checked
    as it arrives. DDL is transactional: a copy that fails or rolls back has its indexes back.
    """
    found = await conn.execute(
        text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes AS i "
            "JOIN pg_class AS c ON c.relname = i.indexname "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = i.schemaname "
            "WHERE i.schemaname = current_schema() AND i.tablename = ANY(:tables) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = c.oid) "
            "ORDER BY i.tablename, i.indexname"
        ),
        {"tables": [t.name for t in plan]},
    )
    indexes = [_Index(name, definition) for name, definition in found]
    for index in indexes:
        await conn.exec_driver_sql(f"DROP INDEX {_quoted(conn, index.name)}")
    return indexes


# PostgreSQL's title word index (migration 0011): its triggers would insert each paper's words
# row by row into its B-tree as the papers arrive (16 million rows at a million papers). The
# copy turns the insert trigger off for its transaction, and fills the table once after the
# load, its key built over the sorted rows, as migration 0011 does.
_TITLE_WORDS_ASIDE = (
    "ALTER TABLE papers DISABLE TRIGGER papers_title_words",
    f"ALTER TABLE {PAPER_TITLE_WORDS} DROP CONSTRAINT pk_{PAPER_TITLE_WORDS}",
    f"TRUNCATE {PAPER_TITLE_WORDS}",
)
_TITLE_WORDS_FILL = (
    f"INSERT INTO {PAPER_TITLE_WORDS} (word, paper_id) "  # noqa: S608 - constants only
    "SELECT w.word, p.id FROM papers AS p, unnest(tsvector_to_array(p.title_vector)) AS w(word) "
    'ORDER BY w.word COLLATE "C", p.id',
    f"ALTER TABLE {PAPER_TITLE_WORDS} ADD CONSTRAINT pk_{PAPER_TITLE_WORDS} "
    "PRIMARY KEY (word, paper_id)",
    "ALTER TABLE papers ENABLE TRIGGER papers_title_words",
)


async def _set_title_words_aside(conn: AsyncConnection) -> None:
    for statement in _TITLE_WORDS_ASIDE:
        await conn.exec_driver_sql(statement)


async def _reset_sequences(conn: AsyncConnection, plan: list[Table]) -> int:
    """Set each serial or identity column's sequence past the column's largest value, so the
    next id PostgreSQL hands out is new; returns how many sequences were set."""
    reset = 0
    for table in plan:
        for column in table.columns:
            find = select(func.pg_get_serial_sequence(func.quote_ident(table.name), column.name))
            sequence = (await conn.execute(find)).scalar_one()
            if sequence is None:
                continue
            largest = select(func.max(column)).scalar_subquery()
            await conn.execute(
                select(
                    func.setval(
                        cast(literal(sequence), REGCLASS), func.coalesce(largest, 0) + 1, false()
                    )
                )
            )
            reset += 1
    return reset


async def _check_fts(conn: AsyncConnection, names: Iterable[str]) -> None:
    """FTS5's integrity check against its content table: every paper indexed, nothing else."""
    for name in names:
        quoted = _quoted(conn, name)
        try:
            await conn.exec_driver_sql(
                f"INSERT INTO {quoted}({quoted}, rank) VALUES ('integrity-check', 1)"  # noqa: S608
            )
        except DBAPIError as exc:
            raise StorageError(
                f"the target's search index {name} does not match its papers after the copy "
                f"({_driver_message(exc)}), so nothing was copied"
            ) from None


async def _same_postgres(source: AsyncConnection, target: AsyncConnection) -> bool:
    """Whether two connections reach one PostgreSQL database, whatever the URLs say (an
    alias, another address of the same host): the server's start time and the database."""
    probe = text(
        "SELECT pg_postmaster_start_time(), current_database(), "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return tuple((await source.execute(probe)).one()) == tuple((await target.execute(probe)).one())


async def _other_sessions(conn: AsyncConnection) -> int:
    found = await conn.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )
    return int(found.scalar_one())


# --- the copy -------------------------------------------------------------------------------------


class _Rollback(Exception):
    """Leaves the target's transaction, rolling it back: the verification failed."""


def _driver_message(exc: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's statement and parameter dump."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip() or type(exc).__name__


def _table_error(name: str, exc: BaseException) -> StorageError:
    return StorageError(
        f"copying table {name} failed, so nothing was copied: {_driver_message(exc)}"
    )


@contextlib.contextmanager
def _held(url: URL, option: str) -> Iterator[None]:
    """The run lock of a SQLite side (nothing for PostgreSQL), refused in the copy's words."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(run_lock(url.render_as_string(hide_password=False)))
        except DatabaseInUseError as exc:
            holder = f"pid {exc.pid}" if exc.pid is not None else "pid unknown"
            raise StorageError(
                f"{option}: database {exc.database} is in use by a running hotpapers "
                f"({holder}): stop the bot before copying its database"
            ) from None
        yield


async def _open(url: URL, option: str, *, migrate: bool) -> Database:
    try:
        return await open_database(url, migrate=migrate)
    except StorageError as exc:
        cause = exc.__cause__
        if getattr(getattr(cause, "orig", None), "sqlstate", None) == "3D000":
            server = f"{url.host or 'localhost'}:{url.port or 5432}"
            create = f": create it first (createdb {url.database})" if option == "--to" else ""
            raise UserFacingError(
                f"{option}: the server {server} has no database {url.database}{create}"
            ) from None
        detail = _driver_message(cause) if isinstance(cause, DBAPIError) else exc.message
        if shown(url) not in detail:
            detail = f"cannot open {shown(url)}: {detail}"
        raise StorageError(f"{option}: {detail}") from None


def _known_revision(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


async def _check_source_revision(db: Database) -> None:
    """The source must be at head: it is only read, so the copy never migrates it."""
    current, head = await db.current_revision(), head_revision()
    if current == head:
        return
    where = shown(db.url)
    if current is None:
        raise UserFacingError(f"--from: {where} holds no hotpapers data (it has no schema)")
    if not _known_revision(current):
        raise UserFacingError(
            f"--from: {where} is at schema revision {current}, which this version of hotpapers "
            f"does not know (its newest is {head}): copy with the newer hotpapers that wrote it"
        )
    raise UserFacingError(
        f"--from: {where} is at schema revision {current} and this version copies {head}; "
        f"upgrade it first: HOTPAPERS_DATABASE__URL='{where}' hotpapers db upgrade "
        "(with its password in place of ***, if it has one)"
    )


async def copy_database(
    source_url: str,
    target_url: str,
    *,
    replace: bool = False,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[str], None] | None = None,
) -> CopyReport:
    """Copy every table of the source into the target and verify it (see the module docstring).

    Returns the report: committed if ``report.ok``; if not, the target's transaction was rolled
    back and the report says which table differs. Errors of input (a bad URL, the same
    database twice, a missing source, a non-empty target without ``replace``, a source not at
    head) are :class:`UserFacingError`; failures (an unreachable server, a running bot, a row
    the target refuses) are :class:`StorageError`.
    """
    say = progress or (lambda _message: None)
    source, target = parse_url(source_url, "--from"), parse_url(target_url, "--to")
    _check_files(source, target)
    with _held(source, "--from"), _held(target, "--to"):
        source_db = await _open(source, "--from", migrate=False)
        try:
            await _check_source_revision(source_db)
            target_db = await _open(target, "--to", migrate=True)
            try:
                return await _Copy(source_db, target_db, batch_rows, say).run(replace=replace)
            finally:
                await target_db.close()
        finally:
            await source_db.close()


class _Copy:
    """One copy from an open source to an open target (both at head)."""

    def __init__(
        self, source: Database, target: Database, batch_rows: int, say: Callable[[str], None]
    ) -> None:
        self.source = source
        self.target = target
        self.batch_rows = batch_rows
        self.say = say
        self.to_postgres = not target.is_sqlite

    async def run(self, *, replace: bool) -> CopyReport:
        started = time.perf_counter()
        tables: list[TableCopy] = []
        try:
            async with self.source.read() as src, self.target.write() as dst:
                plan, schemas = await self._prepare(src, dst)
                replaced = await self._make_room(dst, plan, replace=replace)
                tables = await self._copy_all(src, dst, plan, schemas[1])
                if not all(t.ok for t in tables):
                    raise _Rollback
        except _Rollback:
            replaced = False  # rolled back: the target kept its rows
        if tables and all(t.ok for t in tables) and self.to_postgres:
            await self._analyze(plan)
        return CopyReport(
            source=shown(self.source.url),
            target=shown(self.target.url),
            tables=tuple(tables),
            seconds=time.perf_counter() - started,
            replaced=replaced,
            source_search=tuple(schemas[0].derived()),
            target_search=tuple(schemas[1].derived()),
            skipped=tuple(schemas[0].unknown()),
        )

    async def _prepare(
        self, src: AsyncConnection, dst: AsyncConnection
    ) -> tuple[list[Table], tuple[_Schema, _Schema]]:
        if self.to_postgres and not self.source.is_sqlite and await _same_postgres(src, dst):
            raise UserFacingError("--from and --to are the same PostgreSQL database")
        source_schema = await src.run_sync(_inspect)
        target_schema = await dst.run_sync(_inspect)
        same = self.target.engine.dialect if self.source.dialect == self.target.dialect else None
        plan = _plan(source_schema, target_schema, same)
        if skipped := source_schema.unknown():
            self.say(f"not copied (not hotpapers tables): {', '.join(skipped)}")
        return plan, (source_schema, target_schema)

    async def _make_room(self, dst: AsyncConnection, plan: list[Table], *, replace: bool) -> bool:
        """Check the target is empty, or empty it with ``replace``; True if it was emptied."""
        if self.to_postgres:
            if sessions := await _other_sessions(dst):
                self.say(
                    f"note: {sessions} other session(s) are connected to the target database; "
                    "a bot running on it must be stopped (its writes wait until the copy ends)"
                )
            await _lock_tables(dst, plan, replace=replace)
        occupied = [t.name for t in plan if await _has_rows(dst, t)]
        if not occupied:
            return False
        if not replace:
            raise UserFacingError(
                f"--to: the target database already holds data (in {', '.join(occupied)}); "
                "copy into an empty database, or pass --replace to delete its data first"
            )
        self.say(f"emptying the target ({', '.join(occupied)})")
        await _empty(dst, plan)
        return True

    async def _copy_all(
        self, src: AsyncConnection, dst: AsyncConnection, plan: list[Table], target: _Schema
    ) -> list[TableCopy]:
        raw = await _raw_asyncpg(dst) if self.to_postgres else None
        if not self.to_postgres:
            # A bigger page cache for this connection: the indexes of a large table being
            # filled stay in memory instead of spilling to the WAL (the default is 2 MB).
            await dst.exec_driver_sql("PRAGMA cache_size = -131072")
        counts = {t.name: await _count(src, t) for t in plan}
        self.say(f"copying {sum(counts.values()):,} rows in {len(plan)} tables")
        deferred = await _drop_secondary_indexes(dst, plan) if self.to_postgres else []
        words = self.to_postgres and PAPER_TITLE_WORDS in target.search_tables
        if words:
            await _set_title_words_aside(dst)
        copied = {t.name: await self._copy_table(src, dst, raw, t, counts[t.name]) for t in plan}
        if self.to_postgres:
            if words:
                await self._fill_title_words(dst)
            await self._rebuild_indexes(dst, deferred)
            await _reset_sequences(dst, plan)
        else:
            await _check_fts(dst, target.fts5)
        self.say("verifying")
        tables = []
        for table in plan:
            check = _Checksum()
            try:
                async for batch in _batches(dst, table, self.batch_rows):
                    check.add(batch)
                target_rows = await _count(dst, table)
            except (DBAPIError, StatementError) as exc:
                raise _table_error(table.name, exc) from None
            checksum, cleaned = copied[table.name]
            tables.append(
                TableCopy(
                    table.name,
                    counts[table.name],
                    target_rows,
                    checksum,
                    check.hexdigest(),
                    nul_dropped=cleaned,
                )
            )
        return tables

    async def _fill_title_words(self, dst: AsyncConnection) -> None:
        started = time.perf_counter()
        self.say(f"building the title word index ({PAPER_TITLE_WORDS})")
        await dst.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        for statement in _TITLE_WORDS_FILL:
            await dst.exec_driver_sql(statement)
        self.say(f"  built in {time.perf_counter() - started:.1f} s")

    async def _rebuild_indexes(self, dst: AsyncConnection, deferred: list[_Index]) -> None:
        if not deferred:
            return
        started = time.perf_counter()
        self.say(f"building {len(deferred)} indexes")
        await dst.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        for index in deferred:
            try:
                await dst.exec_driver_sql(index.definition)
            except DBAPIError as exc:
                raise StorageError(
                    f"building index {index.name} after the copy failed, so nothing was "
                    f"copied: {_driver_message(exc)}"
                ) from None
        self.say(f"  indexes built in {time.perf_counter() - started:.1f} s")

    async def _copy_table(
        self,
        src: AsyncConnection,
        dst: AsyncConnection,
        raw: Any | None,
        table: Table,
        expected: int,
    ) -> tuple[str, int]:
        """Stream one table from the source into the target; returns the source rows'
        checksum and how many rows lost NUL characters."""
        started = last = time.perf_counter()
        checksum = _Checksum()
        loader = _Loader(dst, raw, table)
        texts = _text_columns(table) if self.source.is_sqlite and self.to_postgres else []
        copied = cleaned = 0
        try:
            async for rows in _batches(src, table, self.batch_rows):
                batch, dropped = _without_nul(rows, texts) if texts else (rows, 0)
                cleaned += dropped
                checksum.add(batch)  # of what is meant to be written: the text without NULs
                await loader.load(batch)
                copied += len(batch)
                if (now := time.perf_counter()) - last >= PROGRESS_SECONDS:
                    last = now
                    self.say(f"  {table.name}: {copied:,} of {expected:,} rows")
        except (DBAPIError, StatementError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _table_error(table.name, exc) from None
        except (TypeError, ValueError) as exc:  # a value the target's driver cannot encode
            raise _table_error(table.name, exc) from None
        seconds = time.perf_counter() - started
        rate = f" ({copied / seconds:,.0f} rows/s)" if seconds >= 1 else ""
        unit = "row" if copied == 1 else "rows"
        self.say(f"  {table.name}: {copied:,} {unit} in {seconds:.1f} s{rate}")
        return checksum.hexdigest(), cleaned

    async def _analyze(self, plan: list[Table]) -> None:
        """Fresh planner statistics on PostgreSQL: autovacuum would get there, but later."""
        try:
            async with self.target.engine.connect() as conn:
                names = ", ".join(_quoted(conn, t.name) for t in plan)
                await conn.exec_driver_sql(f"ANALYZE {names}")
                await conn.commit()
        except DBAPIError as exc:
            log.warning("ANALYZE after the copy failed: %s", _driver_message(exc))
