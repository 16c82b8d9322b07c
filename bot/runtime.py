"""The composition root: builds every long-lived resource once and closes them in order."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from bot.services.digests import DigestService
from bot.services.ingest import IngestService
from bot.services.papers import PaperService
from bot.settings import Settings
from bot.sources.arxiv import ArxivClient, ArxivRateLimiter
from bot.sources.base import PopularitySource
from bot.sources.http import HttpClient, Sleep, make_session
from bot.sources.registry import REGISTRY, SourceContext, rate_limiter
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.engine import open as open_database
from bot.storage.guilds import GuildRepository
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a command or the bot needs, built once per process."""

    settings: Settings
    clock: Clock
    session: aiohttp.ClientSession
    db: Database
    arxiv: ArxivClient
    sources: tuple[PopularitySource, ...]
    papers: PaperRepository
    mentions: MentionRepository
    runs: RunRepository
    guilds: GuildRepository
    digest_log: DigestRepository
    ingest: IngestService
    digests: DigestService
    paper_lookup: PaperService


def build_sources(
    settings: Settings, session: aiohttp.ClientSession, clock: Clock, sleep: Sleep | None
) -> list[PopularitySource]:
    """The enabled popularity sources, in registry order, each with its own HTTP client and
    rate limiter."""
    sections = settings.sources
    written = sections.model_fields_set
    sources: list[PopularitySource] = []
    for entry in REGISTRY:
        config = getattr(sections, entry.key)
        context = SourceContext(
            settings=config,
            explicit=frozenset(config.model_fields_set) if entry.key in written else frozenset(),
            secrets={
                name: value
                for name in entry.secrets
                if (value := settings.secrets.get(name)) is not None
            },
            session=session,
            http=HttpClient(session, settings.http, source=entry.key, sleep=sleep),
            clock=clock,
            limiter=rate_limiter(config),
            sleep=sleep,
        )
        source = entry.factory(context)
        if source is not None:
            sources.append(source)
    return sources


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    sleep: Sleep | None = None,
    migrate: bool = True,
) -> AsyncIterator[Runtime]:
    """Open the database (migrating it), the HTTP session and every client and service."""
    db = await open_database(settings.database.url, migrate=migrate)
    try:
        async with make_session(settings.http) as session:
            limiter = ArxivRateLimiter(settings.arxiv.min_interval_seconds)
            arxiv = ArxivClient(
                HttpClient(session, settings.http, source="arxiv", sleep=sleep),
                settings.arxiv,
                limiter,
            )
            papers = PaperRepository(db)
            mentions = MentionRepository(db)
            runs = RunRepository(db)
            sources = tuple(build_sources(settings, session, clock, sleep))
            digests = DigestService(
                papers=papers, mentions=mentions, runs=runs, ranking=settings.ranking, clock=clock
            )
            yield Runtime(
                settings=settings,
                clock=clock,
                session=session,
                db=db,
                arxiv=arxiv,
                sources=sources,
                papers=papers,
                mentions=mentions,
                runs=runs,
                guilds=GuildRepository(db),
                digest_log=DigestRepository(db),
                ingest=IngestService(
                    sources=sources,
                    arxiv=arxiv,
                    papers=papers,
                    mentions=mentions,
                    runs=runs,
                    clock=clock,
                    on_stored=digests.invalidate,
                ),
                digests=digests,
                paper_lookup=PaperService(papers=papers, arxiv=arxiv, clock=clock),
            )
    finally:
        await db.close()
