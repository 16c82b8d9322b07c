"""HotPapersBot: the discord.py client, its command tree and error handling, and its lifecycle."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core.errors import HotPapersError, UserFacingError
from bot.ui.messages import GENERIC_ERROR, error_embed

if TYPE_CHECKING:
    from bot.launcher import Services

log = logging.getLogger(__name__)

COGS = ("cogs.papers", "cogs.categories", "cogs.digest", "cogs.about")


def intents() -> discord.Intents:
    """Slash commands and channel posting need guild events only: no privileged intent."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    return wanted


def user_message(error: Exception) -> str:
    """The short sentence a member sees for an error."""
    original = getattr(error, "original", None) or error
    if isinstance(original, UserFacingError):
        return original.message
    if isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure):
        return "You need the **Manage Server** permission to do that."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f}s."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works in servers only."
    if isinstance(error, app_commands.TransformerError):
        return f"`{str(error.value)[:50]}` is not a valid value for that option."
    if isinstance(original, HotPapersError):
        return f"That didn't work: {original.message}"
    return GENERIC_ERROR


class HotPapersTree(app_commands.CommandTree["HotPapersBot"]):
    """The command tree with the one global error handler: every error becomes an ephemeral
    message; unexpected ones are logged with command, guild and user ids, never shown."""

    async def on_error(
        self, interaction: discord.Interaction[HotPapersBot], error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        expected = isinstance(original, HotPapersError) or not isinstance(
            error, app_commands.CommandInvokeError
        )
        if not expected:
            log.error(
                "command %s failed (guild %s, user %s)",
                interaction.command.qualified_name if interaction.command else "?",
                interaction.guild_id,
                interaction.user.id if interaction.user else "?",
                exc_info=original,
            )
        await send_error(interaction, user_message(error))


async def send_error(interaction: discord.Interaction[Any], text: str) -> None:
    """Ephemeral, whatever state the interaction is in."""
    embed = error_embed(text)
    try:
        if interaction.type is discord.InteractionType.autocomplete:
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
    """Runtime check behind ``default_permissions(manage_guild=True)``."""
    perms = getattr(interaction, "permissions", None)
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    if perms is None or not perms.manage_guild:
        # A CheckFailure subclass, so the tree's on_error turns it into the ephemeral refusal.
        raise app_commands.MissingPermissions(["manage_guild"])
    return True


class HotPapersBot(commands.Bot):
    """The bot: built with every service by the launcher, no module-level state."""

    def __init__(self, services: Services, *, schedule: bool = True) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=HotPapersTree,
            help_command=None,
            max_messages=None,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.none(),
        )
        self.services = services
        self._schedule = schedule

    async def setup_hook(self) -> None:
        for name in COGS:
            await self.load_extension(name)
        dev_guild = self.services.settings.discord.dev_guild_id
        if dev_guild:
            guild = discord.Object(id=dev_guild)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            log.info("commands synced to the dev guild %s", dev_guild)
        if self._schedule:
            self.services.start_scheduler(self)

    async def on_ready(self) -> None:
        log.info(
            "connected as %s (%s) to %d guilds",
            self.user,
            self.user.id if self.user else "?",
            len(self.guilds),
        )
        if self._schedule:
            await self.services.catch_up(self)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        # No flood: joining only records the guild; nothing is posted until a channel is set.
        await self.services.guilds.config(guild.id)
        log.info("joined guild %s", guild.id)

    async def close(self) -> None:
        self.services.stop_scheduler()
        await super().close()
