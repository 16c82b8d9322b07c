"""Where the bot keeps its state: the data directory, and the SQLite file placed inside it.

``storage.data_dir`` holds everything the bot writes on its own behalf: the SQLite database when
``database.url`` names a relative file (the default ``sqlite+aiosqlite:///hotpapers.db``), the
run lock beside it (:mod:`bot.storage.lock`), and matplotlib's font cache under ``run``
(:func:`keep_chart_cache_in`). Unset, it is the platform's user data directory (platformdirs:
``~/.local/share/hotpapers`` on Linux, or ``$XDG_DATA_HOME/hotpapers``), so the bot's data never
depends on the directory it was started from. An absolute SQLite path, an in-memory database and
a PostgreSQL URL are used as given: the operator chose where they are.

The directory is made when a command that keeps state first runs (``bot.cli.in_data_dir``),
readable by the bot's user only (0700): the database holds the servers' settings and history.
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.core.errors import StorageError

log = logging.getLogger(__name__)

APP_NAME = "hotpapers"
DIR_MODE = 0o700
_HOW_TO_CHOOSE = "set storage.data_dir, or HOTPAPERS_STORAGE__DATA_DIR"


@dataclass(frozen=True)
class Location:
    """The data directory (absolute, existing) and the database URL to open."""

    data_dir: Path
    database_url: str


def default_data_dir() -> Path:
    """The platform's user data directory for hotpapers (nothing is created)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def data_dir(configured: Path | None) -> Path:
    """``storage.data_dir`` (``~`` expanded; a relative one is taken from the working
    directory), or the platform default when unset; absolute, nothing created."""
    path = default_data_dir() if configured is None else configured.expanduser()
    return Path(os.path.abspath(path))


def _sqlite_file(url: str) -> tuple[str, bool] | None:
    """The file of a SQLite URL as written, and whether it is a ``file:`` URI; None for an
    in-memory database, another backend or a string that is not a URL (opening the database
    reports that one, naming the setting)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    uri = parsed.query.get("uri") in ("true", "1") and database.startswith("file:")
    if uri:  # sqlite+aiosqlite:///file:hotpapers.db?mode=rwc&uri=true
        database = database.removeprefix("file:")
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    return database, uri


def place_database(url: str, directory: Path) -> str:
    """``url`` with a relative SQLite file moved inside ``directory`` (and ``~`` expanded, which
    SQLite itself does not do); any other URL as given."""
    found = _sqlite_file(url)
    if found is None:
        return url
    written, uri = found
    path = Path(written).expanduser()
    if not path.is_absolute():
        path = directory / path
    if str(path) == written:
        return url
    database = f"file:{path}" if uri else str(path)
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing, the last one readable by this user only;
    an existing directory is left as the operator made it. A path that cannot be used raises
    :class:`StorageError` naming it."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        raise StorageError(
            f"the data directory {path} is a file, not a directory ({_HOW_TO_CHOOSE})"
        ) from None
    except OSError as exc:
        raise StorageError(
            f"cannot create the data directory {path}: {exc.strerror or exc} ({_HOW_TO_CHOOSE})"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(
            f"the data directory {path} is not writable by this user ({_HOW_TO_CHOOSE})"
        )
    return path


def prepare(url: str, configured: Path | None) -> Location:
    """The data directory, created if missing, and ``url`` placed in it (its subfolders too:
    ``sqlite+aiosqlite:///db/hotpapers.db`` is ``<data_dir>/db/hotpapers.db``)."""
    directory = make_private_dir(data_dir(configured))
    found = _sqlite_file(url)
    relative = None if found is None else Path(found[0])
    if relative is not None and not relative.expanduser().is_absolute():
        if relative.parent != Path():
            make_private_dir(directory / relative.parent)
        _warn_of_a_database_left_behind(Path.cwd() / relative, directory / relative)
    log.debug("data directory: %s", directory)
    return Location(directory, place_database(url, directory))


def _warn_of_a_database_left_behind(old: Path, new: Path) -> None:
    """Versions before the data directory opened a relative database.url in the working
    directory: after an upgrade the bot would start on a new, empty database and the old one
    would look lost. It is left alone (the operator moves it), but said, at every start."""
    if old != new and old.is_file():
        log.warning(
            "%s is not used: a relative database.url is now kept in the data directory, as %s; "
            "move the file there (with its -wal and -shm files) while the bot is stopped, or "
            "set database.url to its absolute path (README: The data directory)",
            old,
            new,
        )


def chart_cache(directory: Path) -> Path:
    """Where matplotlib keeps its font cache (``MPLCONFIGDIR``) for a bot on ``directory``."""
    return directory / "cache" / "matplotlib"


def keep_chart_cache_in(directory: Path, environ: MutableMapping[str, str] | None = None) -> str:
    """Point matplotlib's cache at the data directory, unless ``MPLCONFIGDIR`` already says
    where; returns the folder matplotlib will use. Call it before matplotlib is imported.

    A service's user may have no writable home (systemd's DynamicUser, a container's user):
    matplotlib would then rebuild its font cache in a new temporary folder at every start, and
    warn about it.
    """
    env = os.environ if environ is None else environ
    return env.setdefault("MPLCONFIGDIR", str(chart_cache(directory)))
