"""BlueskySource against FakeBlueskyAppView: counts, batches, gone posts, failures, sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType

import aiohttp
import pytest
from pydantic import SecretStr

from bot.config import HttpSettings
from bot.core.errors import MalformedResponseError, SourceError, SourceUnavailableError
from bot.core.models import Mention, Window
from bot.fakes.bluesky import (
    FakeBlueskyAppView,
    external_embed,
    fake_did,
    frame,
    link_facet,
    tid,
)
from bot.sources.base import PopularitySource
from bot.sources.bluesky import (
    AUTH_NEEDED,
    CREATE_SESSION,
    GET_POSTS,
    REFRESH_SESSION,
    BlueskySettings,
    BlueskySource,
    PostUpsert,
    micros,
    parse_event,
    post_uri,
)
from bot.sources.http import HttpClient
from tests.sources.conftest import RecordingSleep

UTC = dt.UTC
DATA = Path(__file__).resolve().parents[1] / "data" / "bluesky"
HANDLE = "hotpapers-bot.bsky.social"
PASSWORD = "abcd-efgh-ijkl-mnop"
T0 = dt.datetime(2026, 3, 9, 8, 30, tzinfo=UTC)
ALICE = fake_did("alice")
DAY = Window.for_day(dt.date(2026, 3, 9))


@pytest.fixture
async def fake() -> AsyncIterator[FakeBlueskyAppView]:
    async with FakeBlueskyAppView(handle=HANDLE, app_password=PASSWORD) as server:
        yield server


@pytest.fixture
def make_source(
    fake: FakeBlueskyAppView, http_session: aiohttp.ClientSession, sleep: RecordingSleep
) -> Callable[..., BlueskySource]:
    def build(
        *, handle: str | None = None, password: str | None = None, retries: int = 4, limiter=None
    ) -> BlueskySource:
        http = HttpClient(
            http_session, HttpSettings(retries=retries), source="bluesky", sleep=sleep
        )
        config = BlueskySettings(api_url=fake.url, auth_url=fake.url)
        return BlueskySource(
            http,
            config,
            handle=SecretStr(handle) if handle is not None else None,
            app_password=SecretStr(password) if password is not None else None,
            limiter=limiter,
        )

    return build


def logged_in(make_source: Callable[..., BlueskySource]) -> BlueskySource:
    return make_source(handle=HANDLE, password=PASSWORD)


def stored_post(
    fake: FakeBlueskyAppView, n: int = 0, *, handle: str = "alice.bsky.social", **counts: int
) -> Mention:
    """A post stored in the fake, as the stream consumer stored it: parse_event of its event."""
    created = T0 + dt.timedelta(minutes=n)
    text = f"Paper {n} 🧪 arxiv.org/abs/2603.{n:05d}"
    paper = f"https://arxiv.org/abs/2603.{n + 1:05d}"
    uri = fake.add_post(
        fake_did(handle),
        tid(micros(created), n % 1024),
        handle=handle,
        display_name="Alice 🧪",
        text=text,
        created_at=created,
        facets=[link_facet(text, f"arxiv.org/abs/2603.{n:05d}", paper)],
        **counts,
    )
    _, event = parse_event(frame(fake.jetstream_event(uri)))
    assert isinstance(event, PostUpsert)
    return event.mention


# -- refresh -----------------------------------------------------------------------------------


async def test_is_a_popularity_source_whose_collect_is_empty(fake, make_source) -> None:
    source = make_source()
    assert isinstance(source, PopularitySource)
    assert source.name == "bluesky"
    assert await source.collect(DAY) == []
    assert source.requests == 0
    assert fake.requests == []


async def test_counts_handle_and_url_are_refreshed(fake, make_source) -> None:
    stored = stored_post(fake, 1, likes=120, reposts=31, quotes=4, replies=9, bookmarks=2)
    assert stored.author == fake_did("alice.bsky.social")
    source = make_source()

    result = await source.refresh([stored])

    [mention] = result.mentions
    assert result.gone == ()
    assert dict(mention.metrics) == {"likes": 120, "reposts": 31, "quotes": 4, "replies": 9}
    assert mention.author == "alice.bsky.social"
    assert mention.author_name == "Alice 🧪"
    rkey = stored.post_id.rsplit("/", 1)[1]
    assert mention.url == f"https://bsky.app/profile/alice.bsky.social/post/{rkey}"
    # What the stream stored is kept.
    assert mention.post_id == stored.post_id
    assert mention.text == stored.text
    assert mention.created_at == stored.created_at
    assert mention.arxiv_ids == ("2603.00002",)
    assert mention.lang == "en"
    assert source.requests == 1
    [request] = fake.requests
    assert request.path == GET_POSTS
    assert request.query.getall("uris") == [stored.post_id]
    assert "Authorization" not in request.headers


async def test_60_posts_take_3_requests_of_at_most_25(fake, make_source) -> None:
    posts = [stored_post(fake, n, likes=n) for n in range(60)]
    source = make_source()

    result = await source.refresh(posts)

    assert [len(r.query.getall("uris")) for r in fake.requests] == [25, 25, 10]
    assert [u for r in fake.requests for u in r.query.getall("uris")] == [p.post_id for p in posts]
    assert [m.metric("likes") for m in result.mentions] == list(range(60))
    assert source.requests == 3


async def test_deleted_and_unknown_posts_are_gone(fake, make_source) -> None:
    kept, deleted = stored_post(fake, 1, likes=5), stored_post(fake, 2)
    fake.delete_post(deleted.post_id)
    unknown = stored_post(fake, 3)
    fake.delete_post(unknown.post_id)

    result = await make_source().refresh([kept, deleted, unknown])

    assert [m.post_id for m in result.mentions] == [kept.post_id]
    assert result.gone == (deleted.post_id, unknown.post_id)


async def test_the_same_post_twice_is_asked_once(fake, make_source) -> None:
    post = stored_post(fake, 1, likes=7)

    result = await make_source().refresh([post, post])

    assert fake.requests[0].query.getall("uris") == [post.post_id]
    assert [m.metric("likes") for m in result.mentions] == [7, 7]


async def test_nothing_to_refresh_asks_nothing(fake, make_source) -> None:
    source = make_source()
    result = await source.refresh([])
    assert (result.mentions, result.gone) == ((), ())
    assert source.requests == 0


async def test_a_handle_change_shows_in_author_and_url(fake, make_source) -> None:
    post = stored_post(fake, 1)
    fake.set_handle(post.author, "alice.example.com")

    [mention] = (await make_source().refresh([post])).mentions

    assert mention.author == "alice.example.com"
    assert mention.author_name is None
    assert mention.url.startswith("https://bsky.app/profile/alice.example.com/post/")


async def test_counts_follow_the_appview(fake, make_source) -> None:
    post = stored_post(fake, 1, likes=1)
    source = make_source()
    assert (await source.refresh([post])).mentions[0].metric("likes") == 1
    fake.set_counts(post.post_id, likes=50, quotes=3)
    mention = (await source.refresh([post])).mentions[0]
    assert (mention.metric("likes"), mention.metric("quotes")) == (50, 3)


async def test_invalid_handles_and_missing_counts(fake, make_source) -> None:
    fake.serve_next((DATA / "getposts_answer.json").read_bytes())
    answer = json.loads((DATA / "getposts_answer.json").read_text())
    posts = [_mention_for(view["uri"]) for view in answer["posts"]]

    alice, invalid = (await make_source().refresh(posts)).mentions

    assert dict(alice.metrics) == {"likes": 1204, "reposts": 311, "quotes": 42, "replies": 57}
    assert (alice.author, alice.author_name) == ("alice.bsky.social", "Alice 🧪")
    did = "did:plc:wa7b35aakoll7hugkrjtf3xf"
    assert (invalid.author, invalid.author_name) == (did, None)
    assert invalid.url == f"https://bsky.app/profile/{did}/post/3l3pte3p2e325"
    assert dict(invalid.metrics) == {"likes": 3, "reposts": 1, "quotes": 0, "replies": 0}


async def test_the_real_postview_is_read(fake, make_source, real_fixtures: Path) -> None:
    thread = json.loads(
        (real_fixtures / "bluesky/marshalx_thread_view_post_with_embed_media.json").read_text()
    )
    view = thread["thread"]["post"]
    fake.serve_next(json.dumps({"posts": [view]}))

    [mention] = (await make_source().refresh([_mention_for(view["uri"])])).mentions

    assert mention.author == "test.marshal.dev"
    assert mention.author_name == "Python SDK"
    assert mention.url == "https://bsky.app/profile/test.marshal.dev/post/3kaheyt6vpc22"
    # A 2023 postView: no quoteCount yet, read as 0.
    assert dict(mention.metrics) == {"likes": 0, "reposts": 0, "quotes": 0, "replies": 0}


async def test_posts_not_asked_for_are_ignored(fake, make_source) -> None:
    post = stored_post(fake, 1, likes=2)
    other = stored_post(fake, 2)
    fake.serve_next(
        json.dumps({"posts": [fake.post_view(post.post_id), fake.post_view(other.post_id)]})
    )

    result = await make_source().refresh([post])

    assert [m.post_id for m in result.mentions] == [post.post_id]


async def test_other_sources_mentions_are_refused(make_source) -> None:
    mention = Mention("x", "123", "https://x.com/a/status/123", "a", "", T0, ("2603.00001",))
    with pytest.raises(ValueError, match="not a Bluesky post"):
        await make_source().refresh([mention])


async def test_the_limiter_is_entered_for_every_attempt(fake, make_source) -> None:
    limiter = CountingLimiter()
    fake.fail_next(503)
    await make_source(limiter=limiter).refresh([stored_post(fake, 1)])
    assert limiter.entered == 2


# -- failures ------------------------------------------------------------------------------------


async def test_5xx_and_429_are_retried(fake, make_source, sleep: RecordingSleep) -> None:
    post = stored_post(fake, 1, likes=3)
    fake.fail_next(503, path=GET_POSTS)
    fake.fail_next(429, headers={"Retry-After": "7", "RateLimit-Remaining": "0"}, path=GET_POSTS)
    source = make_source()

    result = await source.refresh([post])

    assert result.mentions[0].metric("likes") == 3
    assert source.requests == 3
    assert len(sleep.waits) == 2
    assert sleep.waits[1] == 7.0


async def test_retries_exhausted_is_unavailable_and_marks_nothing_gone(fake, make_source) -> None:
    fake.fail_next(502, times=3)
    with pytest.raises(SourceUnavailableError, match=r"^bluesky: HTTP 502 after 3 attempts"):
        await make_source(retries=2).refresh([stored_post(fake, 1)])


async def test_a_malformed_body_is_malformed_response(fake, make_source) -> None:
    fake.malformed_next()
    with pytest.raises(MalformedResponseError) as info:
        await make_source().refresh([stored_post(fake, 1)])
    assert info.value.source == "bluesky"


def _mention_for(uri: str) -> Mention:
    did, rkey = uri.removeprefix("at://").split("/")[0], uri.rsplit("/", 1)[1]
    return Mention("bluesky", uri, f"https://bsky.app/profile/{did}/post/{rkey}", did, "t", T0,
                   ("2603.00001",))  # fmt: skip


URI = post_uri(ALICE, "3l3qo2vuowo2b")
VIEW = {"uri": URI, "cid": "bafyrei", "author": {"did": ALICE, "handle": "alice.bsky.social"}}


@pytest.mark.parametrize(
    "payload",
    [
        {"feed": []},
        {"posts": {}},
        [],
        "posts",
        {"posts": [1]},
        {"posts": [{"cid": "bafyrei"}]},
        {"posts": [{**VIEW, "author": None}]},
        {"posts": [{**VIEW, "likeCount": "3"}]},
        {"posts": [{**VIEW, "repostCount": 2.5}]},
        {"posts": [{**VIEW, "quoteCount": True}]},
        {"posts": [{**VIEW, "replyCount": -1}]},
    ],
)
async def test_wrong_shapes_are_malformed(fake, make_source, payload: object) -> None:
    fake.serve_next(json.dumps(payload))
    with pytest.raises(MalformedResponseError, match=r"^bluesky: "):
        await make_source().refresh([_mention_for(URI)])


async def test_a_refusal_names_the_xrpc_error(fake, make_source) -> None:
    fake.fail_next(400, json.dumps({"error": "InvalidRequest", "message": "uris/0 bad"}))
    with pytest.raises(SourceError, match="HTTP 400 InvalidRequest: uris/0 bad") as info:
        await make_source().refresh([_mention_for(URI)])
    assert info.value.kind == "http 400"


async def test_a_plain_403_is_not_taken_for_an_auth_request(fake, make_source) -> None:
    fake.fail_next(403, "<html>Forbidden</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(SourceError, match="HTTP 403") as info:
        await logged_in(make_source).refresh([_mention_for(URI)])
    assert info.value.kind == "http 403"
    assert fake.requests_to(CREATE_SESSION) == []


# -- sessions ----------------------------------------------------------------------------------


async def test_auth_required_without_credentials_is_a_clear_error(fake, make_source) -> None:
    fake.require_auth = True

    with pytest.raises(SourceError) as info:
        await make_source().refresh([stored_post(fake, 1)])

    assert info.value.detail == AUTH_NEEDED
    assert "BLUESKY_HANDLE" in str(info.value)
    assert len(fake.requests) == 1
    assert fake.sessions_created == 0


async def test_a_403_auth_error_asks_for_credentials(fake, make_source) -> None:
    fake.fail_next(403, json.dumps({"error": "AuthRequired", "message": "Auth required"}))
    with pytest.raises(SourceError, match="BLUESKY_APP_PASSWORD"):
        await make_source().refresh([_mention_for(URI)])


async def test_with_credentials_it_logs_in_once_and_keeps_the_session(fake, make_source) -> None:
    fake.require_auth = True
    post = stored_post(fake, 1, likes=11)
    source = logged_in(make_source)

    first = await source.refresh([post])
    second = await source.refresh([post])

    assert first.mentions[0].metric("likes") == second.mentions[0].metric("likes") == 11
    assert fake.sessions_created == 1
    assert [r.path for r in fake.requests] == [GET_POSTS, CREATE_SESSION, GET_POSTS, GET_POSTS]
    anonymous, login, *authed = fake.requests
    assert "Authorization" not in anonymous.headers
    assert login.method == "POST"  # the fake checked the handle and app password it carried
    assert all(r.headers["Authorization"].startswith("Bearer ey") for r in authed)
    assert authed[0].headers["Authorization"] == authed[1].headers["Authorization"]


async def test_an_expired_token_is_refreshed_not_logged_in_again(fake, make_source) -> None:
    fake.require_auth = True
    post = stored_post(fake, 1, likes=4)
    source = logged_in(make_source)
    await source.refresh([post])
    fake.expire_access_tokens()
    fake.clear_log()

    result = await source.refresh([post])

    assert result.mentions[0].metric("likes") == 4
    assert [r.path for r in fake.requests] == [GET_POSTS, REFRESH_SESSION, GET_POSTS]
    assert (fake.sessions_created, fake.sessions_refreshed) == (1, 1)
    stale, renew, fresh = fake.requests
    assert renew.headers["Authorization"] != stale.headers["Authorization"]
    assert fresh.headers["Authorization"] != stale.headers["Authorization"]


async def test_a_refused_refresh_logs_in_again_once(fake, make_source) -> None:
    fake.require_auth = True
    post = stored_post(fake, 1)
    source = logged_in(make_source)
    await source.refresh([post])
    fake.expire_access_tokens()
    fake.revoke_refresh_tokens()
    fake.clear_log()

    await source.refresh([post])

    assert [r.path for r in fake.requests] == [
        GET_POSTS,
        REFRESH_SESSION,
        CREATE_SESSION,
        GET_POSTS,
    ]
    assert (fake.sessions_created, fake.sessions_refreshed) == (2, 0)


async def test_concurrent_refreshes_renew_the_session_once(fake, make_source) -> None:
    fake.require_auth = True
    posts = [stored_post(fake, n) for n in range(3)]
    source = logged_in(make_source)
    await source.refresh(posts[:1])
    fake.expire_access_tokens()

    await asyncio.gather(*(source.refresh([p]) for p in posts))

    assert (fake.sessions_created, fake.sessions_refreshed) == (1, 1)


async def test_wrong_password_is_a_clear_error_without_secrets(fake, make_source, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fake.require_auth = True
    wrong = "wrong-pass-word-xyzw"
    source = make_source(handle=HANDLE, password=wrong)

    with pytest.raises(SourceError, match="refused the login") as info:
        await source.refresh([stored_post(fake, 1)])

    assert info.value.kind == "http 401"
    for secret in (wrong, PASSWORD):
        assert secret not in str(info.value)
        assert secret not in caplog.text
        assert secret not in repr(source)
    assert fake.sessions_created == 0
    assert len(fake.requests_to(CREATE_SESSION)) == 1  # a refused login is not retried


async def test_an_appview_that_refuses_a_fresh_session_stops(fake, make_source) -> None:
    fake.fail_next(
        401, json.dumps({"error": "AuthMissing", "message": "no"}), times=5, path=GET_POSTS
    )
    with pytest.raises(SourceError, match="refused the session"):
        await logged_in(make_source).refresh([stored_post(fake, 1)])
    assert [r.path for r in fake.requests] == [
        GET_POSTS,
        CREATE_SESSION,
        GET_POSTS,
        REFRESH_SESSION,
        GET_POSTS,
    ]


async def test_tokens_and_password_never_reach_logs_or_repr(fake, make_source, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    fake.require_auth = True
    post = stored_post(fake, 1)
    source = logged_in(make_source)
    await source.refresh([post])
    fake.expire_access_tokens()
    await source.refresh([post])
    fake.expire_access_tokens()
    fake.revoke_refresh_tokens()
    await source.refresh([post])

    assert len(fake.issued_tokens) >= 6
    text = caplog.text + repr(source) + str(vars(source))
    for secret in (*fake.issued_tokens, PASSWORD, HANDLE):
        assert secret not in caplog.text
        assert secret not in repr(source)
    assert "credentials_set=True" in repr(source)
    assert "session_held=True" in repr(source)
    assert PASSWORD not in text


async def test_a_login_is_retried_on_5xx_through_http_post(
    fake, make_source, sleep: RecordingSleep
) -> None:
    fake.require_auth = True
    fake.fail_next(503, path=CREATE_SESSION)

    await logged_in(make_source).refresh([stored_post(fake, 1)])

    assert len(fake.requests_to(CREATE_SESSION)) == 2
    assert fake.sessions_created == 1
    assert len(sleep.waits) == 1


async def test_a_session_answer_without_tokens_is_malformed(fake, make_source) -> None:
    fake.require_auth = True
    fake.serve_next(json.dumps({"did": ALICE, "handle": HANDLE}), path=CREATE_SESSION)
    with pytest.raises(MalformedResponseError, match="accessJwt"):
        await logged_in(make_source).refresh([stored_post(fake, 1)])


# -- the fake itself ---------------------------------------------------------------------------


async def test_fake_refuses_more_than_25_uris(fake, http_session) -> None:
    params = [("uris", post_uri(ALICE, f"r{n}")) for n in range(26)]
    async with http_session.get(fake.url + GET_POSTS, params=params) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"] == "application/json"
        body = await resp.json()
    assert body["error"] == "InvalidRequest"
    assert "25" in body["message"]


async def test_fake_postview_has_the_lexicon_and_real_shape(
    fake, http_session, real_fixtures: Path
) -> None:
    real = json.loads(
        (real_fixtures / "bluesky/marshalx_thread_view_post_with_embed_media.json").read_text()
    )["thread"]["post"]
    lexicon = json.loads((real_fixtures / "bluesky/lexicons/app.bsky.feed.defs.json").read_text())
    post_view = lexicon["defs"]["postView"]
    uri = fake.add_post(
        ALICE, "3l3qo2vuowo2b", handle="alice.bsky.social", display_name="Alice", text="x",
        created_at=T0, likes=3, embed=external_embed("https://arxiv.org/abs/2603.00001", "T"),
    )  # fmt: skip

    async with http_session.get(fake.url + GET_POSTS, params={"uris": uri}) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        [view] = (await resp.json())["posts"]

    assert set(post_view["required"]) <= set(view) <= set(post_view["properties"])
    assert set(real) - {"quoteCount", "bookmarkCount"} <= set(view)
    assert set(view["author"]) <= set(real["author"])
    assert view["embed"]["$type"] == "app.bsky.embed.external#view"
    assert view["likeCount"] == 3
    assert view["record"]["$type"] == "app.bsky.feed.post"


async def test_fake_jetstream_event_feeds_parse_event(fake) -> None:
    post = stored_post(fake, 4)
    event = fake.jetstream_event(post.post_id, time_us=micros(T0) + 5, operation="update")
    assert set(event) == {"did", "time_us", "kind", "commit"}
    assert set(event["commit"]) == {"rev", "operation", "collection", "rkey", "cid", "record"}
    assert parse_event(frame(event))[0] == micros(T0) + 5
    deleted = fake.post_deleted_event(post.author, post.post_id.rsplit("/", 1)[1], 9)
    assert "record" not in deleted["commit"]


async def test_fake_sessions(fake, http_session) -> None:
    login = fake.url + CREATE_SESSION
    async with http_session.post(login, json={"identifier": HANDLE, "password": "no"}) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "AuthenticationRequired"
    async with http_session.post(login, json={"identifier": HANDLE, "password": PASSWORD}) as resp:
        session = await resp.json()
    assert set(session) >= {"accessJwt", "refreshJwt", "handle", "did"}
    renew = fake.url + REFRESH_SESSION
    bearer = {"Authorization": f"Bearer {session['accessJwt']}"}
    async with http_session.post(renew, headers=bearer) as resp:
        assert (resp.status, (await resp.json())["error"]) == (400, "InvalidToken")
    bearer = {"Authorization": f"Bearer {session['refreshJwt']}"}
    async with http_session.post(renew, headers=bearer) as resp:
        assert resp.status == 200
    async with http_session.post(renew, headers=bearer) as resp:  # rotated: used once
        assert (resp.status, (await resp.json())["error"]) == (400, "ExpiredToken")


class CountingLimiter:
    def __init__(self) -> None:
        self.entered = 0

    async def __aenter__(self) -> None:
        self.entered += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
