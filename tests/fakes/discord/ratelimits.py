"""Discord's rate limits for the fake Discord (opt-in): the global limit and channel buckets.

Off by default, so tests that don't ask for limits see the fake exactly as before. Given a
:class:`RateLimits` (``FakeDiscord(ratelimits=...)`` or ``fake.ratelimits = ...`` later):

* every REST request counts against the bot's global limit, ``global_per_second`` per second,
  in a ``"fixed"`` window (it opens with the first request after the previous one closed and
  lasts one second, like Discord's buckets: a burst can straddle two windows) or a
  ``"sliding"`` one (at most that many in any second). Interaction callbacks and the
  interaction webhooks (``/interactions/…``, ``/webhooks/{app}/{token}…``) are exempt, as
  Discord documents ("interaction endpoints are not bound to the bot's global rate limit");
* ``POST /channels/{id}/messages`` counts against that channel's bucket, ``channel_messages``
  per ``channel_window_seconds`` (a thread is a channel: it has its own bucket). The window
  opens with the first message and closes ``channel_window_seconds`` later.

Over a limit the fake answers what Discord answers: 429 with ``{"message": "You are being rate
limited.", "retry_after": <float s>, "global": <bool>}``, ``Retry-After`` (whole seconds,
rounded up), ``X-RateLimit-Scope`` (``global`` or ``user``), ``X-RateLimit-Global: true`` for the
global limit, the bucket headers for a channel's, ``Via: 1.1 google`` (discord.py retries a 429
only with it) and exactly ``Content-Type: application/json``. A message accepted carries its
channel bucket's real state (``X-RateLimit-Limit/Remaining/Reset/Reset-After``), so discord.py
paces itself as it would against Discord. :attr:`RateLimiter.counts` says what was counted and
refused, by kind.
"""

from __future__ import annotations

import collections
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

GlobalWindow = Literal["fixed", "sliding"]
RATE_LIMITED = "You are being rate limited."
MESSAGE_ROUTE = re.compile(r"^/channels/(\d+)/messages$")
# Buckets idle this long are forgotten (the fan-out of 10,000 guilds makes 20,000 of them).
_PRUNE_EVERY = 4096


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Which limits the fake enforces; the defaults are Discord's."""

    global_per_second: int = 50
    global_window: GlobalWindow = "fixed"
    channel_messages: int = 5
    channel_window_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.global_per_second < 1 or self.channel_messages < 1:
            raise ValueError("rate limits must allow at least one request")
        if self.channel_window_seconds <= 0:
            raise ValueError("channel_window_seconds must be positive")
        if self.global_window not in ("fixed", "sliding"):
            raise ValueError(f"global_window must be fixed or sliding, not {self.global_window!r}")


@dataclass(slots=True)
class RateLimitCounts:
    """What the limiter saw since it was made (or :meth:`RateLimiter.reset_counts`)."""

    counted: int = 0  # requests let through the global limit (they reached the route)
    exempt: int = 0  # interaction requests, not bound by the global limit
    global_429: int = 0
    route_429: int = 0  # refused by a channel's message bucket
    messages: int = 0  # message posts let through their channel's bucket

    def as_dict(self) -> dict[str, int]:
        return {
            "counted": self.counted,
            "exempt": self.exempt,
            "global_429": self.global_429,
            "route_429": self.route_429,
            "messages": self.messages,
        }


@dataclass(frozen=True, slots=True)
class BucketState:
    """A channel bucket after a message was let through: what its headers say."""

    limit: int
    remaining: int
    reset_after: float

    def headers(self, wall_now: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{wall_now + self.reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.reset_after:.3f}",
        }


@dataclass(slots=True)
class _Window:
    started: float
    used: int = 0


@dataclass(slots=True)
class RateLimiter:
    """Enforces :class:`RateLimits` on the fake's requests, on the fake's (injectable) clock."""

    limits: RateLimits
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    counts: RateLimitCounts = field(default_factory=RateLimitCounts)
    _global: _Window | None = None
    _recent: collections.deque[float] = field(default_factory=collections.deque)
    _channels: dict[int, _Window] = field(default_factory=dict)
    _since_prune: int = 0

    def reset_counts(self) -> RateLimitCounts:
        """Returns the counts so far and starts new ones (the limits' state is kept)."""
        taken, self.counts = self.counts, RateLimitCounts()
        return taken

    def admit(
        self, method: str, path: str, *, exempt: bool = False, bucket: str = ""
    ) -> BucketState | web.Response | None:
        """Let a request through (None, or its channel bucket's state for a message post) or
        refuse it with the 429 Discord would send. ``path`` is relative to /api/v10."""
        if exempt:
            self.counts.exempt += 1
            return None
        now = self.clock()
        wait = self._global_wait(now)
        if wait is not None:
            self.counts.global_429 += 1
            return too_many_requests(wait, is_global=True)
        self._take_global(now)
        self.counts.counted += 1
        found = MESSAGE_ROUTE.match(path) if method == "POST" else None
        if found is None:
            return None
        return self._take_channel(int(found.group(1)), now, bucket)

    # -- the global limit -----------------------------------------------------------------

    def _global_wait(self, now: float) -> float | None:
        limit = self.limits.global_per_second
        if self.limits.global_window == "sliding":
            recent = self._recent
            while recent and recent[0] <= now - 1.0:
                recent.popleft()
            return recent[0] + 1.0 - now if len(recent) >= limit else None
        window = self._global
        if window is None or now >= window.started + 1.0:
            return None
        return window.started + 1.0 - now if window.used >= limit else None

    def _take_global(self, now: float) -> None:
        if self.limits.global_window == "sliding":
            self._recent.append(now)
            return
        if self._global is None or now >= self._global.started + 1.0:
            self._global = _Window(now)
        self._global.used += 1

    # -- channel buckets ------------------------------------------------------------------

    def _take_channel(self, channel_id: int, now: float, bucket: str) -> BucketState | web.Response:
        size, limit = self.limits.channel_window_seconds, self.limits.channel_messages
        self._prune(now)
        window = self._channels.get(channel_id)
        if window is None or now >= window.started + size:
            window = self._channels[channel_id] = _Window(now)
        reset_after = _ceil_ms(window.started + size - now)
        if window.used >= limit:
            self.counts.route_429 += 1
            state = BucketState(limit, 0, reset_after)
            headers = state.headers(self.wall_clock())
            if bucket:
                headers["X-RateLimit-Bucket"] = bucket
            return too_many_requests(reset_after, is_global=False, headers=headers)
        window.used += 1
        self.counts.messages += 1
        return BucketState(limit, limit - window.used, reset_after)

    def _prune(self, now: float) -> None:
        self._since_prune += 1
        if self._since_prune < _PRUNE_EVERY:
            return
        self._since_prune = 0
        size = self.limits.channel_window_seconds
        for channel_id in [c for c, w in self._channels.items() if now >= w.started + size]:
            del self._channels[channel_id]


def _ceil_ms(seconds: float) -> float:
    """Rounded up to the millisecond: a client waiting what the header says is never early."""
    return max(0.0, math.ceil(seconds * 1000) / 1000)


def too_many_requests(
    retry_after: float, *, is_global: bool, headers: dict[str, str] | None = None
) -> web.Response:
    """Discord's 429: JSON body, ``Retry-After``, scope, ``Via`` (discord.py retries only with
    it) and exactly ``Content-Type: application/json``."""
    retry_after = _ceil_ms(retry_after)
    answer = {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Scope": "global" if is_global else "user",
        "Via": "1.1 google",
        **(headers or {}),
    }
    if is_global:
        answer["X-RateLimit-Global"] = "true"
    body = {"message": RATE_LIMITED, "retry_after": retry_after, "global": is_global}
    return web.Response(
        body=json.dumps(body).encode(),
        status=429,
        content_type="application/json",
        headers=answer,
    )
