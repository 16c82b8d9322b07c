"""``hotpapers run``'s shard options and its SQLite guard (one bot process per SQLite file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main, with_shards
from bot.core.errors import ConfigError, DatabaseInUseError
from bot.settings import Settings
from bot.storage.lock import lock_path, run_lock, sqlite_file

REPO = Path(__file__).resolve().parents[2]

# -- --shard-count / --shard-ids --------------------------------------------------------------


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    """No token: a run that gets past its options stops at the token, before any connection."""
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--shard-ids", "0"], "--shard-ids 0: shard_ids need shard_count"),
        (["--shard-count", "2", "--shard-ids", "0,2"], "shard 2 is not a shard of shard_count 2"),
        (["--shard-count", "2", "--shard-ids", "1,1"], "shard_ids lists shard 1 more than once"),
        (["--shard-count", "0"], "argument --shard-count: must be at least 1"),
        (["--shard-count", "two"], "argument --shard-count: `two` is not a whole number"),
        (["--shard-ids", "0,a"], "argument --shard-ids: `0,a` is not a comma-separated list"),
        (["--shard-ids", ""], "argument --shard-ids: `` is not a comma-separated list"),
        (["--shard-ids", "-1"], "argument --shard-ids"),
    ],
)
def test_bad_shard_options_are_one_line_and_exit_2(no_token, capsys, argv, line):
    assert main(["run", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert line in captured.err
    assert "error" in captured.err


def test_shard_options_override_the_settings(no_token, monkeypatch, capsys):
    monkeypatch.setenv("HOTPAPERS_DISCORD__SHARD_COUNT", "2")
    # The file's count with the option's ids: accepted, so the run goes on to want a token.
    assert main(["run", "--shard-ids", "1"]) == 2
    assert "DISCORD_TOKEN is not set" in capsys.readouterr().err
    # An id beyond the settings' count is refused naming the option.
    assert main(["run", "--shard-ids", "2"]) == 2
    assert "--shard-ids 2: shard 2 is not a shard of shard_count 2" in capsys.readouterr().err


def test_with_shards_replaces_each_given_setting() -> None:
    base = Settings(discord={"shard_count": 4, "shard_ids": [0, 1]})
    assert with_shards(base, None, None) is base
    moved = with_shards(base, None, [3, 2])
    assert (moved.discord.shard_count, moved.discord.shard_ids) == (4, [2, 3])
    more = with_shards(base, 8, None)
    assert (more.discord.shard_count, more.discord.shard_ids) == (8, [0, 1])
    with pytest.raises(ConfigError, match=r"^--shard-count 1: shard 1 is not a shard"):
        with_shards(base, 1, None)
    unsharded = with_shards(Settings(), 2, None)
    assert (unsharded.discord.shard_count, unsharded.discord.shard_ids) == (2, None)


# -- the SQLite guard --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:///bot.db", "bot.db"),
        ("sqlite+aiosqlite:////var/lib/hotpapers/bot.db", "/var/lib/hotpapers/bot.db"),
        ("sqlite+aiosqlite:///file:bot.db?mode=rwc&uri=true", "bot.db"),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite:///file:mem?mode=memory&cache=shared&uri=true", None),
        ("postgresql+asyncpg://bot:pw@db/hotpapers", None),
        ("not a url", None),
    ],
)
def test_which_databases_are_a_file_to_lock(url, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = sqlite_file(url)
    assert found == (None if expected is None else (tmp_path / expected).resolve())


def test_a_second_holder_is_refused_naming_the_file_and_the_pid(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    with run_lock(url) as held:
        assert held == tmp_path / "bot.db.lock"
        assert held.read_text().strip() == str(os.getpid())
        # flock locks belong to an open file: a second open in this process is refused too.
        with pytest.raises(DatabaseInUseError) as refused, run_lock(url):
            pass
    assert refused.value.message == (
        f"database {tmp_path / 'bot.db'} is in use by another hotpapers process "
        f"(pid {os.getpid()}): SQLite serves one process; use PostgreSQL to run several "
        "(README: Scaling out)"
    )
    # Released at the end of the block: the next run takes it.
    with run_lock(url) as again:
        assert again is not None
    assert lock_path(tmp_path / "bot.db").read_text() == ""


def test_memory_and_postgresql_take_no_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite+aiosqlite://", "postgresql+asyncpg://bot@db/hotpapers"):
        with run_lock(url) as held, run_lock(url) as again:
            assert held is again is None
    assert list(tmp_path.iterdir()) == []


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    holder = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from bot.storage.lock import run_lock\n"
            f"with run_lock({url!r}):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DatabaseInUseError, match=f"pid {holder.pid}"), run_lock(url):
            pass
        holder.send_signal(signal.SIGKILL)  # no clean-up of any kind
        holder.wait(10)
        with run_lock(url) as held:
            assert held is not None
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
