"""What the Discord client's HTTP traffic tells the metrics: 429s, messages, interaction latency.

discord.py sends every REST request, interaction response and webhook call through one aiohttp
session, and takes an ``aiohttp.TraceConfig`` for it (``Client(http_trace=...)``). Observing
that session's answers counts what discord.py handles on its own (it waits out a 429 and
retries before our code sees anything) in one place, however the request was made.

Only the method, the path's shape and the status are read: never a body, never the token that
interaction and webhook paths carry, never a header but Discord's rate-limit scope.
"""

from __future__ import annotations

import collections
import logging
import re
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord

from bot.services.metrics import Metrics

log = logging.getLogger(__name__)

# /api/v10/interactions/{id}/{token}/callback: the first response to an interaction.
CALLBACK = re.compile(r"/interactions/(\d+)/[^/]+/callback$")
MESSAGES = re.compile(r"/channels/\d+/messages$")
# Interactions received but not answered yet are kept at most this many (oldest dropped):
# one that is never answered (the bot failed before responding) must not be kept for good.
PENDING_LIMIT = 2048
UNKNOWN_COMMAND = "unknown"


def rate_limit_scope(headers: Any) -> str:
    """``global`` for the bot's global limit (``X-RateLimit-Global``, or that scope), else
    ``route``: a route's bucket, or a resource's shared one."""
    scope = str(headers.get("X-RateLimit-Scope", "")).lower()
    is_global = str(headers.get("X-RateLimit-Global", "")).lower() == "true"
    return "global" if is_global or scope == "global" else "route"


class DiscordTelemetry:
    """Records the Discord client's traffic in :class:`Metrics`: pass :attr:`trace` to the
    client, and call :meth:`received` when an interaction arrives."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        pending_limit: int = PENDING_LIMIT,
    ) -> None:
        self.metrics = metrics
        self._monotonic = monotonic
        self._pending_limit = pending_limit
        # interaction id → (command, type, when received)
        self._pending: collections.OrderedDict[int, tuple[str, str, float]] = (
            collections.OrderedDict()
        )
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_end.append(self._on_request_end)

    def received(self, interaction: discord.Interaction[Any]) -> None:
        """An application command or autocomplete arrived: its latency runs from now."""
        kind = (
            "autocomplete"
            if interaction.type is discord.InteractionType.autocomplete
            else "command"
        )
        command = interaction.command
        # A stale command Discord still shows is not in the tree: one label for all of them.
        name = command.qualified_name if command is not None else UNKNOWN_COMMAND
        self._pending[interaction.id] = (name, kind, self._monotonic())
        while len(self._pending) > self._pending_limit:
            self._pending.popitem(last=False)

    def answered(self, interaction_id: int) -> None:
        """Discord accepted the first response to ``interaction_id``."""
        found = self._pending.pop(interaction_id, None)
        if found is not None:
            name, kind, received = found
            self.metrics.interaction_answered(name, kind, self._monotonic() - received)

    async def _on_request_end(
        self,
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        status = params.response.status
        if status == 429:
            self.metrics.discord_rate_limited(rate_limit_scope(params.response.headers))
            return
        if params.method != "POST" or not 200 <= status < 300:
            return
        path = params.url.path
        callback = CALLBACK.search(path)
        if callback is not None:
            self.answered(int(callback.group(1)))
        elif MESSAGES.search(path):
            self.metrics.message_sent()
