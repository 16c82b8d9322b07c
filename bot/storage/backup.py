"""Backup and restore of the database: a consistent copy of the SQLite file while the bot runs,
its restore, and the PostgreSQL tools' commands instead.

**Backup** (``hotpapers db backup PATH``) copies the SQLite file with SQLite's online backup
API, never by copying bytes: a file copied while the bot writes (or without its ``-wal``) can be
torn or miss committed data. The rules, and why:

- **While the bot runs.** It takes no lock of its own and not the run lock (``lock.py``): the
  source is only read, each step of the copy a short read. In WAL mode (which the bot always
  sets) a reader never blocks the writer; with a rollback journal a step holds a shared lock,
  hence small steps with a pause between them. (Its connection is a read-write one all the
  same, as any reader's: so it can undo a crashed writer's journal, and when it is the last to
  close it folds the WAL back and leaves no ``-wal`` behind, as the bot would.)
- **Consistent.** SQLite restarts a stepped copy whenever another connection writes to the
  source between two steps, so what is copied is always one committed state. A bot that writes
  every few seconds could keep restarting a big copy for ever: after a few restarts it is
  copied again in one step, which on a WAL source is one read transaction (a snapshot, still not
  blocking the bot), and on a rollback-journal source uses steps four times larger each time.
- **Atomic, and never over something by accident.** The copy is written to a temporary file
  in the target's folder, switched to a self-contained file (no ``-wal``), checked
  (``PRAGMA integrity_check`` and the full-text indexes' own check, or ``quick_check``), made
  durable, and only then renamed to its name. An existing file is replaced only when asked
  (``--force``); the database itself never. A folder as the target gets a timestamped name.

**Restore** (``hotpapers db restore PATH``) puts a backup in the database's place:

- **Not under a running bot.** It holds the run lock for its whole length, so it refuses while
  ``hotpapers run`` uses the file and a bot started meanwhile refuses; and it makes sure no
  other process has the database open (switching it out of WAL mode needs that), which also
  folds the ``-wal`` into the file so that nothing committed is left beside it.
- **Hotpapers data at a schema this code knows.** The backup must be a SQLite database with
  an ``alembic_version``: a revision newer than this code is refused (upgrade hotpapers), an
  older one is restored and then migrated to head, as ``hotpapers run`` would.
- **Nothing lost.** The database replaced is kept as ``<name>.before-restore-<UTC time>``
  (a hard link, or a copy where links are not possible) unless ``keep`` is off.
- **Atomic.** The backup is copied (through the backup API, which also reads a WAL backup
  correctly) and checked in a temporary file beside the database, which takes the replaced
  file's permissions and owner, then renamed over it. Stale ``-wal``, ``-shm`` and ``-journal``
  files are removed first: SQLite would otherwise replay them into the restored file.

**PostgreSQL** has its own tools: both commands refuse with the exact ``pg_dump`` or
``pg_restore`` command for the configured database (without its password).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shlex
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError

from bot.core.errors import ConfigError, DatabaseInUseError, StorageError, UserFacingError
from bot.storage.engine import BUSY_TIMEOUT_MS, alembic_config, head_revision
from bot.storage.engine import open as open_database
from bot.storage.lock import lock_path, run_lock, sqlite_file

log = logging.getLogger(__name__)

# Pages copied per step of an online backup (4 MiB at SQLite's default page size), and the
# pause after each, in which a writer blocked by a rollback-journal reader gets its turn.
STEP_PAGES = 1024
STEP_PAUSE_SECONDS = 0.02
# Restarts (the source written between steps) tolerated before copying it all in one step.
RESTARTS_BEFORE_ONE_STEP = 2
SQLITE_MAGIC = b"SQLite format 3\x00"
SIDECARS = ("-wal", "-shm", "-journal")
KEEP_INFIX = ".before-restore-"
Progress = Callable[[str], None]


# --- what the commands report -------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedFile:
    """A SQLite file written and checked: its size, pages and schema revision."""

    path: Path
    bytes: int
    pages: int
    page_size: int
    revision: str | None  # None: no alembic_version (not hotpapers data)
    check: str  # the check it passed: "integrity_check" or "quick_check"


@dataclass(frozen=True)
class BackupReport:
    source: Path
    copy: CheckedFile
    seconds: float
    steps: int  # backup steps taken, restarts included
    restarts: int  # times the bot's writes made SQLite start the copy over
    one_step: bool  # after those restarts, it was copied in one step
    replaced: bool  # an existing file was overwritten (--force)

    def describe(self) -> str:
        copy = self.copy
        lines = [
            f"backup of {self.source} written to {copy.path}",
            f"  {_size(copy.bytes)}, {copy.pages:,} pages of {copy.page_size:,} bytes, "
            f"schema revision {copy.revision or '(none)'}",
            f"  {copy.check}: ok; copied in {self.seconds:.1f} s ({self.steps:,} step"
            f"{'s' if self.steps != 1 else ''})"
            + (", replacing the file" if self.replaced else ""),
        ]
        if self.restarts:
            how = "in one step (one consistent snapshot)" if self.one_step else "in larger steps"
            lines.append(
                f"  the database was written to during the copy: SQLite started it over "
                f"{self.restarts} time{'s' if self.restarts != 1 else ''}, then copied it {how}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class RestoreReport:
    database: Path
    backup: Path
    copy: CheckedFile  # the restored file as checked before it took the database's place
    kept: Path | None  # where the replaced database is kept (None: there was none, or not kept)
    migrated_from: str | None  # the backup's revision, when it was migrated to head
    revision: str  # the database's revision now
    seconds: float

    def describe(self) -> str:
        copy = self.copy
        lines = [
            f"database {self.database} restored from {self.backup}",
            f"  {_size(copy.bytes)}, {copy.pages:,} pages of {copy.page_size:,} bytes; "
            f"{copy.check}: ok; {self.seconds:.1f} s",
        ]
        if self.migrated_from is not None:
            lines.append(
                f"  the backup was at schema revision {self.migrated_from}: migrated to "
                f"{self.revision}"
            )
        else:
            lines.append(f"  schema revision {self.revision}")
        if self.kept is not None:
            lines.append(f"  the database it replaced is kept as {self.kept}")
        return "\n".join(lines)


def _size(count: int) -> str:
    return f"{count:,} bytes ({count / 2**20:,.1f} MiB)"


# --- which database -----------------------------------------------------------------------------


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise ConfigError("setting `database.url`: not a database URL") from None


_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def libpq_url(url: URL) -> str:
    """The URL as ``pg_dump``/``pg_restore`` read it: no driver, no password (the tools take it
    from PGPASSWORD or ~/.pgpass), and asyncpg's ``ssl=`` spelled as libpq's ``sslmode=``."""
    query = dict(url.query)
    ssl = query.pop("ssl", None)
    if isinstance(ssl, str) and "sslmode" not in query:
        mode = "require" if ssl.lower() in ("true", "1") else ssl.lower()
        if mode in _SSL_MODES:
            query["sslmode"] = mode
    plain = URL.create(
        "postgresql",
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=query,
    )
    return plain.render_as_string(hide_password=False)


def pg_dump_command(url: URL, path: str) -> str:
    return shlex.join(["pg_dump", "--format=custom", f"--file={path}", libpq_url(url)])


def pg_restore_command(url: URL, path: str) -> str:
    return shlex.join(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            f"--dbname={libpq_url(url)}",
            path,
        ]
    )


def _password_note(url: URL) -> str:
    if url.password is None:
        return ""
    return " (the URL's password is left out: give it with PGPASSWORD or ~/.pgpass)"


def sqlite_database(url: str, action: str, path: str) -> Path:
    """The SQLite file of ``url`` that ``db backup``/``db restore`` (``action``) works on.

    PostgreSQL is refused with the command of its own tool for the same database and ``path``;
    an in-memory database, which no other process can see, is refused too."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if action == "backup":
            raise UserFacingError(
                "`db backup` copies SQLite files and this database is PostgreSQL: back it up "
                f"with PostgreSQL's tool: `{pg_dump_command(parsed, path)}`"
                + _password_note(parsed)
            )
        raise UserFacingError(
            "`db restore` restores SQLite files and this database is PostgreSQL: with the bot "
            f"stopped, restore a pg_dump archive with `{pg_restore_command(parsed, path)}`, "
            "then `hotpapers db upgrade`" + _password_note(parsed)
        )
    if backend != "sqlite":
        raise ConfigError(
            f"setting `database.url`: {parsed.render_as_string(hide_password=True)} is a "
            f"{backend} database; hotpapers stores its data in SQLite or PostgreSQL"
        )
    database = sqlite_file(url)
    if database is None:
        raise UserFacingError(
            f"`db {action}`: database.url names an in-memory SQLite database, which lives and "
            "dies with its process: there is no file to work on"
        )
    return database


def _sidecar(database: Path, suffix: str) -> Path:
    return database.with_name(database.name + suffix)


def _stamp(now: dt.datetime | None) -> str:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


# --- SQLite connections and checks --------------------------------------------------------------


def _connect(path: Path, mode: str, timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A connection to an existing file (``mode`` ``ro`` or ``rw``: never creating one), in
    autocommit: each statement is its own transaction."""
    uri = f"file:{quote(str(path))}?mode={mode}"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout_ms / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")
    return conn


@contextlib.contextmanager
def _closing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield conn
    finally:
        conn.close()


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError:
        return False
    # An empty file is a valid (empty) database to SQLite; it holds no data either way.
    return head == SQLITE_MAGIC


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table: not a hotpapers database
        return None
    return None if row is None else str(row[0])


def _check(conn: sqlite3.Connection, path: Path, *, quick: bool) -> CheckedFile:
    """Run SQLite's check on a closed-to-others copy; its facts, or StorageError naming the
    first problem. The full check also runs each FTS5 index's own (index against rows)."""
    pragma = "quick_check" if quick else "integrity_check"
    problems = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}")]
    if problems != ["ok"]:
        more = f" (and {len(problems) - 1:,} more)" if len(problems) > 1 else ""
        raise StorageError(f"{path}: SQLite's {pragma} failed: {problems[0]}{more}")
    if not quick:
        fts = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND lower(sql) LIKE 'create virtual table%using fts5%'"
        ).fetchall()
        for (name,) in fts:
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                # A table name read from the schema itself, quoted as an identifier.
                # rank 1: the index is checked against its rows, not only against itself.
                check = f"INSERT INTO {quoted}({quoted}, rank) VALUES ('integrity-check', 1)"  # noqa: S608
                conn.execute(check)
            except sqlite3.DatabaseError as exc:
                raise StorageError(f"{path}: the search index {name} is damaged ({exc})") from None
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return CheckedFile(path, pages * page_size, pages, page_size, _revision(conn), pragma)


def _fsync(path: Path) -> None:
    """Make a file (or a folder's entries: a rename) durable before it is relied upon."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # pragma: no cover - e.g. folders cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


class _Restarted(Exception):
    """The source was written between two steps: SQLite started the copy over."""


@dataclass
class _Copied:
    steps: int = 0
    restarts: int = 0
    one_step: bool = False


def _online_copy(
    source: sqlite3.Connection,
    target: sqlite3.Connection,
    *,
    step_pages: int,
    pause: float,
    progress: Progress | None,
) -> _Copied:
    """Copy ``source`` into ``target`` with the backup API, in steps of ``step_pages`` pages and
    a pause after each; after RESTARTS_BEFORE_ONE_STEP restarts, all in one step (a WAL
    source) or in steps four times larger each time (a rollback-journal one)."""
    wal = str(source.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
    copied = _Copied()
    pages = step_pages
    while True:
        done_before = -1

        def step(_status: int, remaining: int, total: int) -> None:
            nonlocal done_before
            copied.steps += 1
            done = total - remaining
            if done <= done_before:  # fewer pages copied than a step ago: started over
                raise _Restarted
            done_before = done
            if remaining:
                time.sleep(pause)

        try:
            source.backup(target, pages=pages, progress=step)
            return copied
        except _Restarted:
            copied.restarts += 1
        if copied.restarts < RESTARTS_BEFORE_ONE_STEP:
            continue
        if wal:
            pages, copied.one_step = -1, True
            how = "copying it in one read (a snapshot, which does not block the bot)"
        else:
            pages *= 4
            how = f"copying in steps of {pages:,} pages"
        if progress is not None:
            progress(f"the database was written to during the copy: {how}")


@contextlib.contextmanager
def _temporary_beside(final: Path) -> Iterator[Path]:
    """A new empty file in ``final``'s folder (so that a rename is atomic), removed unless it
    was renamed away."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    except OSError as exc:
        raise StorageError(f"cannot write in {final.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _write_copy(
    source: sqlite3.Connection,
    temporary: Path,
    *,
    quick: bool,
    step_pages: int,
    pause: float,
    progress: Progress | None,
) -> tuple[CheckedFile, _Copied]:
    with _closing(sqlite3.connect(temporary, isolation_level=None)) as target:
        copied = _online_copy(source, target, step_pages=step_pages, pause=pause, progress=progress)
        # The pages carry the source's WAL flag: a copy is one self-contained file.
        target.execute("PRAGMA journal_mode = DELETE")
        checked = _check(target, temporary, quick=quick)
    _fsync(temporary)
    return checked, copied


def _renamed(checked: CheckedFile, path: Path) -> CheckedFile:
    return CheckedFile(
        path, checked.bytes, checked.pages, checked.page_size, checked.revision, checked.check
    )


# --- backup -------------------------------------------------------------------------------------


def backup_target(database: Path, text: str, *, force: bool, now: dt.datetime | None) -> Path:
    """Where ``db backup PATH`` writes: PATH, or in a folder PATH a timestamped file named after
    the database. Refuses the database's own files, a missing folder, and an existing file
    without ``force``."""
    if not text.strip():
        raise UserFacingError("`db backup`: PATH is empty; give the file (or folder) to write")
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / f"{database.stem}-{_stamp(now)}.db"
    path = path.absolute()
    if not path.parent.is_dir():
        raise UserFacingError(
            f"cannot write the backup {path}: folder {path.parent} does not exist"
        )
    own = {database, lock_path(database), *(_sidecar(database, s) for s in SIDECARS)}
    if path.resolve() in own:
        raise UserFacingError(f"{path} is the database's own file: give the backup another name")
    if path.exists() and not path.is_file():
        raise UserFacingError(f"cannot write the backup {path}: it is not a regular file")
    if path.exists() and not force:
        raise UserFacingError(f"{path} exists: give another PATH, or --force to replace it")
    return path


def backup_sqlite(
    url: str,
    target: str,
    *,
    force: bool = False,
    quick: bool = False,
    now: dt.datetime | None = None,
    step_pages: int = STEP_PAGES,
    pause: float = STEP_PAUSE_SECONDS,
    progress: Progress | None = None,
) -> BackupReport:
    """Write a checked, consistent copy of the SQLite database of ``url`` to ``target`` (a file,
    or a folder for a timestamped one), whether or not the bot is running. Blocking: call it in
    a thread from async code."""
    database = sqlite_database(url, "backup", target)
    if not database.is_file():
        raise StorageError(f"no database to back up: {database} does not exist")
    final = backup_target(database, target, force=force, now=now)
    replaced = final.exists()
    if not _is_sqlite(database):
        raise StorageError(f"{database} is not a SQLite database")
    started = time.monotonic()
    try:
        source = _connect(database, "rw")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {database}: {exc}") from None
    with _closing(source), _temporary_beside(final) as temporary:
        try:
            checked, copied = _write_copy(
                source,
                temporary,
                quick=quick,
                step_pages=step_pages,
                pause=pause,
                progress=progress,
            )
        except sqlite3.Error as exc:
            raise StorageError(f"the backup of {database} failed: {exc}") from None
        os.replace(temporary, final)
    _fsync(final.parent)
    log.info("database %s backed up to %s", database, final)
    return BackupReport(
        database,
        _renamed(checked, final),
        time.monotonic() - started,
        copied.steps,
        copied.restarts,
        copied.one_step,
        replaced,
    )


# --- restore ------------------------------------------------------------------------------------


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _backup_file(text: str, database: Path) -> Path:
    if not text.strip():
        raise UserFacingError("`db restore`: PATH is empty; give the backup file to restore")
    path = Path(text).expanduser().absolute()
    if not path.exists():
        raise UserFacingError(f"no backup at {path}")
    if not path.is_file():
        raise UserFacingError(f"{path} is not a file")
    if database.exists() and path.samefile(database):
        raise UserFacingError(f"{path} is the database itself: give a backup of it")
    if not _is_sqlite(path):
        raise UserFacingError(f"{path} is not a SQLite database")
    return path


def _inspect_backup(path: Path) -> str:
    """The backup's schema revision, if this code can restore it; UserFacingError otherwise."""
    try:
        with _closing(_connect(path, "ro")) as conn:
            revision = _revision(conn)
    except sqlite3.Error as exc:
        raise UserFacingError(f"{path} cannot be read as a SQLite database: {exc}") from None
    if revision is None:
        raise UserFacingError(
            f"{path} is a SQLite database but holds no hotpapers data (no schema revision)"
        )
    if not _known(revision):
        raise UserFacingError(
            f"{path} is at schema revision {revision}, which this version of hotpapers does not "
            f"know (its newest is {head_revision()}): it was written by a newer hotpapers; "
            "upgrade hotpapers, then restore"
        )
    return revision


def _quiesce(database: Path) -> bool:
    """Fold the database's WAL into its file and leave it out of WAL mode, which SQLite allows
    only when no other connection has it open; True if done, False if the file is damaged
    (then it is kept as it is). StorageError when another process has it open."""
    try:
        with _closing(_connect(database, "rw", timeout_ms=1000)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            mode = str(conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]).lower()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            mode = "wal"
        else:
            log.warning("database %s cannot be read (%s): kept as it is", database, exc)
            return False
    except sqlite3.DatabaseError as exc:  # not a database, or malformed
        log.warning("database %s is damaged (%s): kept as it is", database, exc)
        return False
    if mode != "delete":
        raise StorageError(
            f"database {database} is open in another process (a hotpapers command, or "
            "`hotpapers web`?): stop it, then restore again; nothing was changed"
        )
    return True


def _keep(database: Path, now: dt.datetime | None, *, whole: bool) -> Path:
    """Keep the database under ``<name>.before-restore-<time>``: a hard link (instant, the same
    bytes), or a copy. A damaged database (``whole`` False) keeps its sidecar files too."""
    base = database.with_name(f"{database.name}{KEEP_INFIX}{_stamp(now)}")
    kept, n = base, 1
    while kept.exists():
        n += 1
        kept = base.with_name(f"{base.name}-{n}")
    try:
        os.link(database, kept)
    except OSError:
        shutil.copy2(database, kept)
    if not whole:
        for suffix in SIDECARS:
            side = _sidecar(database, suffix)
            if side.exists():
                os.replace(side, _sidecar(kept, suffix))
    return kept


def _match_owner(temporary: Path, database: Path) -> None:
    """The restored file gets the permissions (and, when allowed, the owner) of the file it
    replaces: a restore run as root must not leave the bot's user unable to open it."""
    if not database.exists():
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        return
    status = database.stat()
    os.chmod(temporary, status.st_mode & 0o7777)
    with contextlib.suppress(OSError, AttributeError):
        os.chown(temporary, status.st_uid, status.st_gid)


def _put_in_place(
    backup: Path,
    database: Path,
    *,
    keep: bool,
    quick: bool,
    now: dt.datetime | None,
    progress: Progress | None,
) -> tuple[CheckedFile, Path | None]:
    """Copy and check the backup beside the database, then swap it in (blocking)."""
    if not database.parent.is_dir():
        raise UserFacingError(
            f"cannot restore to {database}: folder {database.parent} does not exist"
        )
    with _temporary_beside(database) as temporary:
        try:
            with _closing(_connect(backup, "ro")) as source:
                checked, _ = _write_copy(
                    source,
                    temporary,
                    quick=quick,
                    step_pages=-1,
                    pause=0.0,
                    progress=progress,
                )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the backup {backup}: {exc}") from None
        _match_owner(temporary, database)
        kept = None
        if database.exists():
            # Not even a SQLite header: not opened at all, lest SQLite discard its journals.
            whole = _is_sqlite(database) and _quiesce(database)
            if keep:
                kept = _keep(database, now, whole=whole)
        # Stale journals would be replayed into the restored file: gone before it arrives.
        for suffix in SIDECARS:
            _sidecar(database, suffix).unlink(missing_ok=True)
        os.replace(temporary, database)
    _fsync(database.parent)
    return _renamed(checked, database), kept


async def restore_sqlite(
    url: str,
    backup: str,
    *,
    keep: bool = True,
    quick: bool = False,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> RestoreReport:
    """Replace the SQLite database of ``url`` by the backup at ``backup``, migrated to head if
    it is older; refuses while a bot (or any other process) has the database open."""
    database = sqlite_database(url, "restore", backup)
    path = _backup_file(backup, database)
    revision = _inspect_backup(path)
    started = time.monotonic()
    try:
        with run_lock(url):
            checked, kept = await asyncio.to_thread(
                _put_in_place, path, database, keep=keep, quick=quick, now=now, progress=progress
            )
            log.info("database %s restored from %s", database, path)
            migrated_from = None
            if revision != head_revision():
                if progress is not None:
                    progress(f"the backup is at schema revision {revision}: migrating it")
                try:
                    db = await open_database(url, migrate=True)
                except StorageError as exc:
                    where = f"; the database it replaced is kept as {kept}" if kept else ""
                    raise StorageError(
                        f"{database} was restored from {path} (schema revision {revision}), "
                        f"but migrating it failed: {exc.message}{where}"
                    ) from None
                await db.close()
                migrated_from = revision
    except DatabaseInUseError as exc:
        holder = f"pid {exc.pid}" if exc.pid is not None else "pid unknown"
        raise StorageError(
            f"database {database} is in use by a running hotpapers bot ({holder}): stop it, "
            "then restore again; nothing was changed"
        ) from None
    return RestoreReport(
        database, path, checked, kept, migrated_from, head_revision(), time.monotonic() - started
    )
