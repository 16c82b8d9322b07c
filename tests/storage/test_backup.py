"""Backup and restore of the SQLite database (bot.storage.backup): consistent copies while
another process writes, checked and atomic; restores that refuse a running bot, keep what they
replace and migrate older backups; and the PostgreSQL tools' commands, run for real."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.core.errors import StorageError, UserFacingError
from bot.storage import backup as backup_module
from bot.storage.backup import (
    RESTARTS_BEFORE_ONE_STEP,
    backup_sqlite,
    backup_target,
    restore_sqlite,
    sqlite_database,
)
from bot.storage.engine import Database, head_revision
from bot.storage.lock import run_lock
from tests.postgres import PostgresServer
from tests.storage.deployment import dump, fill

UTC = dt.UTC
NOW = dt.datetime(2025, 3, 1, 12, 30, 5, tzinfo=UTC)
STAMP = "20250301T123005Z"
# A process writing one row at a time, as fast as it can with a pause of 2 ms: ids 1, 2, 3…
WRITER = """
import datetime, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
while True:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")
    conn.execute(
        "INSERT INTO stream_gaps (stream, gap_start, gap_end, detected_at) "
        "VALUES ('writer', ?, ?, ?)", (now, now, now)
    )
    time.sleep(0.002)
"""


def url_of(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def size(path: Path) -> int:
    return path.stat().st_size


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def read(path: Path) -> bytes:
    return path.read_bytes()


def journal_mode(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn, conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def start_writer(database: Path) -> subprocess.Popen[bytes]:
    """Another process writing to the database in a loop, once it has written 20 rows."""
    script = [sys.executable, "-c", WRITER, str(database)]
    proc = subprocess.Popen(script)  # noqa: S603 - this interpreter, a fixed script
    deadline = time.monotonic() + 10
    while len(writer_ids(database)) < 20:
        assert proc.poll() is None, "the writer died"
        assert time.monotonic() < deadline, "the writer does not write"
        time.sleep(0.01)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    """A SQLite deployment with every table filled (about a megabyte)."""
    path = tmp_path / "data" / "hotpapers.db"
    path.parent.mkdir()
    async with Database.connect(url_of(path)) as db:
        await fill(db)
    return path


async def contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    async with Database.connect(url_of(path), migrate=False) as db:
        return await dump(db)


def writer_ids(path: Path) -> list[int]:
    # Read-write: a writer killed mid-commit leaves a rollback journal that a reader undoes.
    with closing(sqlite3.connect(path, timeout=10)) as conn, conn:
        return [r[0] for r in conn.execute("SELECT id FROM stream_gaps WHERE stream = 'writer'")]


@pytest.fixture
def writer(database: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process writing to the database in a loop, running until the test ends."""
    proc = start_writer(database)
    try:
        yield proc
    finally:
        stop(proc)


# --- backup -------------------------------------------------------------------------------------


async def test_a_backup_holds_every_row_checked_and_self_contained(
    database: Path, tmp_path: Path
) -> None:
    target = tmp_path / "backup.db"
    report = backup_sqlite(url_of(database), str(target), now=NOW)

    # One file, out of WAL mode, readable by its owner only; no temporary file left behind.
    assert journal_mode(target) == "delete"
    assert names(tmp_path) == ["backup.db", "data"]
    assert mode(target) == 0o600
    assert names(database.parent) == ["hotpapers.db"]  # no -wal or -shm left beside it
    assert report.source == database
    assert report.copy.path == target
    assert await contents(target) == await contents(database)
    assert report.copy.revision == head_revision()
    assert report.copy.check == "integrity_check"
    assert report.copy.bytes == report.copy.pages * report.copy.page_size == size(target)
    assert (report.restarts, report.one_step, report.replaced) == (0, False, False)
    text = report.describe()
    assert f"backup of {database} written to {target}" in text
    assert f"schema revision {head_revision()}" in text
    assert "integrity_check: ok" in text


async def test_a_folder_gets_a_timestamped_file_and_nothing_is_overwritten_by_accident(
    database: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    first = backup_sqlite(url_of(database), str(folder), now=NOW)
    assert first.copy.path == folder / f"hotpapers-{STAMP}.db"

    with pytest.raises(UserFacingError, match=r"exists: give another PATH, or --force"):
        backup_sqlite(url_of(database), str(folder), now=NOW)
    again = backup_sqlite(url_of(database), str(folder), now=NOW, force=True, quick=True)
    assert again.replaced
    assert again.copy.check == "quick_check"
    assert await contents(again.copy.path) == await contents(database)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "PATH is empty"),
        ("data/hotpapers.db", "is the database's own file"),
        ("data/hotpapers.db-wal", "is the database's own file"),
        ("data/hotpapers.db.lock", "is the database's own file"),
        ("missing/backup.db", "folder .*missing does not exist"),
    ],
)
async def test_bad_targets_are_refused(
    database: Path, tmp_path: Path, target: str, message: str
) -> None:
    before = sorted(database.parent.iterdir())
    with pytest.raises(UserFacingError, match=message):
        backup_sqlite(url_of(database), str(tmp_path / target) if target else target)
    assert sorted(database.parent.iterdir()) == before


async def test_no_database_or_not_a_database_is_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(StorageError, match=f"no database to back up: {missing} does not exist"):
        backup_sqlite(url_of(missing), str(tmp_path / "b.db"))
    assert not missing.exists()  # not created by the attempt
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all")
    with pytest.raises(StorageError, match="is not a SQLite database"):
        backup_sqlite(url_of(junk), str(tmp_path / "b.db"))
    with pytest.raises(UserFacingError, match="in-memory SQLite database"):
        backup_sqlite("sqlite+aiosqlite:///:memory:", str(tmp_path / "b.db"))
    assert names(tmp_path) == ["junk.db"]


def test_a_copy_while_another_process_writes_is_one_consistent_state(
    database: Path, tmp_path: Path, writer: subprocess.Popen[bytes]
) -> None:
    """The writer writes between every two steps: SQLite restarts the copy, and after a few
    restarts it goes in one read. The copy holds the writer's first k rows, no gap, k at
    least what was written before it started."""
    written_before = len(writer_ids(database))
    target = tmp_path / "backup.db"
    notes: list[str] = []
    report = backup_sqlite(
        url_of(database), str(target), step_pages=16, pause=0.02, progress=notes.append
    )
    written_after = len(writer_ids(database))

    assert report.restarts == RESTARTS_BEFORE_ONE_STEP
    assert report.one_step
    assert notes == [
        "the database was written to during the copy: copying it in one read (a "
        "snapshot, which does not block the bot)"
    ]
    ids = writer_ids(target)
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert ids[0] == writer_ids(database)[0]
    assert written_before <= len(ids) <= written_after
    # Never blocked out: it is still writing.
    deadline = time.monotonic() + 5
    while len(writer_ids(database)) <= written_after:
        assert writer.poll() is None
        assert time.monotonic() < deadline, "the writer stopped writing"
        time.sleep(0.01)
    assert "SQLite started it over 2 times, then copied it in one step" in report.describe()


def test_a_rollback_journal_source_is_copied_in_growing_steps(
    database: Path, tmp_path: Path
) -> None:
    with closing(sqlite3.connect(database, isolation_level=None)) as conn, conn:
        assert conn.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    proc = start_writer(database)
    try:
        report = backup_sqlite(url_of(database), str(tmp_path / "b.db"), step_pages=16)
        assert proc.poll() is None
    finally:
        stop(proc)
    assert report.restarts >= RESTARTS_BEFORE_ONE_STEP
    assert not report.one_step
    ids = writer_ids(tmp_path / "b.db")
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert ids[0] == writer_ids(database)[0]


def test_a_failed_check_leaves_no_file(
    database: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def damaged(conn: sqlite3.Connection, path: Path, *, quick: bool) -> None:
        raise StorageError(f"{path}: SQLite's integrity_check failed: row 7 missing from index")

    monkeypatch.setattr(backup_module, "_check", damaged)
    with pytest.raises(StorageError, match="integrity_check failed: row 7 missing"):
        backup_sqlite(url_of(database), str(tmp_path / "b.db"))
    assert names(tmp_path) == ["data"]


def test_a_damaged_search_index_fails_the_full_check(database: Path, tmp_path: Path) -> None:
    with closing(sqlite3.connect(database, isolation_level=None)) as conn, conn:
        # A title changed behind the search indexes' back (their triggers gone): out of step.
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for (name,) in triggers:
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("UPDATE papers SET title = 'entirely different words' WHERE id = 1")
    with pytest.raises(StorageError, match=r"search index papers_\w*fts is damaged"):
        backup_sqlite(url_of(database), str(tmp_path / "b.db"))
    report = backup_sqlite(url_of(database), str(tmp_path / "b.db"), quick=True)
    assert report.copy.check == "quick_check"


# --- restore ------------------------------------------------------------------------------------


async def add_a_guild(path: Path) -> None:
    async with Database.connect(url_of(path), migrate=False) as db, db.write() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO guilds (guild_id, created_at, updated_at) VALUES "
            "(77, '2025-03-01T00:00:00.000000+00:00', '2025-03-01T00:00:00.000000+00:00')"
        )


async def test_restore_puts_the_backup_back_and_keeps_what_it_replaced(
    database: Path, tmp_path: Path
) -> None:
    backup = backup_sqlite(url_of(database), str(tmp_path / "backup.db")).copy.path
    saved = await contents(backup)
    await add_a_guild(database)  # the database moves on after the backup
    changed = await contents(database)
    assert changed != saved

    report = await restore_sqlite(url_of(database), str(backup), now=NOW)

    assert await contents(database) == saved
    kept = database.with_name(f"hotpapers.db.before-restore-{STAMP}")
    assert report.kept == kept
    assert await contents(kept) == changed
    assert (report.migrated_from, report.revision) == (None, head_revision())
    assert report.copy.check == "integrity_check"
    # No stale journal, no temporary file; the bot's lock file stays (it is always there).
    assert names(database.parent) == [
        "hotpapers.db",
        f"hotpapers.db.before-restore-{STAMP}",
        "hotpapers.db.lock",
    ]
    assert f"the database it replaced is kept as {kept}" in report.describe()
    # The bot opens it as usual (WAL again), and a second restore keeps under another name.
    async with Database.connect(url_of(database)) as db:
        assert await db.current_revision() == head_revision()
    again = await restore_sqlite(url_of(database), str(backup), now=NOW)
    assert again.kept == kept.with_name(kept.name + "-2")


async def test_restore_without_keeping(database: Path, tmp_path: Path) -> None:
    backup = backup_sqlite(url_of(database), str(tmp_path / "backup.db")).copy.path
    report = await restore_sqlite(url_of(database), str(backup), keep=False, quick=True)
    assert report.kept is None
    assert report.copy.check == "quick_check"
    assert names(database.parent) == [
        "hotpapers.db",
        "hotpapers.db.lock",
    ]


async def test_restore_refuses_while_a_bot_runs(database: Path, tmp_path: Path) -> None:
    backup = backup_sqlite(url_of(database), str(tmp_path / "backup.db")).copy.path
    await add_a_guild(database)
    changed = await contents(database)
    with run_lock(url_of(database)), pytest.raises(StorageError) as refused:  # as `run` does
        await restore_sqlite(url_of(database), str(backup))
    assert refused.value.message == (
        f"database {database} is in use by a running hotpapers bot (pid {os.getpid()}): stop "
        "it, then restore again; nothing was changed"
    )
    assert await contents(database) == changed
    assert not list(database.parent.glob("*before-restore*"))


async def test_restore_refuses_while_another_process_has_the_database_open(
    database: Path, tmp_path: Path, writer: subprocess.Popen[bytes]
) -> None:
    backup = backup_sqlite(url_of(database), str(tmp_path / "backup.db")).copy.path
    with pytest.raises(StorageError, match=r"is open in another process .*nothing was changed"):
        await restore_sqlite(url_of(database), str(backup))
    stop(writer)
    assert not list(database.parent.glob("*before-restore*"))
    # Still the live database, with what the writer wrote.
    assert len(writer_ids(database)) > 20


async def test_an_older_backup_is_restored_then_migrated(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    async with Database.connect(url_of(old), migrate=False) as db:
        await db.upgrade("0005")
    await add_a_guild(old)
    database = tmp_path / "hotpapers.db"
    async with Database.connect(url_of(database)):
        pass
    notes: list[str] = []

    report = await restore_sqlite(url_of(database), str(old), progress=notes.append)

    assert report.migrated_from == "0005"
    assert report.revision == head_revision()
    assert notes == ["the backup is at schema revision 0005: migrating it"]
    async with Database.connect(url_of(database), migrate=False) as db:
        assert await db.current_revision() == head_revision()
        async with db.read() as conn:
            rows = await conn.exec_driver_sql("SELECT guild_id FROM guilds")
            assert [r[0] for r in rows] == [77]
    assert f"the backup was at schema revision 0005: migrated to {head_revision()}" in (
        report.describe()
    )


async def test_a_newer_or_foreign_or_missing_backup_is_refused(
    database: Path, tmp_path: Path
) -> None:
    newer = tmp_path / "newer.db"
    shutil.copyfile(database, newer)
    with closing(sqlite3.connect(newer)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    foreign = tmp_path / "foreign.db"
    with closing(sqlite3.connect(foreign)) as conn, conn:
        conn.execute("CREATE TABLE notes (x)")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    cases = {
        str(newer): "at schema revision 9999_future, which this version of hotpapers does not "
        "know .*upgrade hotpapers, then restore",
        str(foreign): "is a SQLite database but holds no hotpapers data",
        str(text_file): "is not a SQLite database",
        str(tmp_path / "absent.db"): "no backup at",
        str(tmp_path): "is not a file",
        str(database): "is the database itself",
        "": "PATH is empty",
    }
    changed = await contents(database)
    for path, message in cases.items():
        with pytest.raises(UserFacingError, match=message):
            await restore_sqlite(url_of(database), path)
    assert await contents(database) == changed
    assert not list(database.parent.glob("*before-restore*"))


async def test_restore_to_a_new_place_removes_stale_journals(
    database: Path, tmp_path: Path
) -> None:
    backup = backup_sqlite(url_of(database), str(tmp_path / "backup.db")).copy.path
    fresh = tmp_path / "new" / "hotpapers.db"
    fresh.parent.mkdir()
    write(fresh.with_name("hotpapers.db-wal"), b"stale wal of a database long gone")
    write(fresh.with_name("hotpapers.db-journal"), b"a hot journal would be replayed")

    report = await restore_sqlite(url_of(fresh), str(backup))

    assert report.kept is None
    assert names(fresh.parent) == ["hotpapers.db", "hotpapers.db.lock"]
    assert await contents(fresh) == await contents(backup)


async def test_a_damaged_database_is_kept_with_its_journals(database: Path, tmp_path: Path) -> None:
    backup = backup_sqlite(url_of(database), str(tmp_path / "backup.db")).copy.path
    write(database, b"\x00" * 8192)  # the disk ate it
    write(database.with_name("hotpapers.db-wal"), b"whatever was in flight")

    report = await restore_sqlite(url_of(database), str(backup), now=NOW)

    assert report.kept is not None
    assert read(report.kept) == b"\x00" * 8192
    assert read(report.kept.with_name(report.kept.name + "-wal")) == b"whatever was in flight"
    assert await contents(database) == await contents(backup)
    assert "hotpapers.db-wal" not in names(database.parent)


async def test_the_restored_file_takes_the_replaced_files_permissions(
    database: Path, tmp_path: Path
) -> None:
    backup = backup_sqlite(url_of(database), str(tmp_path / "backup.db")).copy.path
    assert mode(backup) == 0o600
    os.chmod(database, 0o640)
    await restore_sqlite(url_of(database), str(backup))
    assert mode(database) == 0o640


# --- PostgreSQL: its own tools ------------------------------------------------------------------


def test_postgresql_is_refused_with_its_tools_commands_and_no_password(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://hp:s3cret-pw@db.internal:5433/hotpapers?ssl=require"
    with pytest.raises(UserFacingError) as backup:
        backup_sqlite(url, "/backups/hp.dump")
    assert backup.value.message == (
        "`db backup` copies SQLite files and this database is PostgreSQL: back it up with "
        "PostgreSQL's tool: `pg_dump --format=custom --file=/backups/hp.dump "
        "'postgresql://hp@db.internal:5433/hotpapers?sslmode=require'` (the URL's password is "
        "left out: give it with PGPASSWORD or ~/.pgpass)"
    )
    with pytest.raises(UserFacingError) as restore:
        asyncio.run(restore_sqlite(url, "/backups/hp.dump"))
    assert restore.value.message == (
        "`db restore` restores SQLite files and this database is PostgreSQL: with the bot "
        "stopped, restore a pg_dump archive with `pg_restore --clean --if-exists --no-owner "
        "--single-transaction '--dbname=postgresql://hp@db.internal:5433/hotpapers?sslmode="
        "require' /backups/hp.dump`, then `hotpapers db upgrade` (the URL's password is left "
        "out: give it with PGPASSWORD or ~/.pgpass)"
    )
    for error in (backup.value, restore.value):
        assert "s3cret" not in str(error)


def test_a_target_name_is_checked_before_anything_is_read(tmp_path: Path) -> None:
    database = tmp_path / "x.db"
    assert backup_target(database, str(tmp_path), force=False, now=NOW) == tmp_path / (
        f"x-{STAMP}.db"
    )
    assert sqlite_database(url_of(database), "backup", "p") == database


async def run(command: list[str], env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(*command, env=env)
    assert await asyncio.wait_for(proc.wait(), timeout=120) == 0, command


def command_in(message: str) -> list[str]:
    (command,) = re.findall(r"`(pg_\w+ [^`]+)`", message)
    return shlex.split(command)


@pytest.mark.postgresql_only
async def test_the_postgresql_commands_given_back_it_up_and_restore_it(
    backend: str, migrated_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The commands in the messages, run as given: pg_dump of the deployment, pg_restore into
    another database, and every row is there."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed")
    async with Database.connect(migrated_url, migrate=False) as db:
        await fill(db)
        rows = await dump(db)
    archive = tmp_path / "hotpapers.dump"
    with pytest.raises(UserFacingError) as backup:
        backup_sqlite(migrated_url, str(archive))
    env = {**os.environ}
    password = make_url(migrated_url).password
    if password:
        env["PGPASSWORD"] = password
    await run(command_in(backup.value.message), env)
    assert size(archive) > 0

    server: PostgresServer = request.getfixturevalue("postgres_server")
    other = server.empty_database()
    try:
        with pytest.raises(UserFacingError) as restore:
            await restore_sqlite(other, str(archive))
        await run(command_in(restore.value.message), env)
        async with Database.connect(other, migrate=False) as db:
            assert await db.current_revision() == head_revision()
            assert await dump(db) == rows
    finally:
        server.drop(other)
