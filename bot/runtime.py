"""The composition root: builds every long-lived resource once and closes them in order."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from bot import __version__
from bot.services.delivery import DeliveryService
from bot.services.digests import DigestService
from bot.services.guilds import GuildService
from bot.services.ingest import IngestService
from bot.services.metrics import Metrics
from bot.services.owner import this_process
from bot.services.papers import PaperService
from bot.services.stream import StreamConsumer, StreamingSource
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
from bot.storage.streams import StreamRepository

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
    streams: StreamRepository
    # What moderators configure, and the daily post (with /digest preview and status).
    guild_settings: GuildService
    delivery: DeliveryService
    # One consumer per streaming source (Bluesky's Jetstream): the bot runs them in the
    # background; `hotpapers fetch` replays a window through them.
    consumers: tuple[StreamConsumer, ...] = ()
    # This process's Prometheus metrics (``/metrics``): the services above record into it.
    metrics: Metrics = field(default_factory=Metrics)


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


def feed_rules(settings: Settings) -> tuple[dict[str, int], dict[str, frozenset[str]]]:
    """Each source's feed-bot limit and ignored accounts, from its own settings."""
    limits: dict[str, int] = {}
    ignored: dict[str, frozenset[str]] = {}
    for entry in REGISTRY:
        config = getattr(settings.sources, entry.key)
        limit = entry.feed_limit(config)
        if limit is not None:
            limits[entry.key] = limit
        handles = frozenset(h.strip().lstrip("@").lower() for h in entry.ignored_authors(config))
        if handles:
            ignored[entry.key] = handles
    return limits, ignored


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    sleep: Sleep | None = None,
    migrate: bool = True,
) -> AsyncIterator[Runtime]:
    """Open the database (migrating it), the HTTP session and every client and service."""
    metrics = Metrics.for_process(__version__)
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
            streams = StreamRepository(db)
            write_lock = asyncio.Lock()  # one writer at a time: ingestion and the streams
            limits, ignored = feed_rules(settings)
            digests = DigestService(
                papers=papers,
                mentions=mentions,
                runs=runs,
                ranking=settings.ranking,
                clock=clock,
                feed_limits=limits,
                ignored_authors=ignored,
            )
            consumers = {
                source.name: StreamConsumer(
                    source=source,
                    settings=getattr(settings.sources, source.name),
                    mentions=mentions,
                    streams=streams,
                    clock=clock,
                    write_lock=write_lock,
                    on_stored=digests.invalidate,
                    metrics=metrics,
                )
                for source in sources
                if isinstance(source, StreamingSource) and source.stream is not None
            }
            guilds = GuildRepository(db)
            digest_log = DigestRepository(db)
            delivery = DeliveryService(
                guilds=guilds,
                digests=digests,
                log_=digest_log,
                runs=runs,
                settings=settings.digest,
                clock=clock,
                owner=str(this_process()),
                source_names=[s.name for s in sources],
                consumers=tuple(consumers.values()),
                metrics=metrics,
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
                guilds=guilds,
                digest_log=digest_log,
                ingest=IngestService(
                    sources=sources,
                    arxiv=arxiv,
                    papers=papers,
                    mentions=mentions,
                    runs=runs,
                    clock=clock,
                    on_stored=digests.invalidate,
                    consumers=consumers,
                    write_lock=write_lock,
                    metrics=metrics,
                ),
                digests=digests,
                paper_lookup=PaperService(papers=papers, arxiv=arxiv, clock=clock),
                streams=streams,
                guild_settings=GuildService(guilds, clock),
                delivery=delivery,
                consumers=tuple(consumers.values()),
                metrics=metrics,
            )
    finally:
        await db.close()
