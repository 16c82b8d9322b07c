"""X (Twitter) API v2 recent search as a popularity source: posts linking arXiv in a window."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from pydantic import Field, SecretStr

from bot.config import HttpUrl, Section
from bot.core.arxiv_ids import extract_arxiv_ids
from bot.core.errors import MalformedResponseError, SourceError
from bot.core.models import Mention, Metric, Window
from bot.sources.base import parse_timestamp
from bot.sources.http import HttpClient, Response

log = logging.getLogger(__name__)

UTC = dt.UTC
NAME = "x"
TWEET_FIELDS = "created_at,author_id,public_metrics,entities,lang"
USER_FIELDS = "username,name"
METRICS = {
    "retweet_count": Metric.REPOSTS.value,
    "like_count": Metric.LIKES.value,
    "reply_count": Metric.REPLIES.value,
    "quote_count": Metric.QUOTES.value,
}
# X answers 400 to an end_time less than 10 s before the request; keep clear of it.
END_MARGIN = dt.timedelta(seconds=15)
# X measures the 7-day edge when the request arrives, a little after our clock reads it.
EDGE_MARGIN = dt.timedelta(minutes=1)
_OK = frozenset({200, 400, 401, 403})


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor_second(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=0)


def _ceil_second(moment: dt.datetime) -> dt.datetime:
    floored = moment.replace(microsecond=0)
    return floored if floored == moment else floored + dt.timedelta(seconds=1)


def describe_window(window: Window) -> str:
    """``window 2026-03-01 00:00 to 2026-03-02 00:00 UTC``, for messages."""
    fmt = "%Y-%m-%d %H:%M"
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    return f"window {start.strftime(fmt)} to {end.strftime(fmt)} UTC"


class XSettings(Section):
    enabled: bool = False
    api_url: HttpUrl = "https://api.x.com/2"
    query: str = 'url:"arxiv.org" -is:retweet'
    max_results: int = Field(100, ge=10, le=100)
    max_pages: int = Field(50, ge=1)
    search_days: int = Field(7, ge=1)  # how far back recent search reaches
    # X's app-only limit for recent search: 450 requests per 15-minute window.
    requests_per_window: int = Field(450, ge=1)
    window_seconds: float = Field(900.0, gt=0)


class XSource:
    """Collects posts linking arXiv from X's recent search, batched by window and page.

    One query (``sources.x.query``) per window, paginated with ``next_token`` up to
    ``max_pages``. Ids come from the expanded/unwound URLs in ``entities.urls``, never from the
    ``t.co`` text. Recent search only reaches back ``search_days`` days: a window that starts
    before that edge is clamped to it (with a warning); one that lies wholly before it is still
    asked (a proxy or archive may serve it) and X's refusal becomes a clear ``SourceError``.
    ``limiter`` (X's per-app rate limit, built once per process) is entered around every HTTP
    attempt, retries included.
    """

    name = NAME

    def __init__(
        self,
        http: HttpClient,
        settings: XSettings,
        bearer_token: SecretStr | None,
        *,
        now: Callable[[], dt.datetime] | None = None,
        limiter: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._token = bearer_token
        self.limiter = limiter
        self._now: Callable[[], dt.datetime] = now or (lambda: dt.datetime.now(UTC))

    def __repr__(self) -> str:
        # The token stays out of reprs; only whether one is set is shown.
        return f"XSource(api_url={self._settings.api_url!r}, token_set={self._has_token()})"

    @property
    def requests(self) -> int:
        return self._http.requests

    def _has_token(self) -> bool:
        return bool(self._secret())

    def _secret(self) -> str:
        return self._token.get_secret_value().strip() if self._token is not None else ""

    async def collect(self, window: Window) -> list[Mention]:
        """Every post created in ``[window.start, window.end)`` that links an arXiv paper."""
        secret = self._secret()
        if not secret:
            raise SourceError(NAME, "X needs a bearer token: set X_BEARER_TOKEN")
        span = self._plan(window)
        if span is None:
            return []
        start, end, too_old = span
        headers = {"Authorization": f"Bearer {secret}"}
        params: dict[str, str] = {
            "query": self._settings.query,
            "start_time": _rfc3339(_floor_second(start)),
            "end_time": _rfc3339(_ceil_second(end)),
            "max_results": str(self._settings.max_results),
            "tweet.fields": TWEET_FIELDS,
            "expansions": "author_id",
            "user.fields": USER_FIELDS,
        }
        url = f"{self._settings.api_url.rstrip('/')}/tweets/search/recent"
        found: dict[str, Mention] = {}
        pages = 0
        next_token: str | None = None
        while True:
            if next_token is not None:
                params["next_token"] = next_token
            response = await self._http.get(
                url,
                params=params,
                headers=headers,
                ok_statuses=_OK,
                retry_after_hint=self._rate_limit_wait,
                throttle=self.limiter,
            )
            pages += 1
            self._raise_for_status(response, window, too_old)
            next_token = self._parse_page(response.json(NAME), window, found)
            if next_token is None:
                break
            if pages >= self._settings.max_pages:
                log.warning(
                    "x: stopped after %d pages (sources.x.max_pages) with more posts left in %s;"
                    " raise max_pages or shorten the window to get them",
                    pages,
                    describe_window(window),
                )
                break
        log.info(
            "x: %d posts linking arXiv in %s (%d pages)", len(found), describe_window(window), pages
        )
        return list(found.values())

    # -- the 7-day edge --------------------------------------------------------------------

    def _plan(self, window: Window) -> tuple[dt.datetime, dt.datetime, bool] | None:
        """The (start, end, wholly-too-old) to ask for, or None when there is nothing to ask."""
        now = self._now()
        days = self._settings.search_days
        edge = now - dt.timedelta(days=days)
        start, end = window.start, min(window.end, now - END_MARGIN)
        if end <= start:
            log.info("x: %s has not happened yet; nothing to search", describe_window(window))
            return None
        if window.end <= edge:
            log.warning(
                "x: recent search only reaches back %d days (to %s); %s is older, asking anyway"
                " in case the endpoint is a proxy or archive that serves it",
                days,
                _rfc3339(edge),
                describe_window(window),
            )
            return start, end, True
        if start < edge + EDGE_MARGIN:
            clamped = edge + EDGE_MARGIN
            if clamped >= end:
                log.warning(
                    "x: recent search only reaches back %d days; %s ends at its edge, "
                    "nothing left to search",
                    days,
                    describe_window(window),
                )
                return None
            log.warning(
                "x: recent search only reaches back %d days; %s starts before that edge, so its"
                " start is clamped to %s and older posts are not collected",
                days,
                describe_window(window),
                _rfc3339(clamped),
            )
            start = clamped
        return start, end, False

    def _rate_limit_wait(self, headers: Mapping[str, str]) -> float | None:
        """Seconds until ``x-rate-limit-reset`` (epoch seconds), X's stand-in for Retry-After."""
        raw = headers.get("x-rate-limit-reset")
        if raw is None:
            return None
        try:
            reset = float(raw)
        except ValueError:
            return None
        if math.isnan(reset) or math.isinf(reset):
            return None
        return max(0.0, reset - self._now().timestamp())

    # -- answers ---------------------------------------------------------------------------

    def _raise_for_status(self, response: Response, window: Window, too_old: bool) -> None:
        if response.status == 200:
            return
        problem = _problem(response.body)
        if response.status == 401:
            raise SourceError(NAME, "X rejected the bearer token (401)")
        if response.status == 403:
            title = problem.get("title") or problem.get("reason")
            suffix = f": {title}" if isinstance(title, str) and title else ""
            raise SourceError(NAME, f"X rejected the bearer token (403{suffix})")
        raw_errors = problem.get("errors")
        errors = (
            [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
        )
        messages = [str(e["message"]) for e in errors if e.get("message")]
        about_start = any(
            isinstance(e.get("parameters"), dict) and "start_time" in e["parameters"]
            for e in errors
        ) or any("'start_time'" in m for m in messages)
        if about_start:
            days = self._settings.search_days
            if too_old:
                raise SourceError(
                    NAME,
                    f"X recent search only reaches back {days} days; "
                    f"{describe_window(window)} is older",
                )
            raise SourceError(
                NAME,
                f"X refused the start of {describe_window(window)} (recent search reaches back "
                f"{days} days): {'; '.join(messages)}",
            )
        detail = "; ".join(messages) or str(problem.get("detail") or "no detail")
        raise SourceError(NAME, f"X rejected the request ({response.status}): {detail}")

    def _parse_page(self, payload: Any, window: Window, found: dict[str, Mention]) -> str | None:
        """Add the page's arXiv-linking posts in the window to ``found``; return next_token."""
        if not isinstance(payload, dict):
            raise MalformedResponseError(
                NAME, f"answer is a JSON {type(payload).__name__}, not an object"
            )
        meta = payload.get("meta")
        if not isinstance(meta, dict):
            raise MalformedResponseError(NAME, "answer has no `meta` object")
        data = payload.get("data", [])
        if not isinstance(data, list):
            raise MalformedResponseError(NAME, "`data` is not a list")
        if "data" not in payload and payload.get("errors"):
            # 200 with only errors: X's partial-error form; nothing usable on this page.
            log.warning("x: page without data but with errors: %s", _short(payload["errors"]))
        users = self._users(payload.get("includes"))
        for tweet in data:
            mention = self._mention(tweet, users, window)
            if mention is not None:
                found.setdefault(mention.post_id, mention)
        token = meta.get("next_token")
        if token is not None and not isinstance(token, str):
            raise MalformedResponseError(NAME, "`meta.next_token` is not a string")
        return token or None

    @staticmethod
    def _users(includes: Any) -> dict[str, Mapping[str, Any]]:
        if includes is None:
            return {}
        if not isinstance(includes, dict):
            raise MalformedResponseError(NAME, "`includes` is not an object")
        users = includes.get("users", [])
        if not isinstance(users, list):
            raise MalformedResponseError(NAME, "`includes.users` is not a list")
        return {
            str(u["id"]): u for u in users if isinstance(u, dict) and isinstance(u.get("id"), str)
        }

    def _mention(
        self, tweet: Any, users: Mapping[str, Mapping[str, Any]], window: Window
    ) -> Mention | None:
        if not isinstance(tweet, dict):
            raise MalformedResponseError(NAME, "a post in `data` is not an object")
        post_id, text = tweet.get("id"), tweet.get("text")
        if not isinstance(post_id, str) or not isinstance(text, str):
            raise MalformedResponseError(NAME, "a post lacks its `id` or `text`")
        arxiv_ids = _linked_arxiv_ids(tweet.get("entities"))
        if not arxiv_ids:
            return None
        created_at = _timestamp(tweet.get("created_at"), post_id)
        if created_at not in window:
            return None
        author_id = tweet.get("author_id")
        user = users.get(author_id) if isinstance(author_id, str) else None
        username = user.get("username") if user else None
        name = user.get("name") if user else None
        if isinstance(username, str) and username:
            url = f"https://twitter.com/{username}/status/{post_id}"
        else:
            # Without the expansion X still resolves the post by id alone.
            username = None
            url = f"https://twitter.com/i/web/status/{post_id}"
        lang = tweet.get("lang")
        return Mention(
            source=NAME,
            post_id=post_id,
            url=url,
            author=username or (author_id if isinstance(author_id, str) else ""),
            text=text,
            created_at=created_at,
            arxiv_ids=tuple(arxiv_ids),
            metrics=_metrics(tweet.get("public_metrics"), post_id),
            author_name=name if isinstance(name, str) else None,
            lang=lang if isinstance(lang, str) else None,
        )


def _linked_arxiv_ids(entities: Any) -> list[str]:
    """arXiv ids behind the post's links: expanded and unwound URLs, not the t.co text."""
    if entities is None:
        return []
    if not isinstance(entities, dict):
        raise MalformedResponseError(NAME, "`entities` is not an object")
    urls = entities.get("urls", [])
    if not isinstance(urls, list):
        raise MalformedResponseError(NAME, "`entities.urls` is not a list")
    ids: list[str] = []
    for entry in urls:
        if not isinstance(entry, dict):
            raise MalformedResponseError(NAME, "an `entities.urls` item is not an object")
        for key in ("expanded_url", "unwound_url"):
            link = entry.get(key)
            if isinstance(link, str):
                ids.extend(i for i in extract_arxiv_ids(link) if i not in ids)
    return ids


def _timestamp(value: Any, post_id: str) -> dt.datetime:
    return parse_timestamp(value, NAME, f"post {post_id} `created_at`")


def _metrics(value: Any, post_id: str) -> dict[str, int]:
    if value is None:
        return dict.fromkeys(METRICS.values(), 0)
    if not isinstance(value, dict):
        raise MalformedResponseError(NAME, f"post {post_id} has a non-object `public_metrics`")
    out: dict[str, int] = {}
    for key, metric in METRICS.items():
        count = value.get(key, 0)
        if count is None:
            count = 0
        if isinstance(count, bool) or not isinstance(count, int):
            raise MalformedResponseError(NAME, f"post {post_id} has a non-integer `{key}`")
        out[metric] = count
    return out


def _problem(body: bytes) -> dict[str, Any]:
    """X's problem document (``title``, ``detail``, ``errors``), or {} when it is not JSON."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 200 else text[:199] + "…"


def is_on(settings: XSettings, enabled_written: bool, has_token: bool) -> bool:
    """X runs when a token is set, unless ``sources.x.enabled = false`` was written explicitly."""
    if enabled_written:
        if settings.enabled and not has_token:
            log.warning("sources.x.enabled is true but X_BEARER_TOKEN is not set: X is off")
        return settings.enabled and has_token
    return has_token
