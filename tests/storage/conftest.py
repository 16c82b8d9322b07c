"""Fixtures for storage tests: real databases, migrated, on every backend.

Every test that uses a database runs once per backend: ``[sqlite]`` always (in memory or under
tmp_path), and ``[postgresql]`` against the server named by ``HOTPAPERS_TEST_POSTGRES_URL``
(``bash .ci/postgres.sh start`` makes a throwaway one), each test on an empty database.
Without that variable the PostgreSQL runs are skipped, except under ``CI=true``, where they
fail: CI must really run them. ``@pytest.mark.sqlite_only`` keeps a test to SQLite (pragmas,
WAL, FTS5 internals, the writers' lock), ``@pytest.mark.postgresql_only`` to PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.storage.engine import Database
from tests.storage.postgres import PostgresServer

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
MEMORY = "sqlite+aiosqlite:///:memory:"
POSTGRES_URL_VARIABLE = "HOTPAPERS_TEST_POSTGRES_URL"
# Read at import: the autouse _clean_environment fixture removes HOTPAPERS_* before each test.
POSTGRES_URL = os.environ.get(POSTGRES_URL_VARIABLE) or None
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
NO_POSTGRES = (
    f"{POSTGRES_URL_VARIABLE} is not set: start a server with "
    f'`eval "$(bash .ci/postgres.sh start)"` to run the PostgreSQL backend too'
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    names = [SQLITE, POSTGRESQL]
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        names.remove(POSTGRESQL)
    if metafunc.definition.get_closest_marker("postgresql_only") is not None:
        names.remove(SQLITE)
    params = []
    for name in names:
        skip = name == POSTGRESQL and POSTGRES_URL is None and not IN_CI
        marks = [pytest.mark.skip(reason=NO_POSTGRES)] if skip else []
        params.append(pytest.param(name, id=name, marks=marks))
    metafunc.parametrize("backend", params, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test: ``"sqlite"`` or ``"postgresql"``."""
    name: str = request.param
    if name == POSTGRESQL and POSTGRES_URL is None:
        pytest.fail(f"CI=true, so the PostgreSQL backend must be tested, but {NO_POSTGRES}")
    return name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    assert POSTGRES_URL is not None  # only PostgreSQL runs ask for it
    server = PostgresServer(POSTGRES_URL)
    yield server
    server.close()


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
def migrated_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a database at the head revision with no rows: a new SQLite file (migrated
    on open), or the session's PostgreSQL database, emptied."""
    if backend == SQLITE:
        return f"sqlite+aiosqlite:///{tmp_path / 'hotpapers.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.migrated_database()


@pytest.fixture
async def db(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """A migrated database: SQLite in memory, or a fresh PostgreSQL database."""
    url = MEMORY if backend == SQLITE else request.getfixturevalue("migrated_url")
    async with Database.connect(url) as database:
        yield database


@pytest.fixture
async def file_db(migrated_url: str) -> AsyncIterator[Database]:
    """A migrated database that other connections can share: a SQLite file, or PostgreSQL."""
    async with Database.connect(migrated_url) as database:
        yield database
