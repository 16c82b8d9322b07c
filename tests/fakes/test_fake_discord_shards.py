"""The fake gateway shards as Discord does: each session gets only its shard's guilds."""

from __future__ import annotations

from typing import Any

import aiohttp
import discord
import pytest

from bot.core.shards import shard_of
from tests.fakes.discord import DiscordHarness, FakeGuild

PROPERTIES = {"os": "linux", "browser": "raw", "device": "raw"}


class ShardedClient(discord.AutoShardedClient):
    """A bare auto-sharded client that identifies without discord.py's 5 s courtesy pause."""

    def __init__(self, **options: Any) -> None:
        super().__init__(intents=discord.Intents(guilds=True), **options)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


def ids(client: discord.Client) -> set[int]:
    return {guild.id for guild in client.guilds}


@pytest.fixture
async def two_shards(discord_harness: DiscordHarness) -> dict[int, set[int]]:
    """Two guilds on each of two shards, beside the harness's own guild: {shard: guild ids}."""
    h = discord_harness
    for shard in (0, 1):
        for n in range(2):
            h.world.add_guild(f"Shard {shard} guild {n}", shard=(shard, 2))
    by_shard: dict[int, set[int]] = {0: set(), 1: set()}
    for guild_id in h.world.guilds:
        by_shard[shard_of(guild_id, 2)].add(guild_id)
    return by_shard


def test_a_guild_can_be_made_on_a_given_shard(discord_harness: DiscordHarness) -> None:
    world = discord_harness.world
    made: list[FakeGuild] = [world.add_guild("g", shard=(s % 3, 3)) for s in range(9)]
    assert [(g.id >> 22) % 3 for g in made] == [s % 3 for s in range(9)]
    # Ids keep increasing, as snowflakes do.
    assert [g.id for g in made] == sorted(g.id for g in made)
    assert world.snowflake() > made[-1].id


async def test_two_sharded_clients_each_get_only_their_guilds(
    discord_harness: DiscordHarness, two_shards: dict[int, set[int]]
) -> None:
    h = discord_harness
    first = ShardedClient(shard_count=2, shard_ids=[0])
    second = ShardedClient(shard_count=2, shard_ids=[1])
    await h.start_client(first)
    await h.start_client(second)
    assert sorted(i["shard"] for i in h.fake.identifies) == [[0, 2], [1, 2]]
    assert ids(first) == two_shards[0]
    assert ids(second) == two_shards[1]
    assert h.fake.sessions_on((0, 2)) == h.fake.sessions_on((1, 2)) == 1

    # A guild joined later reaches the client of its shard only.
    late = await h.add_guild("Late", shard=(1, 2))
    await h.fake.wait_until(lambda: second.get_guild(late.id) is not None, 3.0, "GUILD_CREATE")
    assert first.get_guild(late.id) is None
    # An event without a guild goes to shard 0 only, as Discord documents.
    assert await h.fake.dispatch("USER_UPDATE", h.world.me_dict()) == 1


async def test_without_a_shard_count_the_gateway_bot_recommendation_is_used(
    discord_harness: DiscordHarness, two_shards: dict[int, set[int]]
) -> None:
    h = discord_harness
    assert h.fake.shards_recommended() == 1  # a handful of guilds: one shard
    h.fake.recommended_shards = 2
    client = ShardedClient()
    await h.start_client(client)
    assert h.fake.requests_to("GET", "/gateway/bot")
    assert sorted(i["shard"] for i in h.fake.identifies) == [[0, 2], [1, 2]]
    assert ids(client) == two_shards[0] | two_shards[1]


async def test_an_unsharded_client_still_gets_every_guild(
    discord_harness: DiscordHarness, two_shards: dict[int, set[int]]
) -> None:
    h = discord_harness
    client = discord.Client(intents=discord.Intents(guilds=True))
    await h.start_client(client)
    (identify,) = h.fake.identifies
    assert "shard" not in identify
    assert ids(client) == two_shards[0] | two_shards[1]
    assert h.fake.sessions_on((0, 1)) == 1


async def test_two_sessions_on_one_shard_are_both_served_as_discord_allows(
    discord_harness: DiscordHarness, two_shards: dict[int, set[int]]
) -> None:
    # "You can establish multiple sessions with the same [shard_id, num_shards]": neither
    # session replaces the other; both receive the shard's events.
    h = discord_harness
    first = ShardedClient(shard_count=2, shard_ids=[0])
    again = ShardedClient(shard_count=2, shard_ids=[0])
    await h.start_client(first)
    await h.start_client(again)
    assert h.fake.sessions_on((0, 2)) == 2
    assert ids(first) == ids(again) == two_shards[0]
    late = await h.add_guild("Late", shard=(0, 2))
    await h.fake.wait_until(
        lambda: first.get_guild(late.id) is not None and again.get_guild(late.id) is not None,
        3.0,
        "GUILD_CREATE on both sessions",
    )


async def raw_identify(h: DiscordHarness, **fields: Any) -> aiohttp.WSMessage:
    """IDENTIFY on a raw socket; returns the first frame after it (READY or the close)."""
    async with aiohttp.ClientSession() as session, session.ws_connect(h.fake.gateway_url) as ws:
        assert (await ws.receive_json())["op"] == 10
        identify = {"token": h.token, "intents": 1, "properties": PROPERTIES, **fields}
        await ws.send_json({"op": 2, "d": identify})
        return await ws.receive()


@pytest.mark.parametrize("shard", [[2, 2], [0, 0], [-1, 2], [0], "0,1", [0.5, 2]])
async def test_a_bad_shard_is_closed_with_4010_and_recorded(
    discord_harness: DiscordHarness, shard: Any
) -> None:
    h = discord_harness
    frame = await raw_identify(h, shard=shard)
    assert frame.type is aiohttp.WSMsgType.CLOSE
    assert frame.data == 4010
    (violation,) = h.fake.take_violations()
    assert "shard" in violation
    assert h.fake.identifies == []


async def test_a_malformed_identify_is_a_violation(discord_harness: DiscordHarness) -> None:
    h = discord_harness
    frame = await raw_identify(h, properties={}, large_threshold=1000)
    assert (frame.type, frame.data) == (aiohttp.WSMsgType.CLOSE, 4002)
    violations = h.fake.take_violations()
    assert len(violations) == 2
    assert any("properties" in v for v in violations)
    assert any("large_threshold" in v for v in violations)


async def test_too_many_guilds_for_one_session_is_sharding_required(
    discord_harness: DiscordHarness, two_shards: dict[int, set[int]]
) -> None:
    h = discord_harness
    h.fake.max_guilds_per_session = max(len(two_shards[0]), len(two_shards[1]))
    frame = await raw_identify(h)  # unsharded: every guild in one session
    assert (frame.type, frame.data) == (aiohttp.WSMsgType.CLOSE, 4011)
    assert h.fake.take_violations() == []  # the world's size, not the client's mistake
    ready = await raw_identify(h, shard=[1, 2])
    assert ready.type is aiohttp.WSMsgType.TEXT
    assert ready.json()["t"] == "READY"
    assert {int(g["id"]) for g in ready.json()["d"]["guilds"]} == two_shards[1]


async def test_an_interaction_needs_a_session_on_its_guilds_shard(
    discord_harness: DiscordHarness,
) -> None:
    h = discord_harness
    guilds = {s: h.world.add_guild(f"Shard {s}", shard=(s, 2)) for s in (0, 1)}
    channels = {s: h.world.add_channel(g, "general") for s, g in guilds.items()}
    client = ShardedClient(shard_count=2, shard_ids=[1])
    await h.start_client(client)
    with pytest.raises(RuntimeError, match="no gateway session on the shard of guild"):
        await h.fake.send_interaction(
            "ping",
            member=h.member(guild=guilds[0]),
            channel=channels[0],
            require_registered=False,
        )
    # The guild of the connected shard is served as before.
    await h.fake.send_interaction(
        "ping", member=h.member(guild=guilds[1]), channel=channels[1], require_registered=False
    )
