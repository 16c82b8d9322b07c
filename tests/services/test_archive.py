"""The public archive's services: slugs from server names, the archive's address, and what the
reader gives the pages (a sent digest in the order posted, scored as the bot scores a day)."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.core.models import DigestState
from bot.services.archive import (
    INDEX_DAYS,
    PER_PAGE,
    ArchiveReader,
    ArchiveService,
    slugify,
)
from bot.services.digests import DigestService
from bot.settings import RankingSettings
from bot.storage.archive import SLUG, SLUG_MAX, ArchiveRepository
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from tests.web.seed import DAY, HIDDEN, NOW, PUBLISHED, seed, send


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Machine Learning Reading Group", "machine-learning-reading-group"),
        ("  ML   Club!!  ", "ml-club"),
        ("Café Théorie", "cafe-theorie"),
        ("Straße & Ærø", "strasse-aero"),
        ("Łódź NLP", "lodz-nlp"),
        ('<script>alert("x")</script>', "script-alert-x-script"),
        ("[link](javascript:alert(1))", "link-javascript-alert-1"),
        ("🔥🔥🔥", "server"),
        ("机器学习", "server"),
        ("", "server"),
        ("a" * 60, "a" * SLUG_MAX),
        ("word " * 20, ("word-" * 10)[:SLUG_MAX].strip("-")),
    ],
)
def test_a_slug_is_ascii_lowercase_words_joined_by_hyphens(name: str, slug: str) -> None:
    made = slugify(name)
    assert made == slug
    assert SLUG.match(made)
    assert len(made) <= SLUG_MAX


def test_the_archive_is_given_as_a_url_when_the_public_address_is_known(db: Database) -> None:
    with_url = ArchiveService.on(db, public_url="https://papers.example.org/hot/")
    link = with_url.link("ml-club")
    assert (link.url, link.absolute) == ("https://papers.example.org/hot/s/ml-club/", True)
    link = ArchiveService.on(db).link("ml-club")
    assert (link.url, link.absolute) == ("/s/ml-club/", False)


async def test_turning_on_and_off_keeps_the_slug_from_the_first_name(db: Database) -> None:
    service = ArchiveService.on(db)
    assert (await service.turn_on(1, "Café Théorie")).slug == "cafe-theorie"
    assert (await service.turn_off(1)).enabled is False
    back = await service.turn_on(1, "Renamed")
    assert (back.enabled, back.slug) == (True, "cafe-theorie")
    assert (await service.turn_on(2, "Café  théorie")).slug == "cafe-theorie-2"


def reader(db: Database, now: dt.datetime = NOW) -> ArchiveReader:
    digests = DigestService(
        papers=PaperRepository(db),
        mentions=MentionRepository(db),
        runs=RunRepository(db),
        ranking=RankingSettings(),
        clock=lambda: now,
    )
    return ArchiveReader(archive=ArchiveRepository(db), digests=digests, clock=lambda: now)


async def test_a_sent_digest_shows_its_papers_in_the_order_posted_with_counts(
    db: Database,
) -> None:
    seeded = await seed(db)
    read = reader(db)
    assert await read.server(seeded.slug) == PUBLISHED
    assert await read.server(seeded.hidden_slug) is None  # turned off
    found = await read.server_day(PUBLISHED, NOW.date())
    assert found is not None
    ids = [r.paper.arxiv_id for r in found.digest.papers]
    assert ids == [p.arxiv_id for p in seeded.papers[:5]]  # as posted, not re-ranked
    top = found.digest.papers[0]
    # Scored as the bot scores: the posts of the 24 hours before the digest was sent.
    assert found.digest.window.end == NOW
    assert top.by_source["hackernews"] == {"points": 120, "comments": 30}
    assert (found.previous, found.next) == (DAY, None)
    assert await read.server_day(PUBLISHED, DAY - dt.timedelta(days=1)) is None  # failed
    assert await read.server_day(HIDDEN, NOW.date()) is not None  # the web asks server() first


async def test_the_listing_is_paged_and_ends(db: Database) -> None:
    await seed(db, extra_days=PER_PAGE + 1)
    read = reader(db)
    first = await read.listing(PUBLISHED, 1)
    assert first is not None
    assert (first.number, first.pages, first.total) == (1, 2, PER_PAGE + 3)
    assert len(first.digests) == PER_PAGE
    second = await read.listing(PUBLISHED, 2)
    assert second is not None
    assert len(second.digests) == 3
    assert await read.listing(PUBLISHED, 3) is None
    assert await read.listing(PUBLISHED, 0) is None
    empty = await read.listing(424242, 1)
    assert empty is not None
    assert (empty.pages, empty.total, empty.digests) == (1, 0, ())


async def test_the_global_days_run_from_the_first_post_to_today(db: Database) -> None:
    read = reader(db)
    assert await read.days() == []
    assert not await read.has_day(NOW.date())
    await seed(db)
    first = await read.first_day()
    assert first == DAY  # the reference day's earliest post
    assert await read.days() == [NOW.date(), DAY]
    assert await read.has_day(DAY)
    assert not await read.has_day(DAY - dt.timedelta(days=1))
    assert not await read.has_day(NOW.date() + dt.timedelta(days=1))
    later = reader(db, NOW + dt.timedelta(days=100))
    days = await later.days()
    assert len(days) == INDEX_DAYS
    assert days[0] == (NOW + dt.timedelta(days=100)).date()


async def test_the_global_day_is_the_seeds_post_and_the_feed_skips_today(db: Database) -> None:
    await seed(db)
    read = reader(db)
    digest = await read.day(DAY)
    assert digest.papers[0].paper.arxiv_id == "2012.10885"
    assert all(r.score >= 50 for r in digest.papers)
    feed = await read.global_feed()
    assert [d.day for d in feed] == [DAY]  # today (12-23) is still being counted


async def test_a_feed_lists_the_latest_sent_digests_with_their_papers(db: Database) -> None:
    seeded = await seed(db, extra_days=2)
    days = await reader(db).feed(PUBLISHED)
    assert [d.sent.day for d in days] == list(seeded.sent_days)
    assert [p.arxiv_id for p in days[0].papers] == [p.arxiv_id for p in seeded.papers[:5]]


async def test_pages_are_read_once_a_minute(db: Database) -> None:
    await seed(db)
    read = reader(db)
    first = await read.day(DAY)
    assert await read.day(DAY) is first
    again = await read.server_day(PUBLISHED, NOW.date())
    assert await read.server_day(PUBLISHED, NOW.date()) is again


async def test_a_digest_whose_papers_left_the_store_shows_what_is_left(db: Database) -> None:
    await seed(db)
    await send(db, PUBLISHED, dt.date(2020, 12, 1), ["2012.00404"], NOW, DigestState.SENT)
    found = await reader(db).server_day(PUBLISHED, dt.date(2020, 12, 1))
    assert found is not None
    assert found.digest.papers == ()
