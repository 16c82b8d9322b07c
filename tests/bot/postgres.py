"""PostgreSQL for tests of the bot's processes: a new, empty database per test.

On the server named by ``HOTPAPERS_TEST_POSTGRES_URL`` (``bash .ci/postgres.sh start`` makes a
throwaway one), as the storage suite does: without the variable these tests are skipped, except
under ``CI=true``, where they fail (CI must run them). Mark a test ``@requires_postgres`` and
ask for the ``postgres_url`` fixture (import it into the test module).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import IN_CI, NO_POSTGRES, POSTGRES_URL, PostgresServer

requires_postgres = pytest.mark.skipif(POSTGRES_URL is None and not IN_CI, reason=NO_POSTGRES)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (no schema: a bot migrates it on start),
    dropped after the test (with any connection left open)."""
    if POSTGRES_URL is None:
        pytest.fail(f"CI=true, so the tests on PostgreSQL must run, but {NO_POSTGRES}")
    server = PostgresServer(POSTGRES_URL)
    url = server.empty_database()
    try:
        yield url
    finally:
        server.drop(url)
