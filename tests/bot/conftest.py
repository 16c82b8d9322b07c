"""The real bot against the fake Discord, with the real pipeline behind it and fake sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import discord
import pytest

from bot.client import HotPapersBot
from bot.core.models import Window
from bot.fakes.demo import DemoWorld, demo_world
from bot.fakes.discord import DiscordHarness
from bot.launcher import Services, discord_endpoints
from bot.runtime import Runtime, open_runtime
from bot.settings import Settings

pytest_plugins = ["tests.fakes.conftest"]


@dataclass
class MutableClock:
    """The bot's clock, set by the test (time is injected, never slept)."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class BotWorld:
    """Everything a bot test touches."""

    harness: DiscordHarness
    world: DemoWorld
    rt: Runtime
    services: Services
    bot: HotPapersBot
    clock: MutableClock
    stack: AsyncExitStack = field(repr=False)

    @property
    def fake(self):  # the fake Discord
        return self.harness.fake

    @property
    def guild_id(self) -> int:
        return self.harness.guild.id

    async def ingest_reference_day(self) -> None:
        await self.rt.ingest.run(Window.for_day(self.world.day))

    async def restart(self) -> None:
        """Stop the bot and start a new one on the same database (a crash or a deploy)."""
        await self.harness.stop_client(self.bot)
        self.services.stop_scheduler()
        self.services = Services.build(self.rt)
        self.bot = HotPapersBot(self.services, schedule=False)
        self.bot.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
        await self.harness.start_client(self.bot)
        self.services.client = self.bot


async def _no_identify_wait(shard_id: int | None, *, initial: bool = False) -> None:
    return None


@pytest.fixture
async def botworld(tmp_path: Path, discord_harness: DiscordHarness) -> AsyncIterator[BotWorld]:
    async with AsyncExitStack() as stack:
        base = Settings(
            discord={
                "api_base": discord_harness.fake.api_base,
                "gateway_url": discord_harness.fake.gateway_url,
            }
        )
        world = await stack.enter_async_context(demo_world(base, tmp_path))
        clock = MutableClock(world.now)
        settings = world.settings.model_copy(
            update={"arxiv": world.settings.arxiv.model_copy(update={"min_interval_seconds": 0.0})}
        )
        rt = await stack.enter_async_context(open_runtime(settings, clock=clock))
        services = Services.build(rt)
        bot = HotPapersBot(services, schedule=False)
        bot.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
        await discord_harness.start_client(bot)
        services.client = bot
        bot.tree.copy_global_to(guild=discord.Object(id=discord_harness.guild.id))
        await bot.tree.sync(guild=discord.Object(id=discord_harness.guild.id))
        yield BotWorld(discord_harness, world, rt, services, bot, clock, stack)
        services.stop_scheduler()
