"""The composition root: builds every long-lived resource once and closes them in order."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiolimiter import AsyncLimiter

from bot.services.digests import DigestService
from bot.services.ingest import IngestService
from bot.services.papers import PaperService
from bot.settings import Settings
from bot.sources.arxiv import ArxivClient, ArxivRateLimiter
from bot.sources.base import PopularitySource
from bot.sources.hackernews import HackerNewsSource
from bot.sources.http import HttpClient, Sleep, make_session
from bot.sources.huggingface import HuggingFaceSource
from bot.sources.x import XSource
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


def x_is_on(settings: Settings) -> bool:
    """X runs when a token is set, unless ``sources.x.enabled = false`` was written explicitly."""
    x = settings.sources.x
    token = settings.secrets.x_bearer_token is not None
    if "enabled" in x.model_fields_set:
        if x.enabled and not token:
            log.warning("sources.x.enabled is true but X_BEARER_TOKEN is not set: X is off")
        return x.enabled and token
    return token


class _RateLimited(Protocol):
    @property
    def requests_per_window(self) -> int: ...

    @property
    def window_seconds(self) -> float: ...


def rate_limiter(config: _RateLimited) -> AsyncLimiter:
    """A source's per-service limit: ``requests_per_window`` requests per ``window_seconds``.

    aiolimiter's leaky bucket lets a full window's worth through at once, then one request per
    ``window_seconds / requests_per_window``; it binds to the running loop when first used.
    """
    return AsyncLimiter(config.requests_per_window, config.window_seconds)


def build_sources(
    settings: Settings, session: aiohttp.ClientSession, clock: Clock, sleep: Sleep | None
) -> list[PopularitySource]:
    """The enabled popularity sources, each with its own HTTP client and rate limiter."""

    def http(name: str) -> HttpClient:
        return HttpClient(session, settings.http, source=name, sleep=sleep)

    sources: list[PopularitySource] = []
    token = settings.secrets.x_bearer_token
    x, hn, hf = settings.sources.x, settings.sources.hackernews, settings.sources.huggingface
    if x_is_on(settings) and token is not None:
        sources.append(XSource(http("x"), x, token, now=clock, limiter=rate_limiter(x)))
    if hn.enabled:
        sources.append(HackerNewsSource(http("hackernews"), hn, limiter=rate_limiter(hn)))
    if hf.enabled:
        sources.append(
            HuggingFaceSource(
                http("huggingface"),
                hf,
                token=settings.secrets.hf_token,
                limiter=rate_limiter(hf),
            )
        )
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
