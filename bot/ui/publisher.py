"""Posting digests to Discord channels: the discord.py side of ``services.delivery.Publisher``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
import discord

from bot.core.errors import (
    ChannelGoneError,
    DeliveryError,
    DeliveryUnavailableError,
    MissingPermissionsError,
)
from bot.core.models import Digest

if TYPE_CHECKING:
    from bot.services.delivery import DeliveryAlert

from bot.ui.embeds import compact_embed, digest_header, paper_embed, paper_links
from bot.ui.messages import alert_text
from bot.ui.text import clip

log = logging.getLogger(__name__)

NEEDED = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
}
THREAD_NEEDED = {
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    # Starting a thread from a message needs the message history of the channel.
    "read_message_history": "Read Message History",
}
NO_PINGS = discord.AllowedMentions.none()
UNKNOWN_CHANNEL = 10003
THREAD_ALREADY_CREATED = 160004  # Discord: "A thread has already been created for this message"
# What a lost connection looks like through discord.py (it retries only a few of them itself).
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def missing_permissions(channel: discord.abc.GuildChannel, style: str) -> list[str]:
    """Names of what the bot lacks in ``channel``; thread-only ones are prefixed ``(thread)``."""
    me = channel.guild.me
    if me is None:
        return []
    perms = channel.permissions_for(me)
    missing = [label for attr, label in NEEDED.items() if not getattr(perms, attr)]
    if style == "thread":
        missing += [
            f"(thread) {label}" for attr, label in THREAD_NEEDED.items() if not getattr(perms, attr)
        ]
    return missing


def _unreachable(exc: BaseException, doing: str) -> DeliveryUnavailableError:
    """A network failure as a fixed sentence (it is stored and shown in ``/digest status``);
    the exception itself goes to the log only."""
    log.warning("connection to Discord lost while %s: %r", doing, exc)
    return DeliveryUnavailableError("the connection to Discord was lost")


def _translate(exc: discord.HTTPException, where: str) -> DeliveryError:
    if isinstance(exc, discord.NotFound):
        return ChannelGoneError(f"{where} no longer exists")
    if isinstance(exc, discord.Forbidden):
        return MissingPermissionsError(f"not allowed to post in {where} (Discord {exc.code})")
    if isinstance(exc, discord.DiscordServerError) or exc.status >= 500 or exc.status == 429:
        return DeliveryUnavailableError(f"Discord answered {exc.status}")
    return DeliveryError(f"Discord refused the message ({exc.status}, code {exc.code})")


class DiscordPublisher:
    """Sends the header, thread and paper messages of a digest through a discord.py client.

    Every ``send_*`` takes an optional ``nonce``: it is sent with ``enforce_nonce``, so when
    Discord accepted a message but the answer was lost (a dropped connection, a crash), sending
    it again with the same nonce within a few minutes returns that message instead of a copy.
    """

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self.client.get_channel(channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(channel_id)
            except discord.HTTPException as exc:
                raise _translate(exc, f"channel {channel_id}") from exc
            except NETWORK_ERRORS as exc:
                raise _unreachable(exc, f"looking up channel {channel_id}") from exc
        if not isinstance(channel, discord.abc.Messageable):
            raise ChannelGoneError(f"channel {channel_id} is not a text channel")
        return channel

    async def missing_permissions(self, channel_id: int, style: str) -> list[str]:
        channel = await self._channel(channel_id)
        if isinstance(channel, discord.abc.GuildChannel):
            return missing_permissions(channel, style)
        return []

    async def _send(self, channel_id: int, nonce: str | None, **kwargs: object) -> int:
        channel = await self._channel(channel_id)
        try:
            message = await channel.send(allowed_mentions=NO_PINGS, nonce=nonce, **kwargs)  # type: ignore[call-overload]
        except discord.HTTPException as exc:
            raise _translate(exc, f"channel {channel_id}") from exc
        except NETWORK_ERRORS as exc:
            # The message may or may not have been posted: a retry with the same nonce settles it.
            raise _unreachable(exc, f"posting in {channel_id}") from exc
        return message.id

    async def send_header(
        self,
        channel_id: int,
        digest: Digest,
        categories: Sequence[str],
        *,
        nonce: str | None = None,
    ) -> int:
        return await self._send(channel_id, nonce, content=digest_header(digest, categories))

    async def open_thread(self, channel_id: int, message_id: int, name: str) -> int | None:
        channel = await self._channel(channel_id)
        if not isinstance(channel, discord.TextChannel):
            return None
        try:
            thread = await channel.get_partial_message(message_id).create_thread(
                name=clip(name, 100), auto_archive_duration=1440
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_CREATED:
                # Resuming a digest: the thread exists, and a message's thread has its id.
                return message_id
            if exc.code == UNKNOWN_CHANNEL or exc.status >= 500:
                raise _translate(exc, f"channel {channel_id}") from exc
            # No thread permission (or threads off): the papers go in the channel instead.
            log.info(
                "could not open a thread in %s (%s): posting in the channel", channel_id, exc.status
            )
            return None
        except NETWORK_ERRORS as exc:
            raise _unreachable(exc, f"opening a thread in {channel_id}") from exc
        return thread.id

    async def send_paper(
        self, target_id: int, digest: Digest, index: int, *, nonce: str | None = None
    ) -> int:
        ranked = digest.papers[index]
        return await self._send(
            target_id,
            nonce,
            embed=paper_embed(ranked.paper, ranked=ranked, rank=index + 1),
            view=paper_links(ranked.paper),
        )

    async def send_compact(
        self,
        channel_id: int,
        digest: Digest,
        categories: Sequence[str],
        *,
        nonce: str | None = None,
    ) -> int:
        return await self._send(
            channel_id,
            nonce,
            content=digest_header(digest, categories),
            embed=compact_embed(digest, categories),
        )

    async def send_empty(self, channel_id: int, text: str, *, nonce: str | None = None) -> int:
        return await self._send(channel_id, nonce, content=clip(text, 2000))

    async def send_alert(self, channel_id: int, alert: DeliveryAlert) -> int:
        return await self._send(channel_id, None, content=alert_text(alert))
