"""Database.fetch: the one-statement reads of searches and lookups, in a single round trip on
PostgreSQL (autocommit, read-only, no ping), and what happens when the server drops its
connection."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from bot.core.errors import StorageError
from bot.storage.engine import READER_SERVER_SETTINGS, Database
from bot.storage.papers import PaperRepository
from tests.storage.factories import T0, make_paper

READER = READER_SERVER_SETTINGS["application_name"]


async def test_fetch_returns_the_rows_of_one_statement(db: Database) -> None:
    await PaperRepository(db).upsert([make_paper("2503.00001"), make_paper("2503.00002")], T0)
    rows = await db.fetch(
        text("SELECT arxiv_id FROM papers WHERE arxiv_id > :after ORDER BY arxiv_id"),
        {"after": "2503.00001"},
    )
    assert [row.arxiv_id for row in rows] == ["2503.00002"]
    assert await db.fetch(text("SELECT arxiv_id FROM papers WHERE false")) == []


@pytest.mark.postgresql_only
async def test_fetch_sends_only_its_statement_on_a_read_only_session(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping and no BEGIN (so no ROLLBACK) go with fetch's statement, where read() sends
    both; its session is read-only and named for pg_stat_activity."""
    calls: list[str] = []
    for owner, name in (
        (asyncpg_dialect.AsyncAdapt_asyncpg_connection, "ping"),
        (asyncpg.transaction.Transaction, "start"),  # BEGIN
    ):
        original = getattr(owner, name)

        def counted(self: object, *args: object, _name: str = name, _f: Any = original) -> Any:
            calls.append(_name)
            return _f(self, *args)

        monkeypatch.setattr(owner, name, counted)
    probe = text(
        "SELECT current_setting('transaction_read_only') AS read_only, "
        "current_setting('application_name') AS name"
    )
    for _ in range(3):
        (row,) = await db.fetch(probe)
        assert (row.read_only, row.name) == ("on", READER)
    assert calls == []
    async with db.read() as conn:
        row = (await conn.execute(probe)).one()
    assert {"ping", "start"} <= set(calls)
    assert row.name != READER


@pytest.mark.postgresql_only
async def test_a_write_through_fetch_is_refused_and_changes_nothing(db: Database) -> None:
    with pytest.raises(StorageError, match="read-only transaction"):
        await db.fetch(
            text(
                "INSERT INTO missing_ids (arxiv_id, reason, checked_at) "
                "VALUES ('2503.00009', 'x', now()) RETURNING arxiv_id"
            )
        )
    async with db.read() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM missing_ids")) == 0


@pytest.mark.postgresql_only
async def test_fetch_runs_again_when_the_server_dropped_its_pooled_connection(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A server restart or an idle timeout closes the pooled connections; nothing pings them
    first, so the next search finds out by failing, and is run once more on a new one."""
    repo = PaperRepository(db)
    await repo.upsert([make_paper("2503.00001", title="Sparse attention")], T0)
    assert [p.arxiv_id for p in await repo.search("sparse")] == ["2503.00001"]
    async with db.write() as conn:
        killed = await conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": READER},
        )
    assert killed == 1
    with caplog.at_level(logging.INFO, logger="bot.storage.engine"):
        assert [p.arxiv_id for p in await repo.search("sparse")] == ["2503.00001"]
        assert [a for a, _ in await repo.autocomplete("spa")] == ["2503.00001"]
    dropped = [r for r in caplog.records if "dropped a pooled connection" in r.getMessage()]
    assert len(dropped) == 1


@pytest.mark.postgresql_only
async def test_fetch_gives_up_with_a_storage_error_when_every_connection_fails(
    db: Database,
) -> None:
    """Each attempt's connection is killed while its statement runs: the second failure is
    reported as a StorageError naming the database, not a driver traceback."""
    attempts = 0

    async def kill_self() -> None:
        nonlocal attempts
        attempts += 1
        await db.fetch(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    with pytest.raises(StorageError, match="database "):
        await kill_self()
    assert attempts == 1
    # The pool recovers: the next read works.
    assert [tuple(r) for r in await db.fetch(text("SELECT 1"))] == [(1,)]
