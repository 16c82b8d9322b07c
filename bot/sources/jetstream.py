"""Transport for Bluesky's Jetstream v1 ``/subscribe`` websocket: frames across reconnects.

``JetstreamClient.frames(cursor_us)`` is an endless async iterator of raw JSON text frames. It
knows its position (the ``time_us`` of the last frame, read with a regex rather than a full
parse) and, whenever a connection ends for any reason, reconnects to the *next* configured
instance with jittered exponential backoff, resuming by time a little before that position.
Cursors (v2 sequence numbers) are instance-local, so it never resumes by sequence number.

Delivery is therefore at-least-once: the frames after a reconnect overlap the last ones seen
before it (by ``resume_rewind_seconds``), and the consumer must be idempotent. Gaps (a cursor
older than an instance's lookback is clamped silently by v1) are the consumer's to report:
compare the first ``time_us`` after a resume with the cursor asked for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, wait_exponential, wait_random
from yarl import URL

from bot.sources.bluesky import POST_COLLECTION, BlueskySettings, micros

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], Awaitable[None]]

# Real frames are a few KiB at most; a frame beyond this is a broken or hostile server and
# ends the connection (aiohttp closes it with 1009), which we treat like any other disconnect.
MAX_FRAME_BYTES = 4 * 1024 * 1024
# How long to wait for the server's answer to our close frame (a dead peer never answers).
CLOSE_TIMEOUT_SECONDS = 5.0
# How close to "now" the position must be for the stream to count as live (replay finished).
LIVE_WITHIN_SECONDS = 10.0
# v1 reads a cursor at or above this as unix microseconds; below it as a v2 sequence number.
TIME_CURSOR_FLOOR = 10**15
# The first "time_us" in a v1 frame is the envelope's: Go encodes did, time_us, kind, commit
# in that order, and a "time_us" key inside a record's JSON string would be escaped (\").
_TIME_US = re.compile(r'"time_us"\s*:\s*(\d+)')


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def frame_time_us(text: str) -> int | None:
    """The envelope ``time_us`` of a v1 frame, without parsing the JSON; None if absent."""
    match = _TIME_US.search(text)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Frame:
    """One text frame as received, its ``time_us`` (None if it has none) and its instance."""

    text: str
    time_us: int | None
    instance: str
    # On the first frame of each connection: the cursor that connection asked for (None: live),
    # so the reader can tell when the instance no longer held that moment (a gap).
    asked_us: int | None = None
    first: bool = False


class _Disconnected(Exception):
    """Internal: why a connection ended (its message is the reason we log)."""


class JetstreamClient:
    """Follows Jetstream's v1 ``/subscribe`` across reconnects and instances.

    Status, for ``/status`` and metrics (all read-only for callers):

    * ``frames_received`` — text frames handed to the consumer (binary ones that decoded
      as UTF-8 included), over the client's lifetime.
    * ``untimed`` — of those, frames with no ``time_us`` (not JSON, or not an event); they
      are still yielded, with ``time_us=None``, and do not move the position.
    * ``garbage`` — binary frames that were not UTF-8: counted and skipped.
    * ``connections`` — successful handshakes; ``reconnects`` — connections that ended (or
      failed to open) and were followed by a new attempt.
    * ``connected`` / ``instance`` — whether a socket is open now, and the URL (without query)
      of the instance in use or being tried.
    * ``last_message_at`` — when the last data frame arrived (our clock), None before any.
    * ``last_disconnect`` — the reason the last connection ended or failed, None before any.
    * ``position_us`` — ``time_us`` of the last frame that had one; ``lag_seconds`` — how far
      that is behind the clock.

    ``sleep`` is used for every wait between attempts, so tests run the real loop at once.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: BlueskySettings,
        *,
        clock: Clock = _utc_now,
        sleep: Sleep = asyncio.sleep,
        collections: Sequence[str] = (POST_COLLECTION,),
        max_msg_size: int = MAX_FRAME_BYTES,
    ) -> None:
        if not settings.jetstream_urls:
            raise ValueError("at least one Jetstream URL is needed")
        self._session = session
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._collections = tuple(collections)
        self._max_msg_size = max_msg_size
        self._urls = tuple(settings.jetstream_urls)
        self._index = 0
        initial = settings.reconnect_initial_seconds
        self._max_wait = settings.reconnect_max_seconds
        # Exponential from ``initial``, plus up to ``initial`` of jitter, so that even waits at
        # the cap are spread out; the sum is clamped to the cap in ``_backoff``.
        self._wait = wait_exponential(
            multiplier=initial, min=initial, max=max(initial, self._max_wait - initial)
        ) + wait_random(0, initial)
        self._retry_state = RetryCallState(AsyncRetrying(), None, (), {})
        self._iterating = False

        self.position_us: int | None = None
        self.frames_received = 0
        self.untimed = 0
        self.garbage = 0
        self.connections = 0
        self.reconnects = 0
        self.connected = False
        self.last_message_at: dt.datetime | None = None
        self.last_disconnect: str | None = None

    # -- status ----------------------------------------------------------------------------

    @property
    def instance(self) -> str:
        """The instance in use (or the next to be tried), as configured."""
        return self._urls[self._index]

    @property
    def lag_seconds(self) -> float | None:
        """Seconds between the clock and the position; None before any timed frame."""
        if self.position_us is None:
            return None
        return (micros(self._clock()) - self.position_us) / 1_000_000

    def is_live(
        self, time_us: int | None = None, *, within_seconds: float = LIVE_WITHIN_SECONDS
    ) -> bool:
        """Whether ``time_us`` (default: the position) is within ``within_seconds`` of now.

        The consumer uses this to tell when a replay has reached the live edge.
        """
        when = self.position_us if time_us is None else time_us
        if when is None:
            return False
        return micros(self._clock()) - when <= within_seconds * 1_000_000

    def resume_cursor(self, cursor_us: int | None) -> int | None:
        """The cursor of the next connection: a little before the position, if there is one.

        Before any timed frame it is ``cursor_us`` as given (None = live only).
        """
        if self.position_us is None:
            return cursor_us
        rewind = round(self._settings.resume_rewind_seconds * 1_000_000)
        return max(TIME_CURSOR_FLOOR, self.position_us - rewind)

    def subscribe_url(self, instance: str, cursor_us: int | None) -> str:
        """``instance?wantedCollections=…[&cursor=…]`` (keeps any query the instance has)."""
        query: list[tuple[str, str]] = [("wantedCollections", c) for c in self._collections]
        if cursor_us is not None:
            query.append(("cursor", str(cursor_us)))
        return str(URL(instance).extend_query(query))

    # -- the stream ------------------------------------------------------------------------

    async def frames(self, cursor_us: int | None) -> AsyncGenerator[Frame, None]:
        """Every frame from ``cursor_us`` (unix µs; None = live) on, across reconnects.

        Never ends by itself; leave it with ``break`` (or ``aclose()``), which closes the
        socket, or by cancelling the task, which propagates. One iteration at a time per
        client; a new one starts from its own ``cursor_us`` (the position is reset).
        """
        if cursor_us is not None and cursor_us < TIME_CURSOR_FLOOR:
            raise ValueError(f"cursor {cursor_us} is not unix microseconds")
        if self._iterating:
            raise RuntimeError("JetstreamClient.frames() is already being iterated")
        self._iterating = True
        self.position_us = None
        failures = 0  # consecutive connections that delivered nothing
        first = True
        try:
            while True:
                if not first:
                    await self._before_reconnect(failures)
                first = False
                delivered = 0
                try:
                    # aclosing: leaving this generator must close the socket now, not at GC.
                    connection = self._connection(self.resume_cursor(cursor_us))
                    async with aclosing(connection) as frames:
                        async for frame in frames:
                            delivered += 1
                            yield frame
                except _Disconnected as exc:
                    self.last_disconnect = str(exc)
                failures = 0 if delivered else failures + 1
        finally:
            self._iterating = False

    async def _before_reconnect(self, failures: int) -> None:
        """Move to the next instance and wait out the backoff."""
        self.reconnects += 1
        previous = self.instance
        self._index = (self._index + 1) % len(self._urls)
        delay = self._backoff(failures)
        log.warning(
            "jetstream: %s: %s; reconnecting to %s in %.1fs",
            previous,
            self.last_disconnect,
            self.instance,
            delay,
        )
        await self._sleep(delay)

    def _backoff(self, failures: int) -> float:
        # Attempt 1 after a connection that delivered frames (or a first failure), growing
        # with each connection in a row that delivered nothing.
        self._retry_state.attempt_number = max(1, failures)
        return min(self._max_wait, self._wait(self._retry_state))

    async def _connection(self, cursor: int | None) -> AsyncGenerator[Frame, None]:
        """The frames of one connection; raises ``_Disconnected`` with the reason it ended."""
        instance = self.instance
        url = self.subscribe_url(instance, cursor)
        log.debug("jetstream: connecting to %s (cursor %s)", instance, cursor)
        try:
            ws = await self._session.ws_connect(
                url,
                max_msg_size=self._max_msg_size,
                autoping=True,
                autoclose=True,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_SECONDS),
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise _Disconnected(f"handshake refused: HTTP {exc.status}") from None
        except aiohttp.ClientError as exc:
            raise _Disconnected(f"connection failed: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise _Disconnected("handshake timed out") from None
        except OSError as exc:
            raise _Disconnected(f"connection failed: {exc}") from None
        self.connections += 1
        self.connected = True
        log.info("jetstream: connected to %s from %s", instance, _describe(cursor))
        first = True
        try:
            async with ws:
                while True:
                    text = await self._next_text(ws)
                    if text is None:
                        continue
                    time_us = frame_time_us(text)
                    self.frames_received += 1
                    if time_us is not None and time_us > self._future_us():
                        # A moment in the future is not a position (it would make the next
                        # reconnect start live and skip what lies between).
                        time_us = None
                    if time_us is None:
                        self.untimed += 1
                        log.debug("jetstream: frame without a usable time_us from %s", instance)
                    else:
                        self.position_us = time_us
                    yield Frame(text, time_us, instance, cursor if first else None, first)
                    first = False
        finally:
            self.connected = False

    def _future_us(self) -> int:
        """The latest ``time_us`` taken as a position: now, plus an hour of clock skew."""
        return micros(self._clock()) + 3_600_000_000

    async def _next_text(self, ws: aiohttp.ClientWebSocketResponse) -> str | None:
        """The next data frame as text; None for a skipped one; ``_Disconnected`` at the end.

        The watchdog bounds the wait for a *data* frame: pings answered by aiohttp inside
        ``receive`` do not reset it, since a server that pings but sends no events is stuck.
        """
        idle = self._settings.idle_timeout_seconds
        try:
            async with asyncio.timeout(idle):
                msg = await ws.receive()
        except TimeoutError:
            raise _Disconnected(f"no message for {idle:g}s") from None
        if msg.type is aiohttp.WSMsgType.TEXT:
            self.last_message_at = self._clock()
            return str(msg.data)
        if msg.type is aiohttp.WSMsgType.BINARY:
            self.last_message_at = self._clock()
            try:
                return bytes(msg.data).decode("utf-8")
            except UnicodeDecodeError:
                self.garbage += 1
                log.debug("jetstream: skipped a binary frame that is not UTF-8")
                return None
        if msg.type is aiohttp.WSMsgType.ERROR:
            raise _Disconnected(f"websocket error: {msg.data}")
        # CLOSE / CLOSING / CLOSED: the server (or the network) ended it.
        if ws.close_code in (None, aiohttp.WSCloseCode.ABNORMAL_CLOSURE):
            raise _Disconnected("connection lost")
        raise _Disconnected(f"closed by server (code {ws.close_code})")


def _describe(cursor: int | None) -> str:
    """A cursor for the logs: ``cursor 1725911162329308 (2024-09-09T19:46:02Z)`` or live."""
    if cursor is None:
        return "the live tip"
    moment = dt.datetime.fromtimestamp(cursor / 1_000_000, dt.UTC)
    return f"cursor {cursor} ({moment:%Y-%m-%dT%H:%M:%SZ})"
