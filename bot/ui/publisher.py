"""Posting digests to Discord channels: the discord.py side of ``services.delivery.Publisher``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import discord

from bot.core.errors import (
    ChannelGoneError,
    DeliveryError,
    DeliveryUnavailableError,
    MissingPermissionsError,
)
from bot.core.models import Digest, DigestStyle, EmptyReason

if TYPE_CHECKING:
    from bot.services.delivery import DeliveryAlert

from bot.ui.embeds import compact_embed, digest_header, pack, papers_message, read_marker
from bot.ui.messages import alert_text, empty_text
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
# Reading a digest's messages back (find_own): at most this many, a request per PAGE.
FIND_LIMIT = 500
PAGE = 100
# How long one call may keep waiting out 429s before the digest is left to the next sweep.
RATE_LIMIT_MAX_WAIT = 900.0
T = TypeVar("T")
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
    if style == DigestStyle.THREAD:
        missing += [
            f"(thread) {label}" for attr, label in THREAD_NEEDED.items() if not getattr(perms, attr)
        ]
    return missing


def _unreachable(exc: BaseException, doing: str) -> DeliveryUnavailableError:
    """A network failure as a fixed sentence (it is stored and shown in ``/digest status``);
    the exception itself goes to the log only."""
    log.warning("connection to Discord lost while %s: %r", doing, exc)
    return DeliveryUnavailableError("the connection to Discord was lost")


def _retry_after(exc: discord.HTTPException) -> float:
    """The wait a 429 asks for (its body's ``retry_after``, else its header), at least 0.1 s."""
    seconds: Any = None
    if isinstance(exc.response, aiohttp.ClientResponse):
        seconds = exc.response.headers.get("Retry-After")
    try:
        return max(0.1, float(seconds)) if seconds is not None else 1.0
    except ValueError:
        return 1.0


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

    def __init__(
        self,
        client: discord.Client,
        budget: AbstractAsyncContextManager[Any] | None = None,
        *,
        max_wait: float = RATE_LIMIT_MAX_WAIT,
    ) -> None:
        self.client = client
        # The bot's one request budget (``discord.requests_per_second``), shared by every send
        # of every digest: entered around each REST call, so the fan-out never trips Discord's
        # global limit, however many digests are under way.
        self.budget = budget or contextlib.nullcontext()
        self.max_wait = max_wait
        self._index: dict[int, object] | None = None

    async def _call(self, doing: str, call: Callable[[], Awaitable[T]]) -> T:
        """One REST call within the budget. A 429 that discord.py gave up on (global or per
        route) is waited out and the call made again, for up to ``max_wait`` seconds in all:
        a rate limit delays a digest, it never fails it."""
        waited = 0.0
        while True:
            async with self.budget:
                try:
                    return await call()
                except discord.RateLimited as exc:
                    retry_after = exc.retry_after
                except discord.HTTPException as exc:
                    if exc.status != 429:
                        raise
                    retry_after = _retry_after(exc)
            if waited + retry_after > self.max_wait:
                raise DeliveryUnavailableError(f"Discord kept rate limiting {doing}")
            log.info("rate limited while %s: waiting %.2f s", doing, retry_after)
            await asyncio.sleep(retry_after)
            waited += retry_after

    def _cached(self, channel_id: int) -> object | None:
        """A channel or thread the client knows, found in O(1).

        discord.py's ``get_channel`` walks every guild: at ten thousand servers posting at once
        that is a hundred million look-ups. The text channels of every guild are indexed once;
        others (threads, channels created since) are found the slow way once, then kept.
        """
        if self._index is None:
            self._index = {
                channel.id: channel
                for guild in self.client.guilds
                for channel in guild.text_channels
            }
        found = self._index.get(channel_id)
        if found is None:
            found = self.client.get_channel(channel_id)
            if found is not None:
                self._index[channel_id] = found
        return found

    async def _channel(self, channel_id: int) -> discord.abc.Messageable:
        channel = self._cached(channel_id)
        if channel is None:
            try:
                channel = await self._call(
                    f"looking up channel {channel_id}",
                    lambda: self.client.fetch_channel(channel_id),
                )
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
            message = await self._call(
                f"posting in {channel_id}",
                lambda: channel.send(allowed_mentions=NO_PINGS, nonce=nonce, **kwargs),  # type: ignore[call-overload]
            )
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
        partial = channel.get_partial_message(message_id)
        try:
            thread = await self._call(
                f"opening a thread in {channel_id}",
                lambda: partial.create_thread(name=clip(name, 100), auto_archive_duration=1440),
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
        if self._index is not None:
            self._index[thread.id] = thread
        return thread.id

    def pack(self, count: int) -> list[tuple[int, ...]]:
        return pack(count)

    async def send_papers(
        self,
        target_id: int,
        digest: Digest,
        indices: Sequence[int],
        part: int,
        parts: int,
        *,
        nonce: str | None = None,
    ) -> int:
        embeds, view = papers_message(digest, indices, part, parts)
        return await self._send(target_id, nonce, embeds=embeds, view=view)

    async def find_own(
        self,
        channel_id: int,
        day: dt.date,
        *,
        after: int | None = None,
        since: dt.datetime | None = None,
    ) -> dict[int, int]:
        """The bot's own messages of ``day``'s digest in a channel or thread, by part (0: the
        header), read back from Discord.

        ``after``: the messages after that one, oldest first. Otherwise the newest back to
        ``since`` (or the newest :data:`FIND_LIMIT`), stopping at the header. At most
        :data:`FIND_LIMIT` messages are read (a request per 100). A channel or thread that
        doesn't exist (yet) holds none."""
        me = self.client.user
        if me is None:
            return {}
        try:
            channel = await self._channel(channel_id)
        except ChannelGoneError:
            return {}
        if not isinstance(channel, discord.abc.Messageable):
            return {}

        def own_part(message: discord.Message) -> int | None:
            if message.author.id != me.id:
                return None
            marker = read_marker(
                message.content, [e.footer.text for e in message.embeds if e.footer.text]
            )
            return marker[1] if marker is not None and marker[0] == day else None

        async def page(
            before: discord.Object | None, start: discord.Object | None
        ) -> list[discord.Message]:
            # One request: up to 100 messages, newest first, or oldest first after ``start``.
            return [m async for m in channel.history(limit=PAGE, before=before, after=start)]

        messages: list[discord.Message] = []
        cursor = discord.Object(id=after) if after is not None else None
        try:
            while len(messages) < FIND_LIMIT:
                # A request per page, each within the budget.
                bounds = (None, cursor) if after is not None else (cursor, None)
                batch = await self._call(f"reading {channel_id}", functools.partial(page, *bounds))
                if after is None and since is not None:
                    batch = [m for m in batch if m.created_at >= since]
                messages.extend(batch)
                done = after is None and any(own_part(m) == 0 for m in batch)
                if len(batch) < PAGE or done:
                    break  # the end, or the header (what a digest posted is after it)
                cursor = discord.Object(id=batch[-1].id)
        except discord.NotFound:
            return {}
        except discord.Forbidden as exc:
            # No Read Message History (the channel style doesn't need it): the bot can't read
            # its messages back. That must not fail a digest it may post: nothing is found,
            # and the nonce alone guards a quick retry.
            log.info("cannot read %s back (Discord %s): relying on nonces", channel_id, exc.code)
            return {}
        except discord.HTTPException as exc:
            raise _translate(exc, f"channel {channel_id}") from exc
        except NETWORK_ERRORS as exc:
            raise _unreachable(exc, f"reading {channel_id}") from exc
        found: dict[int, int] = {}
        for message in sorted(messages, key=lambda m: m.id):
            part = own_part(message)
            if part is not None:
                found.setdefault(part, message.id)
        return found

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

    async def send_empty(
        self, channel_id: int, day: dt.date, reason: EmptyReason, *, nonce: str | None = None
    ) -> int:
        # Bold "Hot Papers DAY" first: how the bot recognises it when reading the channel back.
        content = f"**Hot Papers {day.isoformat()}** — {empty_text(reason)}"
        return await self._send(channel_id, nonce, content=clip(content, 2000))

    async def send_alert(self, channel_id: int, alert: DeliveryAlert) -> int:
        return await self._send(channel_id, None, content=alert_text(alert))
