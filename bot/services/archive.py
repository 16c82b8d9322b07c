"""The public archive: servers opting in or out, and what its web pages and feeds show.

A server's archive shows only the digests the bot really sent there (``bot.storage.archive``),
each paper in the rank it was posted at, with its counts read afresh from the posts of the 24
hours it was ranked over. The global pages are the seed's daily post: every category's papers
of a UTC day, ranked by :class:`~bot.services.digests.DigestService` as the bot ranks them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from bot.core.models import Digest, Paper, RankedPaper, Window
from bot.services.digests import SECOND_CHANCE_DAYS, DigestService
from bot.storage.archive import SLUG_MAX, ArchivedDigest, ArchiveRepository, ArchiveState
from bot.storage.engine import Database

Clock = Callable[[], dt.datetime]
T = TypeVar("T")

# A server's archive lists this many digests a page.
PER_PAGE = 30
# The global index links this many days back from today.
INDEX_DAYS = 30
# Feeds carry this many entries: a server's latest digests, the global latest complete days.
SERVER_FEED_ENTRIES = 20
GLOBAL_FEED_DAYS = 7
# A page's data is kept this long: a minute for the last days, whose posts are still being
# counted (ingestion looks back 48 hours), ten for older ones, which no longer change.
RECENT_TTL = 60.0
SETTLED_TTL = 600.0
SETTLED_AFTER = dt.timedelta(days=2)
CACHE_ENTRIES = 128

# Letters NFKD does not take apart into ASCII, spelt as they are usually transliterated.
_SPELLED = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "œ": "oe", "Œ": "oe", "đ": "d",
     "Đ": "d", "ł": "l", "Ł": "l", "þ": "th", "Þ": "th", "ð": "d", "Ð": "d", "ı": "i"}
)  # fmt: skip
_WORD = re.compile(r"[a-z0-9]+")
# The slug of a server whose name has no ASCII letter or digit at all (emoji, CJK…).
FALLBACK_SLUG = "server"


def slugify(name: str) -> str:
    """A server's name as a slug: ASCII, lowercase, words joined by hyphens, at most
    :data:`~bot.storage.archive.SLUG_MAX` characters, never empty."""
    ascii_text = unicodedata.normalize("NFKD", name.translate(_SPELLED))
    ascii_text = ascii_text.encode("ascii", "ignore").decode("ascii").lower()
    slug = "-".join(_WORD.findall(ascii_text))[:SLUG_MAX].strip("-")
    return slug or FALLBACK_SLUG


@dataclass(frozen=True, slots=True)
class ArchiveLink:
    """Where a server's archive is: a full URL when the site's public address is configured
    (``web.public_url``), else only its path (``absolute`` False)."""

    url: str
    absolute: bool


def archive_path(slug: str, base: str = "") -> str:
    return f"{base}/s/{slug}/"


class ArchiveService:
    """Moderators' side: turning a server's archive on or off, and where it is."""

    def __init__(self, archive: ArchiveRepository, *, public_url: str | None = None) -> None:
        self.archive = archive
        self.public_url = public_url.rstrip("/") if public_url else None

    @classmethod
    def on(cls, db: Database, *, public_url: str | None = None) -> ArchiveService:
        return cls(ArchiveRepository(db), public_url=public_url)

    async def state(self, guild_id: int) -> ArchiveState:
        return await self.archive.state(guild_id)

    async def turn_on(self, guild_id: int, server_name: str) -> ArchiveState:
        """Publish the server's sent digests; the slug comes from its name the first time."""
        return await self.archive.set_enabled(guild_id, True, slug_base=slugify(server_name))

    async def turn_off(self, guild_id: int) -> ArchiveState:
        """Hide the archive at once (its pages answer 404); its slug is kept."""
        return await self.archive.set_enabled(guild_id, False)

    def link(self, slug: str) -> ArchiveLink:
        if self.public_url:
            return ArchiveLink(self.public_url + archive_path(slug), absolute=True)
        return ArchiveLink(archive_path(slug), absolute=False)


@dataclass(frozen=True, slots=True)
class DigestPage:
    """One page of a server's list of sent digests, newest first."""

    digests: tuple[ArchivedDigest, ...]
    number: int  # from 1
    pages: int  # at least 1, even when there is no digest yet
    total: int


@dataclass(frozen=True, slots=True)
class ServerDay:
    """A server's digest of one day, as the archive shows it, with its neighbours' dates."""

    digest: Digest
    sent: ArchivedDigest
    previous: dt.date | None
    next: dt.date | None


@dataclass(frozen=True, slots=True)
class FeedDay:
    """One entry of a server's feed: a sent digest and its papers, in rank order."""

    sent: ArchivedDigest
    papers: tuple[Paper, ...]


class _Cache(Generic[T]):
    """Results of the archive's reads, kept a little while: a page read by many (a feed reader
    polling, a link shared) is ranked once. Bounded: the oldest entries go first."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._entries = entries
        self._held: dict[Hashable, tuple[float, T]] = {}

    async def get(self, key: Hashable, ttl: float, make: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        held = self._held.get(key)
        if held is not None and held[0] > now:
            return held[1]
        value = await make()
        self._held.pop(key, None)
        while len(self._held) >= self._entries:
            del self._held[next(iter(self._held))]
        self._held[key] = (now + ttl, value)
        return value


class ArchiveReader:
    """The web's side: what each archive page and feed shows (read-only)."""

    def __init__(self, *, archive: ArchiveRepository, digests: DigestService, clock: Clock) -> None:
        self.archive = archive
        self.digests = digests
        self.clock = clock
        self._days: _Cache[Digest] = _Cache()
        self._server_days: _Cache[ServerDay | None] = _Cache()

    def today(self) -> dt.date:
        """The current UTC day: the global pages are UTC days."""
        return self.clock().astimezone(dt.UTC).date()

    def _ttl(self, day: dt.date) -> float:
        return RECENT_TTL if day >= self.today() - SETTLED_AFTER else SETTLED_TTL

    # --- a server's archive -------------------------------------------------------------------

    async def server(self, slug: str) -> int | None:
        """The server whose archive is published at ``slug`` (None: unknown or turned off)."""
        return await self.archive.published(slug)

    async def listing(self, guild_id: int, number: int) -> DigestPage | None:
        """Page ``number`` of the server's sent digests; None past the last page."""
        if number < 1:
            return None
        found, total = await self.archive.sent(
            guild_id, limit=PER_PAGE, offset=(number - 1) * PER_PAGE
        )
        pages = max(1, math.ceil(total / PER_PAGE))
        if number > pages:
            return None
        return DigestPage(tuple(found), number, pages, total)

    async def server_day(self, guild_id: int, day: dt.date) -> ServerDay | None:
        """The server's digest of ``day`` if it was sent: its papers in the order posted."""
        return await self._server_days.get(
            (guild_id, day), self._ttl(day), lambda: self._server_day(guild_id, day)
        )

    async def _server_day(self, guild_id: int, day: dt.date) -> ServerDay | None:
        sent = await self.archive.sent_on(guild_id, day)
        if sent is None:
            return None
        end = sent.chosen_at or sent.finished_at
        if end is None:  # a sent digest always has both; an old row might have neither
            end = dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1)
        window = Window(end - dt.timedelta(days=1), end)
        papers = await self._ranked(sent.papers, window)
        previous, following = await self.archive.sent_around(guild_id, day)
        digest = Digest(
            day=day,
            window=window,
            categories=(),
            papers=tuple(papers),
            generated_at=min((r.as_of for r in papers if r.as_of), default=end),
            threshold=self.digests.ranking.threshold,
        )
        return ServerDay(digest, sent, previous, following)

    async def _ranked(self, ids: tuple[str, ...], window: Window) -> list[RankedPaper]:
        """``ids`` in their order, each scored over ``window`` as the bot scores a day; a
        paper posted as a second chance (ranked over the week before) from that week."""
        by_id = {r.paper.arxiv_id: r for r in await self.digests.score(window)}
        if any(pid not in by_id for pid in ids):
            week = Window(window.end - dt.timedelta(days=SECOND_CHANCE_DAYS + 1), window.end)
            for r in await self.digests.score(week):
                by_id.setdefault(r.paper.arxiv_id, r)
        stored = await self.digests.papers.get_many([pid for pid in ids if pid not in by_id])
        ranked = []
        for pid in ids:
            if pid in by_id:
                ranked.append(by_id[pid])
            elif pid in stored:  # nobody's posts about it are kept any more: no counts
                ranked.append(RankedPaper(stored[pid], 0.0, {}, ()))
        return ranked

    async def feed(self, guild_id: int) -> list[FeedDay]:
        """The server's latest sent digests with their papers, newest first."""
        recent = await self.archive.recent(guild_id, SERVER_FEED_ENTRIES)
        papers = await self.digests.papers.get_many({pid for d in recent for pid in d.papers})
        return [FeedDay(d, tuple(papers[pid] for pid in d.papers if pid in papers)) for d in recent]

    # --- the global daily pages ---------------------------------------------------------------

    async def first_day(self) -> dt.date | None:
        """The first day with a stored post: the global pages start there."""
        first = await self.archive.first_post_at()
        return None if first is None else first.astimezone(dt.UTC).date()

    async def has_day(self, day: dt.date) -> bool:
        """Whether the global page of ``day`` exists: from the first post's day to today."""
        first = await self.first_day()
        return first is not None and first <= day <= self.today()

    async def days(self) -> list[dt.date]:
        """The days the index links, newest first: today back :data:`INDEX_DAYS` days, from
        the first post's day at most."""
        first = await self.first_day()
        if first is None:
            return []
        today = self.today()
        count = min(INDEX_DAYS, (today - first).days + 1)
        return [today - dt.timedelta(days=n) for n in range(count)]

    async def day(self, day: dt.date) -> Digest:
        """The global ranking of ``day`` (a UTC day), every category: the seed's post."""
        return await self._days.get(day, self._ttl(day), lambda: self.digests.for_day(day))

    async def global_feed(self) -> list[Digest]:
        """The latest complete days' rankings, newest first (today's is still changing)."""
        first = await self.first_day()
        if first is None:
            return []
        yesterday = self.today() - dt.timedelta(days=1)
        days = [yesterday - dt.timedelta(days=n) for n in range(GLOBAL_FEED_DAYS)]
        return [await self.day(d) for d in days if d >= first]
