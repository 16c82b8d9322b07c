"""A real PostgreSQL server for the tests that run on both backends (storage, services, bot).

Tests that need a migrated database share one at the head revision, emptied before each test
(a few ms, where creating and migrating a database costs a hundred or more). Migration tests
get a new, empty database each, dropped afterwards. The fixtures over this are in
``tests/conftest.py``.

Emptying is most of what a PostgreSQL test costs beyond its SQLite twin, so it is kept cheap:
one connection to the shared database stays open on a loop thread of its own for the whole
session (no connect per test), and only the tables a test wrote to are emptied, those with few
rows by ``DELETE`` (a ``TRUNCATE`` makes new files for a table and each of its indexes, ~5 ms a
table; ``ALTER SEQUENCE … RESTART`` too, where ``setval`` does not). Sessions a test left open
are ended first, so that no lock (a row's, a leader's advisory lock) outlives its test.

Databases are made with a linguistic collation (``en_US.utf8``) when the server has one, as
production databases mostly are, so that text compared or sorted only right under ``C`` fails
here first.
"""

from __future__ import annotations

import asyncio
import graphlib
import itertools
import os
import secrets
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import URL, make_url

from bot.storage.engine import Database, head_revision

T = TypeVar("T")

# The server the tests use, named by the environment; the rule: skipped without it locally,
# failing without it under CI=true (CI must run the PostgreSQL tests).
POSTGRES_URL_VARIABLE = "HOTPAPERS_TEST_POSTGRES_URL"
# Read at import: the autouse _clean_environment fixture removes HOTPAPERS_* before each test.
POSTGRES_URL = os.environ.get(POSTGRES_URL_VARIABLE) or None
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
NO_POSTGRES = (
    f"{POSTGRES_URL_VARIABLE} is not set: start a server with "
    f'`eval "$(bash .ci/postgres.sh start)"` to run the PostgreSQL backend too'
)

# A table with this many rows or more is truncated rather than emptied row by row.
MANY_ROWS = 1000


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end on a loop of its own, in another thread: callable from sync
    fixtures, and even while the test's own loop is running, without touching that loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class _LoopThread:
    """An event loop running in a thread of its own for as long as the session: sync fixtures
    run coroutines on it (even while a test's loop runs), and its connections outlive a test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="tests-postgres", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class PostgresServer:
    """Makes, empties and drops the databases of one test session on the server at ``url``.

    Names start with ``hp_test_<pid>_<random>``, so sessions sharing a server never collide,
    and only such databases are ever dropped.
    """

    def __init__(self, url: str) -> None:
        self.url: URL = make_url(url)
        if self.url.get_backend_name() != "postgresql":
            raise ValueError(f"not a PostgreSQL URL: {self.url!r}")
        self._prefix = f"hp_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._names = itertools.count()
        self._runner: _LoopThread | None = None
        self._locale: str | None = None  # "" once known that the server has none
        self._shared: _Shared | None = None
        # How often the shared database could not be emptied and was made again (a test left
        # a connection holding locks, or changed the schema): each costs a migration.
        self.rebuilds = 0

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def empty_database(self) -> str:
        """A new database without any schema; returns its URL (drop it with :meth:`drop`)."""
        return run_sync(self._create())

    def migrated_database(self) -> str:
        """The session's database at the head revision, with every table emptied (:meth:`close`
        drops it and closes the connection kept to it)."""
        if self._runner is None:
            self._runner = _LoopThread()
        return self._runner.run(self._migrated())

    def drop(self, url: str) -> None:
        run_sync(self._drop(make_url(url).database or ""))

    def close(self) -> None:
        if self._runner is None:
            return
        if self._shared is not None:
            self._runner.run(self._forget_shared())
        self._runner.close()
        self._runner = None

    async def _connect(self, database: str | None = None) -> asyncpg.Connection:
        url = self.url.set(drivername="postgresql")
        if database is not None:
            url = url.set(database=database)
        return await asyncpg.connect(url.render_as_string(hide_password=False))

    async def _create(self) -> str:
        name = f"{self._prefix}_{next(self._names)}"
        conn = await self._connect()
        try:
            if self._locale is None:
                self._locale = await _linguistic_locale(conn)
            locale = f" LOCALE '{self._locale}'" if self._locale else ""
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{locale}')
        finally:
            await conn.close()
        return self.url_of(name)

    async def _migrated(self) -> str:
        if self._shared is None or not await self._shared.empty():
            if self._shared is not None:  # a test changed its schema: start again
                await self._forget_shared()
                self.rebuilds += 1
            url = await self._create()
            async with Database.connect(url):
                pass  # migrated to head on open
            name = make_url(url).database
            assert name is not None
            self._shared = await _Shared.open(name, await self._connect(name))
        return self.url_of(self._shared.name)

    async def _forget_shared(self) -> None:
        assert self._shared is not None
        shared, self._shared = self._shared, None
        await shared.close()
        await self._drop(shared.name)

    async def _drop(self, name: str) -> None:
        if not name.startswith(self._prefix):
            raise ValueError(f"refusing to drop {name!r}: not made by this session")
        conn = await self._connect()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


class _Shared:
    """The session's migrated database and the connection that empties it between tests."""

    def __init__(self, name: str, conn: asyncpg.Connection, tables: list[str], counts: str):
        self.name = name
        self._conn = conn
        self._tables = tables  # each before the tables its foreign keys point to
        self._counts = counts  # how many rows each table has, up to MANY_ROWS

    @classmethod
    async def open(cls, name: str, conn: asyncpg.Connection) -> _Shared:
        # A connection a test left open would hold its locks: do not wait for it.
        await conn.execute("SET lock_timeout = '2s'")
        tables = await _tables(conn)
        counts = " UNION ALL ".join(
            f"SELECT {i} AS i, (SELECT count(*) FROM "  # noqa: S608 - catalog names
            f"(SELECT FROM {table} LIMIT {MANY_ROWS}) AS t) AS n"
            for i, table in enumerate(tables)
        )
        return cls(name, conn, tables, counts)

    async def empty(self) -> bool:
        """Empty every table and start every sequence again (ids from 1, as in a new
        database); False if the database is no longer at head, or is busy."""
        try:
            version = await self._conn.fetchval("SELECT version_num FROM alembic_version")
            if version != head_revision():
                return False
            # A session a test left open (a leaked connection, a leader's advisory lock) would
            # hold its locks into the next test: end it (the leak itself shows as a
            # ResourceWarning when its objects are collected).
            await self._conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            rows = {self._tables[r["i"]]: r["n"] for r in await self._conn.fetch(self._counts)}
            many = [t for t in self._tables if rows[t] >= MANY_ROWS]
            few = [t for t in self._tables if 0 < rows[t] < MANY_ROWS]
            # One script, so one transaction.
            script = [f"TRUNCATE {', '.join(many)} CASCADE"] if many else []
            script += [f"DELETE FROM {table}" for table in few]  # noqa: S608 - catalog names
            script.append(
                "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, "
                "start_value, false) FROM pg_sequences WHERE schemaname = current_schema()"
            )
            await self._conn.execute("; ".join(script))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return False
        return True

    async def close(self) -> None:
        try:
            await self._conn.close(timeout=5)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            self._conn.terminate()


async def _linguistic_locale(conn: asyncpg.Connection) -> str:
    """``en_US.utf8`` if the server has it, else ``""`` (the server's default).

    Production databases mostly sort text with a linguistic collation, which ignores punctuation
    and case at first; test servers made by ``initdb`` in a container are often ``C``. Tests run
    under the linguistic one when they can, so that an order or a range that holds only under
    ``C`` fails here rather than in production."""
    found = await conn.fetchval(
        "SELECT collcollate FROM pg_collation WHERE collprovider = 'c' "
        "AND collname IN ('en_US.utf8', 'en_US.UTF-8') ORDER BY collname LIMIT 1"
    )
    return found or ""


async def _tables(conn: asyncpg.Connection) -> list[str]:
    """The tables of the current schema but Alembic's, each before the tables its foreign keys
    point to (the order to delete their rows in), as quoted identifiers."""
    tables = {
        row["oid"]: row["name"]
        for row in await conn.fetch(
            "SELECT c.oid, quote_ident(c.relname) AS name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
            "AND c.relname <> 'alembic_version'"
        )
    }
    waits: dict[int, set[int]] = {oid: set() for oid in tables}  # a table: those referencing it
    for row in await conn.fetch(
        "SELECT conrelid, confrelid FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid <> confrelid"
    ):
        if row["conrelid"] in tables and row["confrelid"] in tables:
            waits[row["confrelid"]].add(row["conrelid"])
    return [tables[oid] for oid in graphlib.TopologicalSorter(waits).static_order()]
