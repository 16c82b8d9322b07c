"""A fake of X API v2 recent search on 127.0.0.1 that speaks the real wire format."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import logging
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from bot.fakes.server import FakeServer, json_response

log = logging.getLogger(__name__)

UTC = dt.UTC
CONTENT_TYPE = "application/json; charset=utf-8"
SEARCH_PATH = "/2/tweets/search/recent"
RATE_LIMIT = 450  # app-only recent search, per 15 minutes (tweepy cassette header)
RATE_WINDOW = dt.timedelta(minutes=15)
# X refuses an end_time closer than this to the moment of the request.
END_TIME_MIN_AGE = dt.timedelta(seconds=10)
# Without end_time, X searches up to 30 s before the request.
DEFAULT_END_AGE = dt.timedelta(seconds=30)

TWEET_FIELDS = frozenset(
    [
        "attachments",
        "author_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "edit_controls",
        "edit_history_tweet_ids",
        "entities",
        "geo",
        "id",
        "in_reply_to_user_id",
        "lang",
        "non_public_metrics",
        "note_tweet",
        "organic_metrics",
        "possibly_sensitive",
        "promoted_metrics",
        "public_metrics",
        "referenced_tweets",
        "reply_settings",
        "source",
        "text",
        "withheld",
    ]
)
USER_FIELDS = frozenset(
    [
        "created_at",
        "description",
        "entities",
        "id",
        "location",
        "name",
        "pinned_tweet_id",
        "profile_image_url",
        "protected",
        "public_metrics",
        "url",
        "username",
        "verified",
        "verified_type",
        "withheld",
    ]
)
EXPANSIONS = frozenset(
    [
        "attachments.media_keys",
        "attachments.poll_ids",
        "author_id",
        "edit_history_tweet_ids",
        "entities.mentions.username",
        "geo.place_id",
        "in_reply_to_user_id",
        "referenced_tweets.id",
        "referenced_tweets.id.author_id",
    ]
)

UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}
_INVALID_REQUEST = {
    "title": "Invalid Request",
    "detail": "One or more parameters to your request was invalid.",
    "type": "https://api.twitter.com/2/problems/invalid-request",
}
_TCO_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class XLink:
    """A link in a post: what the t.co link expands to, and what X unwound it to (if any)."""

    expanded_url: str
    unwound_url: str | None = None
    display_url: str | None = None
    # The t.co link as it already stands in the text (real posts carry it there); None = append
    # a new one to the text.
    url: str | None = None


@dataclass(slots=True)
class _User:
    id: str
    username: str
    name: str
    created_at: dt.datetime


@dataclass(slots=True)
class _Post:
    id: str
    text: str
    author_id: str
    created_at: dt.datetime
    url_entities: list[dict[str, object]]
    metrics: dict[str, int]
    lang: str
    is_retweet: bool
    searchable_urls: tuple[str, ...] = field(default=())


def x_time(moment: dt.datetime) -> str:
    """X's timestamp format: ``2020-06-25T06:14:19.000Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _minute(moment: dt.datetime) -> str:
    # X quotes times in its start_time errors at minute precision.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _parse_rfc3339(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _tco(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "https://t.co/" + "".join(_TCO_ALPHABET[b % len(_TCO_ALPHABET)] for b in digest[:10])


def _display(url: str) -> str:
    shown = re.sub(r"^https?://(www\.)?", "", url)
    return shown if len(shown) <= 29 else shown[:28] + "…"


class _Query:
    """The subset of X's search operators the fake understands; unknown operators match all."""

    _TERM = re.compile(r'(-?)(?:([a-z_]+):)?("[^"]*"|\S+)')

    def __init__(self, query: str) -> None:
        self.groups: list[list[tuple[bool, str | None, str]]] = []
        join_next = False
        for negate, op, raw in self._TERM.findall(query):
            if raw == "OR" and not negate and not op:
                join_next = True
                continue
            term = (bool(negate), op or None, raw.strip('"').lower())
            if join_next and self.groups:
                self.groups[-1].append(term)
            else:
                self.groups.append([term])
            join_next = False

    def matches(self, post: _Post, username: str) -> bool:
        return all(
            any(self._term(post, username, *term) for term in group) for group in self.groups
        )

    @staticmethod
    def _term(post: _Post, username: str, negate: bool, op: str | None, value: str) -> bool:
        if op == "url":
            hit = any(value in url.lower() for url in post.searchable_urls)
        elif op == "is":
            hit = post.is_retweet if value == "retweet" else False
        elif op == "has":
            hit = bool(post.url_entities) if value == "links" else False
        elif op == "lang":
            hit = post.lang == value
        elif op == "from":
            hit = username.lower() == value
        elif op is None:
            hit = value in post.text.lower()
        else:
            hit = True
        return hit != negate


class FakeX(FakeServer):
    """X API v2 ``GET /2/tweets/search/recent`` over an in-memory store of posts.

    Checks the Bearer token (401 in X's problem format), enforces the recent-search window
    against the injectable clock ``now`` (X's real 400 body for an old ``start_time`` and for an
    ``end_time`` less than 10 s old), paginates with opaque ``next_token``s, sorts newest first,
    renders ``tweet.fields``/``post.fields``, ``expansions=author_id`` and ``user.fields``, and
    sends ``x-rate-limit-*`` headers (429 once the 450-request window is spent).
    """

    content_type = CONTENT_TYPE
    malformed_body = b'{"data":[{"id":"1612118401392025600","author_id":"2244151426","text":"RT'

    def __init__(
        self,
        *,
        token: str = "test-bearer-token",  # noqa: S107 - the fake's own test credential
        now: Callable[[], dt.datetime] | None = None,
        search_days: int = 7,
        rate_limit: int = RATE_LIMIT,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.token = token
        self.now: Callable[[], dt.datetime] = now or (lambda: dt.datetime.now(UTC))
        self.search_days = search_days
        self.rate_limit = rate_limit
        self._remaining = rate_limit
        self._window_reset: dt.datetime | None = None
        self._posts: dict[str, _Post] = {}
        self._users: dict[str, _User] = {}  # by lower-case username
        self._tokens: dict[str, int] = {}
        self._token_counter = itertools.count(1)
        self.app.router.add_get(SEARCH_PATH, self._search_recent)

    @property
    def api_url(self) -> str:
        """The value for ``sources.x.api_url``: ``http://127.0.0.1:PORT/2``."""
        return f"{self.url}/2"

    # -- store -----------------------------------------------------------------------------

    def add_user(self, username: str, name: str | None = None, user_id: str | None = None) -> str:
        """Register (or update) a user; returns its id."""
        key = username.lower()
        existing = self._users.get(key)
        if existing is not None:
            if name:
                existing.name = name
            return existing.id
        uid = user_id or str(int(hashlib.sha256(key.encode()).hexdigest()[:15], 16))
        self._users[key] = _User(
            uid, username, name or username, dt.datetime(2012, 1, 1, tzinfo=UTC)
        )
        return uid

    def add_post(
        self,
        id: str | int,  # X names it `id`
        text: str,
        author_username: str,
        author_name: str | None = None,
        created_at: dt.datetime | None = None,
        urls: Iterable[str | XLink] = (),
        *,
        retweets: int = 0,
        likes: int = 0,
        replies: int = 0,
        quotes: int = 0,
        impressions: int = 0,
        bookmarks: int = 0,
        lang: str = "en",
        is_retweet: bool = False,
    ) -> dict[str, object]:
        """Store a post; each of ``urls`` becomes a t.co link appended to ``text``.

        Returns the post as the API renders it with every field requested.
        """
        when = created_at or self.now() - dt.timedelta(hours=1)
        if when.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        post_id = str(id)
        author_id = self.add_user(author_username, author_name)
        full_text = text
        entities: list[dict[str, object]] = []
        searchable: list[str] = []
        for index, link in enumerate(urls):
            link = link if isinstance(link, XLink) else XLink(link)
            if link.url and link.url in full_text:
                short = link.url
                start = full_text.index(short)  # X counts code points, as Python's len does
            else:
                short = _tco(f"{post_id}/{index}/{link.expanded_url}")
                if full_text and not full_text.endswith((" ", "\n")):
                    full_text += " "
                start = len(full_text)
                full_text += short
            entity: dict[str, object] = {
                "start": start,
                "end": start + len(short),
                "url": short,
                "expanded_url": link.expanded_url,
                "display_url": link.display_url or _display(link.expanded_url),
            }
            if link.unwound_url:
                entity["status"] = 200
                entity["unwound_url"] = link.unwound_url
            entities.append(entity)
            searchable += [u for u in (link.expanded_url, link.unwound_url) if u]
        self._posts[post_id] = _Post(
            id=post_id,
            text=full_text,
            author_id=author_id,
            created_at=when.astimezone(UTC),
            url_entities=entities,
            metrics={
                "retweet_count": retweets,
                "reply_count": replies,
                "like_count": likes,
                "quote_count": quotes,
                "bookmark_count": bookmarks,
                "impression_count": impressions,
            },
            lang=lang,
            is_retweet=is_retweet,
            searchable_urls=tuple(searchable),
        )
        return self._render_post(self._posts[post_id], TWEET_FIELDS)

    def rate_limit_next(
        self, reset_in: float = 60.0, *, retry_after: float | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests with X's 429 (reset ``reset_in`` s from ``now``)."""
        reset = self.now() + dt.timedelta(seconds=reset_in)
        headers = {
            "Content-Type": "text/plain;charset=utf-8",
            "x-rate-limit-limit": str(self.rate_limit),
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(int(reset.timestamp())),
        }
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        self.fail_next(429, b"Rate limit exceeded\n", headers, times, path=SEARCH_PATH)

    # -- handler ---------------------------------------------------------------------------

    def _rate_headers(self, now: dt.datetime) -> dict[str, str]:
        if self._window_reset is None or now >= self._window_reset:
            self._window_reset = now + RATE_WINDOW
            self._remaining = self.rate_limit
        self._remaining -= 1
        return {
            "x-rate-limit-limit": str(self.rate_limit),
            "x-rate-limit-remaining": str(max(self._remaining, 0)),
            "x-rate-limit-reset": str(int(self._window_reset.timestamp())),
        }

    async def _search_recent(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return json_response(UNAUTHORIZED, status=401, content_type=CONTENT_TYPE)
        now = self.now()
        rate = self._rate_headers(now)
        if self._remaining < 0:
            return web.Response(
                status=429,
                body=b"Rate limit exceeded\n",
                headers={"Content-Type": "text/plain;charset=utf-8", **rate},
            )
        q = request.query
        errors: list[dict[str, object]] = []

        query = q.get("query", "")
        if not query.strip():
            errors.append(
                {
                    "parameters": {"query": []},
                    "message": "The `query` query parameter can not be empty",
                }
            )
        elif len(query) > 512:
            errors.append(
                {
                    "parameters": {"query": [query]},
                    "message": f"There were errors processing your request: Rule length exceeds "
                    f"the max allowed 512, rule length is {len(query)}",
                }
            )
        max_results = 10
        if "max_results" in q:
            raw = q["max_results"]
            if not raw.isdigit() or not 10 <= int(raw) <= 100:
                errors.append(
                    {
                        "parameters": {"max_results": [raw]},
                        "message": f"The `max_results` query parameter value [{raw}] is not "
                        "between 10 and 100",
                    }
                )
            else:
                max_results = int(raw)

        edge = now - dt.timedelta(days=self.search_days)
        start = edge
        end = now - DEFAULT_END_AGE
        for name in ("start_time", "end_time"):
            if name not in q:
                continue
            parsed = _parse_rfc3339(q[name])
            if parsed is None:
                errors.append(
                    {
                        "parameters": {name: [q[name]]},
                        "message": f"Invalid '{name}':'{q[name]}'. '{name}' must be a valid "
                        "RFC 3339 date-time, e.g. 2020-01-01T00:00:00Z",
                    }
                )
            elif name == "start_time":
                start = parsed
            else:
                end = parsed
        if "start_time" in q and start < edge:
            errors.append(
                {
                    "parameters": {"start_time": [q["start_time"]]},
                    "message": f"Invalid 'start_time':'{_minute(start)}'. 'start_time' must be "
                    f"on or after {_minute(edge)}",
                }
            )
        if "end_time" in q and end > now - END_TIME_MIN_AGE:
            errors.append(
                {
                    "parameters": {"end_time": [q["end_time"]]},
                    "message": f"Invalid 'end_time':'{_minute(end)}'. 'end_time' must be a "
                    "minimum of 10 seconds prior to the request time.",
                }
            )
        if "start_time" in q and "end_time" in q and start >= end:
            errors.append(
                {
                    "parameters": {"start_time": [q["start_time"]], "end_time": [q["end_time"]]},
                    "message": f"Invalid 'start_time':'{_minute(start)}'. 'start_time' must be "
                    f"before 'end_time':'{_minute(end)}'",
                }
            )

        tweet_fields = self._fields(q, ("tweet.fields", "post.fields"), TWEET_FIELDS, errors)
        user_fields = self._fields(q, ("user.fields",), USER_FIELDS, errors)
        expansions = self._fields(q, ("expansions",), EXPANSIONS, errors)

        offset = 0
        token = q.get("next_token") or q.get("pagination_token")
        if token is not None:
            if token not in self._tokens:
                name = "next_token" if "next_token" in q else "pagination_token"
                errors.append(
                    {
                        "parameters": {name: [token]},
                        "message": f"The `{name}` query parameter value [{token}] is not valid",
                    }
                )
            else:
                offset = self._tokens[token]
        if errors:
            return json_response(
                {"errors": errors, **_INVALID_REQUEST},
                status=400,
                content_type=CONTENT_TYPE,
                headers=rate,
            )

        matcher = _Query(query)
        users_by_id = {u.id: u for u in self._users.values()}
        found = sorted(
            (
                p
                for p in self._posts.values()
                if start <= p.created_at < end
                and matcher.matches(p, users_by_id[p.author_id].username)
            ),
            key=lambda p: (p.created_at, int(p.id) if p.id.isdigit() else 0),
            reverse=True,
        )
        page = found[offset : offset + max_results]
        if not page:
            return json_response(
                {"meta": {"result_count": 0}}, content_type=CONTENT_TYPE, headers=rate
            )
        payload: dict[str, object] = {"data": [self._render_post(p, tweet_fields) for p in page]}
        if "author_id" in expansions:
            seen: dict[str, _User] = {}
            for post in page:
                seen.setdefault(post.author_id, users_by_id[post.author_id])
            payload["includes"] = {
                "users": [self._render_user(u, user_fields) for u in seen.values()]
            }
        meta: dict[str, object] = {
            "newest_id": page[0].id,
            "oldest_id": page[-1].id,
            "result_count": len(page),
        }
        if offset + max_results < len(found):
            meta["next_token"] = self._new_token(offset + max_results)
        payload["meta"] = meta
        return json_response(payload, content_type=CONTENT_TYPE, headers=rate)

    @staticmethod
    def _fields(
        q: Mapping[str, str],
        names: Sequence[str],
        allowed: frozenset[str],
        errors: list[dict[str, object]],
    ) -> frozenset[str]:
        chosen: set[str] = set()
        for name in names:
            if name not in q:
                continue
            values = [v for v in q[name].split(",") if v]
            bad = [v for v in values if v not in allowed]
            if bad:
                errors.append(
                    {
                        "parameters": {name: [q[name]]},
                        "message": f"The `{name}` query parameter value [{bad[0]}] is not one of "
                        f"[{','.join(sorted(allowed))}]",
                    }
                )
            chosen.update(values)
        return frozenset(chosen)

    def _new_token(self, offset: int) -> str:
        # Shaped like X's tokens ("b26v89c19zqg8o3fo7gesq314..."), opaque to the client.
        serial = next(self._token_counter)
        token = "b26v89c19zqg8o3f" + hashlib.sha256(f"{serial}:{offset}".encode()).hexdigest()[:29]
        self._tokens[token] = offset
        return token

    @staticmethod
    def _render_post(post: _Post, fields: frozenset[str]) -> dict[str, object]:
        out: dict[str, object] = {"id": post.id}
        if "author_id" in fields:
            out["author_id"] = post.author_id
        if "created_at" in fields:
            out["created_at"] = x_time(post.created_at)
        if "entities" in fields and post.url_entities:
            out["entities"] = {"urls": [dict(e) for e in post.url_entities]}
        if "lang" in fields:
            out["lang"] = post.lang
        if "public_metrics" in fields:
            out["public_metrics"] = dict(post.metrics)
        out["text"] = post.text
        out["edit_history_tweet_ids"] = [post.id]
        return out

    @staticmethod
    def _render_user(user: _User, fields: frozenset[str]) -> dict[str, object]:
        out: dict[str, object] = {"id": user.id, "name": user.name, "username": user.username}
        if "created_at" in fields:
            out["created_at"] = x_time(user.created_at)
        return out
