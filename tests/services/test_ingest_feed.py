"""Ingestion of the day's arXiv announcements (RSS): new papers stored, empty days reported."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.core.models import Announcement, AnnounceType, Window
from bot.fakes.arxiv import FakeArxiv
from bot.services.ingest import FEED_SOURCE, IngestService
from bot.settings import ArxivSettings, HttpSettings
from bot.sources.arxiv import ArxivClient, ArxivRateLimiter
from bot.sources.http import HttpClient
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository

UTC = dt.UTC
NOW = dt.datetime(2024, 11, 28, 6, 0, tzinfo=UTC)
WINDOW = Window(NOW - dt.timedelta(days=1), NOW)
ANNOUNCED = dt.datetime(2024, 11, 28, 5, 0, tzinfo=UTC)


def item(arxiv_id: str, kind: AnnounceType, *cats: str) -> Announcement:
    return Announcement(
        arxiv_id=arxiv_id,
        version=1,
        announce_type=kind,
        title=f"Announced {arxiv_id}",
        abstract="An abstract about graph neural networks.",
        authors=("Ada Lovelace", "Alan Turing"),
        categories=cats or ("cs.LG",),
        announced=ANNOUNCED,
    )


@pytest.fixture
async def setup(db: Database) -> AsyncIterator[tuple[IngestService, FakeArxiv, Database]]:
    async with (
        FakeArxiv() as arxiv,
        aiohttp.ClientSession() as session,
    ):
        client = ArxivClient(
            HttpClient(session, HttpSettings(retries=0), source="arxiv"),
            ArxivSettings(api_url=arxiv.api_url, rss_url=arxiv.rss_url, min_interval_seconds=0),
            ArxivRateLimiter(0),
        )
        service = IngestService(
            sources=(),
            arxiv=client,
            papers=PaperRepository(db),
            mentions=MentionRepository(db),
            runs=RunRepository(db),
            clock=lambda: NOW,
        )
        yield service, arxiv, db


async def test_new_and_cross_listed_papers_are_stored_and_searchable(setup):
    service, arxiv, db = setup
    arxiv.set_announcements(
        "cs.LG",
        [
            item("2411.00001", AnnounceType.NEW),
            item("2411.00002", AnnounceType.CROSS, "stat.ML", "cs.LG"),
            item("2301.00003", AnnounceType.REPLACE),
        ],
    )
    progress: list[str] = []
    report = await service.run(WINDOW, progress=progress.append, categories=["cs.LG"])
    assert report.feed is not None
    assert (report.feed.new, report.feed.cross, report.feed.replaced) == (1, 1, 1)
    assert report.feed.stored == 2
    papers = PaperRepository(db)
    stored = await papers.get_many(["2411.00001", "2411.00002", "2301.00003"])
    assert set(stored) == {"2411.00001", "2411.00002"}  # a replacement isn't a new paper
    assert stored["2411.00002"].primary_category == "stat.ML"
    assert [p.arxiv_id for p in await papers.search("graph neural", limit=5)]
    assert any("1 new, 1 cross-lists, 1 replacements" in line for line in progress)
    run = (await RunRepository(db).latest_by_source())[FEED_SOURCE]
    assert run.error is None
    assert run.mentions == 3


async def test_an_empty_feed_is_a_weekend_or_holiday_not_an_error(setup):
    service, _arxiv, _db = setup
    report = await service.run(WINDOW, categories=["cs.CV"])
    assert report.feed is not None
    assert report.feed.empty
    assert report.feed.error is None
    assert report.ok
    assert "weekends and holidays" in report.feed.describe()


async def test_a_feed_error_is_reported_and_the_run_goes_on(setup):
    service, arxiv, db = setup
    arxiv.fail_next(503, times=5)
    report = await service.run(WINDOW, categories=["cs.LG"])
    assert report.feed is not None
    assert report.feed.error
    assert any(f.startswith("arxiv feed:") for f in report.failures)
    run = (await RunRepository(db).latest_by_source())[FEED_SOURCE]
    assert run.error


async def test_no_categories_means_no_feed_request(setup):
    service, arxiv, _db = setup
    report = await service.run(WINDOW)
    assert report.feed is None
    assert not [r for r in arxiv.requests if r.path.startswith("/rss")]
