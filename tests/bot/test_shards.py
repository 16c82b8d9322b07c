"""Several bot processes sharing the shards: each connects, schedules and posts only its own."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest

from bot.client import HotPapersBot, ShardedHotPapersBot, make_bot
from bot.core.shards import shard_of
from bot.runtime import Runtime
from bot.scheduling import INGEST_JOB, RETENTION_JOB, SWEEP_JOB, digest_job_id
from tests.bot.conftest import BotWorld, _no_identify_wait


def on_shards(rt: Runtime, count: int, ids: list[int] | None) -> Runtime:
    """The same runtime (database, services, clock) as a process of ``ids`` of ``count``."""
    discord = rt.settings.discord.model_copy(update={"shard_count": count, "shard_ids": ids})
    return dataclasses.replace(rt, settings=rt.settings.model_copy(update={"discord": discord}))


async def set_up(botworld: BotWorld, guild_id: int, channel_id: int) -> None:
    """A guild set up yesterday for a compact digest at 10:30 UTC (its slot 20 minutes ago)."""
    now = botworld.clock.now
    botworld.clock.now = now - dt.timedelta(days=1)
    try:
        await botworld.rt.guild_settings.set_channel(guild_id, channel_id)
        await botworld.rt.guild_settings.set_time(guild_id, "10:30", "UTC")
        await botworld.rt.guild_settings.set_options(guild_id, style="compact")
    finally:
        botworld.clock.now = now


async def test_each_process_posts_only_the_digests_of_its_shards(botworld: BotWorld) -> None:
    h = botworld.harness
    await botworld.ingest_reference_day()
    await h.stop_client(botworld.bot)  # the unsharded bot of the fixture makes way
    for shard in (0, 1):
        for n in range(2):
            await h.add_guild(f"Shard {shard} #{n}", shard=(shard, 2))
    channel_of = {gid: next(iter(g.channels.values())).id for gid, g in h.world.guilds.items()}
    for guild_id, channel_id in channel_of.items():
        await set_up(botworld, guild_id, channel_id)
    mine = {s: {g for g in channel_of if shard_of(g, 2) == s} for s in (0, 1)}
    assert len(mine[0]) >= 2
    assert len(mine[1]) >= 2

    bots: dict[int, HotPapersBot] = {}
    for shard in (0, 1):
        bot = make_bot(on_shards(botworld.rt, 2, [shard]), schedule=False)
        assert isinstance(bot, ShardedHotPapersBot)
        bot.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
        await h.start_client(bot)
        bots[shard] = bot
        # Connected to its shard only: Discord sends it no other guild (nor their commands).
        assert {g.id for g in bot.guilds} == mine[shard]

    def posted() -> dict[int, int]:
        return {g: len(h.fake.messages(c)) for g, c in channel_of.items() if h.fake.messages(c)}

    # Every guild is due at once; the process of shard 0 posts the digests of shard 0 only.
    await bots[0].jobs.sweep()
    assert posted() == dict.fromkeys(mine[0], 1)
    # Then the process of shard 1 posts the others; nothing is posted twice.
    await bots[1].jobs.sweep()
    await bots[0].jobs.sweep()
    assert posted() == dict.fromkeys(channel_of, 1)


async def test_a_process_schedules_only_the_guilds_of_its_shards(botworld: BotWorld) -> None:
    h = botworld.harness
    await h.stop_client(botworld.bot)
    for shard in (0, 1, 0, 1):
        await h.add_guild(f"Shard {shard}", shard=(shard, 2))
    for guild in list(h.world.guilds.values()):
        await set_up(botworld, guild.id, next(iter(guild.channels.values())).id)
    ours = sorted(g for g in h.world.guilds if shard_of(g, 2) == 0)
    theirs = sorted(g for g in h.world.guilds if shard_of(g, 2) == 1)

    bot = make_bot(on_shards(botworld.rt, 2, [0]), schedule=False)
    bot.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
    await h.start_client(bot)
    jobs = bot.jobs
    assert jobs.shards.describe() == "shard 0 of 2"
    jobs.start_scheduler()
    try:
        async with asyncio.timeout(3):
            while jobs.scheduler is None or not jobs.scheduler.running:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        expected = sorted([*(digest_job_id(g) for g in ours), INGEST_JOB, RETENTION_JOB, SWEEP_JOB])
        assert jobs.scheduler.job_ids() == expected
        # A settings change of another process's guild never schedules it here.
        await jobs.reschedule(theirs[0])
        assert digest_job_id(theirs[0]) not in jobs.scheduler.job_ids()
        await jobs.reschedule(ours[0])
        assert digest_job_id(ours[0]) in jobs.scheduler.job_ids()
    finally:
        await h.stop_client(bot)  # stops the scheduler and drains the jobs
    assert not jobs.scheduler.running


async def test_a_shard_count_alone_is_every_shard_in_one_process(botworld: BotWorld) -> None:
    h = botworld.harness
    await h.stop_client(botworld.bot)
    for shard in (0, 1):
        await h.add_guild(f"Shard {shard}", shard=(shard, 2))
    bot = make_bot(on_shards(botworld.rt, 2, None), schedule=False)
    bot.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
    await h.start_client(bot)
    assert sorted(i["shard"] for i in h.fake.identifies[-2:]) == [[0, 2], [1, 2]]
    assert {g.id for g in bot.guilds} == set(h.world.guilds)
    assert bot.jobs.shards.every_guild
    await h.stop_client(bot)


def test_without_shard_settings_the_bot_is_unsharded(botworld: BotWorld) -> None:
    bot = make_bot(botworld.rt, schedule=False)
    assert type(bot) is HotPapersBot
    assert bot.shard_count is None


async def test_each_process_answers_the_commands_of_its_shards_only(botworld: BotWorld) -> None:
    """A member's slash command reaches the process connected to its guild's shard (Discord
    sends interactions over that shard's gateway session), which answers it; with that process
    gone, no other answers in its place."""
    h = botworld.harness
    await h.stop_client(botworld.bot)
    guilds = {s: await h.add_guild(f"Shard {s}", shard=(s, 2)) for s in (0, 1)}
    bots: dict[int, HotPapersBot] = {}
    for shard in (0, 1):
        bot = make_bot(on_shards(botworld.rt, 2, [shard]), schedule=False)
        bot.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
        await h.start_client(bot)
        bots[shard] = bot
    await bots[0].tree.sync()  # global commands, as `hotpapers sync` registers them

    async def about(shard: int, wait: float = 3.0) -> str:
        guild = guilds[shard]
        channel = next(iter(guild.channels.values()))
        result = await h.slash("about", member=h.member(guild=guild), channel=channel)
        callback = await result.response(timeout=wait)
        return str(callback.data)

    for shard in (0, 1):
        assert "hotpapers" in (await about(shard)).lower()
    await h.stop_client(bots[1])
    assert "hotpapers" in (await about(0)).lower()
    # The process of shard 0 does not answer for shard 1 (the fake either has no session to
    # send it on, or sends it on shard 1's closed one: no answer either way).
    with pytest.raises((RuntimeError, AssertionError), match=r"no gateway session|no interaction"):
        await about(1, wait=1.0)
    await h.stop_client(bots[0])
