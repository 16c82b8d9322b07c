"""XSource against FakeX: real payloads, windows, paging, the 7-day edge, auth and failures."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot.core.errors import MalformedResponseError, SourceError, SourceUnavailableError
from bot.core.models import Window
from bot.fakes.server import FakeServer
from bot.fakes.x import SEARCH_PATH, FakeX, XLink
from bot.settings import HttpSettings, XSettings
from bot.sources.base import PopularitySource
from bot.sources.http import HttpClient
from bot.sources.x import XSource

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TOKEN = "AAAAAAAAAAAAAAAAAAAAAsekrit%2Ftoken%3D0123456789"
REAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real" / "x_api"
DATA = Path(__file__).resolve().parents[1] / "data" / "sources"
needs_real = pytest.mark.usefixtures("shared")  # fails, never skips, without ../shared
DAY = Window(NOW - dt.timedelta(days=1), NOW - dt.timedelta(minutes=5))
EMPTY_PAGE = b'{"meta":{"result_count":0}}'


def clock() -> dt.datetime:
    return NOW


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def fake() -> AsyncIterator[FakeX]:
    async with FakeX(token=TOKEN, now=clock) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_source(fake: FakeX, session: aiohttp.ClientSession, sleeps: list[float]):
    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    def build(token: str | None = TOKEN, **settings: object) -> XSource:
        http = HttpClient(session, HttpSettings(), source="x", sleep=record)
        config = XSettings(enabled=True, api_url=fake.api_url, **settings)  # type: ignore[arg-type]
        return XSource(http, config, SecretStr(token) if token is not None else None, now=clock)

    return build


def hours_ago(hours: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours)


# -- the happy path --------------------------------------------------------------------------


async def test_is_a_popularity_source(make_source) -> None:
    source = make_source()
    assert isinstance(source, PopularitySource)
    assert source.name == "x"
    assert TOKEN not in repr(source)


async def test_collects_posts_linking_arxiv_with_metrics_and_author(fake: FakeX, make_source):
    fake.add_post(
        "1898765432109876543",
        "Scaling laws for sparse attention",
        "ak92501",
        "AK",
        hours_ago(3),
        urls=["https://arxiv.org/abs/2603.01234v2"],
        retweets=120,
        likes=860,
        replies=4,
        quotes=9,
        lang="en",
    )
    fake.add_post("2", "A blog post", "blogger", "B", hours_ago(2), urls=["https://example.com/x"])
    fake.add_post(
        "3", "RT a paper", "fan", "F", hours_ago(1), urls=["https://arxiv.org/abs/2603.01234"],
        is_retweet=True,
    )  # fmt: skip
    source = make_source()

    mentions = await source.collect(DAY)

    assert len(mentions) == 1
    m = mentions[0]
    assert m.source == "x"
    assert m.post_id == "1898765432109876543"
    assert m.url == "https://twitter.com/ak92501/status/1898765432109876543"
    assert m.author == "ak92501"
    assert m.author_name == "AK"
    assert m.lang == "en"
    assert m.arxiv_ids == ("2603.01234",)
    assert m.created_at == hours_ago(3)
    assert dict(m.metrics) == {"reposts": 120, "likes": 860, "replies": 4, "quotes": 9}
    assert m.text.startswith("Scaling laws for sparse attention https://t.co/")
    assert source.requests == 1

    [request] = fake.requests_to(SEARCH_PATH)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.params == {
        "query": 'url:"arxiv.org" -is:retweet',
        "start_time": "2026-03-09T12:00:00Z",
        "end_time": "2026-03-10T11:55:00Z",
        "max_results": "100",
        "tweet.fields": "created_at,author_id,public_metrics,entities,lang",
        "expansions": "author_id",
        "user.fields": "username,name",
    }


async def test_ids_come_from_expanded_and_unwound_urls_and_posts_may_link_several(
    fake: FakeX, make_source
):
    fake.add_post(
        "10",
        "Two papers, one thread",
        "alice",
        created_at=hours_ago(5),
        urls=[
            "https://arxiv.org/pdf/2603.02222v3",
            "https://huggingface.co/papers/2603.03333",
            "https://arxiv.org/abs/2603.02222",  # the same paper again: counted once
        ],
    )
    fake.add_post(
        "11",
        "short link",
        "bob",
        created_at=hours_ago(4),
        urls=[XLink("https://bit.ly/3xYzAbC", unwound_url="https://arxiv.org/abs/2603.04444")],
    )

    mentions = {m.post_id: m for m in await make_source().collect(DAY)}

    assert mentions["10"].arxiv_ids == ("2603.02222", "2603.03333")
    assert mentions["11"].arxiv_ids == ("2603.04444",)
    assert "arxiv" not in mentions["11"].text  # the text only carries t.co links


async def test_derived_real_shaped_page_uses_entities_not_text(fake: FakeX, make_source):
    fake.serve_next((DATA / "x_search_recent_arxiv_links.json").read_bytes())

    mentions = {m.post_id: m for m in await make_source().collect(DAY)}

    assert set(mentions) == {"1898765432109876543", "1898765432109876544", "1898765432109876545"}
    first = mentions["1898765432109876543"]
    assert first.author == "happycamper"
    assert first.author_name == "Emily Waligoske 🏕"
    assert first.url == "https://twitter.com/happycamper/status/1898765432109876543"
    assert dict(first.metrics) == {"reposts": 120, "likes": 860, "replies": 4, "quotes": 9}
    assert mentions["1898765432109876544"].arxiv_ids == ("2603.02222", "2603.03333")
    assert mentions["1898765432109876545"].arxiv_ids == ("2603.04444",)  # via unwound_url
    # "1898765432109876546" cites arXiv:2603.05555 only in its text: not a mention.


@needs_real
async def test_real_recent_search_fixture_has_no_arxiv_links(fake: FakeX, make_source):
    first = (REAL / "areteos_search_recent_public_metrics_author_id.json").read_bytes()
    last = (
        REAL
        / "postman_recent_search__200_success_request_tweet_fields_with_expanded_user_fields.json"
    )
    fake.serve_next(first)
    fake.serve_next(last.read_bytes())
    source = make_source()

    assert await source.collect(DAY) == []

    assert source.requests == 2
    second = fake.requests_to(SEARCH_PATH)[1]
    assert second.params["next_token"] == json.loads(first)["meta"]["next_token"]


@needs_real
@pytest.mark.parametrize(
    "name",
    [
        "postman_recent_search__200_success_recent_search_default_payload.json",
        "postman_recent_search__200_success_request_expanded_media_fields.json",
        "postman_recent_search__200_success_request_tweet_fields.json",
        "tweepy_search_recent_query_Tweepy.decoded.json",
    ],
)
async def test_every_real_search_payload_parses(fake: FakeX, make_source, name: str) -> None:
    fake.serve_next((REAL / name).read_bytes())
    fake.serve_next(EMPTY_PAGE)  # in case the payload carries a next_token

    assert await make_source().collect(DAY) == []


async def test_empty_answer_without_data_is_no_mentions(fake: FakeX, make_source) -> None:
    source = make_source()

    assert await source.collect(DAY) == []
    assert source.requests == 1


# -- windows and pages -----------------------------------------------------------------------


async def test_window_is_half_open_and_sub_second_edges_are_filtered(fake: FakeX, make_source):
    start = NOW - dt.timedelta(days=2, microseconds=-500_000)  # 2 days ago + 0.5 s
    end = NOW - dt.timedelta(days=1)
    link = ["https://arxiv.org/abs/2603.01234"]
    fake.add_post(
        "1",
        "before (same second as start)",
        "a",
        created_at=start.replace(microsecond=0),
        urls=link,
    )
    fake.add_post("2", "at start", "a", created_at=start, urls=link)
    fake.add_post("3", "inside", "a", created_at=start + dt.timedelta(hours=3), urls=link)
    fake.add_post("4", "at end", "a", created_at=end, urls=link)
    fake.add_post("5", "after", "a", created_at=end + dt.timedelta(hours=1), urls=link)

    mentions = await make_source().collect(Window(start, end))

    assert sorted(m.post_id for m in mentions) == ["2", "3"]
    [request] = fake.requests
    assert request.params["start_time"] == "2026-03-08T12:00:00Z"  # floored to the second


async def test_paginates_with_next_token_until_absent(fake: FakeX, make_source) -> None:
    for i in range(25):
        fake.add_post(
            str(1000 + i), f"paper {i}", f"user{i % 3}", created_at=hours_ago(1 + i / 2),
            urls=[f"https://arxiv.org/abs/2603.{10000 + i}"],
        )  # fmt: skip
    source = make_source(max_results=10)

    mentions = await source.collect(DAY)

    assert len(mentions) == 25
    assert source.requests == 3
    pages = fake.requests_to(SEARCH_PATH)
    assert "next_token" not in pages[0].params
    assert pages[1].params["next_token"] != pages[2].params["next_token"]
    assert all(p.params["max_results"] == "10" for p in pages)


async def test_stops_at_max_pages_and_says_so(fake: FakeX, make_source, caplog) -> None:
    for i in range(25):
        fake.add_post(
            str(1000 + i), f"paper {i}", "u", created_at=hours_ago(1 + i / 2),
            urls=[f"https://arxiv.org/abs/2603.{10000 + i}"],
        )  # fmt: skip
    source = make_source(max_results=10, max_pages=2)

    with caplog.at_level(logging.WARNING, logger="bot.sources.x"):
        mentions = await source.collect(DAY)

    assert len(mentions) == 20
    assert source.requests == 2
    assert "max_pages" in caplog.text


# -- the 7-day edge --------------------------------------------------------------------------


async def test_window_partly_before_the_edge_is_clamped_with_a_warning(
    fake: FakeX, make_source, caplog
) -> None:
    fake.add_post(
        "1", "recent", "a", created_at=NOW - dt.timedelta(days=3), urls=["arxiv.org/abs/2603.01234"]
    )
    window = Window(NOW - dt.timedelta(days=9), NOW - dt.timedelta(days=1))

    with caplog.at_level(logging.WARNING, logger="bot.sources.x"):
        mentions = await make_source().collect(window)

    assert [m.post_id for m in mentions] == ["1"]
    [request] = fake.requests
    assert request.params["start_time"] == "2026-03-03T12:01:00Z"  # the edge + 1 minute
    assert "clamped" in caplog.text
    assert "7 days" in caplog.text


async def test_window_wholly_before_the_edge_is_asked_and_the_refusal_is_clear(
    fake: FakeX, make_source, caplog
) -> None:
    window = Window(NOW - dt.timedelta(days=20), NOW - dt.timedelta(days=19))

    with (
        caplog.at_level(logging.WARNING, logger="bot.sources.x"),
        pytest.raises(SourceError) as info,
    ):
        await make_source().collect(window)

    assert str(info.value) == (
        "x: X recent search only reaches back 7 days; "
        "window 2026-02-18 12:00 to 2026-02-19 12:00 UTC is older"
    )
    assert len(fake.requests) == 1  # asked anyway: a proxy or archive may serve it
    assert "older" in caplog.text


async def test_old_window_served_by_an_archive_is_accepted(fake: FakeX, make_source) -> None:
    page = json.loads((DATA / "x_search_recent_arxiv_links.json").read_text())
    for tweet in page["data"]:
        tweet["created_at"] = "2026-02-18T18:00:00.000Z"
    fake.serve_next(json.dumps(page))

    window = Window(NOW - dt.timedelta(days=20), NOW - dt.timedelta(days=19))
    assert len(await make_source().collect(window)) == 3


async def test_window_ending_now_keeps_end_time_clear_of_the_last_10_seconds(
    fake: FakeX, make_source
) -> None:
    fake.add_post(
        "1",
        "just now",
        "a",
        created_at=NOW - dt.timedelta(minutes=1),
        urls=["https://arxiv.org/abs/2603.01234"],
    )

    mentions = await make_source().collect(Window(NOW - dt.timedelta(hours=1), NOW))

    assert [m.post_id for m in mentions] == ["1"]
    assert fake.requests[0].params["end_time"] == "2026-03-10T11:59:45Z"


async def test_window_in_the_future_asks_nothing(fake: FakeX, make_source) -> None:
    source = make_source()
    later = Window(NOW + dt.timedelta(hours=1), NOW + dt.timedelta(hours=2))

    assert await source.collect(later) == []
    assert source.requests == 0


# -- credentials -----------------------------------------------------------------------------


async def test_wrong_token_is_a_clear_error_that_never_shows_the_token(
    fake: FakeX, make_source, caplog
) -> None:
    wrong = "WRONG-sekrit-token-42"
    caplog.set_level(logging.DEBUG)

    with pytest.raises(SourceError) as info:
        await make_source(token=wrong).collect(DAY)

    assert str(info.value) == "x: X rejected the bearer token (401)"
    assert not isinstance(info.value, SourceUnavailableError)
    assert wrong not in caplog.text
    assert TOKEN not in caplog.text
    assert fake.requests[0].headers["Authorization"] == f"Bearer {wrong}"


async def test_missing_token_fails_before_any_request(fake: FakeX, make_source, caplog) -> None:
    source = make_source(token=None)

    with pytest.raises(SourceError, match="X_BEARER_TOKEN"):
        await source.collect(DAY)
    assert source.requests == 0

    with pytest.raises(SourceError, match="X_BEARER_TOKEN"):
        await make_source(token="  ").collect(DAY)


async def test_forbidden_names_the_problem(fake: FakeX, make_source) -> None:
    body = {
        "title": "Client Forbidden",
        "detail": "This request must be made using an approved developer account...",
        "reason": "client-not-enrolled",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
    }
    fake.fail_next(403, json.dumps(body))

    with pytest.raises(SourceError, match=r"X rejected the bearer token \(403: Client Forbidden\)"):
        await make_source().collect(DAY)


async def test_other_400_names_x_messages(fake: FakeX, make_source) -> None:
    with pytest.raises(SourceError, match="The `query` query parameter can not be empty"):
        await make_source(query=" ").collect(DAY)


# -- failures --------------------------------------------------------------------------------


async def test_429_with_retry_after_is_honoured(fake: FakeX, make_source, sleeps) -> None:
    fake.add_post("1", "p", "a", created_at=hours_ago(2), urls=["https://arxiv.org/abs/2603.01234"])
    fake.rate_limit_next(reset_in=900, retry_after=7)

    source = make_source()
    assert len(await source.collect(DAY)) == 1
    assert sleeps == [7.0]
    assert source.requests == 2


async def test_429_with_only_x_rate_limit_reset_waits_until_the_reset(
    fake: FakeX, make_source, sleeps
) -> None:
    fake.rate_limit_next(reset_in=42)

    assert await make_source().collect(DAY) == []
    assert sleeps == [42.0]


async def test_5xx_is_retried_then_succeeds(fake: FakeX, make_source, sleeps) -> None:
    fake.add_post("1", "p", "a", created_at=hours_ago(2), urls=["https://arxiv.org/abs/2603.01234"])
    fake.fail_next(503, times=2)

    source = make_source()
    assert len(await source.collect(DAY)) == 1
    assert source.requests == 3
    assert len(sleeps) == 2


async def test_retries_exhausted_is_source_unavailable(fake: FakeX, make_source) -> None:
    fake.fail_next(500, b'{"title":"Internal Server Error"}', times=5)

    with pytest.raises(SourceUnavailableError, match="HTTP 500 after 5 attempts"):
        await make_source().collect(DAY)


async def test_malformed_json_is_malformed_response(fake: FakeX, make_source) -> None:
    fake.malformed_next()

    with pytest.raises(MalformedResponseError) as info:
        await make_source().collect(DAY)
    assert info.value.source == "x"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"data"',
        b'{"data": []}',
        b'{"data": {"id": "1"}, "meta": {"result_count": 1}}',
        b'{"data": ["1"], "meta": {"result_count": 1}}',
        b'{"data": [{"text": "no id"}], "meta": {"result_count": 1}}',
        b'{"data": [{"id": "1", "text": "t", "entities": {"urls": [{"expanded_url": '
        b'"https://arxiv.org/abs/2603.01234"}]}}], "meta": {"result_count": 1}}',
        b'{"data": [{"id": "1", "text": "t", "created_at": "yesterday", "entities": {"urls": '
        b'[{"expanded_url": "https://arxiv.org/abs/2603.01234"}]}}], "meta": {"result_count": 1}}',
        b'{"data": [{"id": "1", "text": "t", "created_at": "2026-03-10T01:00:00.000Z", '
        b'"public_metrics": {"like_count": "many"}, "entities": {"urls": [{"expanded_url": '
        b'"https://arxiv.org/abs/2603.01234"}]}}], "meta": {"result_count": 1}}',
        b'{"data": [], "meta": {"result_count": 0, "next_token": 7}}',
        b'{"meta": {"result_count": 0}, "includes": []}',
    ],
)
async def test_wrong_shapes_are_malformed(fake: FakeX, make_source, body: bytes) -> None:
    fake.serve_next(body)

    with pytest.raises(MalformedResponseError, match=r"^x: "):
        await make_source().collect(DAY)


# -- the fake itself -------------------------------------------------------------------------


async def test_fake_renders_the_real_shapes(fake: FakeX, session: aiohttp.ClientSession) -> None:
    fake.add_post(
        "1",
        "hello",
        "happycamper",
        "Emily",
        hours_ago(1),
        urls=["https://arxiv.org/abs/2603.01234"],
    )
    params = {
        "query": "hello",
        "post.fields": "created_at,author_id,public_metrics,entities,lang",
        "expansions": "author_id",
        "user.fields": "username,name,created_at",
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get(
        f"{fake.api_url}/tweets/search/recent", params=params, headers=headers
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        assert int(resp.headers["x-rate-limit-remaining"]) == 449
        payload = await resp.json()

    [tweet] = payload["data"]
    assert set(tweet) == {
        "id", "author_id", "created_at", "entities", "lang", "public_metrics", "text",
        "edit_history_tweet_ids",
    }  # fmt: skip
    assert tweet["created_at"] == "2026-03-10T11:00:00.000Z"
    [url] = tweet["entities"]["urls"]
    assert set(url) == {"start", "end", "url", "expanded_url", "display_url"}
    assert tweet["text"][url["start"] : url["end"]] == url["url"]
    assert url["url"].startswith("https://t.co/")
    assert len(url["url"]) == 23
    assert set(tweet["public_metrics"]) >= {
        "retweet_count",
        "reply_count",
        "like_count",
        "quote_count",
    }
    assert payload["includes"]["users"] == [
        {
            "id": tweet["author_id"],
            "name": "Emily",
            "username": "happycamper",
            "created_at": "2012-01-01T00:00:00.000Z",
        }
    ]
    assert set(payload["meta"]) == {"newest_id", "oldest_id", "result_count"}


@needs_real
async def test_fake_tweet_keys_are_those_of_real_payloads(fake: FakeX) -> None:
    rendered = fake.add_post(
        "1", "x", "u", created_at=hours_ago(1), urls=["https://arxiv.org/abs/2603.01234"]
    )
    real_keys: set[str] = set()
    for path in REAL.glob("*recent*.json"):
        for tweet in json.loads(path.read_text()).get("data", []):
            real_keys |= set(tweet)
    real_keys |= {"public_metrics", "edit_history_tweet_ids", "lang"}
    assert set(rendered) <= real_keys


async def test_fake_refuses_a_wrong_token_in_x_format(fake: FakeX, session) -> None:
    async with session.get(f"{fake.api_url}/tweets/search/recent", params={"query": "a"}) as resp:
        assert resp.status == 401
        assert await resp.json() == {
            "title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized",
        }  # fmt: skip


async def test_fake_old_start_time_is_xs_400(fake: FakeX, session) -> None:
    params = {"query": "a", "start_time": "2026-02-01T00:00:00Z"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get(
        f"{fake.api_url}/tweets/search/recent", params=params, headers=headers
    ) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["title"] == "Invalid Request"
    assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
    [error] = body["errors"]
    assert error["parameters"] == {"start_time": ["2026-02-01T00:00:00Z"]}
    assert error["message"] == (
        "Invalid 'start_time':'2026-02-01T00:00Z'. "
        "'start_time' must be on or after 2026-03-03T12:00Z"
    )


async def test_fake_rate_limit_window_runs_out(session) -> None:
    async with FakeX(token=TOKEN, now=clock, rate_limit=1) as server:
        url = f"{server.api_url}/tweets/search/recent"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.get(url, params={"query": "a"}, headers=headers) as resp:
            assert resp.status == 200
        async with session.get(url, params={"query": "a"}, headers=headers) as resp:
            assert resp.status == 429
            assert resp.headers["x-rate-limit-remaining"] == "0"
            assert int(resp.headers["x-rate-limit-reset"]) == int(NOW.timestamp()) + 900


# -- the shared fake-server base ---------------------------------------------------------------


async def test_fake_server_base_queues_faults_logs_requests_and_frees_its_port(session) -> None:
    server = FakeServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    async with server:
        base = server.url
        server.fail_next(503, times=2, path="/a")
        server.serve_next('{"ok": true}', headers={"X-Extra": "1"})
        async with session.get(f"{base}/b?q=1") as resp:  # the path filter skips /a's faults
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["X-Extra"] == "1"
        for _ in range(2):
            async with session.get(f"{base}/a") as resp:
                assert resp.status == 503
        async with session.get(f"{base}/a") as resp:
            assert resp.status == 404  # no route: the queue is spent
        assert server.pending_faults == 0
        assert [(r.path, r.canned) for r in server.requests] == [
            ("/b", True), ("/a", True), ("/a", True), ("/a", False),
        ]  # fmt: skip
        assert server.requests[0].params == {"q": "1"}
        with pytest.raises(ValueError):
            server.fail_next(500, times=0)
    await server.close()  # twice is fine
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.get(f"{base}/a"):
            pass
