"""A real PostgreSQL server for the storage tests.

Tests of the repositories share one database at the head revision, emptied before each test
(``TRUNCATE … RESTART IDENTITY``: a few ms, where a new database costs a few hundred).
Migration tests get a new, empty database each, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import URL, make_url

from bot.storage.engine import Database, head_revision

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end on a loop of its own, in another thread: callable from sync
    fixtures, and even while the test's own loop is running, without touching that loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


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
        self._shared: str | None = None

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def empty_database(self) -> str:
        """A new database without any schema; returns its URL (drop it with :meth:`drop`)."""
        return run_sync(self._create())

    def migrated_database(self) -> str:
        """The session's database at the head revision, with every table emptied."""
        return run_sync(self._migrated())

    def drop(self, url: str) -> None:
        run_sync(self._drop(make_url(url).database or ""))

    def close(self) -> None:
        if self._shared is not None:
            run_sync(self._drop(self._shared))
            self._shared = None

    async def _connect(self, database: str | None = None) -> asyncpg.Connection:
        url = self.url.set(drivername="postgresql")
        if database is not None:
            url = url.set(database=database)
        return await asyncpg.connect(url.render_as_string(hide_password=False))

    async def _create(self) -> str:
        name = f"{self._prefix}_{next(self._names)}"
        conn = await self._connect()
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        finally:
            await conn.close()
        return self.url_of(name)

    async def _migrated(self) -> str:
        if self._shared is None or not await self._emptied(self._shared):
            if self._shared is not None:  # a test changed its schema: start again
                await self._drop(self._shared)
                self._shared = None
            url = await self._create()
            async with Database.connect(url):
                pass  # migrated to head on open
            self._shared = make_url(url).database
        assert self._shared is not None
        return self.url_of(self._shared)

    async def _emptied(self, name: str) -> bool:
        """Empty every table of ``name``; False if it is no longer at head (or is busy)."""
        conn = await self._connect(name)
        try:
            version = await conn.fetchval("SELECT version_num FROM alembic_version")
            if version != head_revision():
                return False
            tables = await conn.fetch(
                "SELECT quote_ident(tablename) AS name FROM pg_tables "
                "WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
            )
            # A connection a test left open would hold its locks: do not wait for it.
            await conn.execute("SET lock_timeout = '2s'")
            names = ", ".join(row["name"] for row in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()
        return True

    async def _drop(self, name: str) -> None:
        if not name.startswith(self._prefix):
            raise ValueError(f"refusing to drop {name!r}: not made by this session")
        conn = await self._connect()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
