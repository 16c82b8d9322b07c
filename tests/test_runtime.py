"""build_sources: each popularity source gets its own configured per-service rate limiter."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from pydantic import SecretStr

from bot.core.models import Window
from bot.fakes.hackernews import FakeHackerNews
from bot.fakes.huggingface import FakeHuggingFace
from bot.fakes.server import FakeServer
from bot.fakes.x import FakeX
from bot.runtime import build_sources
from bot.settings import Secrets, Settings, SourcesSettings
from bot.sources.registry import BY_KEY, REGISTRY

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
WINDOW = Window(NOW - dt.timedelta(hours=6), NOW - dt.timedelta(minutes=5))
TOKEN = "x-test-token"
INTERVAL = 0.1  # one request per 0.1 s: small enough for a test, large enough to measure


def clock() -> dt.datetime:
    return NOW


async def no_sleep(_seconds: float) -> None:
    """Backoff between retries is not slept: any spacing measured comes from the limiter."""


def settings_for(name: str, api_url: str, **limits: object) -> Settings:
    """Every registered source off but ``name``, which points at ``api_url``."""
    sources = {entry.key: entry.settings_model(enabled=False) for entry in REGISTRY}  # type: ignore[call-arg]
    model = BY_KEY[name].settings_model
    sources[name] = model(enabled=True, api_url=api_url, **limits)  # type: ignore[call-arg]
    return Settings(
        sources=SourcesSettings(**sources),
        secrets=Secrets(sources={"X_BEARER_TOKEN": SecretStr(TOKEN)}),
    )


FAKES: dict[str, Callable[[], FakeServer]] = {
    "x": lambda: FakeX(token=TOKEN, now=clock),
    "hackernews": FakeHackerNews,
    "huggingface": FakeHuggingFace,
}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def test_default_limits_are_the_services_published_ones() -> None:
    defaults = SourcesSettings()
    assert (defaults.x.requests_per_window, defaults.x.window_seconds) == (450, 900.0)
    limits = (defaults.hackernews.requests_per_window, defaults.hackernews.window_seconds)
    assert limits == (10_000, 3600.0)
    limits = (defaults.huggingface.requests_per_window, defaults.huggingface.window_seconds)
    assert limits == (500, 300.0)


@pytest.mark.parametrize("name", ["x", "hackernews", "huggingface"])
async def test_each_source_gets_its_configured_limiter(
    name: str, session: aiohttp.ClientSession
) -> None:
    settings = settings_for(name, "http://127.0.0.1:9", requests_per_window=7, window_seconds=42)
    (source,) = build_sources(settings, session, clock, no_sleep)
    assert source.name == name
    limiter = source.limiter  # type: ignore[attr-defined]
    assert (limiter.max_rate, limiter.time_period) == (7, 42)
    # Built once per source: a second build is a second, independent limiter.
    (again,) = build_sources(settings, session, clock, no_sleep)
    assert again.limiter is not limiter  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["x", "hackernews", "huggingface"])
async def test_the_limiter_spaces_requests_retries_included(
    name: str, session: aiohttp.ClientSession
) -> None:
    async with FAKES[name]() as fake:
        api_url = fake.api_url  # type: ignore[attr-defined]
        settings = settings_for(name, api_url, requests_per_window=1, window_seconds=INTERVAL)
        (source,) = build_sources(settings, session, clock, no_sleep)
        fake.fail_next(503, times=2)  # three attempts in a row, with no backoff sleep between

        assert await source.collect(WINDOW) == []

        assert len(fake.requests) == 3
        gaps = fake.request_gaps()
    # Latency varies a little (a new connection vs a reused one), hence the slack.
    assert min(gaps) >= INTERVAL * 0.8, gaps
