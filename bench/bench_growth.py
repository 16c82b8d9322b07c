"""Benchmark: how fast the database grows, and what the snapshot retention keeps of a day.

Run by hand::

    python bench/bench_growth.py [--posts-per-day 2000] [--papers-per-day 400] [--days 4]
    python bench/bench_growth.py --backend postgresql      # HOTPAPERS_TEST_POSTGRES_URL
    python bench/bench_growth.py --demo                    # the offline demo's reference day

The synthetic run stores what the bot stores with its default scheduler settings (an ingestion
every 60 minutes over the last 48 hours), through the real repositories, for ``--days`` UTC days:
each day ``--papers-per-day`` papers (abstracts of about 1,200 characters, four authors, one to
three categories), stored by the morning's announcements; ``--posts-per-day`` posts of about 200
characters spread over the day, each linking one or two of the last three days' papers, split
between X, Bluesky, Hacker News and Hugging Face as ``bench_ranking`` splits a busy day; and
every hourly ingestion storing every post created in the last 48 hours again (its counts grown:
one metrics snapshot per post per ingestion, as X's search and Bluesky's refresh do), with one
run record per source.

Printed: ``hotpapers db stats`` of the result; the last day's rows per table (the steady state,
from the third day on: a day with the two days of posts before it still being read) with the
bytes they take (rows times the table's average row, indexes and search index included) and the
bytes per post; then the retention as the scheduler runs it (every day before the last thinned
to one reading per post per UTC day), with the snapshots and bytes a day keeps after it (the
day before the last, also steady). Everything is linear in the volume: 50,000 posts a day cost
25 times the figures of 2,000.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bot.core.models import Mention, Paper, Window
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from bot.storage.stats import DatabaseStats, human_bytes, measure
from bot.storage.tables import mention_metrics, mention_papers, mentions, papers, source_runs

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)  # a UTC midnight
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
LOOKBACK = 48 * HOUR  # scheduler.ingest_lookback_hours
SOURCES = {"x": 60, "bluesky": 25, "huggingface": 10, "hackernews": 5}  # share of posts, %
CATEGORIES = ("cs.LG", "cs.CV", "cs.CL", "stat.ML", "quant-ph", "hep-th", "math.OC", "cs.AI")


def _split(text: str) -> list[str]:
    return text.split()


WORDS = _split(
    "model learning data method network results neural approach performance training graph "
    "language transformer attention diffusion quantum field theory estimation inference "
    "bayesian reinforcement policy agent vision image segmentation detection robust optimal"
)


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(count))


def make_papers(rng: random.Random, day: int, count: int) -> list[Paper]:
    published = START + day * DAY - 12 * HOUR
    made = []
    for n in range(count):
        categories = tuple(dict.fromkeys(rng.sample(CATEGORIES, rng.randint(1, 3))))
        made.append(
            Paper(
                arxiv_id=f"2603.{day:01d}{n:04d}",
                title=words(rng, 10).capitalize(),
                abstract=words(rng, 170),  # about 1,200 characters
                authors=tuple(f"{words(rng, 1).title()} Author{n}-{k}" for k in range(4)),
                primary_category=categories[0],
                categories=categories,
                published=published,
                updated=published,
                version=1,
            )
        )
    return made


def make_posts(
    rng: random.Random, day: int, count: int, linkable: list[str]
) -> list[tuple[Mention, float]]:
    """The day's posts, each with the growth rate of its counts (per hour)."""
    sources = [name for name, share in SOURCES.items() for _ in range(share)]
    posts = []
    for n in range(count):
        source = rng.choice(sources)
        created = START + day * DAY + dt.timedelta(seconds=rng.randrange(86400))
        linked = tuple(dict.fromkeys(rng.sample(linkable, rng.choice((1, 1, 1, 2)))))
        post_id = (
            f"at://did:plc:{rng.getrandbits(64):016x}/app.bsky.feed.post/{day}{n:06d}"
            if source == "bluesky"
            else f"{day}{n:07d}"
        )
        text = f"{words(rng, 25)} https://arxiv.org/abs/{linked[0]}"
        mention = Mention(
            source=source,
            post_id=post_id,
            url=f"https://example.org/{source}/{n}",
            author=f"user{rng.randrange(20_000)}",
            text=text,
            created_at=created,
            arxiv_ids=linked,
            metrics={},
            author_name=f"User {n}",
            lang="en",
        )
        posts.append((mention, rng.expovariate(1 / 3)))
    return posts


def metrics(source: str, count: int) -> dict[str, int]:
    if source == "hackernews":
        return {"points": count, "comments": count // 4}
    if source == "huggingface":
        return {"upvotes": count}
    return {"reposts": count // 5, "likes": count, "replies": count // 10, "quotes": count // 20}


async def simulate(db: Database, args: argparse.Namespace) -> dt.datetime:
    """The bot's hourly ingestion over ``args.days`` days; returns the moment it ended."""
    rng = random.Random(args.seed)
    paper_repo, mention_repo, runs = PaperRepository(db), MentionRepository(db), RunRepository(db)
    posts: list[tuple[Mention, float]] = []
    recent: list[list[str]] = []
    end = START + args.days * DAY
    started = time.monotonic()
    for hour in range(args.days * 24):
        now = START + hour * HOUR + dt.timedelta(minutes=5)
        day = hour // 24
        if hour % 24 == 6:  # the morning's announcements
            day_papers = make_papers(rng, day, args.papers_per_day)
            await paper_repo.upsert(day_papers, now)
            recent = [*recent[-2:], [p.arxiv_id for p in day_papers]]
        if hour % 24 == 0:
            linkable = [i for ids in recent for i in ids] or [
                p.arxiv_id for p in make_papers(rng, 9, 50)
            ]
            if not recent:
                await paper_repo.upsert(make_papers(rng, 9, 50), now)
            posts += make_posts(rng, day, args.posts_per_day, linkable)
        window = Window(now - LOOKBACK, now)
        seen = [(m, rate) for m, rate in posts if window.start <= m.created_at < window.end]
        for source in SOURCES:
            batch = [
                dataclasses.replace(
                    m, metrics=metrics(m.source, int(rate * (now - m.created_at) / HOUR))
                )
                for m, rate in seen
                if m.source == source
            ]
            if batch:
                await mention_repo.upsert(batch, now)
            await runs.record(source, window, now, now, len(batch), 1 + len(batch) // 100)
        posts = [(m, r) for m, r in posts if m.created_at >= now - LOOKBACK]
        if hour % 24 == 23:
            print(
                f"  day {day + 1}/{args.days} stored ({time.monotonic() - started:.0f} s)",
                file=sys.stderr,
            )
    return end


async def last_day_rows(db: Database, end: dt.datetime) -> dict[str, int]:
    """Rows each table gained in the last day (by the same timestamps as ``db stats``)."""
    since = end - DAY
    queries = {
        "papers": select(func.count()).where(papers.c.fetched_at >= since),
        "mentions": select(func.count()).where(mentions.c.first_seen_at >= since),
        "mention_papers": select(func.count())
        .select_from(mention_papers.join(mentions, mentions.c.id == mention_papers.c.mention_id))
        .where(mentions.c.first_seen_at >= since),
        "mention_metrics": select(func.count()).where(mention_metrics.c.fetched_at >= since),
        "source_runs": select(func.count()).where(source_runs.c.started_at >= since),
    }
    async with db.read() as conn:
        return {name: int((await conn.execute(q)).scalar_one()) for name, q in queries.items()}


def day_report(stats: DatabaseStats, rows: dict[str, int], posts: int, title: str) -> int:
    print(f"\n{title}")
    print(f"{'table':<16} {'rows/day':>10} {'bytes/row':>10} {'bytes/day':>12}")
    total = 0.0
    by_name = {t.name: t for t in stats.tables}
    for name, count in rows.items():
        per_row = by_name[name].bytes_per_row or 0.0
        total += count * per_row
        print(f"{name:<16} {count:>10,} {per_row:>10,.0f} {human_bytes(count * per_row):>12}")
    print(f"{'total':<16} {'':>10} {'':>10} {human_bytes(total):>12}")
    print(
        f"per post: {total / posts:,.0f} bytes a day ({human_bytes(total / posts * 50_000)} "
        "a day at 50,000 posts)"
    )
    return int(total)


async def synthetic(url: str, args: argparse.Namespace) -> None:
    async with Database.connect(url) as db:
        print(
            f"{args.days} days, {args.posts_per_day:,} posts and {args.papers_per_day:,} papers "
            f"a day, ingestion hourly over 48 h, {db.dialect}; cores: {os.cpu_count()}",
            file=sys.stderr,
        )
        end = await simulate(db, args)
        stats = await measure(db, now=end)
        print(stats.describe())
        if not db.is_sqlite:
            # Each hourly upsert leaves the old row versions of posts and links behind until
            # (auto)vacuum: the sizes above hold them. The live rows' own size, after a
            # compaction, is what a vacuumed database grows by.
            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM FULL")
            compact = await measure(db, now=end)
            print(
                f"\nafter VACUUM FULL: {human_bytes(compact.bytes)} (was "
                f"{human_bytes(stats.bytes)}); the figures below are per live row"
            )
            stats = compact
        rows = await last_day_rows(db, end)
        day_report(stats, rows, args.posts_per_day, "the last day (steady state), as stored:")
        snapshots_before = rows["mention_metrics"]

        started = time.monotonic()
        removed = await MentionRepository(db).thin_snapshots(end)
        seconds = time.monotonic() - started
        async with db.read() as conn:
            # The day before the last: steady, whole, and thinned now.
            day = select(func.count()).where(
                mention_metrics.c.fetched_at >= end - 2 * DAY,
                mention_metrics.c.fetched_at < end - DAY,
            )
            kept = int((await conn.execute(day)).scalar_one())
        print(
            f"\nretention: removed {removed:,} snapshots in {seconds:.1f} s "
            f"({removed / max(seconds, 1e-9):,.0f} rows/s); a thinned day keeps {kept:,} "
            f"snapshots ({kept / args.posts_per_day:.2f} per post of a day; "
            f"{snapshots_before / args.posts_per_day:.1f} before)"
        )
        thinned = dict(rows, mention_metrics=kept)
        day_report(stats, thinned, args.posts_per_day, "a day once thinned (what stays for good):")


async def demo() -> None:
    from bot.fakes.demo import demo_world
    from bot.runtime import open_runtime
    from bot.settings import Settings

    with tempfile.TemporaryDirectory(prefix="hotpapers-growth-") as tmp:
        async with (
            demo_world(Settings(), Path(tmp)) as world,
            open_runtime(world.settings, clock=world.clock) as rt,
        ):
            await rt.ingest.run(Window.for_day(world.day), replay=True)
            stats = await measure(rt.db, now=world.now)
        print(stats.describe())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts-per-day", type=int, default=2000)
    parser.add_argument("--papers-per-day", type=int, default=400)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--demo", action="store_true", help="the offline demo's reference day")
    args = parser.parse_args()
    if args.demo:
        asyncio.run(demo())
        return 0
    with tempfile.TemporaryDirectory(prefix="hotpapers-growth-") as tmp:
        if args.backend == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'growth.db'}"
            asyncio.run(synthetic(url, args))
        else:
            asyncio.run(on_postgresql(args))
    return 0


async def on_postgresql(args: argparse.Namespace) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    base = os.environ.get("HOTPAPERS_TEST_POSTGRES_URL")
    if not base:
        raise SystemExit("set HOTPAPERS_TEST_POSTGRES_URL to a PostgreSQL server")
    server = make_url(base)
    name = f"hp_bench_growth_{os.getpid()}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        await synthetic(server.set(database=name).render_as_string(hide_password=False), args)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


if __name__ == "__main__":
    sys.exit(main())
