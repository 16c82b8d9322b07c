"""The real ``hotpapers run`` process, driven from outside through the fake Discord.

As a checker would: the fakes (Discord, arXiv, X) run here on 127.0.0.1; ``python -m bot sync``
and ``python -m bot run`` are child processes configured only through the documented
environment; commands arrive as INTERACTION_CREATE and their answers are read from the fake's
side; SIGTERM stops the bot cleanly.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.fakes.arxiv import FakeArxiv
from bot.fakes.demo import load_dataset, load_dataset_into
from bot.fakes.x import FakeX
from tests.bot.conftest import said
from tests.cli.test_real_day import run_cli, spawn_bot
from tests.fakes.discord import DiscordHarness, InteractionCallback, InteractionResult

X_TOKEN = "run-process-bearer-token"  # the local fake X's credential
ANSWER_S = 3.0  # Discord's deadline for the first response to an interaction
FOLLOWUP_S = 15.0  # a deferred answer may wait out arXiv's 3 s between requests
STOP_S = 10.0

# The commands, subcommands and option names the issue fixes (in declaration order).
EXPECTED_COMMANDS: dict[str, Any] = {
    "about": [],
    "category": {
        "list": [],
        "add": ["name"],
        "remove": ["name"],
        "top": ["name", "days"],
    },
    "digest": {
        "channel": ["channel"],
        "alerts": ["channel"],
        "time": ["time", "timezone"],
        "settings": ["top", "threshold", "style", "empty_day", "ranking"],
        "preview": [],
        "status": [],
        "pause": [],
        "resume": [],
        "archive": ["state"],
    },
    "hot": ["category", "days", "sort"],
    "paper": ["query"],
}


@asynccontextmanager
async def fake_sources() -> AsyncIterator[dict[str, str]]:
    """Fake arXiv and X serving the reference dataset; yields the environment pointing at them.
    Their clocks are real ones, as the bot's is."""
    async with AsyncExitStack() as stack:
        arxiv = await stack.enter_async_context(FakeArxiv())
        x = await stack.enter_async_context(FakeX(token=X_TOKEN))
        load_dataset_into(arxiv, x, load_dataset())
        yield {
            "HOTPAPERS_ARXIV__API_URL": arxiv.api_url,
            "HOTPAPERS_ARXIV__RSS_URL": arxiv.rss_url,
            "HOTPAPERS_SOURCES__X__ENABLED": "true",
            "HOTPAPERS_SOURCES__X__API_URL": x.api_url,
            "X_BEARER_TOKEN": X_TOKEN,
            "HOTPAPERS_SOURCES__HACKERNEWS__ENABLED": "false",
            "HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED": "false",
            # X's day: Bluesky (on by default) is checked on its own fakes elsewhere.
            "HOTPAPERS_SOURCES__BLUESKY__ENABLED": "false",
        }


def shape(commands: list[dict[str, Any]]) -> dict[str, Any]:
    """Stored command definitions as {command: [options]} or {group: {sub: [options]}}."""
    out: dict[str, Any] = {}
    for command in commands:
        options = command.get("options") or []
        if any(o["type"] == 1 for o in options):
            out[command["name"]] = {
                sub["name"]: [o["name"] for o in sub.get("options") or []] for sub in options
            }
        else:
            out[command["name"]] = [o["name"] for o in options]
    return out


def option(commands: list[dict[str, Any]], *path: str) -> dict[str, Any]:
    (node,) = [c for c in commands if c["name"] == path[0]]
    for part in path[1:]:
        (node,) = [o for o in node.get("options") or [] if o["name"] == part]
    return node


async def answered(result: InteractionResult) -> InteractionCallback:
    """The first response, which must come within Discord's 3 s (the fake measures it)."""
    callback = await result.response(timeout=ANSWER_S)
    assert callback.elapsed < ANSWER_S, callback.elapsed
    return callback


async def test_the_run_process_answers_commands_and_stops_on_sigterm(
    tmp_path: Path, discord_harness: DiscordHarness, migrated_url: str
) -> None:
    """On each backend (``migrated_url``: a SQLite file, or the PostgreSQL test database)."""
    h = discord_harness
    async with fake_sources() as sources:
        env = {
            "DISCORD_TOKEN": h.token,
            "HOTPAPERS_DISCORD__API_BASE": h.fake.api_base,
            "HOTPAPERS_DISCORD__GATEWAY_URL": h.fake.gateway_url,
            "HOTPAPERS_DATABASE__URL": migrated_url,
            **sources,
        }

        # -- sync: the commands as the issue names them, stored by the fake ------------------
        sync = await run_cli("sync", "--guild", str(h.guild.id), env=env, cwd=tmp_path)
        assert sync.code == 0, sync.err
        assert "Traceback" not in sync.err
        assert sync.out.startswith(f"synced 5 commands to guild {h.guild.id}")
        stored = h.world.guild_commands[h.guild.id]
        assert shape(stored) == EXPECTED_COMMANDS
        assert option(stored, "paper", "query")["required"] is True
        assert option(stored, "paper", "query")["autocomplete"] is True
        assert option(stored, "category", "add", "name")["autocomplete"] is True
        assert not option(stored, "digest", "time", "timezone").get("required")
        assert h.fake.identifies == []

        # -- run: a real process, connected through the fake gateway -------------------------
        stderr_path = tmp_path / "run.stderr"
        proc = await spawn_bot(env=env, cwd=tmp_path, stderr_path=stderr_path)
        try:
            try:
                await h.wait_connected(timeout=30.0, alive=lambda: proc.returncode is None)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{stderr_path.read_text()}") from None
            (identify,) = h.fake.identifies
            assert identify["intents"] == 1  # guilds only: no privileged intent

            mod = h.member(manage_guild=True, name="moderator")
            reader = h.member(name="reader")

            about = await answered(await h.slash("about", member=reader))
            assert about.ephemeral
            assert about.embeds, about.data

            added = await answered(await h.slash("category", "add", name="cs.LG", member=mod))
            assert added.ephemeral
            assert "cs.LG" in said(added.data)

            refused = await answered(await h.slash("category", "add", name="cs.CV", member=reader))
            assert refused.ephemeral
            assert "Manage Server" in said(refused.data)

            listed = await answered(await h.slash("category", "list", member=reader))
            assert listed.ephemeral
            assert "cs.LG" in said(listed.data)
            assert "cs.CV" not in said(listed.data)

            status = await h.slash("digest", "status", member=reader)
            deferred = await answered(status)
            assert deferred.deferred
            assert deferred.ephemeral
            (report,) = await status.followups(count=1, timeout=FOLLOWUP_S)
            assert "Daily digest status" in said(report)
            assert "Categories: `cs.LG`" in said(report)
            assert int(report.get("flags") or 0) & 64  # ephemeral

            paper = await h.slash("paper", query="2012.10885", member=reader)
            assert (await answered(paper)).deferred
            (shown, *_) = await paper.followups(count=1, timeout=FOLLOWUP_S)
            assert "LieTransformer" in said(shown)
            assert "2012.10885" in str(shown)

            choices = await h.autocomplete(
                "category", "add", focused="name", value="cs.L", member=mod, timeout=ANSWER_S
            )
            assert "cs.LG" in [c["value"] for c in choices]

            # -- SIGTERM: a clean stop, exit code 0 -------------------------------------------
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), STOP_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        err = stderr_path.read_text()
        assert code == 0, err
        assert "Traceback" not in err, err
        assert "shutting down" in err
        await h.fake.wait_until(lambda: h.fake.connected == 0, STOP_S, "gateway socket closed")
    assert h.fake.violations == []


@asynccontextmanager
async def bot_process(
    h: DiscordHarness, env: dict[str, str], cwd: Path, *args: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot run ARGS`` connected to the fake (its stderr in ``cwd/run.stderr``);
    killed on the way out if the test did not stop it."""
    stderr_path = cwd / "run.stderr"
    proc = await spawn_bot(*args, env=env, cwd=cwd, stderr_path=stderr_path)
    try:
        try:
            await h.wait_connected(timeout=30.0, alive=lambda: proc.returncode is None)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{stderr_path.read_text()}") from None
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop(proc: asyncio.subprocess.Process, cwd: Path) -> None:
    """SIGTERM: a clean stop, exit code 0."""
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), STOP_S)
    err = (cwd / "run.stderr").read_text()
    assert code == 0, err
    assert "Traceback" not in err, err


@pytest.mark.sqlite_only  # the single-process guard: a file lock beside the SQLite file
async def test_a_second_run_on_the_same_sqlite_file_is_refused(
    tmp_path: Path, discord_harness: DiscordHarness
) -> None:
    h = discord_harness
    database = tmp_path / "bot.db"
    async with fake_sources() as sources:
        env = {
            "DISCORD_TOKEN": h.token,
            "HOTPAPERS_DISCORD__API_BASE": h.fake.api_base,
            "HOTPAPERS_DISCORD__GATEWAY_URL": h.fake.gateway_url,
            "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{database}",
            **sources,
        }
        sync = await run_cli("sync", "--guild", str(h.guild.id), env=env, cwd=tmp_path)
        assert sync.code == 0, sync.err
        async with bot_process(h, env, tmp_path) as first:
            logins = len(h.fake.requests_to("GET", "/users/@me"))

            # A second bot on the same file: one line naming the file and the first's pid, before
            # it migrates, logs in or connects; sharded or not, SQLite serves one process.
            for extra in ((), ("--shard-count", "2", "--shard-ids", "1")):
                second = await run_cli("run", *extra, env=env, cwd=tmp_path)
                assert second.code == 1, second.err
                assert second.out == ""
                assert second.err == (
                    f"hotpapers: error: database {database.resolve()} is in use by another "
                    f"hotpapers process (pid {first.pid}): SQLite serves one process; use "
                    "PostgreSQL to run several (README: Scaling out)\n"
                )
            assert len(h.fake.requests_to("GET", "/users/@me")) == logins
            assert len(h.fake.identifies) == 1

            # One-shot commands still run beside the bot, as before.
            digest = await run_cli("digest", "--date", "2020-12-22", env=env, cwd=tmp_path)
            assert digest.code == 0, digest.err

            # The first bot carries on: connected, and it still answers.
            assert first.returncode is None
            assert h.fake.ready_sessions == 1
            about = await answered(await h.slash("about", member=h.member(name="reader")))
            assert about.embeds
            await stop(first, tmp_path)
        await h.fake.wait_until(lambda: h.fake.connected == 0, STOP_S, "gateway socket closed")

        # Its end released the file: the next run takes it, here on the guild's shard of two.
        shard = (h.guild.id >> 22) % 2
        args = ("--shard-count", "2", "--shard-ids", str(shard))
        async with bot_process(h, env, tmp_path, *args) as sharded:
            assert h.fake.identifies[-1]["shard"] == [shard, 2]
            assert h.fake.sessions_on((shard, 2)) == 1
            about = await answered(await h.slash("about", member=h.member(name="reader")))
            assert about.embeds
            await stop(sharded, tmp_path)
        logged = (tmp_path / "run.stderr").read_text()
        assert f"shard {shard} of 2: scheduling the digests" in logged
        assert f"shard {shard} of 2 on SQLite: no other process can run the other" in logged
    assert h.fake.violations == []
