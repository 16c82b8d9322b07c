"""One ``hotpapers run`` per SQLite file: an OS advisory lock on ``<database>.lock``.

SQLite serves one bot process: two bots on one file would both schedule every guild and queue
on one write lock. ``hotpapers run`` holds an exclusive ``flock`` on a sidecar file for as long
as it runs; the kernel releases it when the process ends, however it ends (a crash, SIGKILL), so
there is never a stale lock to clean up. The file holds the holder's pid, for the refusal's
message. One-shot commands (``fetch``, ``digest``…) don't take it: they may run beside the bot.
In-memory SQLite and PostgreSQL take no lock (PostgreSQL is how several processes share data).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.core.errors import DatabaseInUseError, StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; the bot runs unguarded there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL, absolute; None for an in-memory SQLite database,
    another backend, or a URL that is not one (opening the database reports that)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if parsed.query.get("uri") in ("true", "1") and database.startswith("file:"):
        # sqlite+aiosqlite:///file:name.db?mode=rwc&uri=true
        database = database.removeprefix("file:")
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    return Path(database).expanduser().resolve()


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + LOCK_SUFFIX)


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def run_lock(url: str) -> Iterator[Path | None]:
    """Hold the SQLite file of ``url`` for this process while the block runs; yields the lock
    file (None: nothing to lock). Raises :class:`DatabaseInUseError` naming the file and the
    holder's pid when another process holds it."""
    database = sqlite_file(url)
    if database is None:
        yield None
        return
    if fcntl is None:  # pragma: no cover - Windows
        log.warning("no file locks here: nothing stops a second bot on %s", database)
        yield None
        return
    path = lock_path(database)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(
            f"cannot open database {database}: its lock file {path}: {exc.strerror or exc}"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUseError(str(database), _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        log.debug("database %s locked for this process (%s)", database, path)
        try:
            yield path
        finally:
            # The pid goes first: a later refusal never names a process that has left.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock (as the process's end would)
