"""Per-server settings: channel, time, time zone, categories, style, pause — validated."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from bot.core.errors import UserFacingError
from bot.core.models import DigestStyle, EmptyDay, RankingMode
from bot.core.schedule import parse_post_time, validate_timezone
from bot.core.taxonomy import validate_category
from bot.storage.guilds import GuildConfig, GuildRepository

Clock = Callable[[], dt.datetime]
STYLES = tuple(style.value for style in DigestStyle)
EMPTY_DAY = tuple(mode.value for mode in EmptyDay)
RANKINGS = tuple(mode.value for mode in RankingMode)
MAX_CATEGORIES = 25
MAX_TOP = 25
# The start of the pause reason delivery writes when Discord says the channel is gone (404).
CHANNEL_GONE_REASON = "digest channel deleted"


class GuildService:
    """Validates and stores what moderators configure (when the next post is due is
    ``DeliveryService.next_post``: it knows which digests are done)."""

    def __init__(self, guilds: GuildRepository, clock: Clock) -> None:
        self.guilds = guilds
        self.clock = clock

    async def config(self, guild_id: int) -> GuildConfig:
        return await self.guilds.ensure(guild_id)

    async def set_channel(self, guild_id: int, channel_id: int) -> GuildConfig:
        """Set the digest channel. A digest paused only because its channel was deleted is
        back on with the new channel; a moderator's pause stays."""
        config = await self.guilds.ensure(guild_id)
        changes: dict[str, object] = {"channel_id": channel_id}
        if config.paused and (config.pause_reason or "").startswith(CHANNEL_GONE_REASON):
            changes["paused"] = False
        if config.channel_id is None or changes.get("paused") is False:
            # It can post from now on: today's slot, if already past, was never owed.
            changes["active_since"] = self.clock()
        return await self.guilds.update(guild_id, **changes)

    async def set_alert_channel(self, guild_id: int, channel_id: int | None) -> GuildConfig:
        """Where moderators are told a digest failed for good or was paused (None: the
        digest channel)."""
        await self.guilds.ensure(guild_id)
        return await self.guilds.update(guild_id, alert_channel_id=channel_id)

    async def set_time(self, guild_id: int, time_text: str, timezone: str) -> GuildConfig:
        post_time = f"{parse_post_time(time_text):%H:%M}"
        zone = validate_timezone(timezone)
        config = await self.guilds.ensure(guild_id)
        changes: dict[str, object] = {"post_time": post_time, "timezone": zone}
        if (config.post_time, config.timezone) != (post_time, zone):
            # A time moved to earlier than now is a slot that just passed: not a missed digest.
            changes["active_since"] = self.clock()
        return await self.guilds.update(guild_id, **changes)

    async def set_options(
        self,
        guild_id: int,
        *,
        top: int | None = None,
        threshold: float | None = None,
        style: str | None = None,
        empty_day: str | None = None,
        ranking: str | None = None,
    ) -> GuildConfig:
        changes: dict[str, object] = {}
        if top is not None:
            if not 1 <= top <= MAX_TOP:
                raise UserFacingError(f"`top` must be between 1 and {MAX_TOP}.")
            changes["top_n"] = top
        if threshold is not None:
            if not 0 <= threshold <= 1_000_000:
                raise UserFacingError("`threshold` must be 0 or more.")
            changes["threshold"] = threshold
        if style is not None:
            if style not in STYLES:
                raise UserFacingError(f"`style` must be one of {', '.join(STYLES)}.")
            changes["style"] = style
        if empty_day is not None:
            if empty_day not in EMPTY_DAY:
                raise UserFacingError(f"`empty_day` must be one of {', '.join(EMPTY_DAY)}.")
            changes["empty_day"] = empty_day
        if ranking is not None:
            if ranking not in RANKINGS:
                raise UserFacingError(f"`ranking` must be one of {', '.join(RANKINGS)}.")
            changes["ranking"] = ranking
        await self.guilds.ensure(guild_id)
        if not changes:
            return await self.guilds.ensure(guild_id)
        return await self.guilds.update(guild_id, **changes)

    async def pause(self, guild_id: int, reason: str = "paused by a moderator") -> GuildConfig:
        await self.guilds.ensure(guild_id)
        return await self.guilds.update(guild_id, paused=True, pause_reason=reason)

    async def resume(self, guild_id: int) -> GuildConfig:
        config = await self.guilds.ensure(guild_id)
        if not config.paused:
            return config
        # Slots that passed while paused are not owed (no flood of yesterday's digest).
        return await self.guilds.update(
            guild_id, paused=False, pause_reason=None, active_since=self.clock()
        )

    async def add_category(self, guild_id: int, text: str) -> tuple[str, bool]:
        """The canonical category and whether it was new."""
        category = validate_category(text)
        await self.guilds.ensure(guild_id)
        current = await self.guilds.categories(guild_id)
        if category not in current and len(current) >= MAX_CATEGORIES:
            raise UserFacingError(f"A server can follow at most {MAX_CATEGORIES} categories.")
        return category, await self.guilds.add_category(guild_id, category)

    async def remove_category(self, guild_id: int, text: str) -> str:
        current = await self.guilds.categories(guild_id)
        wanted = text.strip()
        match = next((c for c in current if c.lower() == wanted.lower()), None)
        if match is None:
            raise UserFacingError(f"This server does not follow `{wanted[:40]}`.")
        await self.guilds.remove_category(guild_id, match)
        return match

    async def categories(self, guild_id: int) -> list[str]:
        return await self.guilds.categories(guild_id)
