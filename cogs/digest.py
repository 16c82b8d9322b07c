"""``/digest``: where and when the daily post goes, how it looks, preview, status, pause, and
the public archive."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import require_manage_guild
from bot.core.errors import UserFacingError
from bot.core.models import NoteKind, StatusNote
from bot.services.archive import ArchiveLink, ArchiveService
from bot.services.delivery import GuildStatus
from bot.storage.guilds import GuildConfig
from bot.ui import autocomplete as ac
from bot.ui.embeds import compact_embed, digest_header, digest_messages
from bot.ui.messages import (
    archive_off_text,
    archive_on_text,
    empty_text,
    ok_embed,
    status_embed,
)
from bot.ui.publisher import missing_permissions

if TYPE_CHECKING:
    from bot.client import HotPapersBot

Interaction = discord.Interaction["HotPapersBot"]
STATUS_COOLDOWN = (3, 30.0)  # (uses, seconds) per server


@app_commands.guild_only()
class Digest(commands.GroupCog, group_name="digest", group_description="The daily Hot Papers post"):
    """The daily digest's settings."""

    def __init__(self, bot: HotPapersBot) -> None:
        self.bot = bot

    async def _changed(self, guild_id: int) -> None:
        await self.bot.jobs.reschedule(guild_id)

    @property
    def _archive(self) -> ArchiveService:
        """The public archive's opt-in (one repository over the runtime's database)."""
        return ArchiveService.on(self.bot.rt.db, public_url=self.bot.rt.settings.web.public_url)

    def _archive_link(self, config: GuildConfig) -> ArchiveLink | None:
        """Where the server's archive is while it is published, for ``/digest status``."""
        if not config.archive or config.archive_slug is None:
            return None
        return self._archive.link(config.archive_slug)

    @app_commands.command(name="channel")
    @app_commands.describe(channel="The text channel the daily digest is posted in")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def channel(self, interaction: Interaction, channel: discord.TextChannel) -> None:
        """Set the channel of the daily digest (moderators)."""
        assert interaction.guild_id is not None
        config = await self.bot.rt.guild_settings.config(interaction.guild_id)
        missing = missing_permissions(channel, config.style)
        required = [m for m in missing if not m.startswith("(thread)")]
        if required:
            raise UserFacingError(
                f"I can't post in {channel.mention}: I'm missing "
                + ", ".join(f"**{m}**" for m in required)
                + "."
            )
        config = await self.bot.rt.guild_settings.set_channel(interaction.guild_id, channel.id)
        await self._changed(interaction.guild_id)
        note = ""
        if missing:
            note = (
                "\nNote: without "
                + ", ".join(m.removeprefix("(thread) ") for m in missing)
                + " the papers go in the channel instead of a thread."
            )
        when = f"{config.post_time} {config.timezone}"
        if config.paused:
            note += "\nThe digest is paused: `/digest resume` restarts it."
        await interaction.response.send_message(
            embed=ok_embed(
                f"The daily digest will be posted in {channel.mention} at **{when}**.{note}"
            ),
            ephemeral=True,
        )

    @app_commands.command(name="alerts")
    @app_commands.describe(
        channel="Where moderators are told when a digest fails or is paused (empty: the "
        "digest channel)"
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def alerts(
        self, interaction: Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        """Choose where failure and pause notices go (moderators)."""
        assert interaction.guild_id is not None
        if channel is not None:
            missing = [
                m for m in missing_permissions(channel, "channel") if not m.startswith("(thread)")
            ]
            if missing:
                raise UserFacingError(
                    f"I can't post in {channel.mention}: I'm missing "
                    + ", ".join(f"**{m}**" for m in missing)
                    + "."
                )
        await self.bot.rt.guild_settings.set_alert_channel(
            interaction.guild_id, channel.id if channel else None
        )
        text = (
            f"Failure and pause notices will be posted in {channel.mention}."
            if channel
            else "Failure and pause notices will be posted in the digest channel."
        )
        await interaction.response.send_message(embed=ok_embed(text), ephemeral=True)

    @app_commands.command(name="time")
    @app_commands.describe(
        time="Local time, 24-hour HH:MM", timezone="IANA time zone, e.g. Europe/Paris"
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def time(
        self,
        interaction: Interaction,
        time: app_commands.Range[str, 1, 5],
        timezone: app_commands.Range[str, 1, 64] | None = None,
    ) -> None:
        """Set when the daily digest goes out, in local time (moderators)."""
        assert interaction.guild_id is not None
        current = await self.bot.rt.guild_settings.config(interaction.guild_id)
        config = await self.bot.rt.guild_settings.set_time(
            interaction.guild_id, time, timezone or current.timezone
        )
        await self._changed(interaction.guild_id)
        nxt = await self.bot.rt.delivery.next_post(config)
        text = f"The digest goes out daily at **{config.post_time}** ({config.timezone})"
        if config.channel_id is None:
            text += ", once a channel is set with `/digest channel`."
        elif config.paused:
            text += "; it is paused: `/digest resume` restarts it."
        else:
            text += f"; next: <t:{int(nxt.timestamp())}:f>."
        await interaction.response.send_message(embed=ok_embed(text), ephemeral=True)

    @time.autocomplete("timezone")
    async def timezone_autocomplete(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return ac.timezone_choices(current)

    @app_commands.command(name="settings")
    @app_commands.describe(
        top="How many papers at most (1-25)",
        threshold="Minimum score a paper needs",
        style="thread: papers in a thread; channel: in the channel; compact: one ranked message",
        empty_day="On a day without hot papers: post a short message, or stay silent",
        ranking="absolute: papers over the score threshold; field: each followed category's "
        "hottest papers for its field",
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def settings(
        self,
        interaction: Interaction,
        top: app_commands.Range[int, 1, 25] | None = None,
        threshold: app_commands.Range[float, 0, 1_000_000] | None = None,
        style: Literal["thread", "channel", "compact"] | None = None,
        empty_day: Literal["message", "silent"] | None = None,
        ranking: Literal["absolute", "field"] | None = None,
    ) -> None:
        """Set the digest's size, threshold, style and ranking (moderators)."""
        assert interaction.guild_id is not None
        # The status below ranks the day's papers: acknowledge first (Discord allows 3 s).
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.bot.rt.guild_settings.set_options(
            interaction.guild_id,
            top=top,
            threshold=threshold,
            style=style,
            empty_day=empty_day,
            ranking=ranking,
        )
        status = await self.bot.rt.delivery.status(interaction.guild_id)
        await interaction.followup.send(
            embed=status_embed(self._with_channel_notes(status), self._archive_link(status.config)),
            ephemeral=True,
        )

    @app_commands.command(name="preview")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def preview(self, interaction: Interaction) -> None:
        """Privately show the messages that would be posted now (moderators)."""
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        config, digest, reason = await self.bot.rt.delivery.preview(interaction.guild_id)
        if not digest.papers:
            await interaction.followup.send(
                empty_text(reason)
                if reason
                else "Nothing would be posted (empty days are silent).",
                ephemeral=True,
            )
            return
        header = digest_header(digest, config.categories)
        if config.style == "compact":
            await interaction.followup.send(
                header, embed=compact_embed(digest, config.categories), ephemeral=True
            )
            return
        # The real post's messages, in order: the header, then the paper messages (four papers
        # each, with their link buttons; in the thread style they'd go in a thread, which a
        # preview can't open).
        await interaction.followup.send(header, ephemeral=True)
        for embeds, view in digest_messages(digest):
            await interaction.followup.send(embeds=embeds, view=view, ephemeral=True)

    @app_commands.command(name="status")
    # Per server: every member may ask, and each answer ranks the day.
    @app_commands.checks.cooldown(*STATUS_COOLDOWN, key=lambda i: i.guild_id)
    async def status(self, interaction: Interaction) -> None:
        """The digest's settings, next and last post, and the health of each source."""
        assert interaction.guild_id is not None
        # Building the status ranks the day's papers: acknowledge first (Discord allows 3 s).
        await interaction.response.defer(ephemeral=True, thinking=True)
        status = await self.bot.rt.delivery.status(interaction.guild_id)
        await interaction.followup.send(
            embed=status_embed(self._with_channel_notes(status), self._archive_link(status.config)),
            ephemeral=True,
        )

    def _with_channel_notes(self, status: GuildStatus) -> GuildStatus:
        """Add what the bot's cache says about the digest channel right now."""
        config = status.config
        if config.channel_id is None:
            return status
        channel = self.bot.get_channel(config.channel_id)
        if channel is None:
            note = StatusNote(NoteKind.CHANNEL_GONE)
            return dataclasses.replace(status, notes=(*status.notes, note))
        if not isinstance(channel, discord.abc.GuildChannel):
            return status
        missing = missing_permissions(channel, config.style)
        required = [m for m in missing if not m.startswith("(thread)")]
        notes = list(status.notes)
        if required:
            notes.append(StatusNote(NoteKind.MISSING_PERMISSIONS, names=tuple(required)))
        elif missing:
            names = tuple(m.removeprefix("(thread) ") for m in missing)
            notes.append(StatusNote(NoteKind.NO_THREAD_PERMISSIONS, names=names))
        return dataclasses.replace(status, notes=tuple(notes))

    @app_commands.command(name="pause")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def pause(self, interaction: Interaction) -> None:
        """Stop the daily post (moderators)."""
        assert interaction.guild_id is not None
        await self.bot.rt.guild_settings.pause(interaction.guild_id)
        await self._changed(interaction.guild_id)
        await interaction.response.send_message(
            embed=ok_embed("The daily digest is paused. `/digest resume` restarts it."),
            ephemeral=True,
        )

    @app_commands.command(name="resume")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def resume(self, interaction: Interaction) -> None:
        """Restart the daily post (moderators)."""
        assert interaction.guild_id is not None
        config = await self.bot.rt.guild_settings.resume(interaction.guild_id)
        await self._changed(interaction.guild_id)
        if config.channel_id is None:
            text = "Resumed, but no channel is set yet: use `/digest channel`."
        else:
            nxt = await self.bot.rt.delivery.next_post(config)
            text = f"The daily digest is back on; next post <t:{int(nxt.timestamp())}:f>."
        await interaction.response.send_message(embed=ok_embed(text), ephemeral=True)

    @app_commands.command(name="archive")
    @app_commands.describe(
        state="on: publish the digests posted here on the bot's web site; off: hide them"
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.check(require_manage_guild)
    async def archive(self, interaction: Interaction, state: Literal["on", "off"]) -> None:
        """Publish or hide this server's digests on the public web archive (moderators)."""
        assert interaction.guild_id is not None
        archive = self._archive
        before = await archive.state(interaction.guild_id)
        if state == "on":
            name = interaction.guild.name if interaction.guild is not None else ""
            after = await archive.turn_on(interaction.guild_id, name)
            assert after.slug is not None
            text = archive_on_text(archive.link(after.slug), already=before.enabled)
        else:
            await archive.turn_off(interaction.guild_id)
            text = archive_off_text(already=not before.enabled)
        await interaction.response.send_message(embed=ok_embed(text), ephemeral=True)


async def setup(bot: HotPapersBot) -> None:
    await bot.add_cog(Digest(bot))
