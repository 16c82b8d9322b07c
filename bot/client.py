"""HotPapersBot: the discord.py client, its command tree and error handling, and its lifecycle."""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import discord
from aiolimiter import AsyncLimiter
from discord import app_commands
from discord.ext import commands

from bot.core.errors import SourceError, UserFacingError
from bot.core.shards import Shards
from bot.jobs import Jobs
from bot.runtime import Runtime
from bot.services.health import LeaderState
from bot.services.metrics import ShardState
from bot.sources.registry import source_name
from bot.ui.messages import GENERIC_ERROR, error_embed
from bot.ui.publisher import DiscordPublisher
from bot.ui.telemetry import DiscordTelemetry
from bot.ui.text import clip, safe

log = logging.getLogger(__name__)

REMOVED_REASON = "the bot was removed from this server"
COGS = ("cogs.papers", "cogs.categories", "cogs.digest", "cogs.about")


def intents() -> discord.Intents:
    """Slash commands and channel posting need guild events only: no privileged intent."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    return wanted


def user_message(error: Exception) -> str:
    """The short sentence a member sees for an error (never an exception's own text, unless
    it is a :class:`UserFacingError`, written to be shown)."""
    original = getattr(error, "original", None) or error
    if isinstance(original, UserFacingError):
        return original.message
    # The specific check failures first: they are CheckFailure subclasses too.
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works in servers only."
    if isinstance(error, app_commands.CommandOnCooldown):
        # Rounded up: "try again in 0s" would be refused again.
        return f"Slow down: try again in {max(1, math.ceil(error.retry_after))}s."
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
        return f"I'm missing the {missing} permission here."
    if isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure):
        return "You need the **Manage Server** permission to do that."
    if isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
        return "This command has changed since Discord loaded it: please try again in a minute."
    if isinstance(error, app_commands.TransformerError):
        shown = clip(safe(" ".join(str(error.value).split())), 50)
        kind = error.type.name.replace("_", " ")
        return f"“{shown}” is not a valid {kind} for that option."
    if isinstance(original, SourceError):
        name = source_name(original.source)
        return f"{name} is not answering right now; please try again in a few minutes."
    return GENERIC_ERROR


def is_expected(error: app_commands.AppCommandError) -> bool:
    """Errors a member caused or a service outage: shown specifically, not logged as bugs."""
    original = getattr(error, "original", error)
    if isinstance(error, app_commands.CommandInvokeError):
        return isinstance(original, UserFacingError | SourceError)
    return True


class HotPapersTree(app_commands.CommandTree["HotPapersBot"]):
    """The command tree with the one global error handler: every error becomes an ephemeral
    message; unexpected ones are logged with command, guild and user ids, never shown."""

    async def interaction_check(self, interaction: discord.Interaction[HotPapersBot]) -> bool:
        # The first thing the tree runs for a command or an autocomplete: its latency starts.
        if self.client.telemetry is not None:
            self.client.telemetry.received(interaction)
        return True

    async def on_error(
        self, interaction: discord.Interaction[HotPapersBot], error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, SourceError):
            log.warning("command %s: %s", _command_name(interaction), original.message)
        elif isinstance(
            error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch
        ):
            # Discord's copy of the commands is stale: whoever runs the bot must sync them.
            log.warning("commands out of sync with Discord (%s): run `hotpapers sync`", error)
        elif not is_expected(error):
            log.error(
                "command %s failed (guild %s, user %s)",
                _command_name(interaction),
                interaction.guild_id,
                interaction.user.id if interaction.user else "?",
                exc_info=original,
            )
        await send_error(interaction, user_message(error))


def _command_name(interaction: discord.Interaction[Any]) -> str:
    return interaction.command.qualified_name if interaction.command else "?"


async def send_error(interaction: discord.Interaction[Any], text: str) -> None:
    """Ephemeral, whatever state the interaction is in."""
    embed = error_embed(text)
    try:
        if interaction.type is discord.InteractionType.autocomplete:
            # Reached: discord.py's tree sends a stale command's autocomplete here as
            # CommandNotFound, and an autocomplete can only be answered with choices.
            if not interaction.response.is_done():
                await interaction.response.autocomplete([])
            return
        if not interaction.response.is_done():
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            # A public "thinking…" placeholder: remove it so the error stays private.
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await interaction.followup.send(embed=embed, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not deliver an error message for interaction %s", interaction.id)


def require_manage_guild(interaction: discord.Interaction[Any]) -> bool:
    """Runtime check behind ``default_permissions(manage_guild=True)``: Manage Server, or
    Administrator (which Discord treats as every permission, whatever the other bits say)."""
    perms = getattr(interaction, "permissions", None)
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if perms is None or not (perms.manage_guild or perms.administrator):
        # A CheckFailure subclass, so the tree's on_error turns it into the ephemeral refusal.
        raise app_commands.MissingPermissions(["manage_guild"])
    return True


class HotPapersBot(commands.Bot):
    """The bot: built on the runtime by the CLI, no module-level state. The cogs reach the
    use cases through :attr:`rt` (its services) and the scheduler through :attr:`jobs`."""

    def __init__(
        self,
        rt: Runtime,
        *,
        schedule: bool = True,
        telemetry: DiscordTelemetry | None = None,
        **sharding: Any,
    ) -> None:
        # hotpapers never joins a voice channel: no warning about voice libraries at each start.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        if telemetry is not None:
            sharding["http_trace"] = telemetry.trace
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=HotPapersTree,
            help_command=None,
            max_messages=None,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
            **sharding,
        )
        self.rt = rt
        self._schedule = schedule
        self._jobs: Jobs | None = None
        # Metrics of the Discord traffic (429s, messages, interaction latency), and what
        # /metrics reads of the gateway and the leadership when scraped.
        self.telemetry = telemetry
        if telemetry is not None:
            telemetry.metrics.watch_gateway(self.gateway_shards)
            telemetry.metrics.watch_leader(self._leading)

    @property
    def jobs(self) -> Jobs:
        """The background jobs, built in :meth:`setup_hook` (once the bot has logged in)."""
        if self._jobs is None:
            raise RuntimeError("the bot's jobs are built in setup_hook: start the bot first")
        return self._jobs

    def gateway_shards(self) -> list[ShardState]:
        """This process's gateway connections now (``/readyz``, ``/metrics``): one unsharded,
        else each of its shards, the ones not launched yet as not connected."""
        if not isinstance(self, commands.AutoShardedBot):
            ws = self.ws
            connected = ws is not None and ws.open and self.is_ready() and not self.is_closed()
            return [ShardState(None, connected, ws.latency if ws is not None else None)]
        settings = self.rt.settings.discord
        count = settings.shard_count or self.shard_count or 1
        wanted = settings.shard_ids if settings.shard_ids is not None else range(count)
        launched = self.shards
        states = []
        for shard_id in wanted:
            info = launched.get(shard_id)
            if info is None:
                states.append(ShardState(shard_id, False))
            else:
                connected = not info.is_closed() and not self.is_closed()
                states.append(ShardState(shard_id, connected, info.latency))
        return states

    def leader_state(self) -> LeaderState | None:
        """Whether this process leads ingestion and the streams (None before the jobs exist)."""
        if self._jobs is None:
            return None
        leadership = self._jobs.leadership
        return LeaderState(elected=leadership.elected, leading=leadership.is_leader)

    def _leading(self) -> bool | None:
        return None if self._jobs is None else self._jobs.is_leader

    async def setup_hook(self) -> None:
        settings = self.rt.settings.discord
        # The one request budget of every send, paced one request at a time (a bucket of one):
        # a burst would let more than 50 through in some second of a sliding window.
        budget = AsyncLimiter(1, 1.0 / settings.requests_per_second)
        self._jobs = Jobs(self.rt, DiscordPublisher(self, budget))
        for name in COGS:
            await self.load_extension(name)
        dev_guild = settings.dev_guild_id
        if dev_guild:
            guild = discord.Object(id=dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            log.info("commands synced to the dev guild %s", dev_guild)
        if self._schedule:
            self._jobs.start_scheduler()

    async def on_ready(self) -> None:
        settings = self.rt.settings.discord
        log.info(
            "connected as %s (%s) to %d guilds (%s)",
            self.user,
            self.user.id if self.user else "?",
            len(self.guilds),
            Shards.of(settings.shard_count, settings.shard_ids).describe(),
        )
        if self._schedule:
            await self.jobs.catch_up()

    async def on_guild_join(self, guild: discord.Guild) -> None:
        # No flood: joining only records the guild; nothing is posted until a channel is set.
        await self.rt.guild_settings.config(guild.id)
        log.info("joined guild %s", guild.id)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # Kicked (not an outage: that is on_guild_unavailable). Keep the settings for a return,
        # but stop the daily job; a moderator resumes it after inviting the bot again.
        await self.rt.guild_settings.pause(guild.id, REMOVED_REASON)
        await self.jobs.reschedule(guild.id)
        log.info("removed from guild %s: its digest is paused", guild.id)

    async def close(self) -> None:
        # No new job starts; digests being posted finish while the HTTP session is still open.
        if self._jobs is not None:
            self._jobs.stop_scheduler()
            await self._jobs.drain()
        self._cancel_ready_wait()
        await super().close()

    def _cancel_ready_wait(self) -> None:
        """Cancel discord.py's wait for the guilds after READY, if a stop comes during it.

        After READY, discord.py waits for the guilds to arrive (up to ``guild_ready_timeout``,
        2 s, in ``ConnectionState._delay_ready``), then dispatches ``ready``. ``Client.close``
        does not cancel that task: a SIGTERM in those seconds left it to dispatch on a closed
        client, whose loop is gone, and an AttributeError nobody awaited printed a traceback
        at exit (seen in CI). The task handles its own cancellation.
        """
        state = self._connection
        waits = [getattr(state, "_ready_task", None)]
        waits += list(getattr(state, "_ready_tasks", {}).values())  # one per shard, sharded
        for task in waits:
            if task is not None and not task.done():
                task.cancel()


class ShardedHotPapersBot(commands.AutoShardedBot, HotPapersBot):
    """The bot on the shards of ``discord.shard_ids`` out of ``discord.shard_count`` (all of
    them without ids): one gateway session per shard, each receiving only its guilds' events
    and interactions. Its jobs schedule and post only those guilds' digests (``Jobs.shards``)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        schedule: bool = True,
        telemetry: DiscordTelemetry | None = None,
        shard_count: int,
        shard_ids: list[int] | None = None,
    ) -> None:
        # AutoShardedBot adds no behaviour of its own at construction: HotPapersBot's set-up,
        # whose super() reaches AutoShardedClient, which takes the shard arguments.
        HotPapersBot.__init__(
            self,
            rt,
            schedule=schedule,
            telemetry=telemetry,
            shard_count=shard_count,
            shard_ids=shard_ids,
        )


def make_bot(rt: Runtime, *, schedule: bool = True) -> HotPapersBot:
    """The bot ``hotpapers run`` starts: sharded when ``discord.shard_count`` is set, else one
    unsharded connection (every guild, as Discord allows up to 2,500 of them). Its Discord
    traffic is recorded in the runtime's metrics."""
    settings = rt.settings.discord
    telemetry = DiscordTelemetry(rt.metrics)
    if settings.shard_count is None:
        return HotPapersBot(rt, schedule=schedule, telemetry=telemetry)
    return ShardedHotPapersBot(
        rt,
        schedule=schedule,
        telemetry=telemetry,
        shard_count=settings.shard_count,
        shard_ids=list(settings.shard_ids) if settings.shard_ids is not None else None,
    )
