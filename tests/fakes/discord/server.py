"""Fake Discord on 127.0.0.1: REST under /api/v10 and the gateway websocket for discord.py."""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import fnmatch
import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import WSMsgType, web

from tests.fakes.discord.ratelimits import BucketState, RateLimiter, RateLimits
from tests.fakes.discord.state import (
    ChannelType,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeWorld,
    Overwrite,
    Permission,
)
from tests.fakes.discord.validation import (
    CLOSE_SHARDING_REQUIRED,
    FLAG_EPHEMERAL,
    INTERACTION_DEADLINE_S,
    MAX_GUILDS_PER_SHARD,
    RequestValidator,
    check_identify,
)

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
RESUME_PATH = "/gateway/resume"

FLAG_HAS_THREAD = 1 << 5
FLAG_LOADING = 1 << 7
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9

# Which intent a dispatch needs (events not listed are always sent).
_EVENT_INTENTS = {
    "GUILD_CREATE": INTENT_GUILDS,
    "GUILD_UPDATE": INTENT_GUILDS,
    "GUILD_DELETE": INTENT_GUILDS,
    "CHANNEL_CREATE": INTENT_GUILDS,
    "CHANNEL_UPDATE": INTENT_GUILDS,
    "CHANNEL_DELETE": INTENT_GUILDS,
    "THREAD_CREATE": INTENT_GUILDS,
    "THREAD_UPDATE": INTENT_GUILDS,
    "THREAD_DELETE": INTENT_GUILDS,
    "MESSAGE_CREATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_UPDATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_DELETE": INTENT_GUILD_MESSAGES,
}

# Callback types that are valid answers to each interaction type.
_CALLBACKS_FOR = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}

_HISTORY_MAX = 1000
# How long Discord remembers an enforced nonce ("the past few minutes").
NONCE_WINDOW_S = 120.0


def _now_header() -> str:
    return f"{time.time() + 1:.3f}"


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer with exactly ``Content-Type: application/json`` (discord.py compares it
    verbatim: with ``; charset=utf-8`` it would treat the body as text)."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str, code: int, **extra: Any) -> web.Response:
    return json_response({"message": message, "code": code, **extra}, status=status)


def _no_content() -> web.Response:
    # No Content-Type: with application/json discord.py would try to parse the empty body.
    return web.Response(status=204)


def unknown(what: str, code: int) -> web.Response:
    return error_response(404, f"Unknown {what}", code)


MISSING_PERMISSIONS = (403, "Missing Permissions", 50013)
MISSING_ACCESS = (403, "Missing Access", 50001)


@dataclass(slots=True)
class RecordedRequest:
    """One REST request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    operation_id: str | None = None
    status: int | None = None
    dropped: bool = False  # the connection was cut: the client never saw ``status``
    # Uploaded files of a multipart request: form field ("files[0]") → (file name, bytes).
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


_RECORD_KEY = web.RequestKey("fake_discord_record", RecordedRequest)

# A test's hook on REST requests (FakeDiscord.request_hook), awaited with the phase and the
# request: "received" (before it is served), "served" (done, its answer not sent yet) and
# "answered" (the answer was written to the connection). False from "received" cuts the
# connection and the request is never served; False from "served" cuts it before the answer.
RequestHook = Callable[[str, RecordedRequest], Awaitable[bool | None]]


@dataclass(slots=True)
class _Fault:
    method: str
    pattern: str | re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    remaining: int
    skip: int = 0  # matching requests let through before this fault applies
    # "before": the connection is cut before the request is served; "after": it is served
    # (Discord did the work) and the connection is cut before the answer arrives.
    drop: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.fullmatch(path) is not None
        return fnmatch.fnmatchcase(path, self.pattern)


@dataclass(slots=True)
class InteractionCallback:
    """What the bot answered to an interaction, and how long after the dispatch."""

    type: int
    data: dict[str, Any]
    elapsed: float
    with_response: bool

    @property
    def content(self) -> str | None:
        return self.data.get("content")

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.data.get("embeds") or []

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def deferred(self) -> bool:
        return self.type in (5, 6)

    @property
    def choices(self) -> list[dict[str, Any]]:
        return self.data.get("choices") or []


@dataclass(slots=True)
class _Interaction:
    id: int
    token: str
    type: int
    name: str
    payload: dict[str, Any]
    channel_id: int | None
    member: FakeMember | None
    dispatched_at: float = 0.0
    callback: InteractionCallback | None = None
    original: dict[str, Any] | None = None
    original_edits: int = 0
    followups: list[dict[str, Any]] = field(default_factory=list)
    # Why the fake refused the bot's callback (late, invalid body...), so waits fail fast.
    refused: str | None = None


class InteractionResult:
    """Handle on a dispatched interaction: the bot's callback, the original message, followups."""

    def __init__(self, fake: FakeDiscord, record: _Interaction) -> None:
        self._fake = fake
        self._record = record

    @property
    def id(self) -> int:
        return self._record.id

    @property
    def token(self) -> str:
        return self._record.token

    @property
    def payload(self) -> dict[str, Any]:
        """The INTERACTION_CREATE data that was dispatched."""
        return self._record.payload

    @property
    def callback(self) -> InteractionCallback | None:
        return self._record.callback

    async def response(self, timeout: float = INTERACTION_DEADLINE_S) -> InteractionCallback:  # noqa: ASYNC109 - a bounded wait is the test API
        """The callback the bot sent (waits up to ``timeout`` seconds for it)."""
        record = self._record
        await self._fake.wait_until(
            lambda: record.callback is not None or record.refused is not None,
            timeout,
            f"/{record.name}: no interaction response within {timeout} s",
        )
        if record.callback is None:
            raise AssertionError(f"/{record.name}: the fake refused the response: {record.refused}")
        return record.callback

    def original(self) -> dict[str, Any] | None:
        """The interaction's original message as it stands now (after any edits)."""
        return self._record.original

    async def edited_original(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109 - a bounded wait is the test API
        """Waits until the original response was edited (e.g. after a defer) and returns it."""
        await self._fake.wait_until(
            lambda: self._record.original_edits > 0,
            timeout,
            f"/{self._record.name}: original response not edited within {timeout} s",
        )
        assert self._record.original is not None
        return self._record.original

    async def followups(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:  # noqa: ASYNC109 - a bounded wait is the test API
        """Waits for at least ``count`` followup messages and returns all of them."""
        await self._fake.wait_until(
            lambda: len(self._record.followups) >= count,
            timeout,
            f"/{self._record.name}: {len(self._record.followups)} followups, expected {count}",
        )
        return list(self._record.followups)

    @property
    def followup_messages(self) -> list[dict[str, Any]]:
        return list(self._record.followups)


@dataclass(slots=True)
class _Session:
    id: str
    intents: int
    shard: tuple[int, int]
    seq: int = 0
    ws: web.WebSocketResponse | None = None
    ready: bool = False  # READY and the GUILD_CREATEs have been sent
    history: collections.deque[tuple[int, str]] = field(
        default_factory=lambda: collections.deque(maxlen=_HISTORY_MAX)
    )
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def wants(self, event: str, data: Any) -> bool:
        needed = _EVENT_INTENTS.get(event, 0)
        if needed and not self.intents & needed:
            return False
        guild_id = None
        if isinstance(data, dict):
            guild_id = data.get("guild_id") or (
                data.get("id") if event.startswith("GUILD_") else None
            )
        shard_id, shard_count = self.shard
        if guild_id is None:
            # "Gateway events that do not contain a guild_id will only be sent to the first
            # shard" (DMs, entitlements...).
            return shard_id == 0
        return (int(guild_id) >> 22) % shard_count == shard_id


class FakeDiscord:
    """aiohttp app on 127.0.0.1 speaking Discord's REST API v10 and gateway to discord.py.

    Every REST request is recorded in :attr:`requests`, checked by :mod:`validation`, and
    anything wrong is appended to :attr:`violations` (Discord-level errors also get the 400
    Discord would send). Use :meth:`fail_next` for 429/5xx/403 injection, and ``ratelimits``
    (or the :attr:`ratelimits` attribute) to enforce Discord's rate limits (:mod:`ratelimits`).

    The gateway shards as Discord does: an IDENTIFY with ``shard: [id, count]`` gets READY and
    GUILD_CREATEs for the guilds with ``(guild_id >> 22) % count == id`` only, and from then on
    only their events (events without a guild go to shard 0 only); without ``shard``, every
    guild. A bad ``shard`` closes the socket with 4010, a session over
    :attr:`max_guilds_per_session` guilds with 4011. ``GET /gateway/bot`` recommends
    :attr:`recommended_shards` (by default one per 1,000 guilds). Two sessions on the same shard
    are both served its events, as Discord documents ("You can establish multiple sessions with
    the same [shard_id, num_shards]"): neither replaces the other, and of two answers to one
    interaction the second gets 40060.
    """

    def __init__(
        self,
        *,
        world: FakeWorld | None = None,
        token: str | None = "fake-bot-token",  # noqa: S107 - a fake token for a local fake
        validate: bool = True,
        spec_path: Path | str | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_interval_ms: int = 41_250,
        host: str = "127.0.0.1",
        ratelimits: RateLimits | None = None,
    ) -> None:
        self.world = world or FakeWorld()
        self.token = token
        self.clock = clock
        # Off (None) unless asked for: see the ``ratelimits`` property.
        self.ratelimiter: RateLimiter | None = None
        self.ratelimits = ratelimits
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.host = host
        # Loaded eagerly: a missing spec must fail loudly here, never pass silently later.
        self.validator = RequestValidator.load(spec_path) if validate else None
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.gateway_connects: list[str] = []
        self._faults: list[_Fault] = []
        # enforce_nonce: (author id, nonce) -> (message id, when), remembered NONCE_WINDOW_S.
        self._nonces: dict[tuple[str, str], tuple[int, float]] = {}
        # Tests: False stands for every nonce forgotten, as Discord does after its few minutes.
        self.honour_nonces = True
        # Tests: a RequestHook (None, the default: none) to hold, cut or time requests.
        self.request_hook: RequestHook | None = None
        self._sessions: dict[str, _Session] = {}
        # Sharding: what GET /gateway/bot recommends (None: one shard per 1,000 guilds, as
        # Discord roughly does), and the most guilds one session may hold (Discord: 2,500).
        self.recommended_shards: int | None = None
        self.max_guilds_per_session = MAX_GUILDS_PER_SHARD
        self._sockets: set[web.WebSocketResponse] = set()
        self._interactions: dict[int, _Interaction] = {}
        self._by_token: dict[str, _Interaction] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._changed: asyncio.Condition | None = None

    @property
    def ratelimits(self) -> RateLimits | None:
        """The rate limits enforced (None: none, the default). Setting them starts empty
        buckets and counts, on the fake's clock."""
        return self.ratelimiter.limits if self.ratelimiter is not None else None

    @ratelimits.setter
    def ratelimits(self, limits: RateLimits | None) -> None:
        self.ratelimiter = None if limits is None else RateLimiter(limits, self.clock)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> Self:
        self._changed = asyncio.Condition()
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        log.info("fake discord listening on %s", self.api_base)
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"fake discord closing")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}{GATEWAY_PATH}"

    @property
    def resume_gateway_url(self) -> str:
        """What READY advertises; a distinct path so tests can see the client honoured it."""
        return f"ws://{self.host}:{self.port}{RESUME_PATH}"

    @property
    def intents(self) -> int | None:
        """The intents of the latest IDENTIFY (None before any)."""
        return self.identifies[-1].get("intents") if self.identifies else None

    # -- waiting --------------------------------------------------------------------------

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a bounded wait is the test API
        message: str = "condition",
    ) -> None:
        """Waits until ``predicate()`` holds (re-checked on every request/gateway event)."""
        if self._changed is None:
            raise RuntimeError("FakeDiscord is not started")
        changed = self._changed
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    # Woken by the fake's own events; the short poll catches client-side
                    # effects (discord.py caching a dispatched channel) that notify nobody.
                    async with changed:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(changed.wait(), 0.02)
        except TimeoutError:
            raise AssertionError(f"timed out: {message}") from None

    # -- recording ------------------------------------------------------------------------

    def violation(self, text: str) -> None:
        log.warning("fake discord violation: %s", text)
        self.violations.append(text)

    def take_violations(self) -> list[str]:
        """Returns and clears the recorded violations (for tests that provoke one on purpose)."""
        taken, self.violations = self.violations, []
        return taken

    def requests_to(self, method: str, pattern: str) -> list[RecordedRequest]:
        """Recorded requests whose path (relative to /api/v10) matches a glob."""
        return [
            r for r in self.requests if r.method == method and fnmatch.fnmatchcase(r.path, pattern)
        ]

    # -- fault injection ------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        *,
        retry_after: float = 0.05,
        via: bool = True,
        skip: int = 0,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (after letting ``skip``
        of them through: ``skip=2`` fails the third message).

        ``path_pattern`` is a glob (``/channels/*/messages``) or a compiled regex, matched
        against the path after /api/v10. A 429 gets the rate-limit body and headers Discord
        sends (``Retry-After``, ``X-RateLimit-*``, ``Via``: discord.py retries only with it;
        ``via=False`` imitates a Cloudflare ban, which discord.py raises instead).
        """
        fault_headers: dict[str, str] = {}
        if body is None:
            body = self._default_error_body(status, retry_after)
        if status == 429:
            fault_headers = {
                "Retry-After": str(max(1, math.ceil(retry_after))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": "fakebucket429",
                "X-RateLimit-Scope": "user",
            }
            if via:
                fault_headers["Via"] = "1.1 google"
        fault_headers.update(headers or {})
        self._faults.append(
            _Fault(method.upper(), path_pattern, status, body, fault_headers, times, skip)
        )

    def drop_next(
        self,
        method: str,
        path_pattern: str | re.Pattern[str],
        *,
        after: bool = False,
        times: int = 1,
        skip: int = 0,
    ) -> None:
        """Cut the connection of the next ``times`` matching requests (after ``skip``) without
        an answer: a network failure. ``after=True`` serves the request first: Discord did the
        work (e.g. posted the message) but the answer was lost on the way back."""
        self._faults.append(
            _Fault(
                method.upper(),
                path_pattern,
                0,
                None,
                {},
                times,
                skip,
                drop="after" if after else "before",
            )
        )

    @staticmethod
    def _default_error_body(status: int, retry_after: float) -> dict[str, Any]:
        if status == 429:
            return {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": False,
            }
        if status == 403:
            return {"message": MISSING_PERMISSIONS[1], "code": MISSING_PERMISSIONS[2]}
        reasons = {
            400: "Bad Request",
            401: "Unauthorized",
            404: "Not Found",
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
        }
        return {"message": f"{status}: {reasons.get(status, 'Error')}", "code": 0}

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.matches(method, path):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- world helpers that keep connected clients in sync --------------------------------

    async def add_guild(self, name: str = "Test Guild", **kwargs: Any) -> FakeGuild:
        guild = self.world.add_guild(name, **kwargs)
        await self.dispatch("GUILD_CREATE", guild.gateway_dict(joining=True))
        return guild

    async def remove_bot(self, guild: FakeGuild) -> None:
        """A moderator kicks the bot: it leaves the member list and gets GUILD_DELETE without
        ``unavailable`` (which is how Discord tells a removal from an outage)."""
        guild.members.pop(self.world.bot_user.id, None)
        await self.dispatch("GUILD_DELETE", {"id": str(guild.id)})

    async def add_channel(self, guild: FakeGuild, name: str, **kwargs: Any) -> FakeChannel:
        channel = self.world.add_channel(guild, name, **kwargs)
        await self.dispatch("CHANNEL_CREATE", channel.to_dict())
        return channel

    async def restrict_bot(self, channel: FakeChannel, *, deny: int = 0, allow: int = 0) -> None:
        """Change the bot's overwrite in ``channel`` (e.g. ``deny=Permission.SEND_MESSAGES``)."""
        self.world.set_bot_overwrite(channel, allow=allow, deny=deny)
        await self.dispatch("CHANNEL_UPDATE", channel.to_dict())

    async def delete_channel(self, channel: FakeChannel, *, notify: bool = True) -> None:
        """Delete a channel; ``notify=False`` simulates a deletion the client missed."""
        channel.deleted = True
        if notify:
            await self.dispatch(
                "THREAD_DELETE" if channel.is_thread else "CHANNEL_DELETE", channel.to_dict()
            )

    def messages(self, channel: FakeChannel | int) -> list[dict[str, Any]]:
        """Messages stored in a channel (ephemeral interaction responses are not)."""
        channel_id = channel if isinstance(channel, int) else channel.id
        return self.world.messages_in(channel_id)

    # -- gateway --------------------------------------------------------------------------

    async def dispatch(self, event: str, data: Any) -> int:
        """Send a DISPATCH to every session that wants it (buffered for disconnected
        sessions so a RESUME replays it). Returns how many live sockets got it."""
        sent = 0
        for session in list(self._sessions.values()):
            if not session.wants(event, data):
                continue
            async with session.lock:
                session.seq += 1
                frame = json.dumps({"op": 0, "t": event, "s": session.seq, "d": data})
                session.history.append((session.seq, frame))
                if session.ws is not None and await self._send(session.ws, frame):
                    sent += 1
        return sent

    async def _send(self, ws: web.WebSocketResponse, frame: str) -> bool:
        if ws.closed:
            return False
        try:
            await ws.send_str(frame)
        except (ConnectionResetError, RuntimeError):
            return False
        return True

    @property
    def connected(self) -> int:
        """How many sessions currently have an open socket."""
        return sum(1 for s in self._sessions.values() if s.ws is not None and not s.ws.closed)

    @property
    def ready_sessions(self) -> int:
        """How many sessions have an open socket and were sent READY and their GUILD_CREATEs
        (an interaction dispatched now reaches their client after those)."""
        return sum(
            1 for s in self._sessions.values() if s.ready and s.ws is not None and not s.ws.closed
        )

    async def disconnect_clients(self, code: int = 4000, *, invalidate: bool = False) -> int:
        """Close every gateway socket with ``code`` (4000 = resumable). ``invalidate`` drops
        the sessions first so the client's RESUME gets op 9 and it re-IDENTIFYs."""
        if invalidate:
            self._sessions.clear()
        sockets = list(self._sockets)
        for ws in sockets:
            await ws.close(code=code, message=b"fake discord disconnect")
        return len(sockets)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, compress=False)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.gateway_connects.append(request.path)
        session: _Session | None = None
        try:
            await ws.send_str(
                json.dumps({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op, data = payload.get("op"), payload.get("d")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    session = await self._identify(ws, data or {})
                elif op == 6:
                    session = await self._resume(ws, data or {})
                elif op in (3, 4, 8):
                    log.debug("fake discord: gateway op %s ignored", op)
                else:
                    log.warning("fake discord: unknown gateway op %r", op)
                await self._notify()
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
            await self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        if self.token is not None and data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        problems = check_identify(data)
        if problems:
            for _code, text in problems:
                self.violation(text)
            code = problems[0][0]
            await ws.close(code=code, message=_CLOSE_REASONS.get(code, b"Invalid payload."))
            return None
        shard_raw = data.get("shard") or [0, 1]
        shard = (int(shard_raw[0]), int(shard_raw[1]))
        guilds = [
            g
            for g in self.world.guilds.values()
            if (g.id >> 22) % shard[1] == shard[0] and self.world.bot_user.id in g.members
        ]
        if len(guilds) > self.max_guilds_per_session:
            # The world's size, not a client's mistake: closed as Discord does, not a violation.
            await ws.close(code=CLOSE_SHARDING_REQUIRED, message=b"Sharding required.")
            return None
        self.identifies.append({k: v for k, v in data.items() if k != "token"})
        if any(
            s.shard == shard and s.ws is not None and not s.ws.closed
            for s in self._sessions.values()
        ):
            log.info("fake discord: a second session on shard %s: both get its events", shard)
        session = _Session(id=secrets.token_hex(16), intents=int(data["intents"]), shard=shard)
        session.ws = ws
        self._sessions[session.id] = session
        ready = {
            "v": 10,
            "user": self.world.me_dict(),
            "user_settings": {},
            "session_type": "normal",
            "session_id": session.id,
            "resume_gateway_url": self.resume_gateway_url,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "application": {"id": str(self.world.application_id), "flags": 0},
            "auth": {},
            "shard": list(session.shard),
            "_trace": ['["fake-discord",{"micros":0}]'],
        }
        async with session.lock:
            for event, body in [
                ("READY", ready),
                *(("GUILD_CREATE", g.gateway_dict()) for g in guilds),
            ]:
                session.seq += 1
                frame = json.dumps({"op": 0, "t": event, "s": session.seq, "d": body})
                session.history.append((session.seq, frame))
                await self._send(ws, frame)
            session.ready = True
        log.debug(
            "fake discord: session %s identified with intents %s", session.id, session.intents
        )
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> _Session | None:
        self.resumes.append({k: v for k, v in data.items() if k != "token"})
        session = self._sessions.get(str(data.get("session_id")))
        seq = data.get("seq") or 0
        oldest = session.history[0][0] if session and session.history else 1
        if (
            session is None
            or (self.token is not None and data.get("token") != self.token)
            or seq < oldest - 1
        ):
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return None
        async with session.lock:
            session.ws = ws
            for s, frame in list(session.history):
                if s > seq:
                    await self._send(ws, frame)
            session.seq += 1
            frame = json.dumps(
                {"op": 0, "t": "RESUMED", "s": session.seq, "d": {"_trace": ["fake-discord"]}}
            )
            await self._send(ws, frame)
        log.debug("fake discord: session %s resumed from seq %s", session.id, seq)
        return session

    # -- interactions ---------------------------------------------------------------------

    async def send_interaction(
        self,
        name: str,
        *,
        member: FakeMember,
        channel: FakeChannel,
        options: list[dict[str, Any]] | None = None,
        interaction_type: int = 2,
        command_type: int = 1,
        resolved: dict[str, Any] | None = None,
        locale: str = "en-US",
        require_registered: bool = True,
    ) -> InteractionResult:
        """Dispatch a real INTERACTION_CREATE (2 = slash command, 4 = autocomplete) from
        ``member`` in ``channel`` and return a handle on what the bot answers."""
        if not self._sessions:
            raise RuntimeError("no gateway session: connect the client before sending interactions")
        guild = self.world.guild_of(channel)
        command = self.world.find_command(name, guild.id, command_type)
        if command is None and require_registered:
            raise LookupError(
                f"command {name!r} is not registered with the fake Discord for guild {guild.id}: "
                "sync the tree first (await bot.tree.sync(guild=discord.Object(id=...)))"
            )
        member_perms = self.world.permissions_in(channel, member)
        interaction_id = self.world.snowflake()
        token = f"aW50ZXJhY3Rpb246{interaction_id}:{secrets.token_urlsafe(48)}"
        data: dict[str, Any] = {
            "id": command["id"] if command else str(self.world.snowflake()),
            "name": name,
            "type": command_type,
        }
        if options:
            data["options"] = options
        if resolved:
            data["resolved"] = resolved
        if command and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        channel_data = channel.to_dict()
        channel_data["permissions"] = str(member_perms)
        member_data = member.to_dict()
        member_data["permissions"] = str(member_perms)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.world.application_id),
            "type": interaction_type,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
            "channel_id": str(channel.id),
            "channel": channel_data,
            "member": member_data,
            "token": token,
            "version": 1,
            "app_permissions": str(self.world.bot_permissions_in(channel)),
            "locale": locale,
            "guild_locale": guild.locale,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        record = _Interaction(
            id=interaction_id,
            token=token,
            type=interaction_type,
            name=name,
            payload=payload,
            channel_id=channel.id,
            member=member,
        )
        self._interactions[interaction_id] = record
        self._by_token[token] = record
        record.dispatched_at = self.clock()
        if not any(s.wants("INTERACTION_CREATE", payload) for s in self._sessions.values()):
            raise RuntimeError(
                f"no gateway session on the shard of guild {guild.id}: connect a client to it "
                "before sending its interactions"
            )
        await self.dispatch("INTERACTION_CREATE", payload)
        return InteractionResult(self, record)

    def _interaction_meta(self, record: _Interaction) -> dict[str, Any]:
        user = record.member.user.to_dict() if record.member else None
        return {
            "webhook_id": str(self.world.application_id),
            "application_id": str(self.world.application_id),
            "interaction_metadata": {
                "id": str(record.id),
                "type": record.type,
                "user": user,
                "authorizing_integration_owners": record.payload["authorizing_integration_owners"],
                "name": record.name,
                "command_type": record.payload["data"].get("type", 1),
            },
            "interaction": {
                "id": str(record.id),
                "type": record.type,
                "name": record.name,
                "user": user,
            },
        }

    def _new_interaction_message(
        self, record: _Interaction, data: dict[str, Any], message_type: int
    ) -> dict[str, Any]:
        message = self.world.build_message(
            record.channel_id or 0,
            data,
            message_type=message_type,
            extra=self._interaction_meta(record),
        )
        if not message["flags"] & FLAG_EPHEMERAL:
            self.world.store_message(message)
        return message

    # -- REST plumbing --------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        path = request.path[len(API_PREFIX) :]
        body, bad_json, files = await self._read_body(request)
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query),
            body=body,
            # The token is a secret even in a fake's records.
            headers={
                k: ("Bot ***" if k.lower() == "authorization" else v)
                for k, v in request.headers.items()
            },
            files=files,
        )
        self.requests.append(record)
        request[_RECORD_KEY] = record
        hook = self.request_hook
        if hook is not None and await hook("received", record) is False:
            response = self._drop(request, record, error_response(500, "dropped", 0))
        else:
            response = await self._answer(request, handler, record, bad_json)
        record.status = response.status
        await self._notify()
        if hook is not None and not record.dropped:
            return await self._hooked_answer(hook, request, record, response)
        return response

    async def _hooked_answer(
        self,
        hook: RequestHook,
        request: web.Request,
        record: RecordedRequest,
        response: web.StreamResponse,
    ) -> web.StreamResponse:
        """The answer of a served request, written here so that ``hook`` hears when it left."""
        if await hook("served", record) is False:
            return self._drop(request, record, response)
        if request.transport is None or request.transport.is_closing():
            return response  # the client is gone: nobody to answer
        with contextlib.suppress(ConnectionError):
            await response.prepare(request)
            await response.write_eof()
            await hook("answered", record)
        return response

    async def _answer(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Any],
        record: RecordedRequest,
        bad_json: bool,
    ) -> web.StreamResponse:
        method, path = record.method, record.path
        if bad_json:
            self.violation(f"{method} {path}: body is not valid JSON")
            return error_response(400, "The request body contains invalid JSON.", 50109)
        authorised = request.headers.get("Authorization") == f"Bot {self.token}"
        if not self._is_token_route(path) and self.token is not None and not authorised:
            return error_response(401, "401: Unauthorized", 0)
        rejections: list[str] = []
        if self.validator is not None:
            op, report = self.validator.check(method, path, record.query, record.body)
            record.operation_id = op.operation_id if op else None
            for text in report.violations:
                self.violation(text)
            rejections = report.rejections
            if op is None:
                # Not Discord's endpoint: answer like Discord (404), the violation is recorded.
                rejections = []
        fault = self._take_fault(method, path)
        if fault is not None and fault.drop == "before":
            log.info("fake discord: dropping the connection of %s %s", method, path)
            return self._drop(request, record, error_response(500, "dropped", 0))
        if fault is not None and fault.drop is None:
            log.info("fake discord: injecting %s for %s %s", fault.status, method, path)
            return json_response(fault.body, status=fault.status, headers=fault.headers)
        bucket: BucketState | None = None
        if self.ratelimiter is not None:
            verdict = self.ratelimiter.admit(
                method, path, exempt=self._is_token_route(path), bucket=_bucket_hash(request)
            )
            if isinstance(verdict, web.Response):
                log.debug("fake discord: rate limited %s %s", method, path)
                return verdict
            bucket = verdict
        if rejections:
            self._refuse_callback(path, "; ".join(rejections))
            return error_response(
                400,
                "Invalid Form Body",
                50035,
                errors={
                    "body": {
                        "_errors": [{"code": "FAKE_DISCORD", "message": r} for r in rejections]
                    }
                },
            )
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            if record.operation_id is not None:
                self.violation(
                    f"{method} {path} ({record.operation_id}) is documented but the fake does "
                    "not serve it: extend tests/fakes/discord/server.py"
                )
            return error_response(404, "404: Not Found", 0)
        except web.HTTPMethodNotAllowed:
            return error_response(405, "405: Method Not Allowed", 0)
        if 200 <= response.status < 300:
            self._add_ratelimit_headers(request, response)
            if bucket is not None:
                response.headers.update(bucket.headers(time.time()))
        if fault is not None and fault.drop == "after":
            log.info("fake discord: served %s %s, then dropped the connection", method, path)
            return self._drop(request, record, response)
        return response

    @staticmethod
    def _drop(
        request: web.Request, record: RecordedRequest, response: web.StreamResponse
    ) -> web.StreamResponse:
        """Cut the TCP connection: the client sees a disconnection, never ``response``."""
        record.dropped = True
        if request.transport is not None:
            request.transport.abort()
        return response

    def _refuse_callback(self, path: str, reason: str) -> None:
        found = re.match(r"^/interactions/(\d+)/[^/]+/callback$", path)
        record = self._interactions.get(int(found.group(1))) if found else None
        if record is not None and record.callback is None:
            record.refused = reason

    @staticmethod
    def _is_token_route(path: str) -> bool:
        return (
            path.startswith("/interactions/") or re.match(r"^/webhooks/\d+/[^/]+", path) is not None
        )

    @staticmethod
    def _add_ratelimit_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(
            {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "4",
                "X-RateLimit-Reset": _now_header(),
                "X-RateLimit-Reset-After": "1.000",
                "X-RateLimit-Bucket": _bucket_hash(request),
            }
        )

    @staticmethod
    async def _read_body(
        request: web.Request,
    ) -> tuple[Any, bool, dict[str, tuple[str, bytes]]]:
        """The JSON body (or a multipart request's ``payload_json``), whether it was bad JSON,
        and the files uploaded with it."""
        files: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "multipart/form-data":
            form = await request.post()
            raw = form.get("payload_json")
            text = raw if isinstance(raw, str) else None
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files[name] = (value.filename, value.file.read())
        else:
            text = (await request.read()).decode("utf-8", "replace")
        if not text or not text.strip():
            return None, False, files
        try:
            return json.loads(text), False, files
        except json.JSONDecodeError:
            return None, True, files

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        r = API_PREFIX
        router.add_get(GATEWAY_PATH, self._gateway)
        router.add_get(RESUME_PATH, self._gateway)
        routes: list[tuple[str, str, Callable[[web.Request], Any]]] = [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/{app_id}/commands", self._get_commands),
            ("PUT", "/applications/{app_id}/commands", self._put_commands),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self._get_commands),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self._put_commands),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._post_callback),
            ("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", self._get_webhook_message),
            (
                "PATCH",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self._patch_webhook_message,
            ),
            (
                "DELETE",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self._delete_webhook_message,
            ),
            ("POST", "/webhooks/{app_id}/{token}", self._post_followup),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("GET", "/channels/{channel_id}/messages", self._get_messages),
            ("POST", "/channels/{channel_id}/messages", self._post_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self._patch_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message),
            (
                "POST",
                "/channels/{channel_id}/messages/{message_id}/threads",
                self._post_message_thread,
            ),
            ("POST", "/channels/{channel_id}/threads", self._post_thread),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._get_guild_channels),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("GET", "/guilds/{guild_id}/roles", self._get_roles),
        ]
        for method, path, handler in routes:
            router.add_route(method, r + path, handler)

    # -- REST helpers ---------------------------------------------------------------------

    @staticmethod
    def _snowflake(request: web.Request, key: str) -> int | None:
        raw = request.match_info.get(key, "")
        return int(raw) if raw.isdigit() else None

    def _channel(self, request: web.Request, needs: int = 0) -> FakeChannel | web.Response:
        channel_id = self._snowflake(request, "channel_id")
        channel = self.world.live_channel(channel_id) if channel_id is not None else None
        if channel is None:
            return unknown("Channel", 10003)
        perms = self.world.bot_permissions_in(channel)
        if not perms & Permission.VIEW_CHANNEL:
            return error_response(*MISSING_ACCESS)
        if needs & ~perms:
            missing = Permission(needs & ~perms)
            log.info("fake discord: bot lacks %s in channel %s", missing, channel.id)
            return error_response(*MISSING_PERMISSIONS)
        return channel

    def _guild(self, request: web.Request) -> FakeGuild | web.Response:
        guild_id = self._snowflake(request, "guild_id")
        guild = self.world.guilds.get(guild_id) if guild_id is not None else None
        if guild is None:
            return unknown("Guild", 10004)
        return guild

    def _check_app(self, request: web.Request) -> web.Response | None:
        if self._snowflake(request, "app_id") != self.world.application_id:
            return error_response(*MISSING_ACCESS)
        return None

    def _channel_message(self, channel: FakeChannel, request: web.Request) -> dict[str, Any] | None:
        message_id = self._snowflake(request, "message_id")
        message = self.world.messages.get(message_id) if message_id is not None else None
        if message is None or int(message["channel_id"]) != channel.id:
            return None
        return message

    async def _gateway_message_event(self, event: str, message: dict[str, Any]) -> None:
        channel = self.world.channels.get(int(message["channel_id"]))
        if channel is None or message["flags"] & FLAG_EPHEMERAL:
            return
        if event == "MESSAGE_DELETE":
            data: dict[str, Any] = {"id": message["id"], "channel_id": message["channel_id"]}
        else:
            data = dict(message)
        data["guild_id"] = str(channel.guild_id)
        await self.dispatch(event, data)

    # -- REST: users, gateway, application ------------------------------------------------

    async def _get_me(self, request: web.Request) -> web.Response:
        return json_response(self.world.me_dict())

    async def _get_user(self, request: web.Request) -> web.Response:
        user_id = self._snowflake(request, "user_id")
        user = self.world.users.get(user_id) if user_id is not None else None
        return json_response(user.to_dict()) if user else unknown("User", 10013)

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": f"ws://{self.host}:{self.port}{GATEWAY_PATH}"})

    def shards_recommended(self) -> int:
        """What ``GET /gateway/bot`` says: :attr:`recommended_shards`, else one shard per
        1,000 guilds the bot is in (at least one)."""
        if self.recommended_shards is not None:
            return self.recommended_shards
        joined = sum(1 for g in self.world.guilds.values() if self.world.bot_user.id in g.members)
        return max(1, math.ceil(joined / 1000))

    def sessions_on(self, shard: tuple[int, int]) -> int:
        """Sessions with an open socket that identified as ``shard`` (``(0, 1)``: unsharded)."""
        return sum(
            1
            for s in self._sessions.values()
            if s.shard == shard and s.ws is not None and not s.ws.closed
        )

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": f"ws://{self.host}:{self.port}{GATEWAY_PATH}",
                "shards": self.shards_recommended(),
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_application(self, request: web.Request) -> web.Response:
        return json_response(self.world.application_dict())

    async def _get_commands(self, request: web.Request) -> web.Response:
        if (bad := self._check_app(request)) is not None:
            return bad
        if "guild_id" in request.match_info:
            guild = self._guild(request)
            if isinstance(guild, web.Response):
                return error_response(*MISSING_ACCESS)
            return json_response(self.world.guild_commands.get(guild.id, []))
        return json_response(self.world.global_commands)

    async def _put_commands(self, request: web.Request) -> web.Response:
        if (bad := self._check_app(request)) is not None:
            return bad
        body = self._body(request)
        payload = body if isinstance(body, list) else []
        guild_id = None
        if "guild_id" in request.match_info:
            guild = self._guild(request)
            if isinstance(guild, web.Response):
                return error_response(*MISSING_ACCESS)
            guild_id = guild.id
        stored = self.world.store_commands(payload, guild_id)
        log.info("fake discord: %d commands synced (guild %s)", len(stored), guild_id)
        return json_response(stored)

    # -- REST: interactions and their webhooks --------------------------------------------

    @staticmethod
    def _body(request: web.Request) -> Any:
        # The middleware already read (and recorded) the body of the request being served.
        record = request.get(_RECORD_KEY)
        return record.body if record is not None else None

    async def _post_callback(self, request: web.Request) -> web.Response:
        interaction_id = self._snowflake(request, "interaction_id")
        record = self._interactions.get(interaction_id) if interaction_id is not None else None
        if record is None or record.token != request.match_info["token"]:
            return unknown("interaction", 10062)
        elapsed = self.clock() - record.dispatched_at
        if elapsed > INTERACTION_DEADLINE_S:
            self.violation(
                f"/{record.name}: interaction callback after {elapsed:.2f} s "
                f"(Discord's limit is {INTERACTION_DEADLINE_S:.0f} s; defer slow work)"
            )
            record.refused = f"answered after {elapsed:.2f} s"
            return unknown("interaction", 10062)
        if record.callback is not None:
            return error_response(400, "Interaction has already been acknowledged.", 40060)
        body = self._body(request)
        body = body if isinstance(body, dict) else {}
        cb_type = body.get("type")
        raw_data = body.get("data")
        data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        if cb_type not in _CALLBACKS_FOR.get(record.type, set()):
            self.violation(
                f"/{record.name}: callback type {cb_type!r} is invalid "
                f"for interaction type {record.type}"
            )
            record.refused = f"callback type {cb_type!r}"
            return error_response(
                400,
                "Invalid Form Body",
                50035,
                errors={
                    "type": {
                        "_errors": [
                            {
                                "code": "INTERACTION_RESPONSE_TYPE_INVALID",
                                "message": "Invalid interaction response type",
                            }
                        ]
                    }
                },
            )
        with_response = request.query.get("with_response", "").lower() in {"1", "true"}
        record.callback = InteractionCallback(cb_type, data, elapsed, with_response)
        message = None
        if cb_type == 4:
            message = record.original = self._new_interaction_message(record, data, 20)
        elif cb_type == 5:
            loading = {"flags": FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)}
            message = record.original = self._new_interaction_message(record, loading, 20)
        log.debug(
            "fake discord: /%s answered with type %s after %.3f s", record.name, cb_type, elapsed
        )
        if record.original is not None and not record.original["flags"] & FLAG_EPHEMERAL:
            await self._gateway_message_event("MESSAGE_CREATE", record.original)
        if not with_response:
            return _no_content()
        flags = int((message or {}).get("flags") or 0)
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(record.id),
                "type": record.type,
                "response_message_loading": bool(flags & FLAG_LOADING),
                "response_message_ephemeral": bool(flags & FLAG_EPHEMERAL),
            }
        }
        if message is not None:
            answer["interaction"]["response_message_id"] = message["id"]
            answer["resource"] = {"type": cb_type, "message": message}
        return json_response(answer)

    def _webhook_record(self, request: web.Request) -> _Interaction | None:
        record = self._by_token.get(request.match_info["token"])
        if record is None or self._snowflake(request, "app_id") != self.world.application_id:
            return None
        return record

    def _webhook_target(self, request: web.Request, record: _Interaction) -> dict[str, Any] | None:
        key = request.match_info["message_id"]
        if key == "@original":
            return record.original
        for message in [record.original, *record.followups]:
            if message is not None and message["id"] == key:
                return message
        return None

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        if record is None:
            return unknown("Webhook", 10015)
        message = self._webhook_target(request, record)
        return json_response(message) if message else unknown("Message", 10008)

    async def _patch_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        if record is None:
            return unknown("Webhook", 10015)
        message = self._webhook_target(request, record)
        if message is None:
            return unknown("Message", 10008)
        body = self._body(request)
        self.world.edit_message(message, body if isinstance(body, dict) else {})
        message["flags"] &= ~FLAG_LOADING
        if message is record.original:
            record.original_edits += 1
        await self._gateway_message_event("MESSAGE_UPDATE", message)
        return json_response(message)

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        if record is None:
            return unknown("Webhook", 10015)
        message = self._webhook_target(request, record)
        if message is None:
            return unknown("Message", 10008)
        if message is record.original:
            record.original = None
        else:
            record.followups.remove(message)
        self.world.delete_message(int(message["id"]))
        await self._gateway_message_event("MESSAGE_DELETE", message)
        return _no_content()

    async def _post_followup(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        if record is None or record.callback is None:
            return unknown("Webhook", 10015)
        body = self._body(request)
        body = body if isinstance(body, dict) else {}
        original = record.original
        if original is not None and original["flags"] & FLAG_LOADING:
            # Discord: the first followup after a deferred response replaces the "thinking"
            # message (keeping the defer's ephemerality) instead of posting a new one.
            keep = original["flags"] & FLAG_EPHEMERAL
            self.world.edit_message(original, {k: v for k, v in body.items() if k != "flags"})
            original["flags"] = keep
            original["edited_timestamp"] = None
            record.original_edits += 1
            message = original
            await self._gateway_message_event("MESSAGE_UPDATE", message)
        else:
            message = self._new_interaction_message(record, body, 0)
            await self._gateway_message_event("MESSAGE_CREATE", message)
        record.followups.append(message)
        if request.query.get("wait", "").lower() in {"1", "true"}:
            return json_response(message)
        return _no_content()

    # -- REST: channels, messages, threads ------------------------------------------------

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        return channel if isinstance(channel, web.Response) else json_response(channel.to_dict())

    async def _get_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request, Permission.READ_MESSAGE_HISTORY)
        if isinstance(channel, web.Response):
            return channel
        # Discord: limit 1-100 (default 50); at most one of around, before, after; the answer
        # is newest first, and with ``after`` it holds the oldest ``limit`` after that id.
        query = request.query
        try:
            limit = int(query.get("limit") or 50)
            bounds = {k: int(query[k]) for k in ("around", "before", "after") if k in query}
        except ValueError:
            return error_response(400, "Invalid Form Body", 50035)
        if not 1 <= limit <= 100 or len(bounds) > 1:
            return error_response(400, "Invalid Form Body", 50035)
        ordered = sorted(self.world.messages_in(channel.id), key=lambda m: int(m["id"]))
        ids = [int(m["id"]) for m in ordered]
        if "after" in bounds:
            start = bisect.bisect_right(ids, bounds["after"])
            chosen = ordered[start : start + limit]
        elif "before" in bounds:
            end = bisect.bisect_left(ids, bounds["before"])
            chosen = ordered[max(0, end - limit) : end]
        elif "around" in bounds:
            middle = bisect.bisect_left(ids, bounds["around"])
            start = max(0, middle - limit // 2)
            chosen = ordered[start : start + limit]
        else:
            chosen = ordered[-limit:]
        return json_response(chosen[::-1])

    def _send_permissions(self, channel: FakeChannel, body: dict[str, Any]) -> int:
        needs = (
            Permission.SEND_MESSAGES_IN_THREADS if channel.is_thread else Permission.SEND_MESSAGES
        )
        if body.get("embeds"):
            needs |= Permission.EMBED_LINKS
        if body.get("attachments"):
            needs |= Permission.ATTACH_FILES
        if body.get("message_reference"):
            needs |= Permission.READ_MESSAGE_HISTORY
        return needs

    async def _post_message(self, request: web.Request) -> web.Response:
        body = self._body(request)
        body = body if isinstance(body, dict) else {}
        channel = self._channel(request)
        if isinstance(channel, web.Response):
            return channel
        channel = self._channel(request, self._send_permissions(channel, body))
        if isinstance(channel, web.Response):
            return channel
        nonce_key = None
        if self.honour_nonces and body.get("enforce_nonce") and body.get("nonce") is not None:
            # Discord: a message by the same author with the same nonce in the past few
            # minutes is returned instead of creating another one.
            nonce_key = (str(self.world.bot_user.id), str(body["nonce"]))
            seen = self._nonces.get(nonce_key)
            if seen is not None and self.clock() - seen[1] <= NONCE_WINDOW_S:
                earlier = self.world.messages.get(seen[0])
                if earlier is not None:
                    return json_response(earlier)
        message = self.world.store_message(self.world.build_message(channel.id, body))
        if nonce_key is not None:
            self._nonces[nonce_key] = (int(message["id"]), self.clock())
        await self._gateway_message_event("MESSAGE_CREATE", message)
        return json_response(message)

    async def _get_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request, Permission.READ_MESSAGE_HISTORY)
        if isinstance(channel, web.Response):
            return channel
        message = self._channel_message(channel, request)
        return json_response(message) if message else unknown("Message", 10008)

    async def _patch_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if isinstance(channel, web.Response):
            return channel
        message = self._channel_message(channel, request)
        if message is None:
            return unknown("Message", 10008)
        body = self._body(request)
        body = body if isinstance(body, dict) else {}
        if message["author"]["id"] != str(self.world.bot_user.id):
            return error_response(403, "Cannot edit a message authored by another user", 50005)
        if (
            body.get("embeds")
            and not self.world.bot_permissions_in(channel) & Permission.EMBED_LINKS
        ):
            return error_response(*MISSING_PERMISSIONS)
        self.world.edit_message(message, body)
        await self._gateway_message_event("MESSAGE_UPDATE", message)
        return json_response(message)

    async def _delete_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if isinstance(channel, web.Response):
            return channel
        message = self._channel_message(channel, request)
        if message is None:
            return unknown("Message", 10008)
        own = message["author"]["id"] == str(self.world.bot_user.id)
        if not own and not self.world.bot_permissions_in(channel) & Permission.MANAGE_MESSAGES:
            return error_response(*MISSING_PERMISSIONS)
        self.world.delete_message(int(message["id"]))
        await self._gateway_message_event("MESSAGE_DELETE", message)
        return _no_content()

    def _thread_response(self, thread: FakeChannel) -> dict[str, Any]:
        data = thread.to_dict()
        data["member"] = {
            "id": str(thread.id),
            "user_id": str(self.world.bot_user.id),
            "join_timestamp": thread.created_at,
            "flags": 1,
        }
        return data

    async def _post_message_thread(self, request: web.Request) -> web.Response:
        channel = self._channel(
            request, Permission.CREATE_PUBLIC_THREADS | Permission.READ_MESSAGE_HISTORY
        )
        if isinstance(channel, web.Response):
            return channel
        if channel.type not in (ChannelType.GUILD_TEXT, ChannelType.GUILD_ANNOUNCEMENT):
            return error_response(400, "Cannot execute action on this channel type", 50024)
        message = self._channel_message(channel, request)
        if message is None:
            return unknown("Message", 10008)
        if message.get("thread"):
            return error_response(400, "A thread has already been created for this message", 160004)
        body = self._body(request)
        body = body if isinstance(body, dict) else {}
        thread = self.world.add_thread(
            channel,
            str(body.get("name") or "thread"),
            type=ChannelType.ANNOUNCEMENT_THREAD
            if channel.type == ChannelType.GUILD_ANNOUNCEMENT
            else ChannelType.PUBLIC_THREAD,
            # A thread started from a message shares the message's id.
            thread_id=int(message["id"]),
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
        )
        message["thread"] = thread.to_dict()
        message["flags"] |= FLAG_HAS_THREAD
        await self.dispatch(
            "THREAD_CREATE", {**self._thread_response(thread), "newly_created": True}
        )
        return json_response(self._thread_response(thread))

    async def _post_thread(self, request: web.Request) -> web.Response:
        body = self._body(request)
        body = body if isinstance(body, dict) else {}
        channel = self._channel(request)
        if isinstance(channel, web.Response):
            return channel
        forum = channel.type == ChannelType.GUILD_FORUM
        kind = (
            ChannelType.PUBLIC_THREAD
            if forum
            else int(body.get("type") or ChannelType.PRIVATE_THREAD)
        )
        needs = (
            Permission.SEND_MESSAGES
            if forum
            else (
                Permission.CREATE_PRIVATE_THREADS
                if kind == ChannelType.PRIVATE_THREAD
                else Permission.CREATE_PUBLIC_THREADS
            )
        )
        channel = self._channel(request, needs)
        if isinstance(channel, web.Response):
            return channel
        thread = self.world.add_thread(
            channel,
            str(body.get("name") or "thread"),
            type=kind,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
            rate_limit_per_user=int(body.get("rate_limit_per_user") or 0),
            invitable=bool(body.get("invitable", True)),
        )
        answer = self._thread_response(thread)
        if forum and isinstance(body.get("message"), dict):
            starter = self.world.build_message(thread.id, body["message"])
            starter["id"] = str(thread.id)
            answer["message"] = self.world.store_message(starter)
        await self.dispatch("THREAD_CREATE", {**answer, "newly_created": True})
        return json_response(answer)

    # -- REST: guilds ---------------------------------------------------------------------

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if isinstance(guild, web.Response):
            return guild
        data = guild.rest_dict()
        if request.query.get("with_counts", "").lower() in {"1", "true"}:
            data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return json_response(data)

    async def _get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if isinstance(guild, web.Response):
            return guild
        return json_response([c.to_dict() for c in guild.live_channels()])

    async def _get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if isinstance(guild, web.Response):
            return guild
        user_id = self._snowflake(request, "user_id")
        member = guild.members.get(user_id) if user_id is not None else None
        return json_response(member.to_dict()) if member else unknown("Member", 10007)

    async def _get_roles(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if isinstance(guild, web.Response):
            return guild
        return json_response([r.to_dict() for r in guild.roles.values()])


_CLOSE_REASONS = {
    4002: b"Error while decoding payload.",
    4010: b"Invalid shard.",
    4011: b"Sharding required.",
    4013: b"Invalid intent(s).",
}


def _bucket_hash(request: web.Request) -> str:
    """The route's bucket (one per method and route, as Discord's; the channel id is the
    major parameter that tells its buckets apart)."""
    route = request.match_info.route.resource
    canonical = route.canonical if route is not None else request.path
    return hashlib.sha1(
        f"{request.method} {canonical}".encode(), usedforsecurity=False
    ).hexdigest()[:16]


def overwrite_for_role(role_id: int, *, allow: int = 0, deny: int = 0) -> Overwrite:
    """A role permission overwrite (for ``FakeWorld.add_channel(overwrites=...)``)."""
    return Overwrite(role_id, 0, int(allow), int(deny))


def permissions(*perms: Permission | int) -> int:
    """OR permission bits: ``permissions(Permission.SEND_MESSAGES, Permission.EMBED_LINKS)``."""
    value = 0
    for perm in perms:
        value |= int(perm)
    return value
