"""The data directory (``storage.data_dir``): where the database and the bot's state live."""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.errors import StorageError
from bot.storage.engine import head_revision
from bot.storage.location import (
    DIR_MODE,
    data_dir,
    default_data_dir,
    keep_chart_cache_in,
    place_database,
    prepare,
)
from bot.storage.lock import lock_path, run_lock

DEFAULT_URL = "sqlite+aiosqlite:///hotpapers.db"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def upgrade(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["db", "upgrade"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the default: the platform's user data directory ----------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="the XDG layout is Linux's")
def test_the_default_is_the_xdg_user_data_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "hotpapers"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "hotpapers"
    assert data_dir(None) == default_data_dir()
    assert not (tmp_path / "home").exists()  # naming it creates nothing


def test_the_default_database_goes_in_the_data_directory_not_cwd(tmp_path, monkeypatch, capsys):
    # conftest points XDG_DATA_HOME at tmp_path/xdg-data; the working directory is tmp_path.
    home = tmp_path / "xdg-data" / "hotpapers"
    assert not home.exists()
    code, out, err = upgrade(capsys)
    assert (code, err) == (0, "")
    assert out == f"database upgraded from revision (empty) to {head_revision()}\n"
    assert (home / "hotpapers.db").is_file()
    assert mode(home) == DIR_MODE
    assert not (tmp_path / "hotpapers.db").exists()
    # From another working directory, the same database.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert upgrade(capsys)[1] == f"database already at revision {head_revision()}\n"
    assert list(elsewhere.iterdir()) == []


def test_a_database_left_in_the_working_directory_is_named_not_lost(tmp_path, capsys, caplog):
    # An upgrade from a version that kept the default database in the working directory.
    old = tmp_path / "hotpapers.db"
    old.write_bytes(b"the servers' settings")
    caplog.set_level(logging.WARNING, logger="bot.storage.location")
    assert upgrade(capsys)[0] == 0
    new = tmp_path / "xdg-data" / "hotpapers" / "hotpapers.db"
    (warning,) = caplog.messages
    assert warning.startswith(f"{old} is not used: a relative database.url is now kept in the ")
    assert f"data directory, as {new}; move the file there" in warning
    assert old.read_bytes() == b"the servers' settings"  # left alone
    assert new.is_file()
    # Gone from the working directory (moved): nothing more is said.
    old.unlink()
    caplog.clear()
    assert upgrade(capsys)[0] == 0
    assert caplog.messages == []


# -- storage.data_dir -----------------------------------------------------------------------------


def test_the_setting_moves_the_database_and_is_created_private(tmp_path, monkeypatch, capsys):
    chosen = tmp_path / "srv" / "hotpapers" / "data"  # parents missing too
    monkeypatch.setenv("HOTPAPERS_STORAGE__DATA_DIR", str(chosen))
    code, _, err = upgrade(capsys)
    assert (code, err) == (0, "")
    assert (chosen / "hotpapers.db").is_file()
    assert mode(chosen) == DIR_MODE
    assert not (tmp_path / "xdg-data").exists()


def test_the_setting_from_the_file_with_a_home_relative_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "config.toml").write_text('[storage]\ndata_dir = "~/hp-data"\n', "utf-8")
    code, _, err = upgrade(capsys)
    assert (code, err) == (0, "")
    assert (tmp_path / "home" / "hp-data" / "hotpapers.db").is_file()


def test_a_relative_setting_is_taken_from_the_working_directory(tmp_path):
    assert data_dir(Path("state")) == tmp_path / "state"


def test_an_existing_directory_keeps_the_operators_permissions(tmp_path, monkeypatch, capsys):
    chosen = tmp_path / "shared-state"
    chosen.mkdir(mode=0o750)
    chosen.chmod(0o750)
    monkeypatch.setenv("HOTPAPERS_STORAGE__DATA_DIR", str(chosen))
    assert upgrade(capsys)[0] == 0
    assert mode(chosen) == 0o750
    assert (chosen / "hotpapers.db").is_file()


def test_a_relative_database_in_a_subfolder_gets_its_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOTPAPERS_STORAGE__DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", "sqlite+aiosqlite:///db/bot.db")
    assert upgrade(capsys)[0] == 0
    assert (tmp_path / "d" / "db" / "bot.db").is_file()
    assert mode(tmp_path / "d" / "db") == DIR_MODE


# -- URLs used as given ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "placed"),
    [
        (DEFAULT_URL, "sqlite+aiosqlite:////data/hotpapers.db"),
        ("sqlite+aiosqlite:///db/hp.db", "sqlite+aiosqlite:////data/db/hp.db"),
        ("sqlite:///hp.db", "sqlite:////data/hp.db"),
        (
            "sqlite+aiosqlite:///file:hp.db?mode=rwc&uri=true",
            "sqlite+aiosqlite:///file%3A/data/hp.db?mode=rwc&uri=true",
        ),
        # As given: an absolute file, memory, PostgreSQL, and what is not a URL at all (opening
        # it reports that, naming the setting).
        ("sqlite+aiosqlite:////srv/hp.db", "sqlite+aiosqlite:////srv/hp.db"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        (
            "sqlite+aiosqlite:///file:mem?mode=memory&cache=shared&uri=true",
            "sqlite+aiosqlite:///file:mem?mode=memory&cache=shared&uri=true",
        ),
        ("postgresql+asyncpg://hp:p%40ss@db:5432/hp", "postgresql+asyncpg://hp:p%40ss@db:5432/hp"),
        ("not a url", "not a url"),
    ],
)
def test_place_database(url, placed):
    assert place_database(url, Path("/data")) == placed


def test_a_home_relative_sqlite_file_is_expanded(tmp_path, monkeypatch):
    # SQLite itself would make a folder named "~" in the working directory.
    monkeypatch.setenv("HOME", str(tmp_path))
    placed = place_database("sqlite+aiosqlite:///~/hp.db", Path("/data"))
    assert placed == f"sqlite+aiosqlite:///{tmp_path}/hp.db"


def test_an_absolute_file_or_postgresql_is_opened_where_it_is(
    migrated_url, tmp_path, monkeypatch, capsys
):
    # On both backends: the migrated database is the one opened (not a new one elsewhere).
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", migrated_url)
    monkeypatch.setenv("HOTPAPERS_STORAGE__DATA_DIR", str(tmp_path / "d"))
    code, out, err = upgrade(capsys)
    assert (code, err) == (0, "")
    assert out == f"database already at revision {head_revision()}\n"
    assert list((tmp_path / "d").iterdir()) == []  # the state directory holds no database


# -- the run lock and matplotlib's cache follow the data directory ------------------------------


def test_the_run_lock_is_beside_the_database_in_the_data_directory(tmp_path, monkeypatch, capsys):
    chosen = tmp_path / "d"
    monkeypatch.setenv("HOTPAPERS_STORAGE__DATA_DIR", str(chosen))
    monkeypatch.setenv("DISCORD_TOKEN", "fake-token")
    where = prepare(DEFAULT_URL, chosen)
    # Held as a running bot holds it: `hotpapers run` from anywhere is refused on that file,
    # before connecting to anything.
    with run_lock(where.database_url) as held:
        assert held == lock_path(chosen / "hotpapers.db")
        assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"hotpapers: error: database {chosen / 'hotpapers.db'} is in use")
    assert not (tmp_path / "hotpapers.db.lock").exists()


def test_matplotlib_keeps_its_cache_in_the_data_directory_unless_told(tmp_path):
    environ: dict[str, str] = {}
    assert keep_chart_cache_in(tmp_path, environ) == str(tmp_path / "cache" / "matplotlib")
    assert environ == {"MPLCONFIGDIR": str(tmp_path / "cache" / "matplotlib")}
    chosen = {"MPLCONFIGDIR": "/var/cache/mpl"}
    assert keep_chart_cache_in(tmp_path, chosen) == "/var/cache/mpl"
    assert chosen == {"MPLCONFIGDIR": "/var/cache/mpl"}


# -- commands without state, and bad directories --------------------------------------------------


def test_demo_and_invite_create_no_data_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOTPAPERS_DISCORD__APPLICATION_ID", "123456789012345678")
    assert main(["invite"]) == 0
    assert main(["demo"]) == 0
    assert "title: Hot Papers 2020-12-22" in capsys.readouterr().out
    assert not (tmp_path / "xdg-data").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("below", "named"),
    [("", "is a file, not a directory"), ("sub", "Not a directory")],
    ids=["a-file", "under-a-file"],
)
def test_an_unusable_data_directory_is_one_line_naming_it(
    tmp_path, monkeypatch, capsys, below, named
):
    (tmp_path / "file").write_text("not a directory", "utf-8")
    path = tmp_path / "file" / below if below else tmp_path / "file"
    monkeypatch.setenv("HOTPAPERS_STORAGE__DATA_DIR", str(path))
    code, out, err = upgrade(capsys)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1, err
    assert err.startswith("hotpapers: error: ")
    assert str(path) in err
    assert named in err
    assert "HOTPAPERS_STORAGE__DATA_DIR" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_data_directory_is_refused(tmp_path):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(StorageError, match=r"is not writable by this user"):
            prepare(DEFAULT_URL, locked)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_setting_is_refused_not_read_as_the_working_directory(monkeypatch, capsys, blank):
    monkeypatch.setenv("HOTPAPERS_STORAGE__DATA_DIR", blank)
    code, out, err = upgrade(capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "`storage.data_dir`" in err
    assert "HOTPAPERS_STORAGE__DATA_DIR" in err
