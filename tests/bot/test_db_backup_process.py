"""`hotpapers db backup` beside a real `hotpapers run` (and another process writing in a loop):
a consistent copy without stopping the bot; `db restore` refused until the bot stops, then done.
All real processes, as an operator runs them."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from bot.storage.engine import Database, head_revision
from tests.bot.test_run_process import bot_process, fake_sources, stop
from tests.cli.test_real_day import run_cli
from tests.storage.deployment import dump
from tests.storage.test_backup import WRITER

WAIT_S = 30.0


def count(path: Path, sql: str) -> int:
    with closing(sqlite3.connect(path, timeout=10)) as conn, conn:
        return int(conn.execute(sql).fetchone()[0])


def writer_ids(path: Path) -> list[int]:
    with closing(sqlite3.connect(path, timeout=10)) as conn, conn:
        return [r[0] for r in conn.execute("SELECT id FROM stream_gaps WHERE stream = 'writer'")]


async def until(check: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while not await asyncio.to_thread(check):  # noqa: ASYNC110 - another process's writes
            await asyncio.sleep(0.1)


def a_big_database(path: Path) -> None:
    """A database of a few thousand pages (a copy in several steps), migrated as the bot would."""
    asyncio.run(migrate(path))
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO missing_ids (arxiv_id, reason, checked_at) VALUES (?, ?, ?)",
            (
                (f"9999.{n:05d}", "not found " * 15, "2025-01-01T00:00:00.000000+00:00")
                for n in range(60_000)
            ),
        )


async def migrate(path: Path) -> None:
    async with Database.connect(f"sqlite+aiosqlite:///{path}"):
        pass


def kept_files(folder: Path) -> list[Path]:
    return list(folder.glob("bot.db.before-restore-*"))


async def contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    async with Database.connect(f"sqlite+aiosqlite:///{path}", migrate=False) as db:
        return await dump(db)


async def test_a_backup_while_the_bot_runs_and_a_restore_once_it_stopped(
    tmp_path: Path, discord_harness: Any
) -> None:
    h = discord_harness
    database = tmp_path / "bot.db"
    backup = tmp_path / "backups" / "bot-backup.db"
    backup.parent.mkdir()
    await asyncio.to_thread(a_big_database, database)
    async with fake_sources() as sources:
        env = {
            "DISCORD_TOKEN": h.token,
            "HOTPAPERS_DISCORD__API_BASE": h.fake.api_base,
            "HOTPAPERS_DISCORD__GATEWAY_URL": h.fake.gateway_url,
            "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{database}",
            **sources,
        }
        async with bot_process(h, env, tmp_path) as bot:
            # The bot ingests 5 s after its start, and records the run.
            await until(lambda: count(database, "SELECT count(*) FROM source_runs") > 0)
            writer = subprocess.Popen([sys.executable, "-c", WRITER, str(database)])  # noqa: S603, ASYNC220 - this interpreter, a fixed script
            try:
                await until(lambda: len(writer_ids(database)) >= 20)
                before = len(writer_ids(database))
                made = await run_cli("db", "backup", str(backup), env=env, cwd=tmp_path)
                after = len(writer_ids(database))

                refused = await run_cli("db", "restore", str(backup), env=env, cwd=tmp_path)
                assert bot.returncode is None  # neither disturbed the bot
                assert writer.poll() is None
            finally:
                writer.terminate()
                await asyncio.to_thread(writer.wait, 10)
            await stop(bot, tmp_path)

        assert made.code == 0, made.err
        assert made.out.startswith(f"backup of {database} written to {backup}\n")
        assert "integrity_check: ok" in made.out
        assert f"schema revision {head_revision()}" in made.out
        # Written to between its steps, SQLite started the copy over; then it went in one read.
        assert "SQLite started it over 2 times, then copied it in one step" in made.out
        assert "copying it in one read" in made.err
        # One consistent state: the writer's rows without a gap, as many as it had written by
        # some moment during the copy; the bot's posts and papers with it.
        ids = writer_ids(backup)
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert before <= len(ids) <= after
        assert count(backup, "SELECT count(*) FROM source_runs") > 0  # the bot's own writes

        assert refused.code == 1
        assert refused.err.strip() == (
            f"hotpapers: error: database {database} is in use by a running hotpapers bot "
            f"(pid {bot.pid}): stop it, then restore again; nothing was changed"
        )

        # The bot stopped: the restore goes through, and the bot's database is the backup.
        restored = await run_cli("db", "restore", str(backup), env=env, cwd=tmp_path)
        assert restored.code == 0, restored.err
        assert f"database {database} restored from {backup}" in restored.out
        assert await contents(database) == await contents(backup)
        assert len(kept_files(tmp_path)) == 1
