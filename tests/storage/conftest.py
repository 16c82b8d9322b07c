"""Fixtures for storage tests: real databases, migrated, on every backend.

Every test that uses a database runs once per backend: ``[sqlite]`` always (in memory or under
tmp_path), and ``[postgresql]`` against the server named by ``HOTPAPERS_TEST_POSTGRES_URL``
(``bash .ci/postgres.sh start`` makes a throwaway one), each test on an empty database.
Without that variable the PostgreSQL runs are skipped, except under ``CI=true``, where they
fail: CI must really run them. ``@pytest.mark.sqlite_only`` keeps a test to SQLite (pragmas,
WAL, FTS5 internals, the writers' lock), ``@pytest.mark.postgresql_only`` to PostgreSQL.

The parametrization and the fixtures shared with the other suites (``backend``,
``postgres_server``, ``migrated_url``) are in ``tests/conftest.py``; these are the storage
tests' own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.storage.engine import Database
from tests.conftest import SQLITE
from tests.postgres import PostgresServer

MEMORY = "sqlite+aiosqlite:///:memory:"


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database (no schema): a file on SQLite."""
    if backend == SQLITE:
        yield f"sqlite+aiosqlite:///{tmp_path / 'hotpapers.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.empty_database()
    yield url
    server.drop(url)


@pytest.fixture
async def db(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """A migrated database: SQLite in memory, or the session's PostgreSQL database, emptied."""
    url = MEMORY if backend == SQLITE else request.getfixturevalue("migrated_url")
    async with Database.connect(url) as database:
        yield database


@pytest.fixture
async def file_db(migrated_url: str) -> AsyncIterator[Database]:
    """A migrated database that other connections can share: a SQLite file, or PostgreSQL."""
    async with Database.connect(migrated_url) as database:
        yield database
