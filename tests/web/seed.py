"""A database seeded for the archive's tests: the reference day (16 real papers and their posts),
two servers that the bot sent digests to (one published, one not), and hostile text."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.core.arxiv_ids import extract_arxiv_ids
from bot.core.models import DigestState, Mention, Paper
from bot.fakes.demo import dataset_papers, load_dataset
from bot.services.archive import ArchiveService
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository

DAY = dt.date(2020, 12, 22)
# When the reference post was made: the seed's "now", the digests' send time.
NOW = dt.datetime(2020, 12, 23, 10, 50, tzinfo=dt.UTC)
PUBLISHED = 1001  # a server that turned its archive on
HIDDEN = 1002  # a server that sent digests but never published them
HOSTILE = 1003  # a published server whose name and digest carry hostile text
PUBLISHED_NAME = "Machine Learning Reading Group"
HOSTILE_NAME = '<script>alert("name")</script> Ünïcødé Lab'

HOSTILE_ID = "2012.99999"
SCRIPT = '<script>alert("x")</script>'
MARKDOWN_LINK = "[click me](javascript:alert(1))"
HOSTILE_POST_URL = "javascript:alert(document.cookie)"


@dataclass(frozen=True)
class Seeded:
    """What the seeded database holds, for the tests to look for."""

    slug: str  # the published server's
    hostile_slug: str
    hidden_slug: str  # the unpublished server's (turned on once, then off)
    papers: tuple[Paper, ...]
    sent_days: tuple[dt.date, ...]  # the published server's sent digests, newest first


def hostile_paper() -> Paper:
    return Paper(
        arxiv_id=HOSTILE_ID,
        title=f"{SCRIPT} {MARKDOWN_LINK} <b>bold</b>",
        abstract=f"</p>{SCRIPT}<a href='javascript:alert(2)'>x</a> & more",
        authors=("<img src=x onerror=alert(3)>", 'Ada "Quote" O\'Brien'),
        primary_category="cs.LG",
        categories=("cs.LG",),
        published=dt.datetime(2020, 12, 21, 19, 0, tzinfo=dt.UTC),
        updated=dt.datetime(2020, 12, 21, 19, 0, tzinfo=dt.UTC),
    )


def reference_mentions() -> list[Mention]:
    """The reference day's posts on X, as the bot stores them, plus a Hacker News story."""
    data = load_dataset()
    found = []
    for post in data["posts"]:
        ids = tuple(i for url in post["urls"] for i in extract_arxiv_ids(url))
        found.append(
            Mention(
                source="x",
                post_id=post["id"],
                url=f"https://twitter.com/{post['author_username']}/status/{post['id']}",
                author=post["author_username"],
                author_name=post["author_name"],
                text=post["text"],
                created_at=dt.datetime.fromisoformat(post["created_at"].replace("Z", "+00:00")),
                arxiv_ids=ids,
                metrics={"reposts": post["retweets"], "likes": post["likes"]},
                lang="en",
            )
        )
    found.append(
        Mention(
            source="hackernews",
            post_id="25512345",
            url="https://news.ycombinator.com/item?id=25512345",
            author="pg_reader",
            text="LieTransformer: Equivariant self-attention for Lie Groups",
            created_at=dt.datetime(2020, 12, 22, 15, 0, tzinfo=dt.UTC),
            arxiv_ids=("2012.10885",),
            metrics={"points": 120, "comments": 30},
        )
    )
    return found


def hostile_mentions() -> list[Mention]:
    return [
        Mention(
            source="x",
            post_id="666",
            url=HOSTILE_POST_URL,
            author="<svg onload=alert(4)>",
            author_name=SCRIPT,
            text=f"{MARKDOWN_LINK} {SCRIPT} see https://example.org/ok?a=1&b=2 and "
            "javascript:alert(5) <i>x</i>",
            created_at=dt.datetime(2020, 12, 22, 20, 0, tzinfo=dt.UTC),
            arxiv_ids=(HOSTILE_ID,),
            metrics={"reposts": 20, "likes": 20},
        ),
        Mention(
            source="x",
            post_id="667",
            url="data:text/html,<script>alert(6)</script>",
            author="second",
            text="another one",
            created_at=dt.datetime(2020, 12, 22, 21, 0, tzinfo=dt.UTC),
            arxiv_ids=(HOSTILE_ID,),
            metrics={"reposts": 15, "likes": 15},
        ),
    ]


async def send(
    db: Database, guild_id: int, day: dt.date, papers: list[str], at: dt.datetime, status: str
) -> None:
    """Record a digest as delivery does: claimed with its papers, then finished."""
    log = DigestRepository(db)
    claimed = await log.claim(guild_id, day, papers=papers, now=at, owner="test")
    assert claimed is not None
    record, _planned = claimed
    await log.finish(
        record.id,
        status,
        paper_count=len(papers) if status == DigestState.SENT else 0,
        message_ids=[record.id * 100 + 1] if status == DigestState.SENT else [],
        now=at + dt.timedelta(seconds=5),
    )


async def seed(db: Database, *, extra_days: int = 0) -> Seeded:
    """Fill ``db``; ``extra_days``: more sent digests of the published server, on the days
    before the reference day (to page through)."""
    papers = [*dataset_papers(load_dataset()), hostile_paper()]
    await PaperRepository(db).upsert(papers, NOW)
    await MentionRepository(db).upsert([*reference_mentions(), *hostile_mentions()], NOW)

    archive = ArchiveService.on(db)
    published = await archive.turn_on(PUBLISHED, PUBLISHED_NAME)
    hostile = await archive.turn_on(HOSTILE, HOSTILE_NAME)
    hidden = await archive.turn_on(HIDDEN, PUBLISHED_NAME)  # same name: deduplicated
    await archive.turn_off(HIDDEN)
    assert published.slug is not None
    assert hostile.slug is not None
    assert hidden.slug is not None

    ids = [p.arxiv_id for p in papers[:5]]
    today = NOW.date()
    await send(db, PUBLISHED, today, ids, NOW, DigestState.SENT)
    await send(db, PUBLISHED, DAY, ids[2:4], NOW - dt.timedelta(days=1), DigestState.SENT)
    for back in range(1, extra_days + 1):
        day = DAY - dt.timedelta(days=back)
        await send(db, PUBLISHED, day, ids[:1], NOW - dt.timedelta(days=1 + back), "sent")
    # Not shown: a digest that failed and one with nothing to post.
    await send(db, PUBLISHED, DAY - dt.timedelta(days=extra_days + 1), ids, NOW, "failed")
    await send(db, PUBLISHED, DAY - dt.timedelta(days=extra_days + 2), [], NOW, "empty")
    await send(db, HIDDEN, today, ids, NOW, DigestState.SENT)
    await send(db, HOSTILE, today, [HOSTILE_ID, ids[0]], NOW, DigestState.SENT)
    sent_days = (
        today,
        DAY,
        *(DAY - dt.timedelta(days=back) for back in range(1, extra_days + 1)),
    )
    return Seeded(
        slug=published.slug,
        hostile_slug=hostile.slug,
        hidden_slug=hidden.slug,
        papers=tuple(papers),
        sent_days=sent_days,
    )
