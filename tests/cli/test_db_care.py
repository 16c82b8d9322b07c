"""`hotpapers db backup`, `db restore` and `db stats`: what they print, their exit codes, and
one-line errors without passwords (in-process through bot.cli.main)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from bot.storage.engine import Database, head_revision
from bot.storage.lock import run_lock
from tests.cli.conftest import Result
from tests.storage.deployment import counts, dump, fill

PASSWORD = "pg-s3cret-Pa55"


@pytest.fixture
async def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A filled SQLite deployment, configured as `hotpapers` finds it: the environment."""
    path = tmp_path / "hotpapers.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with Database.connect(url) as db:
        await fill(db)
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", url)
    return path


async def contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    async with Database.connect(f"sqlite+aiosqlite:///{path}", migrate=False) as db:
        return await dump(db)


def kept_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("hotpapers.db.before-restore-*"))


def one_line_error(run: Result) -> str:
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("hotpapers: error: "), run.err
    assert "Traceback" not in run.err
    return lines[0].removeprefix("hotpapers: error: ")


async def test_backup_then_restore(cli: Any, database: Path, tmp_path: Path) -> None:
    saved = await contents(database)
    target = tmp_path / "backups" / "hp.db"
    target.parent.mkdir()

    backup = await cli("db", "backup", str(target))

    assert backup.code == 0, backup.err
    assert backup.err == ""
    lines = backup.out.splitlines()
    assert lines[0] == f"backup of {database} written to {target}"
    assert f"schema revision {head_revision()}" in lines[1]
    assert lines[2].startswith("  integrity_check: ok; copied in ")
    assert await contents(target) == saved

    again = await cli("db", "backup", str(target))
    assert again.code == 2
    assert one_line_error(again) == (
        f"{target} exists: give another PATH, or --force to replace it"
    )
    forced = await cli("db", "backup", str(target), "--force", "--quick")
    assert forced.code == 0, forced.err
    assert "quick_check: ok" in forced.out
    assert "replacing the file" in forced.out

    # The database moves on, then the backup comes back.
    async with Database.connect(f"sqlite+aiosqlite:///{database}") as db, db.write() as conn:
        await conn.exec_driver_sql("DELETE FROM digest_papers")
    restore = await cli("db", "restore", str(target))
    assert restore.code == 0, restore.err
    assert restore.out.splitlines()[0] == f"database {database} restored from {target}"
    assert "the database it replaced is kept as " in restore.out
    assert await contents(database) == saved
    (kept,) = kept_files(tmp_path)
    assert (await contents(kept))["digest_papers"] == []

    no_keep = await cli("db", "restore", str(target), "--no-keep")
    assert no_keep.code == 0, no_keep.err
    assert "kept as" not in no_keep.out
    assert len(kept_files(tmp_path)) == 1


async def test_restore_refuses_while_the_bot_runs(cli: Any, database: Path, tmp_path: Path) -> None:
    assert (await cli("db", "backup", str(tmp_path / "b.db"))).code == 0
    with run_lock(f"sqlite+aiosqlite:///{database}"):
        refused = await cli("db", "restore", str(tmp_path / "b.db"))
    assert refused.code == 1
    assert one_line_error(refused) == (
        f"database {database} is in use by a running hotpapers bot (pid {os.getpid()}): stop "
        "it, then restore again; nothing was changed"
    )
    # A backup is no trouble to a running bot: it takes no lock.
    with run_lock(f"sqlite+aiosqlite:///{database}"):
        beside = await cli("db", "backup", str(tmp_path / "c.db"))
    assert beside.code == 0, beside.err


async def test_stats_table_and_json(cli: Any, database: Path) -> None:
    async with Database.connect(f"sqlite+aiosqlite:///{database}") as db:
        expected = await counts(db)

    table = await cli("db", "stats")
    assert table.code == 0, table.err
    assert table.out.startswith(f"database  sqlite+aiosqlite:///{database} (schema revision ")
    for name, rows in expected.items():
        (line,) = [line for line in table.out.splitlines() if line.startswith(f"{name} ")]
        assert line.split()[1] == f"{rows:,}"

    machine = await cli("db", "stats", "--json")
    assert machine.code == 0, machine.err
    data = json.loads(machine.out)
    assert {t["name"]: t["rows"] for t in data["tables"]} == expected
    assert data["backend"] == "sqlite"
    assert data["size"]["bytes"] >= data["size"]["file_bytes"] > 0


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("db", "backup", ""), 2, "`db backup`: PATH is empty; give the file (or folder) to write"),
        (("db", "backup", "/no/such/folder/x.db"), 2, "folder /no/such/folder does not exist"),
        (("db", "restore", "/no/such/backup.db"), 2, "no backup at /no/such/backup.db"),
    ],
)
async def test_bad_paths_are_one_line(
    cli: Any, database: Path, argv: tuple[str, ...], code: int, message: str
) -> None:
    run = await cli(*argv)
    assert run.code == code
    assert message in one_line_error(run)


async def test_a_missing_database(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.db"
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", f"sqlite+aiosqlite:///{missing}")
    backup = await cli("db", "backup", str(tmp_path / "b.db"))
    assert backup.code == 1
    assert one_line_error(backup) == f"no database to back up: {missing} does not exist"
    stats = await cli("db", "stats")
    assert stats.code == 1
    assert one_line_error(stats) == f"no database at {missing}"
    assert not missing.exists()


async def test_postgresql_is_told_its_tools_without_the_password(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "HOTPAPERS_DATABASE__URL", f"postgresql+asyncpg://hp:{PASSWORD}@db.internal/hotpapers"
    )
    backup = await cli("db", "backup", "/backups/hp.dump")
    assert backup.code == 2
    assert "`pg_dump --format=custom --file=/backups/hp.dump postgresql://hp@db.internal/" in (
        one_line_error(backup)
    )
    restore = await cli("db", "restore", "/backups/hp.dump")
    assert restore.code == 2
    assert "`pg_restore --clean --if-exists --no-owner --single-transaction " in (
        one_line_error(restore)
    )
    for run in (backup, restore):
        assert PASSWORD not in run.out + run.err
        assert "PGPASSWORD" in run.err


async def test_help_names_the_new_actions(cli: Any) -> None:
    run = await cli("db", "--help")
    assert run.code == 0
    for action in ("backup", "restore", "stats"):
        assert action in run.out
