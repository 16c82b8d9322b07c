"""Daily digest delivery: which guilds are due, what to post, and posting it exactly once.

The database is the truth. A digest is claimed (``begin``) before anything is sent, the papers
it will carry are recorded before the first message, and each message id is recorded as soon as
Discord accepts it. A crash or restart in the middle resumes after the last recorded message with
the same papers; a finished digest is never sent again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.core.errors import (
    ChannelGoneError,
    DeliveryError,
    DeliveryUnavailableError,
    MissingPermissionsError,
)
from bot.core.models import Digest, Window
from bot.core.schedule import local_date, parse_post_time
from bot.services.digests import DigestService
from bot.settings import DigestSettings
from bot.storage.digests import DigestRepository
from bot.storage.guilds import GuildConfig, GuildRepository
from bot.storage.runs import RunRepository

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Style = Literal["thread", "channel", "compact"]


class Publisher(Protocol):
    """Posts to Discord. Implemented in ``bot/ui``; raises :class:`DeliveryError` subclasses."""

    async def missing_permissions(self, channel_id: int, style: Style) -> list[str]: ...

    async def send_header(
        self, channel_id: int, digest: Digest, categories: Sequence[str]
    ) -> int: ...

    async def open_thread(self, channel_id: int, message_id: int, name: str) -> int | None: ...

    async def send_paper(self, target_id: int, digest: Digest, index: int) -> int: ...

    async def send_compact(
        self, channel_id: int, digest: Digest, categories: Sequence[str]
    ) -> int: ...

    async def send_empty(self, channel_id: int, text: str) -> int: ...


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    guild_id: int
    day: dt.date
    status: Literal["sent", "empty", "failed", "skipped"]
    papers: int = 0
    detail: str = ""


def empty_reason(digest: Digest, day: dt.date, threshold: float) -> str:
    """Why a digest has no paper, in words a member understands."""
    if digest.failed_sources:
        names = ", ".join(sorted(digest.failed_sources))
        return f"No hot papers today: {names} could not be reached, so the ranking is incomplete."
    if day.weekday() >= 5:
        return (
            "No hot papers today: arXiv announces nothing on weekends, "
            f"and no paper reached a score of {threshold:g}."
        )
    return f"No hot papers today: no paper in this server's categories reached a score of {threshold:g}."


class DeliveryService:
    """Posts each guild's digest at its local time, exactly once per guild and local date."""

    def __init__(
        self,
        *,
        guilds: GuildRepository,
        digests: DigestService,
        log_: DigestRepository,
        runs: RunRepository,
        settings: DigestSettings,
        clock: Clock,
    ) -> None:
        self.guilds = guilds
        self.digests = digests
        self.log = log_
        self.runs = runs
        self.settings = settings
        self.clock = clock

    # --- when -------------------------------------------------------------------------------

    def last_slot(self, config: GuildConfig, now: dt.datetime) -> dt.datetime:
        """The most recent scheduled post time at or before ``now`` (UTC)."""
        from bot.core.schedule import next_post_time

        post_time = parse_post_time(config.post_time)
        nxt = next_post_time(now - dt.timedelta(days=1, seconds=1), post_time, config.timezone)
        slot = nxt
        while True:
            following = next_post_time(slot, post_time, config.timezone)
            if following > now:
                return slot
            slot = following

    async def due(self, now: dt.datetime | None = None) -> list[tuple[GuildConfig, dt.date]]:
        """Guilds whose latest slot passed within the grace period and isn't posted yet."""
        now = now or self.clock()
        grace = dt.timedelta(hours=self.settings.grace_hours)
        due: list[tuple[GuildConfig, dt.date]] = []
        for config in await self.guilds.active():
            slot = self.last_slot(config, now)
            if now - slot > grace:
                continue
            day = local_date(slot, config.timezone)
            record = await self.log.get(config.guild_id, day)
            if record is None or record.status in ("pending", "failed", "sending"):
                due.append((config, day))
        return due

    # --- what -------------------------------------------------------------------------------

    async def build(
        self, config: GuildConfig, now: dt.datetime, *, exclude_recent: bool = True
    ) -> Digest:
        """The digest this guild would get at ``now``: the last 24 hours, its categories,
        its threshold and size, without papers it was shown recently."""
        exclude: set[str] = set()
        if exclude_recent and self.settings.repost_cooldown_days:
            since = now - dt.timedelta(days=self.settings.repost_cooldown_days)
            exclude = await self.log.recently_posted(config.guild_id, since)
        window = Window(now - dt.timedelta(days=1), now)
        return await self.digests.build(
            window,
            day=local_date(now, config.timezone),
            categories=config.categories,
            threshold=config.threshold,
            top_n=config.top_n,
            exclude=exclude,
        )

    # --- how --------------------------------------------------------------------------------

    async def deliver(
        self,
        config: GuildConfig,
        day: dt.date,
        publisher: Publisher,
        now: dt.datetime | None = None,
    ) -> DeliveryResult:
        """Post (or resume posting) one guild's digest for ``day``. Never raises."""
        now = now or self.clock()
        gid = config.guild_id
        if config.channel_id is None or config.paused:
            return DeliveryResult(gid, day, "skipped", detail="no channel or paused")
        record = await self.log.begin(gid, day, now)
        if record is None:
            return DeliveryResult(gid, day, "skipped", detail="already posted or in progress")
        try:
            return await self._send(config, day, record, publisher, now)
        except ChannelGoneError as exc:
            await self.guilds.update(
                gid, paused=True, pause_reason=f"digest channel deleted: {exc.message}"
            )
            await self.log.finish(
                record.id, "failed", error=f"channel deleted: {exc.message}", at=self.clock()
            )
            log.warning("guild %s: digest channel gone, digest paused", gid)
            return DeliveryResult(gid, day, "failed", detail=exc.message)
        except MissingPermissionsError as exc:
            await self.log.finish(
                record.id, "failed", error=f"missing permissions: {exc.message}", at=self.clock()
            )
            log.warning("guild %s: missing permissions: %s", gid, exc.message)
            return DeliveryResult(gid, day, "failed", detail=exc.message)
        except DeliveryUnavailableError as exc:
            await self.log.finish(
                record.id, "failed", error=f"Discord unavailable: {exc.message}", at=self.clock()
            )
            log.warning("guild %s: Discord unavailable, will retry: %s", gid, exc.message)
            return DeliveryResult(gid, day, "failed", detail=exc.message)
        except DeliveryError as exc:
            await self.log.finish(record.id, "failed", error=exc.message, at=self.clock())
            return DeliveryResult(gid, day, "failed", detail=exc.message)
        except Exception:
            log.exception("guild %s: digest for %s crashed", gid, day)
            await self.log.finish(record.id, "failed", error="internal error", at=self.clock())
            return DeliveryResult(gid, day, "failed", detail="internal error")

    async def _send(self, config, day, record, publisher, now) -> DeliveryResult:  # type: ignore[no-untyped-def]
        raise NotImplementedError
