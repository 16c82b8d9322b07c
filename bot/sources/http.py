"""One HTTP layer for every client: shared session, timeouts, bounded retries, Retry-After."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)

from bot.config import HttpSettings
from bot.core.errors import MalformedResponseError, SourceUnavailableError, http_kind

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# Derives a wait (seconds) from a retryable answer's headers when it carries no Retry-After,
# e.g. X's ``x-rate-limit-reset`` epoch; None = use the normal backoff.
RetryAfterHint = Callable[[Mapping[str, str]], float | None]
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Worth another attempt: timeouts, connections that fail or drop, and answers cut off mid-body
# (ClientPayloadError: fewer bytes than Content-Length, a broken chunked encoding).
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)


class RetryableStatusError(Exception):
    """A status worth another try (429, 5xx); carries the server's Retry-After if any."""

    def __init__(self, status: int, retry_after: float | None, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Response:
    """A fully read response: status, headers and body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def json(self, source: str) -> Any:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            snippet = self.body[:80].decode("utf-8", "replace")
            raise MalformedResponseError(source, f"answer is not JSON: {snippet!r}") from None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def make_session(settings: HttpSettings) -> aiohttp.ClientSession:
    """The one session every client shares: timeouts and a User-Agent naming the bot."""
    timeout = aiohttp.ClientTimeout(
        total=settings.timeout_seconds, sock_connect=settings.connect_timeout_seconds
    )
    return aiohttp.ClientSession(
        timeout=timeout,
        headers={"User-Agent": settings.user_agent},
        raise_for_status=False,
    )


class HttpClient:
    """GETs (and JSON POSTs) with bounded, jittered retries on timeouts, connection errors, 429
    and 5xx.

    ``sleep`` is injectable so that tests run the real retry loop without waiting.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: HttpSettings,
        *,
        source: str,
        sleep: Sleep | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.source = source
        self._sleep: Sleep = sleep or asyncio.sleep
        self.requests = 0

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        cap = self.settings.backoff_max_seconds
        if isinstance(exc, RetryableStatusError) and exc.retry_after is not None:
            return min(exc.retry_after, cap)
        base = self.settings.backoff_initial_seconds * 2 ** (state.attempt_number - 1)
        return min(cap, base) * (0.5 + random.random() / 2)

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: %s; retry %d/%d in %.1fs",
            self.source,
            exc or "error",
            state.attempt_number,
            self.settings.retries,
            wait,
        )

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset({200}),
        retry_after_hint: RetryAfterHint | None = None,
        throttle: AbstractAsyncContextManager[Any] | None = None,
    ) -> Response:
        """GET ``url``; statuses in ``ok_statuses`` are returned, retryable ones retried.

        ``retry_after_hint`` computes the wait from a retryable answer's headers when the
        server sent no ``Retry-After`` (services with their own rate-limit headers).
        ``throttle`` (a rate limiter) is entered around every attempt, retries included, and is
        not held during the backoff sleeps between them.
        """
        return await self._request(
            "GET", url, params, headers, ok_statuses, retry_after_hint, throttle, None
        )

    async def post(
        self,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset({200}),
        retry_after_hint: RetryAfterHint | None = None,
        throttle: AbstractAsyncContextManager[Any] | None = None,
    ) -> Response:
        """POST ``json_body`` as JSON (none when ``None``), with the same statuses and retries as
        :meth:`get`. Only for calls that are safe to repeat (e.g. logging in): an attempt cut
        short may have reached the server."""
        return await self._request(
            "POST", url, params, headers, ok_statuses, retry_after_hint, throttle, json_body
        )

    async def _request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        ok_statuses: frozenset[int],
        retry_after_hint: RetryAfterHint | None,
        throttle: AbstractAsyncContextManager[Any] | None,
        json_body: Any,
    ) -> Response:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type((RetryableStatusError, *RETRYABLE_ERRORS)),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with throttle or nullcontext():
                        return await self._once(
                            url, params, headers, ok_statuses, retry_after_hint, method, json_body
                        )
        except RetryableStatusError as exc:
            raise SourceUnavailableError(
                self.source,
                f"HTTP {exc.status} after {self.settings.retries + 1} attempts",
                kind=http_kind(exc.status),
            ) from None
        except TimeoutError:
            raise SourceUnavailableError(
                self.source,
                f"timed out after {self.settings.retries + 1} attempts",
                kind="timeout",
            ) from None
        except aiohttp.ClientConnectionError as exc:
            raise SourceUnavailableError(
                self.source, f"connection failed after {self.settings.retries + 1} attempts: {exc}"
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise SourceUnavailableError(
                self.source,
                f"answer cut short after {self.settings.retries + 1} attempts: {exc}",
            ) from None
        except aiohttp.ClientError as exc:
            # Not worth retrying (a bad URL, too many redirects…) but still the source's failure,
            # which callers handle as a SourceError rather than an aiohttp exception.
            raise SourceUnavailableError(
                self.source, f"request failed: {type(exc).__name__}: {exc}"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        ok_statuses: frozenset[int],
        retry_after_hint: RetryAfterHint | None = None,
        method: str = "GET",
        json_body: Any = None,
    ) -> Response:
        self.requests += 1
        async with self.session.request(
            method, url, params=params, headers=headers, json=json_body
        ) as resp:
            body = await resp.read()
            if resp.status in ok_statuses:
                return Response(resp.status, dict(resp.headers), body, str(resp.url))
            if resp.status in RETRY_STATUSES:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                if retry_after is None and retry_after_hint is not None:
                    retry_after = retry_after_hint(resp.headers)
                raise RetryableStatusError(resp.status, retry_after, str(resp.url))
            detail = body[:120].decode("utf-8", "replace").strip()
            raise SourceUnavailableError(
                self.source,
                f"HTTP {resp.status} from {resp.url.host}: {detail}",
                kind=http_kind(resp.status),
            )
