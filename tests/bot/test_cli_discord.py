"""``hotpapers run``, ``sync`` and ``invite`` against the fake Discord, in-process and for real."""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import discord
import pytest

from bot.cli import invite_permissions, main
from tests.cli.test_real_day import run_cli
from tests.fakes.discord import DiscordHarness

MINIMAL = (
    (1 << 10)  # View Channel
    | (1 << 11)  # Send Messages
    | (1 << 14)  # Embed Links
    | (1 << 16)  # Read Message History (a thread from a message)
    | (1 << 35)  # Create Public Threads
    | (1 << 38)  # Send Messages in Threads
)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def pointed(discord_harness: DiscordHarness, monkeypatch, tmp_path) -> DiscordHarness:
    """Settings for the fake Discord through the documented environment keys."""
    monkeypatch.setenv("HOTPAPERS_DISCORD__API_BASE", discord_harness.fake.api_base)
    monkeypatch.setenv("HOTPAPERS_DISCORD__GATEWAY_URL", discord_harness.fake.gateway_url)
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    return discord_harness


@pytest.fixture
def cli(capsys):
    """``main(argv)`` in a worker thread (it calls asyncio.run) while the fake serves here."""

    async def run(*argv: str) -> Result:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def env_of(harness: DiscordHarness, tmp_path, **extra: str) -> dict[str, str]:
    return {
        "HOTPAPERS_DISCORD__API_BASE": harness.fake.api_base,
        "HOTPAPERS_DISCORD__GATEWAY_URL": harness.fake.gateway_url,
        "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        **extra,
    }


# -- run --------------------------------------------------------------------------------------


async def test_run_without_a_token_is_one_clear_line(pointed, cli):
    result = await cli("run")
    assert result.code != 0
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err.startswith("hotpapers: error: DISCORD_TOKEN is not set")
    assert pointed.fake.requests == []


async def test_run_with_a_rejected_token_is_one_clear_line(pointed, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "not-the-token")
    result = await cli("run")
    assert result.code != 0
    assert result.err.strip() == (
        "hotpapers: error: Discord rejected DISCORD_TOKEN (401): check the bot token"
    )
    assert "not-the-token" not in result.err
    (me,) = pointed.fake.requests_to("GET", "/users/@me")
    assert me.status == 401


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "hotpapers: error: DISCORD_TOKEN is not set"),
        ({"DISCORD_TOKEN": "wrong"}, "hotpapers: error: Discord rejected DISCORD_TOKEN (401)"),
    ],
)
async def test_the_real_process_ends_with_that_one_line(discord_harness, tmp_path, env, expected):
    run = await run_cli("run", env=env_of(discord_harness, tmp_path, **env), cwd=tmp_path)
    assert run.code != 0
    assert "Traceback" not in run.err
    assert "wrong" not in run.err
    lines = run.err.strip().splitlines()
    assert lines[-1].startswith(expected)
    assert sum("error" in line.lower() for line in lines) == 1, run.err


# -- sync -------------------------------------------------------------------------------------


async def test_sync_to_a_guild_publishes_the_commands(pointed, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", pointed.token)
    result = await cli("sync", "--guild", str(pointed.guild.id))
    assert result.code == 0, result.err
    assert result.out.strip() == (
        f"synced 5 commands to guild {pointed.guild.id}: /about, /category, /digest, /hot, /paper"
    )
    stored = pointed.world.guild_commands[pointed.guild.id]
    assert {c["name"] for c in stored} == {"about", "category", "digest", "hot", "paper"}
    assert pointed.world.global_commands == []
    assert pointed.fake.identifies == []  # a sync needs no gateway connection


async def test_sync_globally(pointed, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", pointed.token)
    result = await cli("sync")
    assert result.code == 0, result.err
    assert "every guild" in result.out
    assert {c["name"] for c in pointed.world.global_commands} == {
        "about",
        "category",
        "digest",
        "hot",
        "paper",
    }


async def test_sync_to_a_guild_the_bot_is_not_in(pointed, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", pointed.token)
    result = await cli("sync", "--guild", "123456789012345678")
    assert result.code != 0
    assert result.err.count("\n") == 1
    assert "is the bot in that server" in result.err


# -- invite -----------------------------------------------------------------------------------


def parse_invite(url: str) -> tuple[str, dict[str, str]]:
    parsed = urllib.parse.urlsplit(url.strip())
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}", dict(
        urllib.parse.parse_qsl(parsed.query)
    )


async def test_invite_with_the_application_id(pointed, cli, monkeypatch):
    monkeypatch.setenv("HOTPAPERS_DISCORD__APPLICATION_ID", "1234567890123")
    result = await cli("invite")
    assert result.code == 0, result.err
    where, query = parse_invite(result.out)
    assert where == "https://discord.com/oauth2/authorize"
    assert query["client_id"] == "1234567890123"
    assert query["scope"].split() == ["bot", "applications.commands"]
    assert int(query["permissions"]) == MINIMAL
    assert pointed.fake.requests == []


async def test_invite_looks_the_application_up_with_the_token(pointed, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", pointed.token)
    result = await cli("invite")
    assert result.code == 0, result.err
    _, query = parse_invite(result.out)
    assert query["client_id"] == str(pointed.world.application_id)
    assert int(query["permissions"]) == MINIMAL


async def test_invite_without_id_or_token_says_what_to_set(pointed, cli):
    result = await cli("invite")
    assert result.code != 0
    assert result.err.count("\n") == 1
    assert "discord.application_id" in result.err


def test_the_invite_asks_for_no_more_than_the_bot_uses():
    perms = invite_permissions()
    assert perms.value == MINIMAL
    assert not perms.administrator
    assert not perms.manage_guild
    assert not perms.mention_everyone
    assert perms <= discord.Permissions(MINIMAL)


def test_the_readme_asks_for_exactly_the_invite_permissions():
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## For server owners", 1)[1].split("### Command reference", 1)[0]
    step = " ".join(section.split("2. **Invite the bot.**", 1)[1].split("3. ", 1)[0].split())
    asked = step.split("the permissions the bot needs:", 1)[1].split(" (", 1)[0].rstrip(".")
    named = {p.strip().lower() for p in asked.replace(" and ", ", ").split(",")}
    aliases = {"read_messages": "view_channel"}  # discord.py's older name of the flag
    granted = {aliases.get(n, n).replace("_", " ") for n, on in invite_permissions() if on}
    assert named == granted


async def test_a_refused_global_sync_does_not_name_a_guild(pointed, cli, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", pointed.token)
    pointed.fake.fail_next("PUT", "/applications/*/commands", 403)
    result = await cli("sync")
    assert result.code != 0
    assert result.err.count("\n") == 1
    assert "guild" not in result.err
    assert "None" not in result.err
    assert result.err.startswith("hotpapers: error: Discord refused the global sync")
