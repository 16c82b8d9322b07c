"""Every cog loads, no two commands clash, the bot asks no privileged intent and never pings."""

from __future__ import annotations

import datetime as dt
import pkgutil
import re
from types import SimpleNamespace

import discord
import pytest
from discord import app_commands

import cogs
from bot.client import COGS, HotPapersBot, intents, require_manage_guild
from bot.settings import Settings


class NoRuntime:
    """Enough of a ``Runtime`` to load the cogs (and build the idle jobs) without a database."""

    settings = Settings()
    # The jobs ask the database which lock the leader election takes: none here, as on SQLite.
    db = SimpleNamespace(is_sqlite=True)

    @staticmethod
    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC)


NAME = re.compile(r"^[-_\w]{1,32}$")
PRIVILEGED = (1 << 1) | (1 << 8) | (1 << 15)  # GUILD_MEMBERS, GUILD_PRESENCES, MESSAGE_CONTENT


def walk(commands):
    for command in commands:
        yield command
        if isinstance(command, app_commands.Group):
            yield from walk(command.commands)


async def test_every_cog_loads_and_no_command_names_clash():
    bot = HotPapersBot(NoRuntime(), schedule=False)  # type: ignore[arg-type]
    assert sorted(COGS) == sorted(
        f"cogs.{m.name}" for m in pkgutil.iter_modules(cogs.__path__) if not m.name.startswith("_")
    )
    await bot.setup_hook()  # loads every cog, exactly as at start
    assert sorted(bot.extensions) == sorted(COGS)

    top = bot.tree.get_commands()
    names = [c.qualified_name for c in walk(top)]
    assert len(names) == len(set(names)), f"clashing commands: {names}"
    assert {c.name for c in top} == {"paper", "hot", "category", "digest", "about"}
    assert {c.qualified_name for c in walk(top) if not isinstance(c, app_commands.Group)} == {
        "paper",
        "hot",
        "about",
        "category list",
        "category add",
        "category remove",
        "category top",
        "digest channel",
        "digest alerts",
        "digest time",
        "digest settings",
        "digest preview",
        "digest status",
        "digest pause",
        "digest resume",
        "digest archive",
    }
    for command in walk(top):
        assert NAME.match(command.name), command.name
        assert command.name == command.name.lower()
        assert 1 <= len(command.description) <= 100, command.qualified_name
        if isinstance(command, app_commands.Command):
            for parameter in command.parameters:
                assert NAME.match(parameter.name)
                assert 1 <= len(parameter.description) <= 100
    await bot.close()


async def test_moderator_commands_carry_the_runtime_check():
    bot = HotPapersBot(NoRuntime(), schedule=False)  # type: ignore[arg-type]
    await bot.setup_hook()
    moderator = {
        "category add",
        "category remove",
        "digest channel",
        "digest alerts",
        "digest time",
        "digest settings",
        "digest preview",
        "digest pause",
        "digest resume",
        "digest archive",
    }
    for command in walk(bot.tree.get_commands()):
        if isinstance(command, app_commands.Group):
            continue
        checked = any(c.__name__ == "require_manage_guild" for c in command.checks)
        assert checked == (command.qualified_name in moderator), command.qualified_name
    await bot.close()


@pytest.mark.parametrize(
    ("granted", "allowed"),
    [
        ({"manage_guild": True}, True),
        ({"administrator": True}, True),
        ({"manage_channels": True, "manage_messages": True}, False),
        ({}, False),
    ],
)
def test_the_runtime_check_wants_manage_server_or_administrator(granted, allowed):
    interaction = SimpleNamespace(guild_id=1, permissions=discord.Permissions(**granted))
    if allowed:
        assert require_manage_guild(interaction)
    else:
        with pytest.raises(app_commands.MissingPermissions):
            require_manage_guild(interaction)


def test_the_bot_wants_guild_events_only():
    wanted = intents()
    assert wanted.value == discord.Intents(guilds=True).value
    assert not wanted.value & PRIVILEGED


async def test_identify_sends_no_privileged_intent(botworld):
    (identify,) = botworld.fake.identifies
    assert identify["intents"] == 1  # GUILDS
    assert not identify["intents"] & PRIVILEGED


async def test_the_synced_commands_are_what_discord_stores(botworld):
    stored = botworld.harness.world.guild_commands[botworld.guild_id]
    assert {c["name"] for c in stored} == {"paper", "hot", "category", "digest", "about"}
    for command in stored:
        assert len(command["description"]) <= 100
    # Group commands hold members' and moderators' subcommands: they stay visible to all, and
    # the moderator ones refuse at run time (Discord has no per-subcommand permissions).
    by_name = {c["name"]: c for c in stored}
    assert by_name["category"]["default_member_permissions"] is None
    assert by_name["digest"]["dm_permission"] is False


async def test_no_message_the_bot_sends_can_ping(botworld):
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30")
    mod = botworld.mod
    for path, values in [
        (("about",), {}),
        (("paper",), {"query": "2012.11552"}),
        (("paper",), {"query": "2012.99999"}),
        (("hot",), {}),
        (("category", "add"), {"name": "cs.LG", "member": mod}),
        (("digest", "preview"), {"member": mod}),
        (("digest", "status"), {}),
    ]:
        result, callback = await botworld.run(*path, **values)
        if callback.deferred:
            # The preview is the post's messages: a header and one message of 4 papers.
            await result.followups(count=2 if path == ("digest", "preview") else 1)
    await botworld.jobs.deliver_guild(botworld.guild_id)
    fake = botworld.fake
    sent = [
        r
        for r in fake.requests
        if r.method in ("POST", "PATCH")
        and (
            re.fullmatch(r"/channels/\d+/messages", r.path)
            or re.fullmatch(r"/webhooks/\d+/[^/]+(/messages/.+)?", r.path)
            or (r.path.endswith("/callback") and r.body.get("type") == 4)
        )
    ]
    assert len(sent) == 10  # 8 answers and followups, a header and one message of 4 papers
    for request in sent:
        body = (
            request.body.get("data", request.body) if "/callback" in request.path else request.body
        )
        assert body["allowed_mentions"] == {"parse": []}, request.path
