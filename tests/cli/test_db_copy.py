"""`hotpapers db copy`: the table it prints, its exit codes, and one-line errors without
passwords (in-process through bot.cli.main, and once as a real process). SQLite to SQLite here;
tests/storage/test_copy.py copies to PostgreSQL too, through the command line as well."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.storage import copy as copy_module
from bot.storage.engine import Database
from bot.storage.lock import run_lock
from bot.storage.tables import metadata
from tests.cli.test_real_day import free_port, run_cli
from tests.storage.deployment import counts, dump, fill


@pytest.fixture
async def source(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    async with Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'source.db'}") as db:
        await fill(db)
    return url


def table_rows(out: str) -> dict[str, tuple[int, int, str]]:
    """The printed table: name → (source rows, target rows, check)."""
    rows = {}
    for line in out.splitlines():
        match = re.fullmatch(r"(\w+)\s+([\d,]+)\s+([\d,]+)\s+(ok|DIFFERS)", line)
        if match:
            name, source, target, check = match.groups()
            rows[name] = (int(source.replace(",", "")), int(target.replace(",", "")), check)
    return rows


async def test_copy_prints_every_tables_counts_and_exits_0(cli: Any, source: str, tmp_path: Path):
    target = tmp_path / "target.db"
    run = await cli("db", "copy", "--from", source, "--to", f"sqlite:///{target}")
    assert run.code == 0, run.err
    async with Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'source.db'}") as db:
        expected = await counts(db)
        rows = await dump(db)
    assert table_rows(run.out) == {name: (n, n, "ok") for name, n in expected.items()}
    lines = run.out.splitlines()
    assert lines[0].split() == ["table", "source", "target", "check"]
    total = sum(expected.values())
    assert f"total {total:,} {total:,}" in " ".join(run.out.split())
    assert re.search(rf"copied {total:,} rows in {len(metadata.tables)} tables from ", run.out)
    assert "search indexes built by the target: papers_fts (FTS5 index)" in run.out
    # Progress goes to stderr, a line per table.
    assert "copying" in run.err
    assert all(f"  {name}: " in run.err for name in expected)
    async with Database.connect(f"sqlite+aiosqlite:///{target}") as db:
        assert await dump(db) == rows


async def test_a_target_with_data_exits_2_and_replace_exits_0(
    cli: Any, source: str, tmp_path: Path
):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert (await cli("db", "copy", "--from", source, "--to", target)).code == 0
    again = await cli("db", "copy", "--from", source, "--to", target)
    assert again.code == 2
    assert again.out == ""
    assert again.err.endswith(
        "copy into an empty database, or pass --replace to delete its data first\n"
    )
    assert again.err.startswith("hotpapers: error: --to: the target database already holds data")
    replaced = await cli("db", "copy", "--from", source, "--to", target, "--replace")
    assert replaced.code == 0, replaced.err
    assert "replacing the target's data" in replaced.out


async def test_a_mismatch_exits_1_naming_the_table(
    cli: Any, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    load = copy_module._Loader.load

    async def losing_a_row(self: Any, rows: Any) -> None:
        await load(self, list(rows)[1:] if self._table.name == "digest_papers" else rows)

    monkeypatch.setattr(copy_module._Loader, "load", losing_a_row)
    target = tmp_path / "target.db"
    run = await cli("db", "copy", "--from", source, "--to", f"sqlite:///{target}")
    assert run.code == 1
    assert table_rows(run.out)["digest_papers"][2] == "DIFFERS"
    assert not re.search("^copied ", run.out, re.MULTILINE)
    last = run.err.splitlines()[-1]
    assert re.fullmatch(
        r"hotpapers: error: table digest_papers: (\d+) rows in the source but \d+ in the "
        r"target; the copy was rolled back: the target is as it was",
        last,
    ), last
    async with Database.connect(f"sqlite+aiosqlite:///{target}") as db:
        assert set((await counts(db)).values()) == {0}


async def test_a_running_bot_makes_the_copy_exit_1(cli: Any, source: str, tmp_path: Path):
    target = tmp_path / "target.db"
    with run_lock(f"sqlite:///{target}"):
        run = await cli("db", "copy", "--from", source, "--to", f"sqlite:///{target}")
    assert run.code == 1
    assert run.err == (
        f"hotpapers: error: --to: database {target} is in use by a running hotpapers "
        f"(pid {__import__('os').getpid()}): stop the bot before copying its database\n"
    )


@pytest.mark.parametrize(
    ("argv", "code", "named"),
    [
        (["--from", "nonsense", "--to", "sqlite:///x.db"], 2, "--from: not a database URL"),
        (["--from", "sqlite:///missing.db", "--to", "sqlite:///x.db"], 2, "no database file"),
        (["--from", "sqlite:///x.db"], 2, "the following arguments are required: --to"),
        (
            [
                "--from",
                "sqlite:///source.db",
                "--to",
                "postgresql://hp:hunter2@127.0.0.1:{port}/hp",
            ],
            1,
            "--to: cannot open database postgresql+asyncpg://hp:***@127.0.0.1:",
        ),
        (
            ["--from", "sqlite:///source.db", "--to", "postgresql://hp:hunter2@h:99999999/hp"],
            None,  # whatever the code, one line
            "",
        ),
    ],
    ids=["bad-url", "missing-source", "no-target", "unreachable", "bad-port"],
)
async def test_errors_are_one_line_without_the_password(
    cli: Any, source: str, argv: list[str], code: int | None, named: str
):
    argv = [a.replace("{port}", str(free_port())) for a in argv]
    run = await cli("db", "copy", *argv)
    assert run.code == code if code is not None else run.code in (1, 2)
    assert run.out == ""
    assert run.err.count("\n") == 1, run.err
    assert named in run.err
    assert "hunter2" not in run.err
    assert "Traceback" not in run.err


async def test_as_a_real_process(source: str, tmp_path: Path):
    target = f"sqlite:///{tmp_path / 'target.db'}"
    first = await run_cli("db", "copy", "--from", source, "--to", target, env={}, cwd=tmp_path)
    assert first.code == 0, first.err
    assert "copied " in first.out
    second = await run_cli("db", "copy", "--from", source, "--to", target, env={}, cwd=tmp_path)
    assert second.code == 2
    assert second.err.count("\n") == 1
    assert "Traceback" not in second.err


def test_db_copy_help_names_its_options(capsys: pytest.CaptureFixture[str]):
    assert main(["db", "copy", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(option in out for option in ("--from URL", "--to URL", "--replace"))
