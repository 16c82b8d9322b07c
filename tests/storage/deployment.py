"""A small deployment for copy tests: every table filled through the real repositories, with
hostile text (scripts, emoji, quotes, SQL, control characters, a very long abstract), extreme
ids and microsecond times; and helpers that read databases back table by table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, text

from bot.core.models import Window
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.guilds import GuildRepository
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from bot.storage.streams import StreamRepository
from bot.storage.tables import metadata
from tests.storage.factories import T0, make_mention, make_paper

PAPERS = 40
MENTIONS = 90
BIG_GUILD = 2**63 - 1  # the largest BIGINT: Discord ids are 64-bit
HOSTILE = (
    "Ünïcödé 🧪 Ω≈ç√ — 中文 عربي \u200f e\u0301 👩\u200d🔬",
    "It's \"quoted\" `back` ''; DROP TABLE papers; -- %_like_% \\n \\t C:\\path",
    "line one\nline two\ttabbed\r\nwindows\x07bell",
    'NEAR(a b) OR title:x AND "phrase" * ^ - (paren) {brace}',
)
# Search queries whose answers must be the same on a copy.
QUERIES = ("quasar", "café", "cafe", "Łukasiewicz", "quoted back", "neural network", "中文")
PREFIXES = ("qua", "Łuk", "catal", "2503.000")
T1 = T0 + dt.timedelta(microseconds=123_456)


def _abstract(i: int) -> str:
    if i == 0:
        return "quasar " * 40_000  # 280,000 characters
    return f"{HOSTILE[i % len(HOSTILE)]} neural network number {i} about quasars and cafés."


async def fill(db: Database, *, tag: str = "") -> None:
    """Fill every table of ``db``; ``tag`` makes a second, different deployment."""
    when = T1 + (dt.timedelta(days=1) if tag else dt.timedelta())
    paper_repo = PaperRepository(db)
    await paper_repo.upsert(
        [
            make_paper(
                f"2503.{i:05d}",
                title=f"{tag}Paper {i}: {HOSTILE[i % len(HOSTILE)][:60]} café quasar"
                if i % 3
                else f"{tag}Quasar catalogue {i}",
                abstract=_abstract(i),
                authors=("Jan Łukasiewicz", 'Ann "Nan" O\'Neil', f"José Núñez {i}"),
                categories=("cs.LG", "astro-ph.GA") if i % 2 else ("astro-ph.GA",),
                published=when - dt.timedelta(hours=i),
                version=i % 4 or None,
                comment=HOSTILE[i % len(HOSTILE)] if i % 5 == 0 else None,
                doi=f"10.1/{tag}{i}" if i % 7 == 0 else None,
            )
            for i in range(PAPERS)
        ],
        when,
    )
    await paper_repo.mark_missing([f"2599.{i:05d}" for i in range(3)], f"{tag}not found ☹", when)
    await MentionRepository(db).upsert(
        [
            make_mention(
                f"{tag}{i}",
                source=("x", "bluesky", "hackernews")[i % 3],
                arxiv_ids=(f"2503.{i % PAPERS:05d}", "2503.99999")
                if i % 4 == 0
                else (f"2503.{i % PAPERS:05d}",),
                created_at=when - dt.timedelta(minutes=i),
                metrics={"reposts": i, "likes": 2 * i} if i % 2 else {"points": i},
                text=HOSTILE[i % len(HOSTILE)] * (1 + i % 3),
            )
            for i in range(MENTIONS)
        ],
        when,
    )
    guild_repo = GuildRepository(db, clock=lambda: when)
    for guild, extra in ((1, {}), (BIG_GUILD, {"paused": True, "pause_reason": HOSTILE[0]})):
        await guild_repo.update(
            guild,
            channel_id=BIG_GUILD - 1,
            threshold=12.345678901234567,
            timezone="Asia/Kolkata",
            **extra,
        )
        await guild_repo.add_category(guild, "cs.LG")
        await guild_repo.add_category(guild, "astro-ph.GA")
    digests = DigestRepository(db, clock=lambda: when)
    for day in range(3):
        claimed = await digests.claim(
            1,
            when.date() - dt.timedelta(days=day),
            papers=[f"2503.{p:05d}" for p in range(day, day + 5)],
            owner=f"{tag}host/boot/1/2",
        )
        assert claimed is not None
        await digests.add_message(claimed[0].id, BIG_GUILD - day)
        if day:
            await digests.finish(claimed[0].id, "sent", paper_count=5)
    await digests.plan(BIG_GUILD, when.date())
    runs = RunRepository(db)
    window = Window(when - dt.timedelta(hours=1), when)
    await runs.record("x", window, when, when, 3, 1)
    await runs.record("bluesky", window, when, when, 0, 2, error=HOSTILE[1], error_kind="http 503")
    streams = StreamRepository(db)
    await streams.save_cursor("bluesky", 1_733_000_000_123_456, f"{tag}jetstream1", when)
    await streams.save_cursor("a-b", 1, None, when)
    await streams.save_cursor("ab", 2, "ñ", when)
    await streams.record_gap("bluesky", when - dt.timedelta(minutes=5), when, when)


async def counts(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        return {
            table.name: int(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
            for table in metadata.sorted_tables
        }


def _key(table: Any) -> Any:
    names = [c.name for c in table.primary_key.columns]

    def key(row: Any) -> tuple[Any, ...]:
        return tuple(row._mapping[name] for name in names)

    return key


async def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table as the repositories read them (typed), in primary-key order
    (sorted here: the two backends order text differently)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with db.read() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(select(table))).all()
            tables[table.name] = [tuple(row) for row in sorted(rows, key=_key(table))]
    return tables


async def stored_text(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """The JSON columns as the text stored, untyped: a copy must not respell them."""
    async with db.read() as conn:
        authors = await conn.execute(text("SELECT id, authors FROM papers ORDER BY id"))
        messages = await conn.execute(text("SELECT id, message_ids FROM digests ORDER BY id"))
        return {"authors": [tuple(r) for r in authors], "message_ids": [tuple(r) for r in messages]}
