"""The one error handler: every error ephemeral, short and specific; bugs logged, never shown."""

from __future__ import annotations

import logging

import discord
import pytest
from discord import app_commands

from bot.client import user_message
from bot.core.errors import (
    SourceUnavailableError,
    StorageError,
    UnknownCategoryError,
)
from bot.ui.messages import GENERIC_ERROR
from tests.bot.conftest import said

SECRET = "sqlite:////srv/hotpapers/secret.db refused: token=abc123"


def boom(*args, **kwargs):
    raise RuntimeError(SECRET)


async def test_an_unexpected_error_before_answering_is_generic_and_logged(botworld, caplog):
    botworld.rt.guild_settings.categories = boom  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="bot.client"):
        _, cb = await botworld.run("category", "list")
    assert cb.ephemeral
    assert said(cb) == f"⚠️ {GENERIC_ERROR}"
    assert SECRET not in str(cb.data)
    (record,) = [r for r in caplog.records if r.name == "bot.client"]
    assert record.getMessage() == (
        f"command category list failed (guild {botworld.guild_id}, user {botworld.reader.id})"
    )
    assert record.exc_info is not None
    assert SECRET in str(record.exc_info[1])


async def test_an_unexpected_error_after_deferring_replaces_the_public_placeholder(
    botworld, caplog
):
    h = botworld.harness
    botworld.rt.digests.hot = boom  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="bot.client"):
        result, cb = await botworld.run("hot")
    assert cb.deferred
    assert not cb.ephemeral
    (message,) = await result.followups(count=1)
    assert message["flags"] & 64
    assert said(message) == f"⚠️ {GENERIC_ERROR}"
    # The public "thinking…" message is gone: nothing of the failure shows in the channel.
    assert h.fake.messages(h.channel) == []
    assert result.original() is None
    assert any("command hot failed" in r.getMessage() for r in caplog.records)


async def test_a_moderator_command_failing_after_an_ephemeral_defer(botworld, caplog):
    async def failing_preview(guild_id):
        raise StorageError(SECRET)

    botworld.rt.delivery.preview = failing_preview  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="bot.client"):
        result, cb = await botworld.run("digest", "preview", member=botworld.mod)
    assert cb.deferred
    assert cb.ephemeral
    messages = await result.followups(count=1)
    assert said(messages[-1]) == f"⚠️ {GENERIC_ERROR}"
    assert SECRET not in str(messages)
    assert any("command digest preview failed" in r.getMessage() for r in caplog.records)


async def test_a_source_outage_is_named_not_logged_as_a_bug(botworld, caplog):
    async def down(*args, **kwargs):
        raise SourceUnavailableError("arxiv", "HTTP 503 after 4 retries")

    botworld.rt.paper_lookup.arxiv.fetch_papers = down  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        result, _ = await botworld.run("paper", query="2012.10885")
    (message,) = await result.followups(count=1)
    assert message["flags"] & 64
    assert said(message) == "⚠️ arXiv is not answering right now; please try again in a few minutes."
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_user_errors_are_not_logged_as_errors(botworld, caplog):
    with caplog.at_level(logging.WARNING):
        _, cb = await botworld.run("hot", category="nonsense")
    assert cb.ephemeral
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_command_discord_still_lists_but_the_bot_dropped(botworld, caplog):
    h = botworld.harness
    with caplog.at_level(logging.WARNING, logger="bot.client"):
        result = await h.fake.send_interaction(
            "retired", member=botworld.reader, channel=h.channel, require_registered=False
        )
        cb = await result.response(timeout=3.0)
    assert cb.ephemeral
    assert "This command has changed since Discord loaded it" in said(cb)
    assert any("hotpapers sync" in r.getMessage() for r in caplog.records)


class ChannelOnly(app_commands.Transformer):
    async def transform(self, interaction, value):
        return value


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (app_commands.NoPrivateMessage(), "This command works in servers only."),
        (app_commands.CommandOnCooldown(app_commands.Cooldown(1, 30), 12.2), "Slow down"),
        (app_commands.MissingPermissions(["manage_guild"]), "**Manage Server**"),
        (
            app_commands.BotMissingPermissions(["embed_links"]),
            "I'm missing the Embed Links permission here.",
        ),
        (app_commands.CheckFailure(), "**Manage Server**"),
        (
            app_commands.TransformerError(
                "@everyone *bold*", discord.AppCommandOptionType.channel, ChannelOnly()
            ),
            "“@\u200beveryone \\*bold\\*” is not a valid channel for that option.",
        ),
    ],
)
def test_each_check_failure_has_its_own_sentence(error, expected):
    assert expected in user_message(error)


def test_only_user_facing_text_is_shown():
    invoke = app_commands.CommandInvokeError.__new__(app_commands.CommandInvokeError)
    invoke.original = UnknownCategoryError("cs.XX", ["cs.AI"])
    assert user_message(invoke) == "Unknown arXiv category `cs.XX`. Did you mean `cs.AI`?"
    invoke.original = StorageError(SECRET)
    assert user_message(invoke) == GENERIC_ERROR
    invoke.original = KeyError(SECRET)
    assert user_message(invoke) == GENERIC_ERROR


async def test_every_error_answer_is_short_and_ephemeral(botworld):
    mod = botworld.mod
    cases = [
        (("category", "add"), {"name": "cs.LF", "member": mod}),
        (("category", "remove"), {"name": "cs.LG", "member": mod}),
        (("category", "top"), {"name": "quantum cats"}),
        (("digest", "time"), {"time": "24:00", "member": mod}),
        (("digest", "time"), {"time": "08:00", "timezone": "Mars/Olympus", "member": mod}),
        (("hot",), {"category": "x" * 200}),
        (("paper",), {"query": "https://arxiv.org/abs/" + "9" * 250}),
    ]
    for path, values in cases:
        _, cb = await botworld.run(*path, **values)
        assert cb.type == 4, path
        assert cb.ephemeral, path
        text = said(cb)
        assert text.startswith("⚠️"), (path, text)
        assert len(text) <= 300, (path, len(text), text)


async def test_a_member_searching_too_fast_is_told_to_slow_down(botworld, caplog):
    from cogs.papers import PAPER_COOLDOWN

    await botworld.ingest_reference_day()
    uses, per = PAPER_COOLDOWN
    for _ in range(uses):
        cb = await botworld.reply("paper", query="2012.11552")
        assert not said(cb).startswith("⚠️")
    _, cb = await botworld.run("paper", query="2012.11552")
    assert cb.type == 4  # answered at once, not deferred
    assert cb.ephemeral
    text = said(cb)
    assert text.startswith("⚠️ Slow down: try again in ")
    seconds = int(text.removeprefix("⚠️ Slow down: try again in ").removesuffix("s."))
    assert 1 <= seconds <= per
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # The cooldown is the member's: another member searches at once.
    other = botworld.harness.member(name="other reader")
    assert not said(await botworld.reply("paper", member=other, query="2012.11552")).startswith("⚠️")


async def test_digest_status_has_a_cooldown_per_server(botworld):
    from cogs.digest import STATUS_COOLDOWN

    uses, _per = STATUS_COOLDOWN
    members = [botworld.harness.member(name=f"member {n}") for n in range(uses + 1)]
    for member in members[:uses]:
        assert "Daily digest status" in said(
            await botworld.reply("digest", "status", member=member)
        )
    _, cb = await botworld.run("digest", "status", member=members[-1])  # someone else, same server
    assert cb.ephemeral
    assert said(cb).startswith("⚠️ Slow down: try again in ")


@pytest.mark.parametrize(
    ("path", "values"), [(("hot",), {}), (("category", "top"), {"name": "cs.LG"})]
)
async def test_the_rankings_have_a_cooldown_per_member(botworld, path, values):
    from cogs.papers import RANKING_COOLDOWN

    uses, _per = RANKING_COOLDOWN
    for _ in range(uses):
        assert not said(await botworld.reply(*path, **values)).startswith("⚠️")
    _, cb = await botworld.run(*path, **values)
    assert cb.ephemeral
    assert said(cb).startswith("⚠️ Slow down: try again in ")


def test_a_cooldown_almost_over_says_one_second_not_zero():
    error = app_commands.CommandOnCooldown(app_commands.Cooldown(1, 30), 0.3)
    assert user_message(error) == "Slow down: try again in 1s."


async def test_typing_into_a_dropped_command_gets_no_choices_not_an_error(botworld, caplog):
    # discord.py's tree raises CommandNotFound for an autocomplete of a command it doesn't
    # know and hands it to on_error: an autocomplete can only be answered with choices.
    h = botworld.harness
    with caplog.at_level(logging.WARNING, logger="bot.client"):
        result = await h.fake.send_interaction(
            "retired",
            member=botworld.reader,
            channel=h.channel,
            options=[{"name": "query", "type": 3, "value": "atten", "focused": True}],
            interaction_type=4,
            require_registered=False,
        )
        cb = await result.response(timeout=3.0)
    assert cb.choices == []
    assert any("hotpapers sync" in r.getMessage() for r in caplog.records)
