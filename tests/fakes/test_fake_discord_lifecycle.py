"""Fake Discord: dropped connections, enforced nonces, joining and leaving guilds."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest

from tests.fakes.discord import DiscordHarness
from tests.fakes.test_fake_discord import HarnessBot


@pytest.fixture
async def bot(discord_harness: DiscordHarness) -> HarnessBot:
    client = HarnessBot()
    await discord_harness.start_client(client)
    return client


def general(bot: HarnessBot, harness: DiscordHarness) -> discord.TextChannel:
    channel = bot.get_channel(harness.channel.id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_a_connection_dropped_before_serving_posts_nothing(discord_harness, bot):
    fake = discord_harness.fake
    channel = general(bot, discord_harness)
    fake.drop_next("POST", "/channels/*/messages", skip=1)
    await channel.send("first")
    with pytest.raises(aiohttp.ClientError):
        await channel.send("lost")
    await channel.send("third")
    assert [m["content"] for m in fake.messages(channel.id)] == ["first", "third"]
    assert [r.dropped for r in fake.requests_to("POST", "/channels/*/messages")] == [
        False,
        True,
        False,
    ]


async def test_a_connection_dropped_after_serving_posts_the_message(discord_harness, bot):
    fake = discord_harness.fake
    channel = general(bot, discord_harness)
    fake.drop_next("POST", "/channels/*/messages", after=True)
    with pytest.raises(aiohttp.ClientError):
        await channel.send("posted, answer lost")
    assert [m["content"] for m in fake.messages(channel.id)] == ["posted, answer lost"]


async def test_an_enforced_nonce_returns_the_earlier_message(discord_harness, bot):
    fake = discord_harness.fake
    channel = general(bot, discord_harness)
    first = await channel.send("once", nonce="digest-1-0")
    again = await channel.send("once", nonce="digest-1-0")
    other = await channel.send("twice", nonce="digest-1-1")
    assert again.id == first.id
    assert other.id != first.id
    assert [m["content"] for m in fake.messages(channel.id)] == ["once", "twice"]
    # Discord forgets a nonce after a few minutes.
    discord_harness.clock.advance(600)
    later = await channel.send("once", nonce="digest-1-0")
    assert later.id != first.id


async def test_joining_and_leaving_a_guild_fire_join_and_remove(discord_harness, bot):
    joined: asyncio.Future[discord.Guild] = asyncio.ensure_future(bot.wait_for("guild_join"))
    guild = await discord_harness.add_guild("Joined Later")
    assert (await asyncio.wait_for(joined, 3)).id == guild.id
    channel_id = next(iter(guild.channels))
    await discord_harness.fake.wait_until(lambda: bot.get_channel(channel_id), 3.0, "cache")
    channel = bot.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)

    removed = asyncio.ensure_future(bot.wait_for("guild_remove"))
    await discord_harness.fake.remove_bot(guild)
    assert (await asyncio.wait_for(removed, 3)).id == guild.id
    assert bot.get_guild(guild.id) is None
    with pytest.raises(discord.Forbidden) as refused:
        await channel.send("still here?")
    assert refused.value.code == 50001
