"""Shared fixtures for source-client tests: real recorded answers, HTTP session, no-wait sleep."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.settings import HttpSettings
from bot.sources.http import make_session

# /work/main/tests/sources/conftest.py → /work/shared/fixtures/real (override with the env var).
REAL_FIXTURES = Path(
    os.environ.get(
        "HOTPAPERS_REAL_FIXTURES",
        Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real",
    )
)
TEST_DATA = Path(__file__).resolve().parents[1] / "data"


class RecordingSleep:
    """An ``HttpClient`` sleep that records the waits it was asked for and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def real_fixtures() -> Path:
    """The real recorded responses (``shared/fixtures/real``); the test fails without them."""
    if not REAL_FIXTURES.is_dir():
        pytest.fail(f"real fixtures not found at {REAL_FIXTURES}; set HOTPAPERS_SHARED")
    return REAL_FIXTURES


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """The production session factory (timeouts, User-Agent), closed after the test."""
    session = make_session(HttpSettings())
    async with session:
        yield session
