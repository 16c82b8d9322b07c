"""The real bot against the fake Discord, with the real pipeline behind it and fake sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.client import HotPapersBot
from bot.core.models import Window
from bot.fakes.demo import DemoWorld, demo_world
from bot.jobs import Jobs
from bot.runtime import Runtime, open_runtime
from bot.settings import Settings
from bot.storage.guilds import GuildConfig
from tests.fakes import conftest as fakes_conftest
from tests.fakes.discord import DiscordHarness, FakeChannel, FakeMember

# The fake Discord fixture, shared with tests/fakes (pytest_plugins is for the root conftest).
discord_harness = fakes_conftest.discord_harness


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
    bot: HotPapersBot
    clock: MutableClock
    stack: AsyncExitStack = field(repr=False)
    _mod: FakeMember | None = field(default=None, repr=False)
    _reader: FakeMember | None = field(default=None, repr=False)

    @property
    def fake(self):  # the fake Discord
        return self.harness.fake

    @property
    def jobs(self) -> Jobs:
        """The running bot's background jobs."""
        return self.bot.jobs

    @property
    def guild_id(self) -> int:
        return self.harness.guild.id

    @property
    def mod(self) -> FakeMember:
        """A member with Manage Server (created once per test)."""
        if self._mod is None:
            self._mod = self.harness.member(manage_guild=True, name="moderator")
        return self._mod

    @property
    def reader(self) -> FakeMember:
        """A member without Manage Server."""
        if self._reader is None:
            self._reader = self.harness.member(name="reader")
        return self._reader

    async def run(self, *path: str, member: FakeMember | None = None, **values: Any):
        """Invoke a slash command and return (result, callback), failing past 3 s."""
        result = await self.harness.slash(*path, member=member or self.reader, **values)
        return result, await result.response(timeout=3.0)

    async def reply(self, *path: str, member: FakeMember | None = None, **values: Any) -> Reply:
        """Invoke a slash command and return what the member reads: the answer, or after a
        defer (within 3 s) the first followup."""
        result, callback = await self.run(*path, member=member, **values)
        if not callback.deferred:
            return Reply(callback.data, deferred=False)
        (first, *_) = await result.followups(count=1, timeout=10.0)
        return Reply(first, deferred=True)

    async def configure(
        self,
        *,
        channel: FakeChannel | None = None,
        post_time: str = "10:30",
        timezone: str = "UTC",
        categories: tuple[str, ...] = (),
        set_up_at: dt.datetime | None = None,
        **options: Any,
    ) -> GuildConfig:
        """Set the test guild's digest up through the service (the cogs are tested apart).

        As of ``set_up_at``, by default a day ago: a server set up before today's slot, whose
        digest the sweep owes. (Setting it up after the slot owes nothing until tomorrow.)
        """
        gid = self.guild_id
        now = self.clock.now
        self.clock.now = set_up_at or now - dt.timedelta(days=1)
        try:
            await self.rt.guild_settings.set_channel(gid, (channel or self.harness.channel).id)
            await self.rt.guild_settings.set_time(gid, post_time, timezone)
        finally:
            self.clock.now = now
        for category in categories:
            await self.rt.guild_settings.add_category(gid, category)
        if options:
            await self.rt.guild_settings.set_options(gid, **options)
        return await self.rt.guild_settings.config(gid)

    async def ingest_reference_day(self) -> None:
        await self.rt.ingest.run(Window.for_day(self.world.day))

    async def restart(self) -> None:
        """Stop the bot and start a new one on the same database (a crash or a deploy)."""
        await self.harness.stop_client(self.bot)
        self.jobs.stop_scheduler()
        self.bot = HotPapersBot(self.rt, schedule=False)
        self.bot.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
        await self.harness.start_client(self.bot)


async def _no_backoff(seconds: float) -> None:
    """Sources retry without waiting in tests (time is injected, never slept)."""


async def _no_identify_wait(shard_id: int | None, *, initial: bool = False) -> None:
    return None


@pytest.fixture
async def botworld(
    tmp_path: Path, discord_harness: DiscordHarness, migrated_url: str
) -> AsyncIterator[BotWorld]:
    """The bot on the backend under test (``[sqlite]``, ``[postgresql]``): its database is
    ``migrated_url``, which the runtime opens as ``hotpapers run`` does (migrating it)."""
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
            update={
                "arxiv": world.settings.arxiv.model_copy(update={"min_interval_seconds": 0.0}),
                "database": world.settings.database.model_copy(update={"url": migrated_url}),
            }
        )
        rt = await stack.enter_async_context(open_runtime(settings, clock=clock, sleep=_no_backoff))
        bot = HotPapersBot(rt, schedule=False)
        bot.before_identify_hook = _no_identify_wait  # type: ignore[method-assign]
        await discord_harness.start_client(bot)
        bot.tree.copy_global_to(guild=discord.Object(id=discord_harness.guild.id))
        await bot.tree.sync(guild=discord.Object(id=discord_harness.guild.id))
        botworld = BotWorld(discord_harness, world, rt, bot, clock, stack)
        yield botworld
        # As `hotpapers run` ends: the bot closes (its jobs drained, the leadership given
        # back, the streams' cursors saved) before the database does. A bot closed after it
        # would open new connections on a disposed engine, which nothing closes.
        await discord_harness.stop_client(botworld.bot)
        botworld.jobs.stop_scheduler()


@dataclass(frozen=True)
class Reply:
    """The message a member reads in answer to a command (``said(reply)`` gives its text)."""

    data: dict[str, Any]
    deferred: bool

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & 64)


def said(message: Any) -> str:
    """Everything a member reads in a callback or message: content, embed titles, text, fields."""
    data = message.data if hasattr(message, "data") else message
    parts = [data.get("content") or ""]
    for embed in data.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields") or []]
        parts.append((embed.get("footer") or {}).get("text") or "")
    return "\n".join(p for p in parts if p)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in message.get("components") or [] for c in row.get("components") or []]


def posted_ids(messages: list[dict[str, Any]]) -> list[str]:
    """The arXiv ids of the papers in the paper messages (every embed of every message), in
    the order they were posted."""
    ordered = sorted(messages, key=lambda m: int(m["id"]))
    return [
        embed["url"].rsplit("/", 1)[-1] for m in ordered for embed in m["embeds"] if "url" in embed
    ]
