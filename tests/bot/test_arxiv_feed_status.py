"""The ingestion job reads the arXiv feeds of the servers' categories; an empty feed (weekend or
holiday) is a reason /digest status and empty digests give."""

from __future__ import annotations

import datetime as dt

from bot.core.models import Announcement, AnnounceType
from bot.services.ingest import FEED_SOURCE
from tests.bot.conftest import said


async def test_ingest_job_reads_the_followed_categories_feeds(botworld):
    await botworld.configure(categories=("cs.LG", "cs.CV"))
    botworld.world.arxiv.set_announcements(
        "cs.LG",
        [
            Announcement(
                "2012.99901",
                1,
                AnnounceType.NEW,
                "A brand new paper",
                "Abstract.",
                ("A. Author",),
                ("cs.LG",),
                botworld.clock.now,
            )
        ],
    )
    await botworld.jobs.ingest()
    rss = [r for r in botworld.world.arxiv.requests if r.path.startswith("/rss")]
    assert [r.path for r in rss] == ["/rss/cs.CV+cs.LG"]
    assert await botworld.rt.papers.get("2012.99901") is not None
    run = (await botworld.rt.runs.latest_by_source())[FEED_SOURCE]
    assert run.mentions == 1


async def test_an_empty_feed_is_named_in_status_and_in_the_empty_digest(botworld):
    # 2020-12-23 is a Wednesday: an empty feed that day is an arXiv holiday, not a weekend.
    await botworld.configure(categories=("cs.LG",), threshold=100000, empty_day="message")
    await botworld.jobs.ingest()
    cb = await botworld.reply("digest", "status", member=botworld.reader)
    assert cb.ephemeral
    assert "arXiv holiday" in said(cb)
    assert "arXiv feed: 0 announcements" in said(cb)

    before = len(botworld.fake.messages(botworld.harness.channel))
    botworld.clock.now = dt.datetime(2020, 12, 24, 10, 30, tzinfo=dt.UTC)
    await botworld.jobs.sweep()
    posted = botworld.fake.messages(botworld.harness.channel)[before:]
    assert len(posted) == 1
    assert "arXiv holiday" in posted[0]["content"]
