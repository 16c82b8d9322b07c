"""Shared base of the fake HTTP services: lifecycle on 127.0.0.1, request log, canned answers."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Self

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import MultiDict, MultiDictProxy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake saw it (whether a canned answer or the handler served it)."""

    method: str
    path: str
    query: MultiDictProxy[str]
    headers: Mapping[str, str]
    canned: bool = False  # True when a queued fault / verbatim body answered it
    arrived_at: float = 0.0  # time.monotonic() when it reached the fake, to measure spacing

    @property
    def params(self) -> dict[str, str]:
        """The query as a plain dict (last value wins), for short assertions."""
        return {key: self.query.getall(key)[-1] for key in self.query}


@dataclass(slots=True)
class CannedResponse:
    """A queued answer served instead of the real handler, ``times`` times."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    path: str | None = None  # only requests to this path consume it; None = any request
    # When set, Content-Length announces this many bytes but only ``body`` is sent before the
    # connection is closed: a response cut off mid-body.
    declared_length: int | None = None

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path


class FakeServer:
    """An ``aiohttp.web`` app on 127.0.0.1 with a free port, for tests and the offline demo.

    Subclasses add their routes to ``self.app.router`` in ``__init__`` and set
    ``content_type`` (used for canned bodies that name none) and ``malformed_body``.
    Every request is appended to ``requests``; queued canned answers (``fail_next``,
    ``malformed_next``, ``serve_next``, ``truncate_next``) are served first, in order, before
    the real handler.
    """

    content_type: ClassVar[str] = "application/json"
    # A truncated document: what a proxy cutting a response short looks like.
    malformed_body: ClassVar[bytes] = b'{"data": [{"id": '

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._wanted_port = port
        self.port: int | None = None
        self.app = web.Application(middlewares=[self._intercept])
        self.requests: list[RecordedRequest] = []
        self._canned: deque[CannedResponse] = deque()
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on ``host`` (a free port unless one was given); returns self."""
        if self._runner is not None:
            return self
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._wanted_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.debug("%s listening on %s", type(self).__name__, self.url)
        return self

    async def close(self) -> None:
        """Stop listening; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

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
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self.port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self.host}:{self.port}"

    # -- request log -----------------------------------------------------------------------

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The logged requests whose path is ``path``."""
        return [r for r in self.requests if r.path == path]

    def clear_log(self) -> None:
        self.requests.clear()

    def request_gaps(self, path: str | None = None) -> list[float]:
        """Seconds between consecutive requests (to ``path`` only, if given), oldest first."""
        times = [r.arrived_at for r in self.requests if path is None or r.path == path]
        return [b - a for a, b in itertools.pairwise(times)]

    # -- fault injection -------------------------------------------------------------------

    def serve_next(
        self,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with exactly these bytes (e.g. a real fixture)."""
        data = body.encode() if isinstance(body, str) else body
        merged = _with_content_type(headers, content_type or self.content_type)
        self._queue(CannedResponse(status, data, merged, times, path))

    def fail_next(
        self,
        status: int,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        *,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``body``/``headers``)."""
        data = body.encode() if isinstance(body, str) else body
        merged = _with_content_type(headers, self.content_type) if data else dict(headers or {})
        self._queue(CannedResponse(status, data, merged, times, path))

    def malformed_next(
        self, body: bytes | None = None, *, times: int = 1, path: str | None = None
    ) -> None:
        """Answer the next ``times`` requests with 200 and an unparsable body."""
        self.serve_next(self.malformed_body if body is None else body, times=times, path=path)

    def truncate_next(
        self,
        body: bytes | str | None = None,
        *,
        missing: int = 100,
        status: int = 200,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Cut the next ``times`` answers off mid-body, as a dropped connection does.

        Content-Length promises ``missing`` more bytes than ``body`` (default: the truncated
        ``malformed_body``) and the connection closes after it, so a client sees an incomplete
        payload (aiohttp's ``ClientPayloadError``), not a status or a parse error.
        """
        if missing < 1:
            raise ValueError("missing must be at least 1")
        data = self.malformed_body if body is None else body
        data = data.encode() if isinstance(data, str) else data
        headers = _with_content_type(None, self.content_type)
        self._queue(CannedResponse(status, data, headers, times, path, len(data) + missing))

    def clear_faults(self) -> None:
        self._canned.clear()

    @property
    def pending_faults(self) -> int:
        return sum(c.times for c in self._canned)

    def _queue(self, canned: CannedResponse) -> None:
        if canned.times < 1:
            raise ValueError("times must be at least 1")
        self._canned.append(canned)

    def _take_canned(self, path: str) -> CannedResponse | None:
        for canned in self._canned:
            if canned.matches(path):
                canned.times -= 1
                if canned.times == 0:
                    self._canned.remove(canned)
                return canned
        return None

    @web.middleware
    async def _intercept(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        canned = self._take_canned(request.path)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=MultiDictProxy(MultiDict(request.query)),
                headers=dict(request.headers),
                canned=canned is not None,
                arrived_at=time.monotonic(),
            )
        )
        if canned is None:
            return await handler(request)
        if canned.declared_length is not None:
            return await _cut_short(request, canned, canned.declared_length)
        return web.Response(status=canned.status, body=canned.body, headers=canned.headers)


async def _cut_short(
    request: web.Request, canned: CannedResponse, declared_length: int
) -> web.StreamResponse:
    """Send the headers and ``canned.body``, then drop the connection before the rest."""
    response = web.StreamResponse(status=canned.status, headers=canned.headers)
    response.content_length = declared_length
    await response.prepare(request)
    await response.write(canned.body)
    if request.transport is not None:
        request.transport.close()
    return response


def _with_content_type(headers: Mapping[str, str] | None, default: str) -> dict[str, str]:
    """``headers`` plus ``Content-Type: default`` unless they already name one (any case)."""
    merged = dict(headers or {})
    if not any(k.lower() == "content-type" for k in merged):
        merged["Content-Type"] = default
    return merged


def json_response(
    payload: object,
    *,
    status: int = 200,
    content_type: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON answer with exactly the given Content-Type (services differ on the charset)."""
    merged = {"Content-Type": content_type}
    merged.update(headers or {})
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(status=status, body=body, headers=merged)
