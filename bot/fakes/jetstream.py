"""A fake Jetstream instance on 127.0.0.1 speaking the legacy v1 ``/subscribe`` JSON wire.

It keeps an ordered event log and serves ``GET /subscribe`` as a websocket: ``cursor`` (unix µs,
≥ 10^15) replays the retained events from that time and then streams live ones, with no gap and
no duplicate at the seam; no cursor is live only; a cursor older than the lookback is clamped
silently to the oldest retained event, as v1 does. ``wantedCollections`` filters commits only
(account and identity events always pass), ``wantedDids`` filters every kind. Faults: closing
or dropping every socket, restarts, refused handshakes (HTTP 5xx), silence (the client's
watchdog must fire), raw and garbage frames, and a close after N frames.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, web

from bot.fakes.server import FakeServer, json_response
from bot.sources.bluesky import POST_COLLECTION, micros

log = logging.getLogger(__name__)

UTC = dt.UTC
SUBSCRIBE_PATH = "/subscribe"
TIME_CURSOR_FLOOR = 10**15  # below: a v2 sequence number, which this v1 fake does not serve
DEFAULT_LOOKBACK_HOURS = 36.0
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"  # atproto's base32-sortable


# -- event builders (the v1 wire's shapes) --------------------------------------------------


def tid(time_us: int, clock_id: int = 0) -> str:
    """An atproto TID (13 base32-sortable characters) for ``time_us``: a realistic rkey/rev."""
    value = (time_us << 10) | (clock_id & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def fake_cid(*parts: object) -> str:
    """A CID-shaped string (``bafyrei…``), deterministic in ``parts``."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "bafyrei" + "".join(alphabet[b % 32] for b in digest + digest[:20])[:52]


def _iso(time_us: int) -> str:
    moment = dt.datetime.fromtimestamp(time_us / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def post_event(
    did: str,
    time_us: int,
    *,
    rkey: str | None = None,
    text: str = "",
    record: Mapping[str, Any] | None = None,
    operation: str = "create",
    collection: str = POST_COLLECTION,
) -> dict[str, Any]:
    """A ``kind: commit`` event; ``record`` (default: a plain post of ``text``) is absent on
    deletes, as on the real wire."""
    rkey = rkey or tid(time_us)
    commit: dict[str, Any] = {
        "rev": tid(time_us, 1),
        "operation": operation,
        "collection": collection,
        "rkey": rkey,
    }
    if operation != "delete":
        body = dict(record) if record is not None else None
        if body is None:
            body = {"$type": collection, "createdAt": _iso(time_us), "langs": ["en"], "text": text}
        commit["record"] = body
        commit["cid"] = fake_cid(did, rkey, time_us)
    return {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}


def account_event(
    did: str, time_us: int, *, active: bool = True, status: str | None = None, seq: int = 1
) -> dict[str, Any]:
    """A ``kind: account`` event (``active: false, status: deleted`` = the account is gone)."""
    account: dict[str, Any] = {"active": active, "did": did, "seq": seq, "time": _iso(time_us)}
    if status is not None:
        account["status"] = status
    return {"did": did, "time_us": time_us, "kind": "account", "account": account}


def identity_event(did: str, time_us: int, handle: str, *, seq: int = 1) -> dict[str, Any]:
    """A ``kind: identity`` event (a handle change)."""
    identity = {"did": did, "handle": handle, "seq": seq, "time": _iso(time_us)}
    return {"did": did, "time_us": time_us, "kind": "identity", "identity": identity}


# -- the server ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """One logged event, encoded once (replay sends ``text`` as is)."""

    time_us: int
    did: str
    kind: str
    collection: str | None
    text: str


@dataclass(frozen=True, slots=True)
class SubscribeRecord:
    """One ``/subscribe`` handshake as the fake saw it (refused ones included)."""

    cursor: str | None  # as sent (None = live only)
    wanted_collections: tuple[str, ...]
    wanted_dids: tuple[str, ...]
    refused: bool  # answered with a queued HTTP error instead of a websocket
    arrived_at: float  # time.monotonic()

    @property
    def cursor_us(self) -> int | None:
        return int(self.cursor) if self.cursor is not None else None


@dataclass(eq=False, slots=True)
class _Subscriber:
    ws: web.WebSocketResponse
    request: web.Request
    collections: tuple[str, ...]
    dids: frozenset[str]
    close_after: int | None
    queue: asyncio.Queue[_Entry | str | bytes] = field(default_factory=asyncio.Queue)
    sent: int = 0
    sender: asyncio.Task[None] | None = None

    def wants(self, entry: _Entry) -> bool:
        if entry.kind == "sync":  # the v1 wire never emits #sync
            return False
        if self.dids and entry.did not in self.dids:
            return False
        if entry.kind != "commit" or not self.collections:
            return True  # v1: account and identity events ignore wantedCollections
        name = entry.collection or ""
        return any(
            name.startswith(c[:-1]) if c.endswith(".*") else name == c for c in self.collections
        )


def _time_of(entry: _Entry) -> int:
    return entry.time_us


class FakeJetstream(FakeServer):
    """One Jetstream instance: ``GET /subscribe`` over an in-memory, time-ordered event log.

    ``clock`` decides the lookback window (``lookback_hours``, default 36 h, as v1) and the
    ``time_us`` stamped on events that come without one; ``retained_from_us`` additionally
    forgets everything older (an instance that no longer holds those events). Both can be
    changed at any time. ``subscribe_url`` is what a client connects to.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        lookback_hours: float = DEFAULT_LOOKBACK_HOURS,
        retained_from_us: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.clock: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(UTC))
        self.lookback_hours = lookback_hours
        self.retained_from_us = retained_from_us
        self._log: list[_Entry] = []
        self._subscribers: set[_Subscriber] = set()
        self._speaking = asyncio.Event()
        self._speaking.set()
        self._raw_next: deque[str | bytes] = deque()
        self._raw_next_times = 0
        self._close_after: deque[int] = deque()
        self._closing: set[asyncio.Task[Any]] = set()
        self.frames_sent = 0  # frames written to sockets, replay and live, raw ones included
        self.clamped = 0  # handshakes whose cursor was older than the retained window
        self.app.router.add_get(SUBSCRIBE_PATH, self._subscribe)

    @property
    def subscribe_url(self) -> str:
        """``ws://127.0.0.1:PORT/subscribe``."""
        return "ws" + self.url.removeprefix("http") + SUBSCRIBE_PATH

    # -- the log ---------------------------------------------------------------------------

    def add(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Log ``event`` (history: not pushed to open sockets); stamps ``time_us`` if missing."""
        stamped = self._stamped(event)
        self._insert(_encode(stamped))
        return stamped

    def add_many(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Log many events at once (sorted by ``time_us``, stable)."""
        self._log.extend(_encode(self._stamped(e)) for e in events)
        self._log.sort(key=_time_of)

    def publish(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Log ``event`` and push it to every open socket that wants it (live)."""
        stamped = self._stamped(event)
        entry = _encode(stamped)
        self._insert(entry)
        for sub in self._subscribers:
            sub.queue.put_nowait(entry)
        return stamped

    @property
    def events(self) -> list[dict[str, Any]]:
        """The whole log (retained or not), oldest first, as decoded dicts."""
        return [json.loads(e.text) for e in self._log]

    def floor_us(self) -> int:
        """The oldest ``time_us`` this instance still serves: lookback and retention."""
        lookback = dt.timedelta(hours=self.lookback_hours)
        floor = micros(self.clock() - lookback)
        if self.retained_from_us is not None:
            floor = max(floor, self.retained_from_us)
        return floor

    # -- what clients did ------------------------------------------------------------------

    @property
    def connections(self) -> list[SubscribeRecord]:
        """Every ``/subscribe`` handshake, oldest first, refused ones included."""
        return [
            SubscribeRecord(
                cursor=r.query.get("cursor"),
                wanted_collections=tuple(r.query.getall("wantedCollections", ())),
                wanted_dids=tuple(r.query.getall("wantedDids", ())),
                refused=r.canned,
                arrived_at=r.arrived_at,
            )
            for r in self.requests_to(SUBSCRIBE_PATH)
        ]

    @property
    def cursors(self) -> list[int | None]:
        """The cursor of every handshake (None = live only), oldest first."""
        return [c.cursor_us for c in self.connections]

    @property
    def subscribers(self) -> int:
        """Sockets open now."""
        return len(self._subscribers)

    # -- faults ----------------------------------------------------------------------------

    def refuse_connections(self, n: int = 1, *, status: int = 502) -> None:
        """The next ``n`` handshakes fail with HTTP ``status`` (no upgrade)."""
        body = json.dumps({"error": "Unavailable", "message": f"HTTP {status}"})
        self.fail_next(status, body, times=n, path=SUBSCRIBE_PATH)

    def close_all(self, code: int = WSCloseCode.GOING_AWAY) -> int:
        """The server closes every socket with a close frame; returns how many.

        Returns at once: the closing handshake finishes while the client reads.
        """
        subs = list(self._subscribers)
        for sub in subs:
            self._stop_sender(sub)
            task = asyncio.create_task(sub.ws.close(code=code))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(subs)

    def drop_all(self) -> int:
        """Every socket's TCP connection is cut without a close frame; returns how many."""
        subs = list(self._subscribers)
        for sub in subs:
            self._stop_sender(sub)
            transport = sub.request.transport
            if transport is not None:
                transport.abort()
        return len(subs)

    async def stop_listening(self) -> None:
        """Cut every socket and stop accepting connections (refused at TCP) on this port."""
        self.drop_all()
        if self.port is not None:
            self._wanted_port = self.port
        await super().close()

    async def restart(self) -> None:
        """Cut every socket, stop listening, and listen again on the same port."""
        await self.stop_listening()
        await self.start()

    def go_silent(self) -> None:
        """Keep sockets open but send nothing (events queue up) until ``resume()``."""
        self._speaking.clear()

    def resume(self) -> None:
        """Send again, starting with what queued up while silent."""
        self._speaking.set()

    def inject_garbage(self, data: str | bytes) -> None:
        """Send ``data`` as one raw frame (text for str, binary for bytes) to every socket."""
        for sub in self._subscribers:
            sub.queue.put_nowait(data)

    def send_raw_next(self, data: str | bytes, *, times: int = 1) -> None:
        """The next ``times`` connections get ``data`` as their first frame, before replay."""
        self._raw_next.append(data)
        self._raw_next_times = max(self._raw_next_times, times)

    def close_after(self, frames: int, *, times: int = 1) -> None:
        """The next ``times`` connections are closed by the server after ``frames`` frames."""
        self._close_after.extend([frames] * times)

    async def close(self) -> None:
        self.drop_all()
        for task in list(self._closing):
            task.cancel()
        await super().close()

    # -- the websocket ---------------------------------------------------------------------

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        cursor_text = query.get("cursor")
        cursor: int | None = None
        if cursor_text is not None:
            try:
                cursor = int(cursor_text)
            except ValueError:
                return _error(400, "InvalidCursor", "cursor must be an integer")
            if cursor < TIME_CURSOR_FLOOR:
                return _error(
                    400, "InvalidCursor", "this fake serves unix-microsecond cursors only"
                )
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        if not ws.can_prepare(request).ok:
            return _error(400, "NotWebSocket", "expected a websocket upgrade")
        await ws.prepare(request)

        raw_first = list(self._raw_next)
        if raw_first:
            self._raw_next_times -= 1
            if self._raw_next_times <= 0:
                self._raw_next.clear()
        sub = _Subscriber(
            ws=ws,
            request=request,
            collections=tuple(query.getall("wantedCollections", ())),
            dids=frozenset(query.getall("wantedDids", ())),
            close_after=self._close_after.popleft() if self._close_after else None,
        )
        # The snapshot and the registration happen with no await between them: an event
        # published before this point is in the replay, one published after it is queued.
        replay = self._replay(cursor)
        self._subscribers.add(sub)
        sub.sender = asyncio.create_task(self._send(sub, raw_first, replay))
        try:
            async for _msg in ws:
                pass  # v1 clients may send options updates; the fake ignores them
        finally:
            self._subscribers.discard(sub)
            self._stop_sender(sub)
        return ws

    def _replay(self, cursor: int | None) -> list[_Entry]:
        if cursor is None or cursor > micros(self.clock()):
            return []  # live only: no cursor, or one in the future
        floor = self.floor_us()
        if cursor < floor:
            self.clamped += 1  # v1 clamps silently; only a metric tells
        start = bisect.bisect_left(self._log, max(cursor, floor), key=_time_of)
        return self._log[start:]

    async def _send(
        self, sub: _Subscriber, raw_first: list[str | bytes], replay: list[_Entry]
    ) -> None:
        try:
            for raw in raw_first:
                await self._emit(sub, raw)
            for entry in replay:  # a tight loop: replay runs at socket speed
                if sub.wants(entry) and not await self._emit(sub, entry.text):
                    return
            while True:
                item = await sub.queue.get()
                if isinstance(item, _Entry):
                    if sub.wants(item) and not await self._emit(sub, item.text):
                        return
                elif not await self._emit(sub, item):
                    return
        except ConnectionError:
            return  # the client went away mid-send

    async def _emit(self, sub: _Subscriber, data: str | bytes) -> bool:
        """Send one frame; False once the socket is (being) closed."""
        if not self._speaking.is_set():
            await self._speaking.wait()
        if sub.ws.closed:
            return False
        if isinstance(data, str):
            await sub.ws.send_str(data)
        else:
            await sub.ws.send_bytes(data)
        sub.sent += 1
        self.frames_sent += 1
        if sub.close_after is not None and sub.sent >= sub.close_after:
            await sub.ws.close(code=WSCloseCode.GOING_AWAY)
            return False
        return True

    def _stop_sender(self, sub: _Subscriber) -> None:
        if sub.sender is not None and not sub.sender.done():
            sub.sender.cancel()

    def _insert(self, entry: _Entry) -> None:
        if not self._log or entry.time_us >= self._log[-1].time_us:
            self._log.append(entry)  # the usual case, and O(1) for a day of events
        else:
            bisect.insort_right(self._log, entry, key=_time_of)

    def _stamped(self, event: Mapping[str, Any]) -> dict[str, Any]:
        stamped = dict(event)
        if "time_us" not in stamped:
            stamped["time_us"] = micros(self.clock())
        return stamped


def _encode(event: Mapping[str, Any]) -> _Entry:
    commit = event.get("commit")
    collection = commit.get("collection") if isinstance(commit, Mapping) else None
    return _Entry(
        time_us=int(event["time_us"]),
        did=str(event.get("did", "")),
        kind=str(event.get("kind", "")),
        collection=collection,
        text=json.dumps(event, ensure_ascii=False, separators=(",", ":")),
    )


def _error(status: int, name: str, message: str) -> web.Response:
    return json_response(
        {"error": name, "message": message}, status=status, content_type="application/json"
    )
