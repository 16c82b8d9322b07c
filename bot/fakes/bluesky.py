"""A fake Bluesky AppView (getPosts, sessions) on 127.0.0.1, and the Jetstream events of its posts.

The wire follows the official lexicons (``app.bsky.feed.getPosts``, ``app.bsky.feed.defs#postView``,
``com.atproto.server.createSession``/``refreshSession``) and a real postView (MarshalX/atproto's
``thread_view_post_with_embed_media.json``). The module-level builders make the records and the
Jetstream v1 ``/subscribe`` frames of the same posts, so a test or the demo can feed a post to
the stream and then find its counts here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.fakes.server import FakeServer, json_response
from bot.sources.bluesky import (
    CREATE_SESSION,
    EXTERNAL_EMBED,
    GET_POSTS,
    LINK_FEATURE,
    MAX_URIS_PER_REQUEST,
    POST_COLLECTION,
    RECORD_WITH_MEDIA_EMBED,
    REFRESH_SESSION,
    did_of,
    micros,
    post_uri,
)

log = logging.getLogger(__name__)

UTC = dt.UTC
CONTENT_TYPE = "application/json"
_B32_SORTABLE = "234567abcdefghijklmnopqrstuvwxyz"
_ACCOUNT_CREATED = "2023-04-26T19:05:34.249Z"


# -- builders: atproto values, records and Jetstream frames ----------------------------------


def atproto_time(moment: dt.datetime) -> str:
    """An atproto datetime as clients write it: ``2024-09-09T19:46:02.102Z``."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def tid(time_us: int, clock_id: int = 0) -> str:
    """A timestamp identifier (record keys, revs): 13 base32-sortable characters."""
    value = (time_us << 10) | (clock_id & 0x3FF)
    return "".join(_B32_SORTABLE[(value >> shift) & 31] for shift in range(60, -1, -5))


def fake_cid(*parts: object) -> str:
    """A deterministic CIDv1 (dag-cbor, sha-256) string for ``parts``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")[:52]


def fake_did(seed: str) -> str:
    """A deterministic ``did:plc:`` identifier (24 base32 characters) for ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "did:plc:" + base64.b32encode(digest).decode().lower()[:24]


def link_facet(text: str, shown: str, uri: str, *, occurrence: int = 0) -> dict[str, Any]:
    """A link facet over ``shown`` (its ``occurrence``-th appearance) in ``text``, with UTF-8 byte
    offsets as the lexicon wants them."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(shown, start + 1)
    byte_start = len(text[:start].encode())
    return {
        "$type": "app.bsky.richtext.facet",
        "index": {"byteStart": byte_start, "byteEnd": byte_start + len(shown.encode())},
        "features": [{"$type": LINK_FEATURE, "uri": uri}],
    }


def tag_facet(text: str, tag: str) -> dict[str, Any]:
    """A hashtag facet over ``#tag`` in ``text``."""
    byte_start = len(text[: text.index(f"#{tag}")].encode())
    return {
        "$type": "app.bsky.richtext.facet",
        "index": {"byteStart": byte_start, "byteEnd": byte_start + len(f"#{tag}".encode())},
        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
    }


def external_embed(uri: str, title: str = "", description: str = "") -> dict[str, Any]:
    """An ``app.bsky.embed.external`` link card."""
    return {
        "$type": EXTERNAL_EMBED,
        "external": {"uri": uri, "title": title, "description": description},
    }


def record_with_media_embed(
    media: Mapping[str, Any], quoted_uri: str, quoted_cid: str | None = None
) -> dict[str, Any]:
    """An ``app.bsky.embed.recordWithMedia``: a quoted post plus ``media`` (e.g. a link card)."""
    return {
        "$type": RECORD_WITH_MEDIA_EMBED,
        "media": dict(media),
        "record": {
            "$type": "app.bsky.embed.record",
            "record": {"cid": quoted_cid or fake_cid(quoted_uri), "uri": quoted_uri},
        },
    }


def post_record(
    text: str,
    created_at: dt.datetime,
    *,
    langs: Sequence[str] | None = ("en",),
    facets: Sequence[Mapping[str, Any]] | None = None,
    embed: Mapping[str, Any] | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """An ``app.bsky.feed.post`` record, keys in the order the official app writes them."""
    record: dict[str, Any] = {"$type": POST_COLLECTION, "createdAt": atproto_time(created_at)}
    if embed is not None:
        record["embed"] = dict(embed)
    if facets:
        record["facets"] = [dict(f) for f in facets]
    if langs is not None:
        record["langs"] = list(langs)
    if reply_to is not None:
        ref = {"cid": fake_cid(reply_to), "uri": reply_to}
        record["reply"] = {"parent": ref, "root": ref}
    record["text"] = text
    return record


def commit_event(
    did: str,
    rkey: str,
    record: Mapping[str, Any] | None,
    time_us: int,
    *,
    operation: str = "create",
    collection: str = POST_COLLECTION,
    cid: str | None = None,
    rev: str | None = None,
) -> dict[str, Any]:
    """A Jetstream v1 commit event; ``record`` (and ``cid``) are left out of deletes."""
    commit: dict[str, Any] = {
        "rev": rev or tid(time_us, 1),
        "operation": operation,
        "collection": collection,
        "rkey": rkey,
    }
    if operation != "delete":
        commit["record"] = dict(record or {})
        commit["cid"] = cid or fake_cid(did, collection, rkey, json.dumps(record, sort_keys=True))
    return {"did": did, "time_us": time_us, "kind": "commit", "commit": commit}


def post_deleted_event(did: str, rkey: str, time_us: int) -> dict[str, Any]:
    """The Jetstream v1 event of a deleted post."""
    return commit_event(did, rkey, None, time_us, operation="delete")


def account_event(
    did: str, time_us: int, *, active: bool, status: str | None = None, seq: int = 1
) -> dict[str, Any]:
    """A Jetstream v1 account event (``status``: deleted, deactivated, takendown, …)."""
    account: dict[str, Any] = {"active": active, "did": did, "seq": seq}
    if status is not None:
        account["status"] = status
    account["time"] = atproto_time(dt.datetime(1970, 1, 1, tzinfo=UTC) + _us(time_us))
    return {"did": did, "time_us": time_us, "kind": "account", "account": account}


def account_deleted_event(did: str, time_us: int) -> dict[str, Any]:
    """The Jetstream v1 event of an account deleted for good."""
    return account_event(did, time_us, active=False, status="deleted")


def identity_event(did: str, time_us: int, handle: str, seq: int = 1) -> dict[str, Any]:
    """A Jetstream v1 identity event (a handle change)."""
    moment = dt.datetime(1970, 1, 1, tzinfo=UTC) + _us(time_us)
    return {
        "did": did,
        "time_us": time_us,
        "kind": "identity",
        "identity": {"did": did, "handle": handle, "seq": seq, "time": atproto_time(moment)},
    }


def frame(event: Mapping[str, Any]) -> str:
    """An event as Jetstream sends it: compact JSON, non-ASCII as is (Go's encoder)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def _us(time_us: int) -> dt.timedelta:
    return dt.timedelta(microseconds=time_us)


# -- the AppView -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Author:
    handle: str
    display_name: str | None


@dataclass(slots=True)
class _Post:
    did: str
    rkey: str
    cid: str
    record: dict[str, Any]
    indexed_at: str
    counts: dict[str, int] = field(default_factory=dict)


def _xrpc_error(status: int, error: str, message: str) -> web.Response:
    return json_response(
        {"error": error, "message": message}, status=status, content_type=CONTENT_TYPE
    )


def _fake_jwt(kind: str, did: str, lifetime: dt.timedelta) -> str:
    def b64(value: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = dt.datetime.now(UTC)
    claims = {
        "scope": "com.atproto.appPass" if kind == "at+jwt" else "com.atproto.refresh",
        "sub": did,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": secrets.token_urlsafe(16),
    }
    header = b64({"typ": kind, "alg": "ES256K"})
    return f"{header}.{b64(claims)}.{secrets.token_urlsafe(48)}"


class FakeBlueskyAppView(FakeServer):
    """``GET /xrpc/app.bsky.feed.getPosts`` over in-memory posts, plus the session calls.

    ``getPosts`` takes 1 to 25 repeated ``uris`` (more: 400 ``InvalidRequest``) and answers
    ``{"posts": [postView…]}`` in the order asked, leaving out unknown and deleted posts. With
    ``require_auth`` a request without a valid access token gets 401 ``AuthMissing``; a token
    made stale by :meth:`expire_access_tokens` gets 400 ``ExpiredToken``, as the real services
    answer. ``createSession`` checks ``handle`` (or the account DID) and ``app_password``;
    ``refreshSession`` takes the refresh token as Bearer and rotates both tokens. The same server
    serves both the AppView and the PDS: set ``api_url`` and ``auth_url`` to :attr:`url`.
    """

    content_type = CONTENT_TYPE
    malformed_body = b'{"posts":[{"uri":"at://did:plc:kvwvcn5iqfooopmyzvb4qzba/app.bsky.fe'

    def __init__(
        self,
        *,
        handle: str | None = None,
        app_password: str | None = None,
        account_did: str | None = None,
        require_auth: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.handle = handle
        self.app_password = app_password
        self.account_did = account_did or fake_did(handle or "fake-account")
        self.require_auth = require_auth
        self.sessions_created = 0
        self.sessions_refreshed = 0
        self._authors: dict[str, _Author] = {}
        self._posts: dict[str, _Post] = {}
        self._access_tokens: set[str] = set()
        self._refresh_tokens: set[str] = set()
        self._expired_tokens: set[str] = set()
        self._clock = itertools.count(1)
        self.app.router.add_get(GET_POSTS, self._get_posts)
        self.app.router.add_post(CREATE_SESSION, self._create_session)
        self.app.router.add_post(REFRESH_SESSION, self._refresh_session)

    # -- store -----------------------------------------------------------------------------

    def add_post(
        self,
        did: str,
        rkey: str,
        *,
        handle: str,
        display_name: str | None = None,
        text: str = "",
        created_at: dt.datetime | None = None,
        likes: int = 0,
        reposts: int = 0,
        quotes: int = 0,
        replies: int = 0,
        bookmarks: int = 0,
        facets: Sequence[Mapping[str, Any]] | None = None,
        embed: Mapping[str, Any] | None = None,
        langs: Sequence[str] | None = ("en",),
        record: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a post (``record`` verbatim, or one built from the other fields); returns its
        at-uri. The author's handle and display name apply to all their posts."""
        created = created_at or dt.datetime.now(UTC)
        stored = (
            dict(record)
            if record is not None
            else post_record(text, created, langs=langs, facets=facets, embed=embed)
        )
        uri = post_uri(did, rkey)
        self._authors[did] = _Author(handle, display_name)
        self._posts[uri] = _Post(
            did=did,
            rkey=rkey,
            cid=fake_cid(uri, json.dumps(stored, sort_keys=True)),
            record=stored,
            indexed_at=atproto_time(created + dt.timedelta(milliseconds=350)),
        )
        self.set_counts(
            uri, likes=likes, reposts=reposts, quotes=quotes, replies=replies, bookmarks=bookmarks
        )
        return uri

    def set_counts(
        self,
        uri: str,
        *,
        likes: int | None = None,
        reposts: int | None = None,
        quotes: int | None = None,
        replies: int | None = None,
        bookmarks: int | None = None,
    ) -> None:
        """Change a stored post's counts (those given)."""
        counts = self._posts[uri].counts
        for key, value in (
            ("likeCount", likes),
            ("repostCount", reposts),
            ("quoteCount", quotes),
            ("replyCount", replies),
            ("bookmarkCount", bookmarks),
        ):
            if value is not None:
                counts[key] = value

    def set_handle(self, did: str, handle: str, display_name: str | None = None) -> None:
        """A handle (and display name) change of an author."""
        self._authors[did] = _Author(handle, display_name)

    def delete_post(self, uri: str) -> None:
        """Forget a post: getPosts leaves it out from now on."""
        self._posts.pop(uri, None)

    def record(self, uri: str) -> dict[str, Any]:
        """The stored record of a post."""
        return self._posts[uri].record

    def post_view(self, uri: str) -> dict[str, Any]:
        """The postView getPosts answers for a stored post."""
        return self._view(self._posts[uri])

    # -- Jetstream events of the stored posts ----------------------------------------------

    def jetstream_event(
        self, uri: str, *, time_us: int | None = None, operation: str = "create"
    ) -> dict[str, Any]:
        """The Jetstream v1 commit event of a stored post (``time_us``: when Jetstream saw it,
        by default a quarter second after its ``createdAt``)."""
        post = self._posts[uri]
        if time_us is None:
            created = dt.datetime.fromisoformat(post.record["createdAt"])
            time_us = micros(created) + 250_000
        return commit_event(
            post.did,
            post.rkey,
            post.record,
            time_us,
            operation=operation,
            cid=post.cid,
            rev=tid(time_us, next(self._clock)),
        )

    account_deleted_event = staticmethod(account_deleted_event)
    post_deleted_event = staticmethod(post_deleted_event)

    # -- sessions --------------------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires: the next use gets 400 ``ExpiredToken``."""
        self._expired_tokens |= self._access_tokens
        self._access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far is revoked: refreshSession refuses it."""
        self._expired_tokens |= self._refresh_tokens
        self._refresh_tokens.clear()

    @property
    def issued_tokens(self) -> frozenset[str]:
        """Every token handed out, live or not (to check none leaks into logs)."""
        return frozenset(self._access_tokens | self._refresh_tokens | self._expired_tokens)

    def _new_session(self) -> dict[str, Any]:
        access = _fake_jwt("at+jwt", self.account_did, dt.timedelta(hours=2))
        refresh = _fake_jwt("refresh+jwt", self.account_did, dt.timedelta(days=90))
        self._access_tokens.add(access)
        self._refresh_tokens.add(refresh)
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": self.handle or "fake.bsky.social",
            "did": self.account_did,
            "active": True,
        }

    def _bearer(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None

    # -- handlers --------------------------------------------------------------------------

    async def _get_posts(self, request: web.Request) -> web.StreamResponse:
        token = self._bearer(request)
        if token is not None:
            if token in self._expired_tokens:
                return _xrpc_error(400, "ExpiredToken", "Token has expired")
            if token not in self._access_tokens:
                return _xrpc_error(401, "InvalidToken", "Token could not be verified")
        elif self.require_auth:
            return _xrpc_error(401, "AuthMissing", "Authentication Required")
        uris = request.query.getall("uris", [])
        if not uris:
            return _xrpc_error(400, "InvalidRequest", 'Error: Params must have the property "uris"')
        if len(uris) > MAX_URIS_PER_REQUEST:
            return _xrpc_error(
                400,
                "InvalidRequest",
                f"Error: Params/uris must not have more than {MAX_URIS_PER_REQUEST} elements",
            )
        for n, uri in enumerate(uris):
            if not uri.startswith("at://") or did_of(uri) == "":
                return _xrpc_error(400, "InvalidRequest", f"Error: uris/{n} must be a valid at-uri")
        seen: dict[str, None] = dict.fromkeys(uris)
        posts = [self._view(self._posts[uri]) for uri in seen if uri in self._posts]
        return json_response({"posts": posts}, content_type=CONTENT_TYPE)

    async def _create_session(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _xrpc_error(400, "InvalidRequest", "Request body is not valid JSON")
        if not isinstance(body, dict):
            return _xrpc_error(400, "InvalidRequest", "Input must be an object")
        for key in ("identifier", "password"):
            if not isinstance(body.get(key), str):
                return _xrpc_error(400, "InvalidRequest", f'Input must have the property "{key}"')
        known = {self.handle, self.account_did} - {None}
        if (
            self.app_password is None
            or body["identifier"] not in known
            or body["password"] != self.app_password
        ):
            return _xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        self.sessions_created += 1
        return json_response(self._new_session(), content_type=CONTENT_TYPE)

    async def _refresh_session(self, request: web.Request) -> web.StreamResponse:
        token = self._bearer(request)
        if token is None:
            return _xrpc_error(401, "AuthMissing", "Authentication Required")
        if token in self._access_tokens:
            return _xrpc_error(400, "InvalidToken", "Invalid token type")
        if token not in self._refresh_tokens:
            return _xrpc_error(400, "ExpiredToken", "Token has been revoked")
        self._refresh_tokens.discard(token)  # refresh tokens rotate: each works once
        self._expired_tokens.add(token)
        self.sessions_refreshed += 1
        return json_response(self._new_session(), content_type=CONTENT_TYPE)

    # -- postView --------------------------------------------------------------------------

    def _view(self, post: _Post) -> dict[str, Any]:
        """A postView shaped like the real one (``app.bsky.feed.defs#postView``)."""
        author = self._authors[post.did]
        profile: dict[str, Any] = {"did": post.did, "handle": author.handle}
        if author.display_name is not None:
            profile["displayName"] = author.display_name
        profile.update(
            {
                "avatar": f"https://cdn.bsky.app/img/avatar/plain/{post.did}/"
                f"{fake_cid(post.did, 'avatar').replace('bafyrei', 'bafkrei')}@jpeg",
                "associated": {"chat": {"allowIncoming": "all"}},
                "viewer": {"muted": False, "blockedBy": False},
                "labels": [],
                "createdAt": _ACCOUNT_CREATED,
            }
        )
        view: dict[str, Any] = {
            "uri": post_uri(post.did, post.rkey),
            "cid": post.cid,
            "author": profile,
            "record": post.record,
        }
        embed = _embed_view(post.record.get("embed"))
        if embed is not None:
            view["embed"] = embed
        view.update(
            {
                "bookmarkCount": post.counts.get("bookmarkCount", 0),
                "replyCount": post.counts.get("replyCount", 0),
                "repostCount": post.counts.get("repostCount", 0),
                "likeCount": post.counts.get("likeCount", 0),
                "quoteCount": post.counts.get("quoteCount", 0),
                "indexedAt": post.indexed_at,
                "viewer": {"bookmarked": False, "threadMuted": False, "embeddingDisabled": False},
                "labels": [],
            }
        )
        return view


def _embed_view(embed: object) -> dict[str, Any] | None:
    """The hydrated ``#view`` of a record's embed, for the kinds the fake knows."""
    if not isinstance(embed, dict):
        return None
    kind = embed.get("$type")
    if kind == EXTERNAL_EMBED and isinstance(embed.get("external"), dict):
        external = embed["external"]
        return {
            "$type": f"{EXTERNAL_EMBED}#view",
            "external": {
                "uri": external.get("uri", ""),
                "title": external.get("title", ""),
                "description": external.get("description", ""),
            },
        }
    if kind == RECORD_WITH_MEDIA_EMBED:
        quoted = embed.get("record", {}).get("record", {})
        view: dict[str, Any] = {
            "$type": f"{RECORD_WITH_MEDIA_EMBED}#view",
            "record": {
                "record": {
                    "$type": "app.bsky.embed.record#viewNotFound",
                    "uri": quoted.get("uri", ""),
                    "notFound": True,
                }
            },
        }
        media = _embed_view(embed.get("media"))
        if media is not None:
            view["media"] = media
        return view
    return None


def demo_posts(
    appview: FakeBlueskyAppView, papers: Iterable[tuple[str, str]], start: dt.datetime
) -> list[dict[str, Any]]:
    """Store one post per ``(arxiv_id, handle)`` in ``appview`` (a link facet, an external
    embed or a bare ``arXiv:`` id in turn) and return their Jetstream events, oldest first."""
    events = []
    for n, (arxiv_id, handle) in enumerate(papers):
        created = start + dt.timedelta(minutes=7 * n)
        did = fake_did(handle)
        url = f"https://arxiv.org/abs/{arxiv_id}"
        if n % 3 == 0:
            text = f"New paper 📄 arxiv.org/abs/{arxiv_id}"
            extra: dict[str, Any] = {"facets": [link_facet(text, f"arxiv.org/abs/{arxiv_id}", url)]}
        elif n % 3 == 1:
            text = "Worth a read"
            extra = {"embed": external_embed(url, f"[{arxiv_id}] A paper", "Abstract…")}
        else:
            text = f"Reading arXiv:{arxiv_id} this morning"
            extra = {}
        uri = appview.add_post(
            did,
            tid(micros(created)),
            handle=handle,
            text=text,
            created_at=created,
            likes=10 * (n + 1),
            reposts=n,
            quotes=n // 2,
            **extra,
        )
        events.append(appview.jetstream_event(uri))
    return events
