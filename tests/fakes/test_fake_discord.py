"""The fake Discord against the real discord.py client: gateway, REST, interactions, validation."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord import (
    DiscordHarness,
    FakeDiscord,
    Permission,
    RequestValidator,
    SpecNotFoundError,
    default_spec_path,
)
from tests.fakes.discord.validation import (
    SPEC_ENV,
    check_callback,
    check_commands,
    check_components,
    check_embeds,
    check_message,
)

TITLES = [
    "Attention Is All You Need",
    "Attention Sinks in Streaming Language Models",
    "Diffusion Models Beat GANs on Image Synthesis",
    *(f"Attention variant number {i}" for i in range(40)),
]


class HarnessBot(commands.Bot):
    """A throwaway bot with a few app commands covering every interaction pattern."""

    def __init__(self, **options: Any) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.none() | discord.Intents(guilds=True),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            **options,
        )
        self.release = asyncio.Event()
        self.errors: list[BaseException] = []
        self.tree.on_error = self._on_tree_error
        self._add_commands()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every re-IDENTIFY; the fake needs no such courtesy."""

    async def _on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        self.errors.append(error)
        if isinstance(error, app_commands.CheckFailure):
            await interaction.response.send_message("You need Manage Server.", ephemeral=True)

    def _add_commands(self) -> None:
        tree = self.tree

        @tree.command()
        async def ping(interaction: discord.Interaction) -> None:
            """Check that the bot is alive."""
            await interaction.response.send_message("pong", ephemeral=True)

        category = app_commands.Group(
            name="category",
            description="Manage the categories this server follows",
            default_permissions=discord.Permissions(manage_guild=True),
            guild_only=True,
        )

        @category.command(name="add")
        @app_commands.checks.has_permissions(manage_guild=True)
        async def category_add(
            interaction: discord.Interaction, name: str, top_n: app_commands.Range[int, 1, 25] = 5
        ) -> None:
            """Follow an arXiv category."""
            await interaction.response.send_message(f"added {name} top {top_n}", ephemeral=True)

        tree.add_command(category)

        @tree.command()
        @app_commands.describe(query="Words from the title")
        async def paper(interaction: discord.Interaction, query: str) -> None:
            """Find a paper."""
            await interaction.response.send_message(f"searching {query}")

        @paper.autocomplete("query")
        async def paper_query(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            hits = [t for t in TITLES if current.lower() in t.lower()]
            return [app_commands.Choice(name=t, value=t[:100]) for t in hits][:25]

        @tree.command()
        async def digest(interaction: discord.Interaction) -> None:
            """Build today's digest (slow, so deferred)."""
            await interaction.response.defer(thinking=True)
            await interaction.followup.send(
                "digest ready", embed=discord.Embed(title="Top paper", description="…")
            )
            await interaction.followup.send("only you see this", ephemeral=True)

        @tree.command()
        async def refresh(interaction: discord.Interaction) -> None:
            """Refresh, editing the deferred answer."""
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.edit_original_response(content="refreshed")

        @tree.command()
        async def post(
            interaction: discord.Interaction,
            channel: discord.TextChannel,
            count: app_commands.Range[int, 1, 10] = 2,
        ) -> None:
            """Post papers to a channel, with a discussion thread."""
            await interaction.response.defer(ephemeral=True)
            embeds = [
                discord.Embed(
                    title=f"Paper {i}",
                    description="An abstract.",
                    url=f"https://arxiv.org/abs/2401.0000{i}",
                ).add_field(name="Score", value=str(100 - i))
                for i in range(count)
            ]
            message = await channel.send(embeds=embeds)
            await message.create_thread(name="Discussion", auto_archive_duration=1440)
            view = discord.ui.View(timeout=None)
            view.add_item(discord.ui.Button(label="Open in Discord", url=message.jump_url))
            view.add_item(discord.ui.Button(label="Hide", custom_id="hide"))
            await interaction.followup.send(
                f"posted to {channel.mention}", ephemeral=True, view=view
            )

        @tree.command()
        async def huge(interaction: discord.Interaction) -> None:
            """Answer with an embed over Discord's limits."""
            await interaction.response.send_message(embed=discord.Embed(description="d" * 5000))

        @tree.command()
        async def slow(interaction: discord.Interaction) -> None:
            """Answer only when the test releases it."""
            await self.release.wait()
            await interaction.response.send_message("late")


@pytest.fixture
async def bot(discord_harness: DiscordHarness) -> HarnessBot:
    client = HarnessBot()
    await discord_harness.start_client(client)
    guild = discord.Object(id=discord_harness.guild.id)
    client.tree.copy_global_to(guild=guild)
    await client.tree.sync(guild=guild)
    return client


# -- REST surface --------------------------------------------------------------------------


async def test_rest_answers_exact_json_content_type_and_json_404s(
    discord_harness: DiscordHarness,
) -> None:
    fake = discord_harness.fake
    auth = {"Authorization": f"Bot {discord_harness.token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.api_base}/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["bot"] is True
        async with session.get(f"{fake.api_base}/gateway/bot", headers=auth) as resp:
            assert (await resp.json())["url"] == fake.gateway_url
        async with session.get(f"{fake.api_base}/no/such/route", headers=auth) as resp:
            assert resp.status == 404
            assert resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"message": "404: Not Found", "code": 0}
        async with session.get(f"{fake.api_base}/users/@me") as resp:
            assert resp.status == 401
    # The unknown route is not in Discord's spec either: the validator says so.
    assert [v for v in fake.take_violations() if "not an endpoint" in v]


# -- gateway -------------------------------------------------------------------------------


async def test_client_identifies_and_caches_guild_with_permissions(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    fake, h = discord_harness.fake, discord_harness
    assert fake.intents == discord.Intents(guilds=True).value
    assert fake.gateway_connects == ["/gateway"]
    guild = bot.get_guild(h.guild.id)
    assert guild is not None
    assert guild.me is not None
    assert guild.me.guild_permissions.send_messages
    assert not guild.me.guild_permissions.manage_guild
    general = bot.get_channel(h.channel.id)
    assert isinstance(general, discord.TextChannel)
    assert general.permissions_for(guild.me).embed_links

    quiet = await h.text_channel(
        "quiet", bot_deny=Permission.SEND_MESSAGES | Permission.EMBED_LINKS
    )
    await fake.wait_until(lambda: bot.get_channel(quiet.id) is not None, 3.0, "CHANNEL_CREATE")
    cached = bot.get_channel(quiet.id)
    assert isinstance(cached, discord.TextChannel)
    perms = cached.permissions_for(guild.me)
    assert perms.view_channel
    assert not perms.send_messages
    assert not perms.embed_links

    await fake.restrict_bot(h.channel, deny=Permission.SEND_MESSAGES)  # CHANNEL_UPDATE
    await fake.wait_until(
        lambda: not general.permissions_for(guild.me).send_messages, 3.0, "CHANNEL_UPDATE"
    )
    with pytest.raises(discord.Forbidden):
        await general.send("muted now")


async def test_tree_sync_stores_guild_commands_and_keeps_ids(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    world = discord_harness.world
    stored = world.guild_commands[discord_harness.guild.id]
    assert {c["name"] for c in stored} == {
        "ping",
        "category",
        "paper",
        "digest",
        "refresh",
        "post",
        "huge",
        "slow",
    }
    category = next(c for c in stored if c["name"] == "category")
    assert category["default_member_permissions"] == str(Permission.MANAGE_GUILD.value)
    ids = {c["name"]: c["id"] for c in stored}

    fetched = await bot.tree.fetch_commands(guild=discord.Object(id=discord_harness.guild.id))
    assert {c.name: str(c.id) for c in fetched} == ids
    await bot.tree.sync(guild=discord.Object(id=discord_harness.guild.id))
    assert {c["name"]: c["id"] for c in world.guild_commands[discord_harness.guild.id]} == ids

    synced = await bot.tree.sync()  # global
    assert {c.name for c in synced} == {c["name"] for c in world.global_commands}
    assert "ping" in {c["name"] for c in world.global_commands}


async def test_gateway_disconnect_resumes_and_replays_missed_events(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    fake, h = discord_harness.fake, discord_harness
    resumed = asyncio.ensure_future(bot.wait_for("resumed"))
    assert await fake.disconnect_clients(code=4000) == 1
    # Dispatched while the client is away: buffered, then replayed on RESUME.
    missed = await h.text_channel("missed-while-away")
    await asyncio.wait_for(resumed, 5.0)
    await fake.wait_until(lambda: bot.get_channel(missed.id) is not None, 3.0, "replay")
    assert fake.gateway_connects == ["/gateway", "/gateway/resume"]
    assert len(fake.resumes) == 1
    assert len(fake.identifies) == 1
    # Still fully working after the resume.
    result = await h.slash("ping")
    assert (await result.response()).content == "pong"


async def test_invalidated_session_makes_the_client_identify_again(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    fake = discord_harness.fake
    await fake.disconnect_clients(code=4000, invalidate=True)
    await fake.wait_until(lambda: len(fake.identifies) == 2, 5.0, "second IDENTIFY")
    await fake.wait_until(lambda: fake.connected == 1, 5.0, "reconnected")
    assert len(fake.resumes) == 1
    assert bot.get_guild(discord_harness.guild.id) is not None


# -- interactions --------------------------------------------------------------------------


async def test_ping_answers_ephemerally_within_the_deadline(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    result = await discord_harness.slash("ping")
    callback = await result.response(timeout=3.0)
    assert callback.type == 4
    assert callback.content == "pong"
    assert callback.ephemeral
    assert callback.with_response
    assert callback.elapsed < 3.0
    assert result.original() is not None
    # Ephemeral answers are not channel messages.
    assert discord_harness.fake.messages(discord_harness.channel) == []


async def test_subcommand_with_options_for_a_moderator(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    mod = discord_harness.member(manage_guild=True)
    result = await discord_harness.slash("category", "add", name="cs.LG", top_n=10, member=mod)
    callback = await result.response()
    assert callback.content == "added cs.LG top 10"
    assert callback.ephemeral
    sent = result.payload
    assert sent["data"]["options"][0] == {
        "type": 1,
        "name": "add",
        "options": [
            {"name": "name", "type": 3, "value": "cs.LG"},
            {"name": "top_n", "type": 4, "value": 10},
        ],
    }
    assert int(sent["member"]["permissions"]) & Permission.MANAGE_GUILD
    assert sent["attachment_size_limit"] > 0
    assert sent["channel"]["id"] == str(discord_harness.channel.id)


async def test_subcommand_refused_without_manage_server(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    reader = discord_harness.member(manage_guild=False)
    result = await discord_harness.slash("category", "add", name="cs.LG", member=reader)
    callback = await result.response()
    assert callback.content == "You need Manage Server."
    assert callback.ephemeral
    assert isinstance(bot.errors[-1], app_commands.MissingPermissions)
    assert not int(result.payload["member"]["permissions"]) & Permission.MANAGE_GUILD


async def test_autocomplete_returns_at_most_25_choices(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    choices = await discord_harness.autocomplete("paper", focused="query", value="attention")
    assert len(choices) == 25
    assert choices[0] == {"name": "Attention Is All You Need", "value": "Attention Is All You Need"}
    assert await discord_harness.autocomplete("paper", focused="query", value="diffusion") == [
        {
            "name": "Diffusion Models Beat GANs on Image Synthesis",
            "value": "Diffusion Models Beat GANs on Image Synthesis",
        }
    ]


async def test_deferred_command_followups(discord_harness: DiscordHarness, bot: HarnessBot) -> None:
    result = await discord_harness.slash("digest")
    callback = await result.response()
    assert callback.type == 5
    assert callback.deferred
    first, second = await result.followups(count=2)
    # The first followup after a defer replaces the "thinking" message.
    assert first["content"] == "digest ready"
    assert first["embeds"][0]["title"] == "Top paper"
    assert result.original() is first
    assert second["content"] == "only you see this"
    assert second["flags"] & 64
    channel_contents = [
        m["content"] for m in discord_harness.fake.messages(discord_harness.channel)
    ]
    assert channel_contents == ["digest ready"]


async def test_deferred_command_edits_original(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    result = await discord_harness.slash("refresh")
    callback = await result.response()
    assert callback.deferred
    assert callback.ephemeral
    edited = await result.edited_original()
    assert edited["content"] == "refreshed"
    assert edited["flags"] & 64
    assert not edited["flags"] & 128  # no longer "thinking"


async def test_command_posts_embeds_and_starts_a_thread(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    h = discord_harness
    papers = await h.text_channel("papers")
    await h.fake.wait_until(lambda: bot.get_channel(papers.id) is not None, 3.0, "CHANNEL_CREATE")
    result = await h.slash("post", options={"channel": papers}, count=3)
    assert (await result.response()).deferred
    (followup,) = await result.followups()
    assert followup["content"] == f"posted to <#{papers.id}>"
    (row,) = followup["components"]
    assert [b["label"] for b in row["components"]] == ["Open in Discord", "Hide"]
    (message,) = h.fake.messages(papers)
    assert [e["title"] for e in message["embeds"]] == ["Paper 0", "Paper 1", "Paper 2"]
    assert message["author"]["id"] == str(h.world.bot_user.id)
    thread = h.world.channels[int(message["id"])]
    assert thread.is_thread
    assert thread.parent_id == papers.id
    assert thread.name == "Discussion"
    assert result.payload["data"]["resolved"]["channels"][str(papers.id)]["name"] == "papers"


async def test_late_interaction_answer_is_a_violation(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    h = discord_harness
    result = await h.slash("slow")
    h.clock.advance(3.5)  # injected time: no real waiting
    bot.release.set()
    await h.fake.wait_until(lambda: bool(bot.errors), 3.0, "bot saw the expired interaction")
    error = bot.errors[-1]
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, discord.NotFound)
    assert error.original.code == 10062
    assert result.callback is None
    (violation,) = h.fake.take_violations()
    assert "/slow" in violation
    assert "3 s" in violation


async def test_harness_rejects_unknown_commands_and_options(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    with pytest.raises(LookupError):
        await discord_harness.slash("nope")
    with pytest.raises(ValueError, match="required options missing"):
        await discord_harness.slash("category", "add")
    with pytest.raises(ValueError, match="no option"):
        await discord_harness.slash("ping", colour="red")
    with pytest.raises(ValueError, match="no autocomplete"):
        await discord_harness.autocomplete("post", focused="count", value="1")


# -- REST errors and retries ---------------------------------------------------------------


async def test_rate_limit_with_via_is_retried(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    fake = discord_harness.fake
    fake.fail_next("POST", "/channels/*/messages", 429, retry_after=0.05)
    channel = bot.get_channel(discord_harness.channel.id)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("after a 429")
    assert message.content == "after a 429"
    attempts = fake.requests_to("POST", f"/channels/{channel.id}/messages")
    assert [r.status for r in attempts] == [429, 200]
    assert [m["content"] for m in fake.messages(channel.id)] == ["after a 429"]

    # Without Via discord.py takes the 429 for a Cloudflare ban and does not retry.
    fake.fail_next("POST", "/channels/*/messages", 429, via=False)
    with pytest.raises(discord.HTTPException) as banned:
        await channel.send("no retry")
    assert banned.value.status == 429


async def test_forbidden_and_not_found_surface_as_discord_errors(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    h = discord_harness
    mute = await h.text_channel("mute", bot_deny=Permission.SEND_MESSAGES)
    no_embeds = await h.text_channel("no-embeds", bot_deny=Permission.EMBED_LINKS)
    no_threads = await h.text_channel("no-threads", bot_deny=Permission.CREATE_PUBLIC_THREADS)
    gone = await h.text_channel("gone")
    ids = [c.id for c in (mute, no_embeds, no_threads, gone)]
    await h.fake.wait_until(lambda: all(bot.get_channel(i) for i in ids), 3.0, "channels")
    channels: dict[int, Any] = {i: bot.get_channel(i) for i in ids}

    with pytest.raises(discord.Forbidden) as forbidden:
        await channels[mute.id].send("hello")
    assert forbidden.value.code == 50013

    await channels[no_embeds.id].send("text is fine")
    with pytest.raises(discord.Forbidden):
        await channels[no_embeds.id].send(embed=discord.Embed(title="no"))

    message = await channels[no_threads.id].send("no discussion here")
    with pytest.raises(discord.Forbidden):
        await message.create_thread(name="Discussion")

    await h.fake.delete_channel(gone, notify=False)  # deleted behind the client's back
    with pytest.raises(discord.NotFound) as not_found:
        await channels[gone.id].send("anyone?")
    assert not_found.value.code == 10003

    fake_403 = {"message": "Missing Access", "code": 50001}
    h.fake.fail_next("GET", f"/channels/{h.channel.id}", 403, body=fake_403)
    with pytest.raises(discord.Forbidden) as injected:
        await bot.fetch_channel(h.channel.id)
    assert injected.value.code == 50001
    assert (await bot.fetch_channel(h.channel.id)).id == h.channel.id


async def test_message_edit_and_delete(discord_harness: DiscordHarness, bot: HarnessBot) -> None:
    channel = bot.get_channel(discord_harness.channel.id)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("draft")
    edited = await message.edit(content="final", embed=discord.Embed(title="Final"))
    assert edited.content == "final"
    stored = discord_harness.world.messages[message.id]
    assert stored["content"] == "final"
    assert stored["edited_timestamp"] is not None
    # A reply sends snowflakes as JSON integers: valid for Discord, a quirk of the spec.
    reply = await message.reply("noted")
    assert reply.content == "noted"
    await message.delete()
    assert message.id not in discord_harness.world.messages

    thread = await channel.create_thread(name="Weekly", type=discord.ChannelType.public_thread)
    assert thread.parent_id == channel.id
    await thread.send("in the thread")
    assert [m["content"] for m in discord_harness.fake.messages(thread.id)] == ["in the thread"]


async def test_guild_rest_objects_parse_in_discord_py(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    h = discord_harness
    mod = h.member(manage_guild=True, name="mod")
    guild = await bot.fetch_guild(h.guild.id)
    assert guild.name == "Test Guild"
    assert {r.name for r in await guild.fetch_roles()} >= {"@everyone", "HotPapers", "Moderators"}
    assert [c.name for c in await guild.fetch_channels()] == ["general"]
    member = await guild.fetch_member(mod.id)
    assert member.name == "mod"
    assert member.guild_permissions.manage_guild
    with pytest.raises(discord.NotFound):
        await guild.fetch_member(12345)


# -- validation ----------------------------------------------------------------------------


async def test_validator_catches_oversized_embed(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    channel = bot.get_channel(discord_harness.channel.id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as rejected:
        await channel.send(embed=discord.Embed(title="T" * 300))
    assert rejected.value.status == 400
    assert rejected.value.code == 50035
    violations = discord_harness.fake.take_violations()
    assert any("embeds/0/title" in v for v in violations)
    assert discord_harness.fake.messages(channel.id) == []

    message = await channel.send("ok")
    with pytest.raises(discord.HTTPException):
        await message.edit(content="x" * 2001)
    assert any("content: 2001 characters" in v for v in discord_harness.fake.take_violations())

    with pytest.raises(discord.HTTPException):
        await message.create_thread(name="n" * 101)
    assert any("name" in v for v in discord_harness.fake.take_violations())


async def test_oversized_interaction_response_is_refused_and_recorded(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    result = await discord_harness.slash("huge")
    with pytest.raises(AssertionError, match="refused"):
        await result.response()
    await discord_harness.fake.wait_until(lambda: bool(bot.errors), 3.0, "bot saw the 400")
    assert isinstance(bot.errors[-1].__cause__, discord.HTTPException)
    violations = discord_harness.fake.take_violations()
    assert any("data/embeds/0/description: 5000 characters" in v for v in violations), violations


async def test_validator_checks_bodies_against_the_openapi_spec(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    route = discord.http.Route(
        "POST", "/channels/{channel_id}/messages", channel_id=discord_harness.channel.id
    )
    body = {"content": 123, "embeds": [{"color": "red"}], "allowed_mentions": {"parse": []}}
    with pytest.raises(discord.HTTPException) as rejected:
        await bot.http.request(route, json=body)
    assert rejected.value.status == 400
    violations = discord_harness.fake.take_violations()
    assert any("content: 123 is not of type 'string', 'null'" in v for v in violations), violations
    assert any("embeds/0/color" in v for v in violations), violations


async def test_pinging_mentions_are_a_policy_violation(
    discord_harness: DiscordHarness, bot: HarnessBot
) -> None:
    channel = bot.get_channel(discord_harness.channel.id)
    assert isinstance(channel, discord.TextChannel)
    # Served (Discord accepts it) but recorded: the bot must never ping.
    await channel.send("@everyone hi", allowed_mentions=discord.AllowedMentions(everyone=True))
    (violation,) = discord_harness.fake.take_violations()
    assert "allowed_mentions.parse" in violation


def test_real_discord_py_payloads_pass_and_limits_are_enforced() -> None:
    validator = RequestValidator.load()
    embed = discord.Embed(title="t", description="d", url="https://arxiv.org/abs/2401.00001")
    embed.set_footer(text="f").set_author(name="a").add_field(name="n", value="v")
    body = {"content": "x", "embeds": [embed.to_dict()], "allowed_mentions": {"parse": []}}
    _, report = validator.check("POST", "/channels/123/messages", {}, body)
    assert report.violations == []

    _, report = validator.check("POST", "/channels/abc/messages", {}, body)
    assert any("path channel_id" in v for v in report.rejections)
    _, report = validator.check("POST", "/channels/123/messages", {"bogus": "1"}, body)
    assert any("unknown query parameter 'bogus'" in v for v in report.rejections)
    relative = {**body, "embeds": [{"title": "t", "url": "not a url"}]}
    _, report = validator.check("POST", "/channels/123/messages", {}, relative)
    assert any("embeds/0/url" in v for v in report.rejections)

    big = [{"title": "t" * 256, "description": "d" * 4000} for _ in range(2)]
    assert any("6000" in e for e in check_embeds(big))
    assert any(
        "fields: 26" in e for e in check_embeds([{"fields": [{"name": "n", "value": "v"}] * 26}])
    )
    assert any("11 embeds" in e for e in check_embeds([{"title": "t"}] * 11))
    assert check_embeds([{"footer": {"text": "f" * 2049}}])
    assert check_embeds([{"fields": [{"name": "n", "value": "v" * 1025}]}])

    link_with_id = {
        "type": 2,
        "style": 5,
        "label": "arXiv",
        "url": "https://arxiv.org",
        "custom_id": "x",
    }
    rows = [{"type": 1, "components": [link_with_id]}]
    assert any("custom_id" in e for e in check_components(rows))
    assert any("6 action rows" in e for e in check_components([{"type": 1, "components": []}] * 6))
    button = {"type": 2, "style": 1, "label": "L" * 81, "custom_id": "b"}
    assert any("label" in e for e in check_components([{"type": 1, "components": [button] * 6}]))

    choices = [{"name": f"c{i}", "value": "v"} for i in range(26)]
    assert any(
        "26 choices" in e
        for e in check_callback({"type": 8, "data": {"choices": choices}}).rejections
    )
    long_value = {"type": 8, "data": {"choices": [{"name": "n", "value": "v" * 101}]}}
    assert check_callback(long_value).rejections
    assert check_message({"content": ""}, create=True).rejections  # empty message
    assert check_message({"content": "hi"}, create=True).policy  # no allowed_mentions
    assert check_commands([{"name": "Bad Name", "description": "", "type": 1}])


def test_missing_spec_fails_loudly(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "openapi.json"
    with pytest.raises(SpecNotFoundError):
        FakeDiscord(spec_path=missing)
    monkeypatch.setenv(SPEC_ENV, str(missing))
    assert default_spec_path() == missing
    with pytest.raises(SpecNotFoundError):
        DiscordHarness()
    monkeypatch.delenv(SPEC_ENV)
    assert default_spec_path().name == "openapi.json"
    assert default_spec_path().parent.name == "discord-api-spec"


async def test_harness_restores_discord_py_globals() -> None:
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    async with DiscordHarness() as h:
        assert h.fake.api_base == discord.http.Route.BASE
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == h.fake.gateway_url
    assert base == discord.http.Route.BASE
    assert gateway == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


async def test_rate_limit_answer_has_discords_headers_and_body(
    discord_harness: DiscordHarness,
) -> None:
    fake = discord_harness.fake
    fake.fail_next("GET", "/users/@me", 429, retry_after=1.5)
    auth = {"Authorization": f"Bot {discord_harness.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake.api_base}/users/@me", headers=auth) as resp,
    ):
        assert resp.status == 429
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["Retry-After"] == "2"
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert resp.headers["X-RateLimit-Reset-After"] == "1.500"
        assert resp.headers["Via"]
        assert await resp.json() == {
            "message": "You are being rate limited.",
            "retry_after": 1.5,
            "global": False,
        }


async def test_raw_gateway_protocol_and_callback_without_response(
    discord_harness: DiscordHarness,
) -> None:
    h, fake = discord_harness, discord_harness.fake
    h.world.store_commands([{"name": "ping", "description": "Pong.", "type": 1}], h.guild.id)
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.gateway_url) as ws:
        assert (await ws.receive_json())["op"] == 10
        await ws.send_json({"op": 1, "d": None})
        assert await ws.receive_json() == {"op": 11}
        properties = {"os": "linux", "browser": "raw", "device": "raw"}
        identify = {"token": h.token, "intents": 1, "properties": properties}
        await ws.send_json({"op": 2, "d": identify})
        ready = await ws.receive_json()
        assert (ready["t"], ready["s"]) == ("READY", 1)
        assert ready["d"]["resume_gateway_url"] == fake.resume_gateway_url
        assert ready["d"]["application"]["id"] == str(h.world.application_id)
        guild_create = await ws.receive_json()
        assert (guild_create["t"], guild_create["s"]) == ("GUILD_CREATE", 2)
        assert guild_create["d"]["members"][0]["user"]["id"] == str(h.world.bot_user.id)

        result = await fake.send_interaction("ping", member=h.default_member, channel=h.channel)
        frame = await ws.receive_json()
        assert (frame["t"], frame["s"]) == ("INTERACTION_CREATE", 3)
        assert frame["d"]["version"] == 1

        url = f"{fake.api_base}/interactions/{result.id}/{result.token}/callback"
        answer = {"type": 4, "data": {"content": "pong", "allowed_mentions": {"parse": []}}}
        async with session.post(url, json=answer) as resp:
            assert resp.status == 204
            assert "Content-Type" not in resp.headers
        async with session.post(url, json=answer) as resp:
            assert (await resp.json())["code"] == 40060
        bad_token = f"{fake.api_base}/interactions/{result.id}/nope/callback"
        async with session.post(bad_token, json=answer) as resp:
            assert (await resp.json())["code"] == 10062
    callback = await result.response()
    assert not callback.with_response
    assert callback.content == "pong"
    assert fake.intents == 1


async def test_wait_ready_for_a_client_started_in_a_task(discord_harness: DiscordHarness) -> None:
    client = HarnessBot(guild_ready_timeout=0.05)
    task = asyncio.create_task(client.start(discord_harness.token))
    discord_harness.track(client, task)
    await discord_harness.wait_ready(client)
    assert client.get_guild(discord_harness.guild.id) is not None


async def test_auto_sharded_client_uses_gateway_bot(discord_harness: DiscordHarness) -> None:
    client = commands.AutoShardedBot(
        command_prefix=commands.when_mentioned,
        intents=discord.Intents.none() | discord.Intents(guilds=True),
        allowed_mentions=discord.AllowedMentions.none(),
    )
    await discord_harness.start_client(client)
    assert discord_harness.fake.requests_to("GET", "/gateway/bot")
    assert discord_harness.fake.identifies[-1]["shard"] == [0, 1]
    assert client.get_guild(discord_harness.guild.id) is not None
