"""HttpClient: answers cut off mid-body are retried, every other aiohttp error names its source."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.core.errors import SourceUnavailableError
from bot.core.models import Window
from bot.fakes.hackernews import FakeHackerNews
from bot.fakes.server import FakeServer
from bot.settings import HackerNewsSettings, HttpSettings
from bot.sources.hackernews import HackerNewsSource
from bot.sources.http import HttpClient
from tests.sources.conftest import RecordingSleep

DAY = Window.for_day(dt.date(2026, 3, 9))
SEARCH = "/api/v1/search_by_date"


@pytest.fixture
async def fake() -> AsyncIterator[FakeHackerNews]:
    async with FakeHackerNews() as server:
        yield server


def hn_source(
    fake: FakeHackerNews,
    session: aiohttp.ClientSession,
    sleep: RecordingSleep,
    *,
    retries: int = 4,
) -> HackerNewsSource:
    http = HttpClient(session, HttpSettings(retries=retries), source="hackernews", sleep=sleep)
    return HackerNewsSource(http, HackerNewsSettings(api_url=fake.api_url))


async def test_the_fake_cuts_a_body_short(
    fake: FakeHackerNews, http_session: aiohttp.ClientSession
) -> None:
    fake.truncate_next(b'{"hits": [', missing=50)
    async with http_session.get(fake.api_url + "/search_by_date") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(b'{"hits": [') + 50)
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    # The next request is served normally, on a new connection.
    async with http_session.get(fake.api_url + "/search_by_date") as resp:
        assert (await resp.json())["hits"] == []


async def test_a_truncated_answer_is_retried_like_a_dropped_connection(
    fake: FakeHackerNews, http_session: aiohttp.ClientSession, sleep: RecordingSleep
) -> None:
    fake.add_story(1, "Paper", "https://arxiv.org/abs/2603.01234", "a", DAY.start)
    fake.truncate_next(times=2)
    source = hn_source(fake, http_session, sleep)

    mentions = await source.collect(DAY)

    assert [m.post_id for m in mentions] == ["1"]
    assert len(fake.requests_to(SEARCH)) == 3
    assert source.requests == 3
    assert len(sleep.waits) == 2


async def test_truncated_answers_beyond_the_retries_are_source_unavailable(
    fake: FakeHackerNews, http_session: aiohttp.ClientSession, sleep: RecordingSleep
) -> None:
    fake.truncate_next(times=3)
    source = hn_source(fake, http_session, sleep, retries=2)

    with pytest.raises(SourceUnavailableError) as info:
        await source.collect(DAY)

    assert info.value.source == "hackernews"
    assert info.value.detail.startswith("answer cut short after 3 attempts")
    assert len(fake.requests_to(SEARCH)) == 3


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://127.0.0.1/api", "NonHttpUrlClientError"),
        ("http://", "InvalidUrlClientError"),
    ],
)
async def test_other_client_errors_are_source_errors_and_not_retried(
    http_session: aiohttp.ClientSession, sleep: RecordingSleep, url: str, error: str
) -> None:
    http = HttpClient(http_session, HttpSettings(), source="huggingface", sleep=sleep)

    with pytest.raises(SourceUnavailableError) as info:
        await http.get(url)

    assert info.value.source == "huggingface"
    assert info.value.detail.startswith(f"request failed: {error}")
    assert http.requests == 1
    assert sleep.waits == []


async def test_a_client_response_error_is_a_source_error(
    http_session: aiohttp.ClientSession, sleep: RecordingSleep
) -> None:
    async with FakeServer() as server:
        # Redirecting to itself for ever: aiohttp gives up with TooManyRedirects.
        server.fail_next(302, headers={"Location": "/loop"}, times=50)
        http = HttpClient(http_session, HttpSettings(), source="x", sleep=sleep)

        with pytest.raises(SourceUnavailableError) as info:
            await http.get(server.url + "/loop")

    assert info.value.source == "x"
    assert info.value.detail.startswith("request failed: TooManyRedirects")
    assert http.requests == 1


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [(503, b"", "http 503"), (404, b"<html>internal-host</html>", "http 404")],
)
async def test_an_http_failure_carries_its_status_as_the_kind(
    http_session: aiohttp.ClientSession,
    sleep: RecordingSleep,
    status: int,
    body: bytes,
    kind: str,
) -> None:
    async with FakeServer() as server:
        server.fail_next(status, body, times=5)
        http = HttpClient(http_session, HttpSettings(retries=1), source="x", sleep=sleep)
        with pytest.raises(SourceUnavailableError) as info:
            await http.get(server.url + "/api")
    assert info.value.kind == kind  # the body stays in the detail, for operators only
