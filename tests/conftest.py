"""Shared test fixtures: where ``shared/`` is, a clean settings environment, and databases on
every backend.

Every test that asks for a database (``backend``, ``migrated_url``, ``db``, or a fixture built
on them, such as the bot tests' ``botworld``) runs once per backend: ``[sqlite]`` always, and
``[postgresql]`` against the server named by ``HOTPAPERS_TEST_POSTGRES_URL`` (``eval "$(bash
.ci/postgres.sh start)"`` makes a throwaway one). Without that variable the PostgreSQL runs are
skipped, except under ``CI=true``, where they fail: CI must really run them.
``@pytest.mark.sqlite_only`` keeps a test to SQLite (pragmas, WAL, FTS5 internals, the writers'
lock, the file lock of ``hotpapers run``), ``@pytest.mark.postgresql_only`` to PostgreSQL.

Migrating costs ~100 ms, most of a fast test: SQLite tests get a copy of a database migrated
once per session, PostgreSQL tests share one migrated database emptied before each test
(``tests/postgres.py``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.storage.engine import Database
from tests.postgres import IN_CI, NO_POSTGRES, POSTGRES_URL, PostgresServer, run_sync

REPO = Path(__file__).resolve().parents[1]

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


def shared_dir() -> Path:
    """``../shared`` beside the repository (CI clones it there), or $HOTPAPERS_SHARED."""
    override = os.environ.get("HOTPAPERS_SHARED")
    path = Path(override) if override else REPO.parent / "shared"
    if not path.is_dir():
        pytest.fail(f"shared/ material not found at {path}; set HOTPAPERS_SHARED")
    return path


@pytest.fixture
def shared() -> Path:
    return shared_dir()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's config, tokens or overrides."""
    for key in list(os.environ):
        # HOTPAPERS_SHARED and HOTPAPERS_TEST_* configure the test harness (where ../shared,
        # the PostgreSQL server, Chromium and the artefacts are), not the bot.
        harness = key == "HOTPAPERS_SHARED" or key.startswith("HOTPAPERS_TEST_")
        if key.startswith("HOTPAPERS_") and not harness:
            monkeypatch.delenv(key)
    for key in ("DISCORD_TOKEN", "X_BEARER_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    # The default data directory (platformdirs reads XDG_DATA_HOME), for this test and the
    # processes it starts: never the developer's ~/.local/share/hotpapers.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.chdir(tmp_path)


# -- databases on every backend -----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    # Read by tests/web/test_browser.py (here: options are only read from the root conftest).
    parser.addoption(
        "--artefacts",
        metavar="DIR",
        default=None,
        help="where the browser tests save their screenshots "
        "(default: browser-artefacts under pytest's base temporary directory)",
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the head revision, without rows, made once per session (migrated on a
    loop of its own: the tests' loops are per test)."""
    path = tmp_path_factory.mktemp("template") / "hotpapers.db"

    async def migrate() -> None:
        async with Database.connect(f"sqlite+aiosqlite:///{path}"):
            pass

    run_sync(migrate())
    return path


@pytest.fixture
def migrated_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a database at the head revision with no rows: a new SQLite file under
    tmp_path (a copy of the session's template), or the session's PostgreSQL database, emptied.
    Opening it migrates nothing; several connections (or processes) may share it."""
    if backend == SQLITE:
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "hotpapers.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.migrated_database()


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    """A migrated, empty database on the backend under test (a file on SQLite)."""
    async with Database.connect(migrated_url, migrate=False) as database:
        yield database
