"""Bluesky as a popularity source: Jetstream posts that link arXiv, and their AppView counts."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any

from multidict import MultiDict
from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import NoDecode

from bot.config import HttpUrl, Section, WsUrl, comma_list
from bot.core.arxiv_ids import extract_arxiv_ids
from bot.core.errors import MalformedResponseError, SourceAuthError, SourceError, http_kind
from bot.core.models import Mention, Metric, Window
from bot.sources.http import HttpClient, Response

if TYPE_CHECKING:
    from bot.services.stream import FrameStream

log = logging.getLogger(__name__)

UTC = dt.UTC

NAME = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"
PUBLIC_JETSTREAMS = (
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
)


class BlueskySettings(Section):
    enabled: bool = True  # Bluesky needs no account
    jetstream_urls: Annotated[list[WsUrl], NoDecode, BeforeValidator(comma_list)] = Field(
        default_factory=lambda: list(PUBLIC_JETSTREAMS), min_length=1
    )
    api_url: HttpUrl = "https://public.api.bsky.app"  # the AppView: app.bsky.feed.getPosts
    auth_url: HttpUrl = "https://bsky.social"  # the PDS/entryway: createSession, refreshSession
    # Accounts linking more distinct papers than this in one UTC day are feeds: stored, weigh 0.
    max_papers_per_author_day: int = Field(20, ge=1)
    ignore_handles: Annotated[list[str], NoDecode, BeforeValidator(comma_list)] = Field(
        default_factory=list
    )
    # Stream: reconnect when silent this long; save the cursor at most this often.
    idle_timeout_seconds: float = Field(60.0, gt=0)
    cursor_save_seconds: float = Field(5.0, gt=0)
    # On restart, resume this much before the saved cursor (duplicates are absorbed).
    resume_rewind_seconds: float = Field(5.0, ge=0)
    lookback_hours: float = Field(36.0, gt=0)  # how far back Jetstream replays
    # `hotpapers fetch`: the replay has reached the live edge when no frame came for this long;
    # the stream is unreachable when the first frame takes longer than replay_connect_seconds.
    replay_idle_seconds: float = Field(3.0, gt=0)
    replay_connect_seconds: float = Field(30.0, gt=0)
    reconnect_initial_seconds: float = Field(1.0, gt=0)
    reconnect_max_seconds: float = Field(60.0, gt=0)
    # AppView: public API limit is 3000 requests per 5 minutes per IP.
    requests_per_window: int = Field(3000, ge=1)
    window_seconds: float = Field(300.0, gt=0)


@dataclass(frozen=True, slots=True)
class PostUpsert:
    """A post (create or update) that links at least one arXiv paper."""

    mention: Mention  # source "bluesky", post_id = the at-uri, metrics empty
    time_us: int


@dataclass(frozen=True, slots=True)
class PostDelete:
    """A deleted post (we may or may not hold it)."""

    uri: str
    time_us: int


@dataclass(frozen=True, slots=True)
class AccountDelete:
    """An account event with ``active: false`` and ``status: deleted``: drop all its posts."""

    did: str
    time_us: int


StreamEvent = PostUpsert | PostDelete | AccountDelete


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST_COLLECTION}/{rkey}"


def post_url(author: str, rkey: str) -> str:
    """The web link of a post; ``author`` is a handle or, before one is known, the DID."""
    return f"https://bsky.app/profile/{author}/post/{rkey}"


def did_of(uri: str) -> str:
    """``at://did:plc:x/app.bsky.feed.post/r`` → ``did:plc:x``."""
    return uri.removeprefix("at://").split("/", 1)[0]


def micros(moment: dt.datetime) -> int:
    """An aware datetime as unix microseconds (Jetstream's cursor unit)."""
    return round(moment.timestamp() * 1_000_000)


# -- Jetstream: one frame → one event ---------------------------------------------------------

# Jetstream's own frames are a few KiB at most (a post's text is capped at 3000 bytes); anything
# this large is hostile or broken and is refused before the JSON parser spends time on it.
MAX_FRAME_BYTES = 512 * 1024
# createdAt is the client's claim; one further than this from when Jetstream saw the post is
# a wrong clock or a backdated post, and the event time is used instead.
CREATED_AT_TOLERANCE = dt.timedelta(hours=24)
LINK_FEATURE = "app.bsky.richtext.facet#link"
EXTERNAL_EMBED = "app.bsky.embed.external"
RECORD_WITH_MEDIA_EMBED = "app.bsky.embed.recordWithMedia"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TIME_US = (dt.datetime.max.replace(tzinfo=UTC) - _EPOCH) // dt.timedelta(microseconds=1)
# The screen of the fast path. Every string extract_arxiv_ids accepts contains, in any case,
# "arxiv" (arxiv.org URLs, "arXiv:", the 10.48550/arXiv. DOIs), "alphaxiv" or "papers"
# (hf.co/papers, huggingface.co/papers): "xiv" and "papers" cover them all. The frame is the JSON
# text, so a letter may also hide behind a \u escape, and Python's case-insensitive matching
# also folds dotless i (U+0131), dotted capital I (U+0130, lower-cased to "i" + U+0307) and long
# s (U+017F) into ASCII letters: frames holding any of those take the full path too, so the
# screen never changes an answer, only its cost.
_NEEDLES = ("xiv", "papers", "\u0131", "\u0307", "\u017f")
_LETTER_ESCAPE_RE = re.compile(r"\\u(?:00[4-7][0-9a-f]|013[01]|017f|212a)")
# atproto's DID and record-key syntax: they become URLs and storage keys.
_DID_RE = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]{0,2040}[a-zA-Z0-9._-]")
_RKEY_RE = re.compile(r"[a-zA-Z0-9._~:-]{1,512}")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class MalformedEventError(ValueError):
    """A Jetstream frame that is not a well-formed v1 event; the consumer counts it and drops it.

    Messages are short, fixed phrases that never quote the frame: hostile input must not be able
    to drive log volume.
    """


def parse_event(frame: str | bytes) -> tuple[int | None, StreamEvent | None]:
    """One Jetstream v1 ``/subscribe`` frame → ``(time_us, event)``.

    ``event`` is a :class:`PostUpsert` for a post created or updated that links at least one
    arXiv paper, a :class:`PostDelete` for a deleted post (and for an updated post that no longer
    links any paper, so that a stored copy is dropped), an :class:`AccountDelete` for an account
    event with ``active: false, status: "deleted"``, and ``None`` for everything else (other
    collections, identity events, other account events, posts linking no paper, kinds a later
    Jetstream may add). ``time_us`` is the event's cursor; it is never ``None`` in practice (the
    type leaves room for frames that carry no position).

    Raises :class:`MalformedEventError`, and nothing else, for any frame that is not a v1 event:
    more than 512 KiB, not UTF-8, not a JSON object, a missing or wrong-typed ``did``,
    ``time_us``, ``kind``, ``commit`` (``rev``, ``operation``, ``collection``, ``rkey``, and
    ``cid`` and an object ``record`` on create/update) or ``account``, or an unusable DID or
    record key in an event that is acted on.

    Fast path: a create/update whose text cannot name a paper (see ``_NEEDLES``) is parsed only
    for its envelope; the stream carries every post on the network, and this is most of them.
    """
    return _parse(frame, screen=True)


def _parse(frame: object, *, screen: bool) -> tuple[int | None, StreamEvent | None]:
    text = _frame_text(frame)
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, too many digits, nesting too deep
        raise MalformedEventError("frame is not JSON") from None
    if not isinstance(event, dict):
        raise MalformedEventError("frame is not a JSON object")
    time_us = event.get("time_us")
    if type(time_us) is not int or not 0 <= time_us <= _MAX_TIME_US:
        raise MalformedEventError("`time_us` is missing or not a unix time in microseconds")
    did = event.get("did")
    if not isinstance(did, str):
        raise MalformedEventError("`did` is missing or not a string")
    kind = event.get("kind")
    if not isinstance(kind, str):
        raise MalformedEventError("`kind` is missing or not a string")
    if kind == "commit":
        return time_us, _commit_event(event, did, time_us, text if screen else None)
    if kind == "account":
        return time_us, _account_event(event, did, time_us)
    return time_us, None  # identity, and kinds a later Jetstream may add


def _frame_text(frame: object) -> str:
    if isinstance(frame, str):
        # A str of n characters is n to 4n bytes in UTF-8: count exactly only when it matters.
        if len(frame) > MAX_FRAME_BYTES or (
            len(frame) > MAX_FRAME_BYTES // 4
            and len(frame.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES
        ):
            raise MalformedEventError("frame is larger than 512 KiB")
        return frame
    if isinstance(frame, bytes | bytearray):
        if len(frame) > MAX_FRAME_BYTES:
            raise MalformedEventError("frame is larger than 512 KiB")
        try:
            return frame.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEventError("frame is not UTF-8") from None
    raise MalformedEventError("frame is neither text nor bytes")


def _commit_event(
    event: dict[str, Any], did: str, time_us: int, screen_text: str | None
) -> StreamEvent | None:
    commit = event.get("commit")
    if not isinstance(commit, dict):
        raise MalformedEventError("commit event without a `commit` object")
    operation = commit.get("operation")
    collection = commit.get("collection")
    rkey = commit.get("rkey")
    if not (
        isinstance(operation, str)
        and isinstance(collection, str)
        and isinstance(rkey, str)
        and isinstance(commit.get("rev"), str)
    ):
        raise MalformedEventError("`commit` lacks a string rev, operation, collection or rkey")
    if operation == "delete":
        if collection != POST_COLLECTION:
            return None
        return PostDelete(_checked_uri(did, rkey), time_us)
    if operation not in ("create", "update"):
        return None
    record = commit.get("record")
    if not isinstance(record, dict):
        raise MalformedEventError(f"commit {operation} without a `record` object")
    if not isinstance(commit.get("cid"), str):
        raise MalformedEventError(f"commit {operation} without a string `cid`")
    if collection != POST_COLLECTION:
        return None
    if screen_text is not None and not _may_name_a_paper(screen_text):
        mention = None
    else:
        mention = _post_mention(record, did, rkey, time_us)
    if mention is not None:
        return PostUpsert(mention, time_us)
    # An edited post that no longer links a paper: drop the copy we may hold.
    return PostDelete(_checked_uri(did, rkey), time_us) if operation == "update" else None


def _may_name_a_paper(text: str) -> bool:
    lowered = text.lower()
    for needle in _NEEDLES:
        if needle in lowered:
            return True
    return "\\u" in lowered and _LETTER_ESCAPE_RE.search(lowered) is not None


def _account_event(event: dict[str, Any], did: str, time_us: int) -> AccountDelete | None:
    account = event.get("account")
    if not isinstance(account, dict):
        raise MalformedEventError("account event without an `account` object")
    # Deactivated, suspended and taken-down accounts may come back: only a deletion is final.
    if account.get("active") is False and account.get("status") == "deleted":
        return AccountDelete(_checked_did(did), time_us)
    return None


def _checked_did(did: str) -> str:
    if _DID_RE.fullmatch(did) is None:
        raise MalformedEventError("`did` is not a DID")
    return did


def _checked_uri(did: str, rkey: str) -> str:
    if _RKEY_RE.fullmatch(rkey) is None or rkey in (".", ".."):
        raise MalformedEventError("`rkey` is not a record key")
    return post_uri(_checked_did(did), rkey)


def _post_mention(record: dict[str, Any], did: str, rkey: str, time_us: int) -> Mention | None:
    text = record.get("text")
    text = text if isinstance(text, str) else ""
    arxiv_ids = linked_arxiv_ids(record)
    if not arxiv_ids:
        return None
    uri = _checked_uri(did, rkey)
    event_time = _EPOCH + dt.timedelta(microseconds=time_us)
    langs = record.get("langs")
    lang = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    return Mention(
        source=NAME,
        post_id=uri,
        url=post_url(did, rkey),
        author=did,
        text=_storable(text),
        created_at=_created_at(record.get("createdAt"), event_time),
        arxiv_ids=tuple(arxiv_ids),
        metrics={},
        lang=_storable(lang) if lang else None,
    )


def _storable(text: str) -> str:
    """``text`` without what a database refuses: lone surrogates (from JSON ``\\ud800``
    escapes, not UTF-8 encodable) become U+FFFD and NULs (PostgreSQL text) are dropped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE_RE.sub("\ufffd", text)
    return text.replace("\x00", "") if "\x00" in text else text


def _created_at(value: object, event_time: dt.datetime) -> dt.datetime:
    """The record's ``createdAt`` when it is a zoned datetime within a day of the event."""
    if not isinstance(value, str):
        return event_time
    try:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:  # atproto datetimes carry a zone; a bare one is unreadable
            return event_time
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return event_time
    return moment if abs(moment - event_time) <= CREATED_AT_TOLERANCE else event_time


def linked_arxiv_ids(record: dict[str, Any]) -> list[str]:
    """The arXiv ids a post record names, canonical, once each, in reading order.

    The text is read with each link facet's span replaced by the facet's full URL (the text
    shows a shortened form, ``arxiv.org/abs/2401.1…``); a link facet without a usable URL is read
    from its span of the UTF-8 text. Then link facets whose span does not fit the text, then the
    external embed's URL (also as the media of a record-with-media embed). Ids follow the
    project's rules (:func:`bot.core.arxiv_ids.extract_arxiv_ids`).
    """
    text = record.get("text")
    text = text if isinstance(text, str) else ""
    found: dict[str, None] = {}
    spans: list[tuple[int, int, list[str]]] = []
    loose: list[str] = []
    facets = record.get("facets")
    if isinstance(facets, list):
        for facet in facets:
            link = _link_facet(facet)
            if link is None:
                continue
            span, uris = link
            if span is None:
                loose.extend(uris)
            else:
                spans.append((span[0], span[1], uris))
    raw = text.encode("utf-8", "surrogatepass")
    cursor = 0
    for start, end, uris in sorted(spans, key=lambda s: s[0]):
        if start < cursor or end > len(raw):  # overlapping, or past the text: trust the URL only
            loose.extend(uris)
            continue
        _add_ids(found, raw[cursor:start].decode("utf-8", "replace"))
        for uri in uris or (raw[start:end].decode("utf-8", "replace"),):
            _add_ids(found, uri)
        cursor = end
    _add_ids(found, raw[cursor:].decode("utf-8", "replace") if cursor else text)
    for uri in loose:
        _add_ids(found, uri)
    embedded = _external_uri(record.get("embed"))
    if embedded is not None:
        _add_ids(found, embedded)
    return list(found)


def _link_facet(facet: object) -> tuple[tuple[int, int] | None, list[str]] | None:
    """(byte span or None, its link URLs) of a facet with a link feature; None otherwise."""
    if not isinstance(facet, dict):
        return None
    features = facet.get("features")
    if not isinstance(features, list):
        return None
    is_link = False
    uris: list[str] = []
    for feature in features:
        if isinstance(feature, dict) and feature.get("$type") == LINK_FEATURE:
            is_link = True
            uri = feature.get("uri")
            if isinstance(uri, str) and uri.strip():
                uris.append(uri)
    if not is_link:
        return None
    index = facet.get("index")
    span = None
    if isinstance(index, dict):
        start, end = index.get("byteStart"), index.get("byteEnd")
        if type(start) is int and type(end) is int and 0 <= start < end:
            span = (start, end)
    return span, uris


def _external_uri(embed: object) -> str | None:
    if not isinstance(embed, dict):
        return None
    if embed.get("$type") == RECORD_WITH_MEDIA_EMBED:
        embed = embed.get("media")
        if not isinstance(embed, dict):
            return None
    if embed.get("$type") != EXTERNAL_EMBED:
        return None
    external = embed.get("external")
    if not isinstance(external, dict):
        return None
    uri = external.get("uri")
    return uri if isinstance(uri, str) else None


def _add_ids(found: dict[str, None], text: str) -> None:
    for arxiv_id in extract_arxiv_ids(text):
        found.setdefault(arxiv_id, None)


# -- the AppView: counts of the posts we hold -------------------------------------------------

GET_POSTS = "/xrpc/app.bsky.feed.getPosts"
CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
REFRESH_SESSION = "/xrpc/com.atproto.server.refreshSession"
MAX_URIS_PER_REQUEST = 25  # app.bsky.feed.getPosts: uris maxLength
AUTH_NEEDED = (
    "Bluesky's AppView asks for authentication: set BLUESKY_HANDLE and BLUESKY_APP_PASSWORD"
)
# XRPC error names that mean "who are you?" rather than "no".
_AUTH_ERRORS = frozenset(
    {"AuthMissing", "AuthRequired", "AuthenticationRequired", "InvalidToken", "ExpiredToken"}
)
_ANSWERED = frozenset({200, 400, 401, 403})
_SESSION_ANSWERED = frozenset({200, 400, 401})
_HANDLE_RE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
)
_INVALID_HANDLE = "handle.invalid"  # what the AppView shows when a handle fails verification
_XRPC_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
_COUNTS = (
    (Metric.LIKES, "likeCount"),
    (Metric.REPOSTS, "repostCount"),
    (Metric.QUOTES, "quoteCount"),
    (Metric.REPLIES, "replyCount"),
)


@dataclass(frozen=True, slots=True)
class Refresh:
    """What the AppView said about posts we hold: updated mentions, and the at-uris it no longer
    shows (deleted, or hidden from the public view)."""

    mentions: tuple[Mention, ...]
    gone: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _PostView:
    handle: str | None
    display_name: str | None
    metrics: dict[str, int]


class BlueskySource:
    """Reads like, repost, quote and reply counts of Bluesky posts from the AppView.

    Discovery is the Jetstream stream (:func:`parse_event`); this client only refreshes posts
    already stored, with ``app.bsky.feed.getPosts`` (25 at-uris a request). Anonymous first; when
    the AppView asks for authentication and ``handle``/``app_password`` are set, it logs in with
    ``com.atproto.server.createSession`` and keeps the session, renewing an expired access token
    with ``refreshSession`` (logging in again only when the refresh is refused). Tokens and the
    password never appear in logs, errors or the repr. ``limiter`` (the AppView's rate limit) is
    entered around every HTTP attempt, the session calls included.
    """

    name = NAME

    def __init__(
        self,
        http: HttpClient,
        settings: BlueskySettings,
        *,
        handle: SecretStr | None = None,
        app_password: SecretStr | None = None,
        limiter: AbstractAsyncContextManager[Any] | None = None,
        stream: FrameStream | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        # Discovery: Jetstream (``bot.sources.jetstream.JetstreamClient``), followed by the
        # bot's stream consumer and replayed by `hotpapers fetch`.
        self.stream = stream
        self._handle = _secret(handle)
        self._app_password = _secret(app_password)
        self.limiter = limiter
        self._posts_url = f"{settings.api_url.rstrip('/')}{GET_POSTS}"
        self._auth_url = settings.auth_url.rstrip("/")
        self._access: SecretStr | None = None
        self._refresh: SecretStr | None = None
        self._auth_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"BlueskySource(api_url={self._settings.api_url!r}, "
            f"auth_url={self._settings.auth_url!r}, credentials_set={self._has_credentials}, "
            f"session_held={self._access is not None})"
        )

    @property
    def requests(self) -> int:
        return self._http.requests

    @property
    def _has_credentials(self) -> bool:
        return self._handle is not None and self._app_password is not None

    def decode(self, frame: str | bytes) -> tuple[int | None, StreamEvent | None]:
        """One Jetstream frame → ``(time_us, event)``: :func:`parse_event`."""
        return parse_event(frame)

    async def collect(self, window: Window) -> list[Mention]:
        """Always empty: Bluesky posts are discovered from the Jetstream stream as they are
        made (:func:`parse_event`), not searched by window; their counts come from
        :meth:`refresh`. (Bluesky asks bots not to poll ``searchPosts``.)"""
        return []

    async def refresh(self, posts: Sequence[Mention]) -> Refresh:
        """The AppView's current view of ``posts`` (Bluesky mentions whose ``post_id`` is the
        at-uri): each one the AppView shows, with fresh metrics, handle, display name and URL
        (text, time, ids and language are kept as stored), and the at-uris it did not return.

        Raises :class:`SourceError` (and its subclasses) when the AppView fails, refuses or
        answers something malformed; only a well-formed answer marks a post gone.
        """
        uris: dict[str, None] = {}
        for mention in posts:
            if mention.source != NAME or not mention.post_id.startswith("at://"):
                raise ValueError(f"not a Bluesky post: {mention.source} {mention.post_id!r}")
            uris.setdefault(mention.post_id, None)
        wanted = list(uris)
        views: dict[str, _PostView] = {}
        for first in range(0, len(wanted), MAX_URIS_PER_REQUEST):
            batch = wanted[first : first + MAX_URIS_PER_REQUEST]
            views.update(_read_posts(await self._get_posts(batch), set(batch)))
        mentions = tuple(_refreshed(m, views[m.post_id]) for m in posts if m.post_id in views)
        gone = tuple(uri for uri in wanted if uri not in views)
        log.info("bluesky: refreshed %d posts, %d gone", len(views), len(gone))
        return Refresh(mentions, gone)

    async def _get_posts(self, batch: list[str]) -> Any:
        params = MultiDict(("uris", uri) for uri in batch)
        logged_in = renewed = False
        while True:
            token = self._access
            headers = None if token is None else _bearer(token)
            response = await self._http.get(
                self._posts_url,
                params=params,
                headers=headers,
                ok_statuses=_ANSWERED,
                throttle=self.limiter,
            )
            if response.status == 200:
                return response.json(NAME)
            error, message = _xrpc_error(response)
            if not _asks_for_auth(response.status, error):
                raise SourceError(
                    NAME,
                    f"getPosts answered HTTP {response.status} {error or ''}: {message}".strip(),
                    kind=http_kind(response.status),
                )
            if not self._has_credentials:
                raise SourceAuthError(NAME, AUTH_NEEDED)
            if (token is None and logged_in) or (token is not None and renewed):
                raise SourceError(
                    NAME,
                    f"the AppView refused the session (HTTP {response.status} {error or ''}); "
                    "check BLUESKY_HANDLE and BLUESKY_APP_PASSWORD",
                    kind=http_kind(response.status),
                )
            if token is None:
                logged_in = True
            else:
                renewed = True
            await self._authenticate(token)

    async def _authenticate(self, failed: SecretStr | None) -> None:
        """Get a working access token after ``failed`` (None: none was sent) was refused."""
        async with self._auth_lock:
            if self._access is not None and self._access is not failed:
                return  # another refresh renewed the session while this one waited
            if failed is not None and self._refresh is not None:
                response = await self._http.post(
                    f"{self._auth_url}{REFRESH_SESSION}",
                    headers=_bearer(self._refresh),
                    ok_statuses=_SESSION_ANSWERED,
                    throttle=self.limiter,
                )
                if response.status == 200:
                    self._keep_session(response)
                    log.info("bluesky: session refreshed")
                    return
                log.info(
                    "bluesky: session refresh refused (HTTP %d %s); logging in again",
                    response.status,
                    _xrpc_error(response)[0] or "",
                )
            self._access = self._refresh = None
            await self._login()

    async def _login(self) -> None:
        if self._handle is None or self._app_password is None:
            raise SourceAuthError(NAME, AUTH_NEEDED)
        response = await self._http.post(
            f"{self._auth_url}{CREATE_SESSION}",
            json_body={
                "identifier": self._handle.get_secret_value(),
                "password": self._app_password.get_secret_value(),
            },
            ok_statuses=_SESSION_ANSWERED,
            throttle=self.limiter,
        )
        if response.status != 200:
            error, _ = _xrpc_error(response)
            raise SourceError(
                NAME,
                f"Bluesky refused the login (HTTP {response.status} {error or ''}); "
                "check BLUESKY_HANDLE and BLUESKY_APP_PASSWORD",
                kind=http_kind(response.status),
            )
        self._keep_session(response)
        log.info("bluesky: logged in")

    def _keep_session(self, response: Response) -> None:
        answer = response.json(NAME)
        access = answer.get("accessJwt") if isinstance(answer, dict) else None
        refresh = answer.get("refreshJwt") if isinstance(answer, dict) else None
        if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh):
            raise MalformedResponseError(NAME, "session answer without accessJwt and refreshJwt")
        self._access = SecretStr(access)
        self._refresh = SecretStr(refresh)


def _secret(value: SecretStr | None) -> SecretStr | None:
    if value is None or not value.get_secret_value().strip():
        return None
    return SecretStr(value.get_secret_value().strip())


def _bearer(token: SecretStr) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


def _asks_for_auth(status: int, error: str | None) -> bool:
    if status == 401:
        return True
    if status == 400:
        return error == "ExpiredToken"
    return status == 403 and error in _AUTH_ERRORS


def _xrpc_error(response: Response) -> tuple[str | None, str]:
    """(error name, message) of an XRPC error envelope, each safe to log (bounded, one line)."""
    try:
        answer = json.loads(response.body)
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        return None, response.body[:100].decode("utf-8", "replace").strip()
    error = answer.get("error")
    message = answer.get("message")
    name = error if isinstance(error, str) and _XRPC_NAME_RE.fullmatch(error) else None
    text = " ".join(message.split())[:160] if isinstance(message, str) else ""
    return name, text


def _read_posts(answer: Any, wanted: set[str]) -> dict[str, _PostView]:
    if not isinstance(answer, dict) or not isinstance(answer.get("posts"), list):
        raise MalformedResponseError(NAME, "getPosts answer has no `posts` list")
    views: dict[str, _PostView] = {}
    for post in answer["posts"]:
        if not isinstance(post, dict) or not isinstance(post.get("uri"), str):
            raise MalformedResponseError(NAME, "a getPosts post is not an object with a `uri`")
        uri = post["uri"]
        if uri not in wanted:
            log.debug("bluesky: getPosts returned %s, which was not asked for", uri)
            continue
        author = post.get("author")
        if not isinstance(author, dict):
            raise MalformedResponseError(NAME, f"post {uri} has no `author` object")
        handle = author.get("handle")
        display_name = author.get("displayName")
        views[uri] = _PostView(
            handle=handle
            if isinstance(handle, str)
            and handle != _INVALID_HANDLE
            and _HANDLE_RE.fullmatch(handle)
            else None,
            display_name=display_name.strip()
            if isinstance(display_name, str) and display_name.strip()
            else None,
            metrics={metric.value: _count(post, key, uri) for metric, key in _COUNTS},
        )
    return views


def _count(post: dict[str, Any], key: str, uri: str) -> int:
    value = post.get(key)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise MalformedResponseError(NAME, f"post {uri} has a `{key}` that is not a count")
    return value


def _refreshed(mention: Mention, view: _PostView) -> Mention:
    rkey = mention.post_id.rsplit("/", 1)[-1]
    author = view.handle or did_of(mention.post_id)
    return replace(
        mention,
        url=post_url(author, rkey),
        author=author,
        author_name=view.display_name,
        metrics=view.metrics,
    )
