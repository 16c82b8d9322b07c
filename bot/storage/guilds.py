"""Guild configuration storage: each Discord server's channel, schedule, style and categories."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.dialect import aware, chunked, insert_for, utcnow
from bot.storage.engine import Database
from bot.storage.tables import (
    EMPTY_DAY_MODES,
    GUILD_STYLES,
    RANKING_MODES,
    guild_categories,
    guilds,
)

_HH_MM = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True, slots=True)
class GuildConfig:
    """One guild's settings, as stored. ``threshold`` None means the global ranking threshold."""

    guild_id: int
    channel_id: int | None
    post_time: str  # "HH:MM" in ``timezone``
    timezone: str
    top_n: int
    threshold: float | None
    style: str  # thread | channel | compact
    empty_day: str  # message | silent
    paused: bool
    pause_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    categories: tuple[str, ...] = ()
    # When it last became able to post (see ``tables.guilds``); None: since before it was kept.
    active_since: dt.datetime | None = None
    alert_channel_id: int | None = None  # None: alerts go to the digest channel
    ranking: str = "absolute"  # absolute | field (``RankingMode``)
    # The public archive (``bot.storage.archive``): published while on; the slug of its pages
    # is kept when it is turned off, so the same links come back when it is turned on again.
    archive: bool = False
    archive_slug: str | None = None

    @property
    def active(self) -> bool:
        """Whether the daily digest should be posted: a channel is set and it is not paused."""
        return self.channel_id is not None and not self.paused


def _validate(name: str, value: Any) -> Any:
    """Check one updatable field; the ValueError names it (user wording is the caller's)."""
    if name == "channel_id":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError("channel_id must be an int or None")
    elif name == "post_time":
        if not isinstance(value, str) or not _HH_MM.match(value):
            raise ValueError(f"post_time must be HH:MM (24 h), got {value!r}")
    elif name == "timezone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown timezone {value!r}") from None
    elif name == "top_n":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"top_n must be a positive int, got {value!r}")
    elif name == "threshold":
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise ValueError(f"threshold must be a non-negative number or None, got {value!r}")
        value = None if value is None else float(value)
    elif name == "style":
        if value not in GUILD_STYLES:
            raise ValueError(f"style must be one of {', '.join(GUILD_STYLES)}, got {value!r}")
    elif name == "empty_day":
        if value not in EMPTY_DAY_MODES:
            raise ValueError(f"empty_day must be one of {', '.join(EMPTY_DAY_MODES)}")
    elif name == "ranking":
        if value not in RANKING_MODES:
            raise ValueError(f"ranking must be one of {', '.join(RANKING_MODES)}, got {value!r}")
    elif name == "paused":
        if not isinstance(value, bool):
            raise ValueError("paused must be a bool")
    elif name == "pause_reason":
        if value is not None and not isinstance(value, str):
            raise ValueError("pause_reason must be a str or None")
    elif name == "active_since":
        if value is not None:
            value = aware(value, "active_since")
    elif name == "alert_channel_id":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"alert_channel_id must be an int or None, got {value!r}")
    else:
        raise ValueError(f"unknown guild setting {name!r}")
    return value


UPDATABLE_FIELDS = (
    "channel_id",
    "post_time",
    "timezone",
    "top_n",
    "threshold",
    "style",
    "empty_day",
    "paused",
    "pause_reason",
    "active_since",
    "alert_channel_id",
    "ranking",
)


class GuildRepository:
    """Per-guild settings and category subscriptions."""

    def __init__(
        self,
        db: Database,
        *,
        defaults: Mapping[str, Any] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        """``defaults``: settings a new guild starts with instead of the schema's (e.g. the
        configured ``digest.default_time``); same names and checks as :meth:`update`."""
        self._db = db
        self._defaults = {name: _validate(name, value) for name, value in (defaults or {}).items()}
        self._clock = clock

    async def get(self, guild_id: int) -> GuildConfig | None:
        async with self._db.read() as conn:
            found = await _load(conn, select(guilds).where(guilds.c.guild_id == guild_id))
        return found[0] if found else None

    async def ensure(self, guild_id: int) -> GuildConfig:
        """The guild's settings, creating the row with the defaults if it is new."""
        async with self._db.write() as conn:
            await self._ensure(conn, guild_id)
            (config,) = await _load(conn, select(guilds).where(guilds.c.guild_id == guild_id))
        return config

    async def _ensure(self, conn: AsyncConnection, guild_id: int) -> None:
        now = aware(self._clock(), "clock()")
        stmt = insert_for(self._db, guilds).values(
            guild_id=guild_id, created_at=now, updated_at=now, **self._defaults
        )
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=[guilds.c.guild_id]))

    async def update(self, guild_id: int, /, **fields: Any) -> GuildConfig:
        """Change settings (names from ``UPDATABLE_FIELDS``), creating the guild if needed.

        Every name and value is checked first (ValueError, nothing written). Unpausing without a
        ``pause_reason`` clears the old reason.
        """
        values = {name: _validate(name, value) for name, value in fields.items()}
        if values.get("paused") is False:
            values.setdefault("pause_reason", None)
        async with self._db.write() as conn:
            await self._ensure(conn, guild_id)
            if values:
                values["updated_at"] = aware(self._clock(), "clock()")
                await conn.execute(
                    update(guilds).where(guilds.c.guild_id == guild_id).values(values)
                )
            (config,) = await _load(conn, select(guilds).where(guilds.c.guild_id == guild_id))
        return config

    async def add_category(self, guild_id: int, category: str) -> bool:
        """Subscribe the guild to a category; False if it already was."""
        async with self._db.write() as conn:
            await self._ensure(conn, guild_id)
            stmt = insert_for(self._db, guild_categories).values(
                guild_id=guild_id, category=category, added_at=aware(self._clock(), "clock()")
            )
            result = await conn.execute(stmt.on_conflict_do_nothing())
        return bool(result.rowcount)

    async def remove_category(self, guild_id: int, category: str) -> bool:
        """Unsubscribe; False if the guild was not subscribed to it."""
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(guild_categories).where(
                    guild_categories.c.guild_id == guild_id,
                    guild_categories.c.category == category,
                )
            )
        return bool(result.rowcount)

    async def categories(self, guild_id: int) -> list[str]:
        """The guild's categories, sorted (empty = every category)."""
        async with self._db.read() as conn:
            result = await conn.execute(
                select(guild_categories.c.category)
                .where(guild_categories.c.guild_id == guild_id)
                .order_by(guild_categories.c.category)
            )
            return list(result.scalars())

    async def active(self) -> list[GuildConfig]:
        """Guilds that get a daily digest: a channel is set and they are not paused."""
        stmt = select(guilds).where(guilds.c.channel_id.is_not(None), guilds.c.paused.is_(False))
        async with self._db.read() as conn:
            return await _load(conn, stmt.order_by(guilds.c.guild_id))

    async def all(self) -> list[GuildConfig]:
        async with self._db.read() as conn:
            return await _load(conn, select(guilds).order_by(guilds.c.guild_id))

    async def delete(self, guild_id: int) -> bool:
        """Forget a guild (the bot left it): its categories and digest history go with it."""
        async with self._db.write() as conn:
            result = await conn.execute(delete(guilds).where(guilds.c.guild_id == guild_id))
        return bool(result.rowcount)


async def _load(conn: AsyncConnection, stmt: Any) -> list[GuildConfig]:
    """Run a SELECT over guilds and attach every guild's categories with one more query."""
    rows = (await conn.execute(stmt)).all()
    if not rows:
        return []
    categories: dict[int, list[str]] = {}
    for batch in chunked(row.guild_id for row in rows):
        result = await conn.execute(
            select(guild_categories.c.guild_id, guild_categories.c.category)
            .where(guild_categories.c.guild_id.in_(batch))
            .order_by(guild_categories.c.guild_id, guild_categories.c.category)
        )
        for guild_id, category in result:
            categories.setdefault(guild_id, []).append(category)
    return [_config(row, categories.get(row.guild_id, ())) for row in rows]


def _config(row: Row[Any], categories: Iterable[str]) -> GuildConfig:
    return GuildConfig(
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        post_time=row.post_time,
        timezone=row.timezone,
        top_n=row.top_n,
        threshold=row.threshold,
        style=row.style,
        empty_day=row.empty_day,
        paused=bool(row.paused),
        pause_reason=row.pause_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        categories=tuple(categories),
        active_since=row.active_since,
        alert_channel_id=row.alert_channel_id,
        ranking=row.ranking,
        archive=bool(row.archive),
        archive_slug=row.archive_slug,
    )
