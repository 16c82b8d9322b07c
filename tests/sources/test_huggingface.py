"""HuggingFaceSource against FakeHuggingFace: the real payload, dates, pages, tokens, failures."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.core.errors import MalformedResponseError, SourceError, SourceUnavailableError
from bot.core.models import Window
from bot.fakes.huggingface import FakeHuggingFace
from bot.settings import HttpSettings, HuggingFaceSettings
from bot.sources.base import PopularitySource
from bot.sources.http import HttpClient
from bot.sources.huggingface import HuggingFaceSource, window_dates

UTC = dt.UTC
REAL_FILE = (
    Path(__file__).resolve().parents[3]
    / "shared/fixtures/real/hf_papers/deep-diver_paper-reviewer_daily_papers_2024-10-25.json"
)
DATA = Path(__file__).resolve().parents[1] / "data" / "sources"
needs_real = pytest.mark.usefixtures("shared")  # fails, never skips, without ../shared
OCT25 = Window.for_day(dt.date(2024, 10, 25))
DAY = Window.for_day(dt.date(2026, 3, 9))
PATH = "/api/daily_papers"
HF_TOKEN = "hf_sekritTOKENvalue0123456789"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def fake() -> AsyncIterator[FakeHuggingFace]:
    async with FakeHuggingFace(token=HF_TOKEN) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_source(fake: FakeHuggingFace, session: aiohttp.ClientSession, sleeps: list[float]):
    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    def build(token: str | None = None, **settings: object) -> HuggingFaceSource:
        http = HttpClient(session, HttpSettings(), source="huggingface", sleep=record)
        config = HuggingFaceSettings(api_url=fake.api_url, **settings)  # type: ignore[arg-type]
        return HuggingFaceSource(http, config, SecretStr(token) if token else None)

    return build


def real_entries() -> list[dict[str, Any]]:
    return json.loads(REAL_FILE.read_text())


def at(day: dt.date, hours: float) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + dt.timedelta(hours=hours)


# -- the real payload ------------------------------------------------------------------------


async def test_is_a_popularity_source(make_source) -> None:
    source = make_source()
    assert isinstance(source, PopularitySource)
    assert source.name == "huggingface"


@needs_real
async def test_real_daily_papers_fixture_gives_29_mentions(fake, make_source) -> None:
    fake.serve_next(REAL_FILE.read_bytes())
    source = make_source()

    mentions = await source.collect(OCT25)

    entries = real_entries()
    assert len(mentions) == 29
    assert {m.post_id: m.metric("upvotes") for m in mentions} == {
        e["paper"]["id"]: e["paper"]["upvotes"] for e in entries
    }
    assert {m.post_id: m.metric("comments") for m in mentions} == {
        e["paper"]["id"]: e["numComments"] for e in entries
    }
    logo = next(m for m in mentions if m.post_id == "2410.18533")
    assert logo.source == "huggingface"
    assert logo.arxiv_ids == ("2410.18533",)
    assert logo.url == "https://huggingface.co/papers/2410.18533"
    assert logo.author == "ZetangForward"
    assert logo.author_name == "Zecheng Tang"
    assert logo.text == "LOGO -- Long cOntext aliGnment via efficient preference Optimization"
    assert logo.created_at == dt.datetime(2024, 10, 25, 1, 32, 39, 713000, tzinfo=UTC)
    assert dict(logo.metrics) == {"upvotes": 37, "comments": 2}
    assert source.requests == 1
    assert fake.requests[0].params == {"date": "2024-10-25", "limit": "100", "p": "0"}


@needs_real
async def test_real_entries_served_from_the_store_are_filtered_by_featured_time(
    fake, make_source
) -> None:
    for entry in real_entries():
        fake.add_entry(entry)
    morning = Window(at(dt.date(2024, 10, 25), 0), at(dt.date(2024, 10, 25), 2))

    mentions = await make_source().collect(morning)

    expected = {
        e["paper"]["id"] for e in real_entries() if e["publishedAt"] < "2024-10-25T02:00:00"
    }
    assert {m.post_id for m in mentions} == expected
    assert 0 < len(expected) < 29


async def test_later_schema_and_minimal_entries_parse(fake, make_source) -> None:
    fake.serve_next((DATA / "hf_daily_papers_later_schema.json").read_bytes())

    mentions = {m.post_id: m for m in await make_source().collect(OCT25)}

    assert set(mentions) == {"2410.18533", "2410.16251", "2410.18693"}
    minimal = mentions["2410.16251"]
    assert minimal.author == "huggingface"
    assert minimal.text == ""
    assert dict(minimal.metrics) == {"upvotes": 0, "comments": 0}
    fallback = mentions["2410.18693"]
    assert fallback.created_at == dt.datetime(2024, 10, 25, 1, 44, 14, 194000, tzinfo=UTC)
    assert "\n" not in fallback.text  # paper.title's hard line breaks are folded
    assert fallback.author == "huggingface"


async def test_empty_array_is_no_mentions(make_source) -> None:
    source = make_source()
    assert await source.collect(DAY) == []
    assert source.requests == 1


# -- dates, windows and pages ----------------------------------------------------------------


def test_window_dates_cover_every_touched_utc_day() -> None:
    window = Window(at(dt.date(2026, 3, 8), 22), at(dt.date(2026, 3, 10), 0))
    assert list(window_dates(window)) == [dt.date(2026, 3, 8), dt.date(2026, 3, 9)]
    assert list(window_dates(DAY)) == [dt.date(2026, 3, 9)]


async def test_multi_day_window_queries_each_date(fake, make_source) -> None:
    days = [dt.date(2026, 3, 7), dt.date(2026, 3, 8), dt.date(2026, 3, 9)]
    for i, day in enumerate(days):
        fake.add_daily_paper(f"2603.0{i}001", f"Paper {i}", at(day, 9), upvotes=10 + i)
    fake.add_daily_paper("2603.09999", "Outside", at(dt.date(2026, 3, 10), 9))
    window = Window(at(days[0], 6), at(days[-1], 12))
    source = make_source()

    mentions = await source.collect(window)

    assert sorted(m.post_id for m in mentions) == ["2603.00001", "2603.01001", "2603.02001"]
    assert [r.params["date"] for r in fake.requests] == [d.isoformat() for d in days]
    assert source.requests == 3


async def test_window_is_half_open_on_the_featured_time(fake, make_source) -> None:
    day = dt.date(2026, 3, 9)
    window = Window(at(day, 6), at(day, 18))
    fake.add_daily_paper("2603.00001", "before", at(day, 5.99))
    fake.add_daily_paper("2603.00002", "at start", at(day, 6))
    fake.add_daily_paper("2603.00003", "at end", at(day, 18))

    mentions = await make_source().collect(window)

    assert [m.post_id for m in mentions] == ["2603.00002"]


async def test_pages_until_a_short_page(fake, make_source) -> None:
    day = dt.date(2026, 3, 9)
    for i in range(25):
        fake.add_daily_paper(f"2603.{10000 + i}", f"P{i}", at(day, 1 + i / 2), upvotes=i)
    source = make_source(limit=10)

    mentions = await source.collect(DAY)

    assert len(mentions) == 25
    assert [r.params["p"] for r in fake.requests] == ["0", "1", "2"]
    assert {r.params["limit"] for r in fake.requests} == {"10"}


async def test_a_full_last_page_costs_one_empty_page(fake, make_source) -> None:
    day = dt.date(2026, 3, 9)
    for i in range(20):
        fake.add_daily_paper(f"2603.{10000 + i}", f"P{i}", at(day, 1 + i / 2))
    source = make_source(limit=10)

    assert len(await source.collect(DAY)) == 20
    assert source.requests == 3


async def test_stops_at_max_pages_and_says_so(fake, make_source, caplog) -> None:
    day = dt.date(2026, 3, 9)
    for i in range(25):
        fake.add_daily_paper(f"2603.{10000 + i}", f"P{i}", at(day, 1 + i / 2))
    source = make_source(limit=10, max_pages=2)

    with caplog.at_level(logging.WARNING, logger="bot.sources.huggingface"):
        mentions = await source.collect(DAY)

    assert len(mentions) == 20
    assert source.requests == 2
    assert "max_pages" in caplog.text


async def test_a_paper_listed_twice_is_one_mention(fake, make_source) -> None:
    fake.serve_next(json.dumps([_entry("2603.00001", "2026-03-08T23:00:00.000Z")]))
    fake.serve_next(json.dumps([_entry("2603.00001", "2026-03-09T01:00:00.000Z")]))
    window = Window(at(dt.date(2026, 3, 8), 0), at(dt.date(2026, 3, 10), 0))

    mentions = await make_source().collect(window)

    assert [m.post_id for m in mentions] == ["2603.00001"]


# -- token -----------------------------------------------------------------------------------


async def test_token_is_sent_as_bearer(fake, make_source) -> None:
    await make_source(token=HF_TOKEN).collect(DAY)
    await make_source().collect(DAY)

    with_token, anonymous = fake.requests
    assert with_token.headers["Authorization"] == f"Bearer {HF_TOKEN}"
    assert "Authorization" not in anonymous.headers


async def test_wrong_token_is_a_clear_error_without_the_token(fake, make_source, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "hf_WRONGwrongWRONG"
    source = make_source(token=wrong)

    with pytest.raises(SourceError, match="Hugging Face rejected the token") as info:
        await source.collect(DAY)

    assert wrong not in str(info.value)
    assert wrong not in caplog.text
    assert wrong not in repr(source)


# -- failures --------------------------------------------------------------------------------


async def test_429_with_retry_after_is_honoured(fake, make_source, sleeps) -> None:
    fake.add_daily_paper("2603.00001", "P", at(dt.date(2026, 3, 9), 3))
    fake.fail_next(429, headers={"Retry-After": "11", "RateLimit": '"api";r=0;t=11'})

    source = make_source()
    assert len(await source.collect(DAY)) == 1
    assert sleeps == [11.0]
    assert source.requests == 2


async def test_5xx_is_retried_then_succeeds(fake, make_source, sleeps) -> None:
    fake.add_daily_paper("2603.00001", "P", at(dt.date(2026, 3, 9), 3))
    fake.fail_next(500, times=1)
    fake.fail_next(504, times=1)

    source = make_source()
    assert len(await source.collect(DAY)) == 1
    assert source.requests == 3
    assert len(sleeps) == 2


async def test_retries_exhausted_is_source_unavailable(fake, make_source) -> None:
    fake.fail_next(502, times=5)

    with pytest.raises(SourceUnavailableError, match=r"^huggingface: HTTP 502 after 5 attempts"):
        await make_source().collect(DAY)


async def test_malformed_json_is_malformed_response(fake, make_source) -> None:
    fake.malformed_next()

    with pytest.raises(MalformedResponseError) as info:
        await make_source().collect(DAY)
    assert info.value.source == "huggingface"


def _entry(paper_id: Any, published: Any = "2026-03-09T03:00:00.000Z", **paper: Any) -> dict:
    return {"paper": {"id": paper_id, **paper}, "publishedAt": published}


@pytest.mark.parametrize(
    "payload",
    [
        {"papers": []},
        "2410.18533",
        ["not an entry"],
        [{"title": "no paper"}],
        [{"paper": "2410.18533", "publishedAt": "2026-03-09T03:00:00.000Z"}],
        [_entry(None)],
        [_entry("2603.00001", None)],
        [_entry("2603.00001", "last tuesday")],
        [_entry("2603.00001", 1773025200)],
        [_entry("2603.00001", upvotes="37")],
        [{**_entry("2603.00001"), "numComments": 2.5}],
    ],
)
async def test_wrong_shapes_are_malformed(fake, make_source, payload: object) -> None:
    fake.serve_next(json.dumps(payload))

    with pytest.raises(MalformedResponseError, match=r"^huggingface: "):
        await make_source().collect(DAY)


# -- the fake itself -------------------------------------------------------------------------


@needs_real
async def test_fake_entries_have_the_real_shape(fake: FakeHuggingFace, session) -> None:
    real = real_entries()[1]
    fake.add_daily_paper(
        "2410.16251", "Can Knowledge Editing Really Correct Hallucinations?",
        dt.datetime(2024, 10, 25, 3, 32, 14, 953000, tzinfo=UTC), upvotes=41, num_comments=2,
        submitted_by="canyuchen", submitter_fullname="Canyu Chen", authors=["Baixiang Huang"],
    )  # fmt: skip
    async with session.get(f"{fake.api_url}/daily_papers", params={"date": "2024-10-25"}) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        [entry] = await resp.json()

    assert set(entry) == set(real)
    assert set(entry["paper"]) == set(real["paper"])
    assert set(entry["submittedBy"]) <= set(real["submittedBy"])
    assert set(entry["paper"]["authors"][0]) <= set(real["paper"]["authors"][0])
    assert entry["publishedAt"] == real["publishedAt"]
    assert entry["thumbnail"] == real["thumbnail"]


async def test_fake_rejects_a_limit_above_100(fake: FakeHuggingFace, session) -> None:
    async with session.get(f"{fake.api_url}/daily_papers", params={"limit": "500"}) as resp:
        assert resp.status == 400
        assert "limit" in (await resp.json())["error"]
