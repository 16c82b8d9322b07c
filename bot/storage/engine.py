"""The database handle: engine, SQLite connection setup, transactions and Alembic migrations."""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Row, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.base import Executable

from bot.core.errors import ConfigError, StorageError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# The PostgreSQL advisory lock held while migrating ("hotp" in ASCII): one migrator at a time.
MIGRATION_LOCK_KEY = 0x686F7470
BUSY_TIMEOUT_MS = 5000
# fetch()'s pool (PostgreSQL): searches are short and a process runs few at once.
READER_POOL_SIZE = 3
READER_POOL_OVERFLOW = 2  # so at most 5 more connections a process
READER_SERVER_SETTINGS = {
    "default_transaction_read_only": "on",
    "application_name": "hotpapers reader",  # as pg_stat_activity shows it
}
FETCH_ATTEMPTS = 2  # a dropped connection is found by using it: one more try on a new one
# Execution option read by the SQLite ``begin`` hook: "IMMEDIATE" takes the write lock at BEGIN,
# where busy_timeout applies, instead of failing on a lock upgrade halfway through.
_BEGIN_OPTION = "hotpapers_sqlite_begin"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config built in code, so migrations work from an installed wheel.

    ``connection`` is handed to ``migrations/env.py`` through ``config.attributes``. For a new
    revision: ``command.revision(alembic_config(), "message")``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest migration this code knows."""
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StorageError("no database migrations are installed")
    return head


def _is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _place(url: URL) -> str | None:
    """A SQLite database file's path (None for memory or another backend); a ``file:`` URI
    (``?mode=ro&uri=true``) is shown as its path too."""
    if url.get_backend_name() != "sqlite" or _is_memory(url) or url.database is None:
        return None
    return url.database.removeprefix("file:")


def _describe(exc: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's statement and parameter dump."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip() or type(exc).__name__


class Database:
    """One engine and the rules for using it: SQLite pragmas, transactions, schema revision.

    SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) is the other backend, for
    deployments that outgrow one process. The URL's scheme is the only switch.

    Build it with :func:`open` or :meth:`Database.connect`; repositories take it in their
    constructor. Every DB-API failure that leaves :meth:`read` or :meth:`write` is re-raised as
    :class:`StorageError`.
    """

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        try:
            self.url = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"setting `database.url`: not a database URL ({exc})") from None
        self._shown = self.url.render_as_string(hide_password=True)
        # How errors name the database: a SQLite file's path, else the URL (password hidden).
        self.where = _place(self.url) or self._shown
        backend = self.url.get_backend_name()
        if backend not in SUPPORTED_BACKENDS:
            raise ConfigError(
                f"setting `database.url`: {self._shown} is a {backend} database; hotpapers "
                "stores its data in SQLite (sqlite+aiosqlite:///…) or PostgreSQL "
                "(postgresql+asyncpg://…)"
            )
        # A failed statement's bound values stay out of the exception text, hence out of every
        # logged traceback (abstracts and post texts by the hundred): only ``echo`` shows them.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": not echo}
        if _is_memory(self.url):
            # One shared connection, or each checkout would see its own empty database.
            kwargs["poolclass"] = StaticPool
        elif backend == "postgresql":
            # A server restarts (upgrades, failovers) under a bot that runs for weeks: test a
            # pooled connection before handing it out rather than fail the next job with it.
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
            # PostgreSQL: the pool of fetch(), for statements that read alone (searches,
            # lookups). Its connections run each statement in autocommit, are read-only, and
            # are not pinged at checkout: one round trip a statement instead of four.
            self._reader: AsyncEngine | None = None
            if backend == "postgresql":
                self._reader = create_async_engine(
                    self.url,
                    echo=echo,
                    hide_parameters=not echo,
                    isolation_level="AUTOCOMMIT",
                    pool_size=READER_POOL_SIZE,
                    max_overflow=READER_POOL_OVERFLOW,
                    connect_args={"server_settings": READER_SERVER_SETTINGS},
                )
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ConfigError(
                f"setting `database.url`: cannot use database {self._shown}: {exc}"
            ) from None
        self._opened = False  # a connection worked at least once (see close)
        # SQLite: this process's writers take turns, per event loop (see write).
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        if self.is_sqlite:
            self._install_sqlite_hooks()

    def __repr__(self) -> str:
        return f"Database({self._shown!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _install_sqlite_hooks(self) -> None:
        file_backed = not _is_memory(self.url)

        @event.listens_for(self.engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # The driver's own implicit BEGIN skips SELECTs and DDL; SQLAlchemy issues BEGIN
            # itself (below) so reads are consistent and migrations are transactional.
            try:
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                try:
                    # These pragmas are per connection and cannot change inside a transaction.
                    cursor.execute("PRAGMA foreign_keys = ON")
                    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                    if file_backed:
                        # Readers never block the writer. synchronous stays FULL (not NORMAL):
                        # the digest ledger must survive a power cut, or a resend could repeat.
                        cursor.execute("PRAGMA journal_mode = WAL")
                finally:
                    cursor.close()
            except Exception:
                # The pool does not close a connection whose connect hook failed (e.g. the
                # file is not a database); aiosqlite's thread would outlive the event loop.
                dbapi_connection.close()
                raise

        @event.listens_for(self.engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, url: str | URL, *, migrate: bool = True, echo: bool = False
    ) -> AsyncIterator[Database]:
        """``async with Database.connect(url) as db:`` opens (and migrates), then closes."""
        db = await open(url, migrate=migrate, echo=echo)
        try:
            yield db
        finally:
            await db.close()

    async def ping(self) -> None:
        """Open a connection and run a trivial query; raise :class:`StorageError` if impossible."""
        self._check_sqlite_path()
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))
        self._opened = True

    def _check_sqlite_path(self) -> None:
        # sqlite3 says only "unable to open database file"; name the actual problem instead.
        if not self.is_sqlite or _is_memory(self.url) or self.url.database is None:
            return
        if self.url.database.startswith("file:"):
            return
        path = Path(self.url.database)
        parent = path.parent
        if not parent.is_dir():
            raise StorageError(f"cannot open database {path}: directory {parent} does not exist")
        if path.is_dir():
            raise StorageError(f"cannot open database {path}: it is a directory")

    async def close(self) -> None:
        """Close every connection; on SQLite first refresh the planner's statistics."""
        if self.is_sqlite and self._opened:
            try:
                async with self.engine.connect() as conn:
                    # Cheap (it only analyzes what changed a lot) and keeps query plans good.
                    await conn.exec_driver_sql("PRAGMA optimize")
            except DBAPIError as exc:
                log.debug("PRAGMA optimize failed on close: %s", _describe(exc))
        await self.engine.dispose()
        if self._reader is not None:
            await self._reader.dispose()

    # -- transactions --------------------------------------------------------------------------

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; everything inside sees one snapshot, then rolls back.

        SQLite's transactions are snapshots already. PostgreSQL's default (READ COMMITTED)
        takes a new snapshot per statement, so reads made of several queries (mentions, then
        their links) run in a read-only REPEATABLE READ transaction, which never waits for
        writers nor makes them fail."""
        try:
            async with self.engine.connect() as conn:
                if not self.is_sqlite:
                    await conn.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                yield conn
        except DBAPIError as exc:
            raise StorageError(f"database {self.where}: {_describe(exc)}") from exc
        except StatementError as exc:
            _reraise_bind_error(exc)

    async def fetch(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Row[Any]]:
        """The rows of one statement that reads alone: a search, an autocomplete, a lookup.

        On SQLite this is :meth:`read`. On PostgreSQL :meth:`read` costs four round trips to
        the server (the pool's ping, BEGIN, the statement, ROLLBACK), which on a busy machine
        were most of a search's time. Here the statement is the only round trip: it runs in
        autocommit (it sees its own snapshot, all one statement needs), on a connection of a
        read-only session (``default_transaction_read_only``: a write fails), taken from a
        pool that does not ping. A connection the server has dropped since (a restart, a
        failover, an idle timeout) fails with a disconnect, which empties that pool, and the
        statement runs once more on a new connection.
        """
        if self._reader is None:
            async with self.read() as conn:
                return list(await conn.execute(statement, params))
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                async with self._reader.connect() as conn:
                    return list(await conn.execute(statement, params))
            except DBAPIError as exc:
                if exc.connection_invalidated and attempt < FETCH_ATTEMPTS:
                    log.info(
                        "database %s dropped a pooled connection (%s); running the read again",
                        self.where,
                        _describe(exc),
                    )
                    continue
                raise StorageError(f"database {self.where}: {_describe(exc)}") from exc
            except StatementError as exc:
                _reraise_bind_error(exc)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A short write transaction, committed on success and rolled back on any error.

        On SQLite the writers of this process take turns (first come, first served) before
        asking for the database's one write lock: hundreds of digests finishing at once would
        otherwise all poll for it, and some wait out the busy timeout and fail. The busy
        timeout is then only ever spent on another process's writes."""
        async with self._writer_turn():
            try:
                async with self.engine.connect() as conn:
                    if self.is_sqlite:
                        await conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                    async with conn.begin():
                        yield conn
            except DBAPIError as exc:
                raise StorageError(f"database {self.where}: {_describe(exc)}") from exc
            except StatementError as exc:
                _reraise_bind_error(exc)

    @asynccontextmanager
    async def _writer_turn(self) -> AsyncIterator[None]:
        if not self.is_sqlite:
            yield
            return
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = asyncio.Lock()
        async with lock:
            yield

    # -- migrations ----------------------------------------------------------------------------

    async def current_revision(self) -> str | None:
        """The schema revision stamped in the database, or None for an empty database."""

        def _current(conn: Connection) -> str | None:
            return MigrationContext.configure(conn).get_current_revision()

        async with self.read() as conn:
            return await conn.run_sync(_current)

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` in one transaction."""
        await self._migrate(command.upgrade, revision)

    async def downgrade(self, revision: str) -> None:
        """Revert migrations down to ``revision`` (``"base"`` empties the database)."""
        await self._migrate(command.downgrade, revision)

    async def check_schema(self) -> None:
        """Raise :class:`StorageError` unless the database is at this code's head revision."""
        current, head = await self.current_revision(), head_revision()
        if current == head:
            return
        if current is None:
            raise StorageError(
                f"database {self._shown} has no schema yet; run `hotpapers db upgrade`"
            )
        if not self._known(current):
            raise StorageError(self._newer_message(current))
        raise StorageError(
            f"database {self._shown} is at schema revision {current}, this version needs {head}; "
            "run `hotpapers db upgrade`"
        )

    @staticmethod
    def _known(revision: str) -> bool:
        try:
            return _scripts().get_revision(revision) is not None
        except CommandError:
            return False

    def _newer_message(self, current: str) -> str:
        return (
            f"database {self._shown} is at schema revision {current}, which this version of "
            f"hotpapers does not know (its newest is {head_revision()}): the database was "
            "written by a newer hotpapers; upgrade hotpapers instead of the database"
        )

    async def _migrate(self, action: Any, revision: str) -> None:
        self._check_sqlite_path()
        current = await self.current_revision()
        if current is not None and not self._known(current):
            raise StorageError(self._newer_message(current))

        def _run(conn: Connection) -> None:
            fk_off = self.is_sqlite
            if fk_off:
                # Batch migrations on SQLite copy and drop tables; with foreign keys on, the drop
                # would cascade-delete child rows. The pragma is a no-op inside a transaction, so
                # it is set on the raw connection before Alembic begins one.
                _raw_pragma(conn, "PRAGMA foreign_keys = OFF")
            else:
                # Processes starting together on one PostgreSQL database (shards) migrate one
                # at a time: the next waits here, then finds the schema at head. (On SQLite the
                # file lock, storage/lock.py, already keeps to one process.) Alembic then runs
                # inside this transaction, which is committed below.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            try:
                action(alembic_config(conn), revision)
                broken = (
                    conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() if fk_off else []
                )
                conn.commit()
                if broken:
                    raise StorageError(
                        f"migration to {revision} left {len(broken)} broken foreign keys, "
                        f"first in table {broken[0][0]}"
                    )
            finally:
                if fk_off:
                    conn.rollback()
                    _raw_pragma(conn, "PRAGMA foreign_keys = ON")

        try:
            async with self.engine.connect() as conn:
                await conn.run_sync(_run)
        except CommandError as exc:
            raise StorageError(f"cannot migrate database {self._shown}: {exc}") from None
        except DBAPIError as exc:
            raise StorageError(f"cannot migrate database {self._shown}: {_describe(exc)}") from exc
        log.info("database %s migrated to %s", self._shown, await self.current_revision())


def _reraise_bind_error(exc: StatementError) -> NoReturn:
    """A value refused by a column type (a naive datetime, say) is the caller's bug: say so."""
    if isinstance(exc.orig, ValueError | TypeError):
        raise exc.orig from None
    raise exc


def _raw_pragma(conn: Connection, statement: str) -> None:
    """Run a pragma on the DB-API connection, outside any SQLAlchemy-managed transaction."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


async def open(url: str | URL, *, migrate: bool = True, echo: bool = False) -> Database:
    """Open the database at ``url``; with ``migrate`` bring its schema to head first.

    Without ``migrate`` the connection is only checked: the CLI's ``db upgrade`` opens this way
    and then calls :meth:`Database.upgrade`, and callers that must not migrate use
    :meth:`Database.check_schema`.
    """
    db = Database(url, echo=echo)
    try:
        await db.ping()
        if migrate:
            await db.upgrade()
    except StorageError:
        await db.close()
        raise
    except (DBAPIError, OSError) as exc:
        await db.close()
        raise StorageError(f"cannot open database {db.where}: {_describe(exc)}") from exc
    return db
