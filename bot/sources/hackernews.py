"""Hacker News (Algolia search) as a popularity source: stories linking arXiv in a window."""

from __future__ import annotations

import datetime as dt
import logging
import math
from contextlib import AbstractAsyncContextManager
from typing import Any

from pydantic import Field

from bot.config import HttpUrl, Section
from bot.core.arxiv_ids import extract_arxiv_ids
from bot.core.errors import MalformedResponseError
from bot.core.models import Mention, Metric, Window
from bot.sources.http import HttpClient

log = logging.getLogger(__name__)

UTC = dt.UTC
NAME = "hackernews"
QUERY = "arxiv.org"
DEFAULT_MAX_SPLIT_DEPTH = 8  # up to 2**8 sub-windows for one window


class HackerNewsSettings(Section):
    enabled: bool = True
    api_url: HttpUrl = "https://hn.algolia.com/api/v1"
    hits_per_page: int = Field(100, ge=1, le=1000)
    max_pages: int = Field(10, ge=1)
    min_points: int = Field(0, ge=0)
    min_comments: int = Field(0, ge=0)
    # HN Algolia allows 10,000 requests per hour per IP.
    requests_per_window: int = Field(10_000, ge=1)
    window_seconds: float = Field(3600.0, gt=0)


class HackerNewsSource:
    """Collects stories whose URL links arXiv from HN Algolia's ``search_by_date``.

    One query per window, paged from 0 to ``nbPages`` (at most ``max_pages``). When a window
    holds more stories than paging can reach (Algolia's 1,000-hit cap, or ``max_pages`` times
    ``hits_per_page``), it is split in halves by ``created_at_i`` and each half asked on its own,
    recursively up to ``max_split_depth`` levels. The URL search is tokenised and fuzzy, so every
    hit's ``url`` is re-checked with :func:`extract_arxiv_ids`. ``limiter`` (the service's rate
    limit, built once per process) is entered around every HTTP attempt, retries included.
    """

    name = NAME

    def __init__(
        self,
        http: HttpClient,
        settings: HackerNewsSettings,
        *,
        max_split_depth: int = DEFAULT_MAX_SPLIT_DEPTH,
        limiter: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._max_split_depth = max_split_depth
        self.limiter = limiter
        self._url = f"{settings.api_url.rstrip('/')}/search_by_date"

    @property
    def requests(self) -> int:
        return self._http.requests

    async def collect(self, window: Window) -> list[Mention]:
        """Every story created in ``[window.start, window.end)`` whose URL is an arXiv paper."""
        # created_at_i is whole seconds: widen to whole seconds, then filter exactly below.
        lo = math.floor(window.start.timestamp())
        hi = math.ceil(window.end.timestamp())
        found: dict[str, Mention] = {}
        rejected = await self._collect_range(lo, hi, 0, window, found)
        log.info(
            "hackernews: %d stories linking arXiv in %s to %s (%d fuzzy URL matches rejected)",
            len(found),
            window.start.isoformat(),
            window.end.isoformat(),
            rejected,
        )
        return sorted(found.values(), key=lambda m: m.created_at, reverse=True)

    async def _collect_range(
        self, lo: int, hi: int, depth: int, window: Window, found: dict[str, Mention]
    ) -> int:
        """Collect stories with ``lo <= created_at_i < hi``; returns how many hits were rejected."""
        can_split = hi - lo > 1 and depth < self._max_split_depth
        rejected = 0
        page = 0
        while True:
            payload = await self._fetch(lo, hi, page)
            hits, nb_hits, nb_pages, per_page, message = _page(payload)
            # Algolia caps nbPages at its pagination limit (1,000 hits) while nbHits stays
            # true, and max_pages caps us further: either way some stories are out of reach.
            per_page = min(per_page or self._settings.hits_per_page, self._settings.hits_per_page)
            reachable = min(nb_pages, self._settings.max_pages) * per_page
            if page == 0 and nb_hits > reachable:
                if can_split:
                    log.info(
                        "hackernews: %d stories in [%d, %d) but paging reaches %d; "
                        "splitting the range in halves",
                        nb_hits,
                        lo,
                        hi,
                        reachable,
                    )
                    return await self._split(lo, hi, depth, window, found)
                log.warning(
                    "hackernews: %d stories in [%d, %d) but paging reaches only %d and the range "
                    "cannot be split further; the rest are skipped",
                    nb_hits,
                    lo,
                    hi,
                    reachable,
                )
            if not hits and message:
                # Algolia's pagination cap: past it, no hits and a message instead.
                if can_split:
                    log.info(
                        "hackernews: pagination cap hit on page %d (%s); splitting", page, message
                    )
                    return rejected + await self._split(lo, hi, depth, window, found)
                log.warning("hackernews: pagination cap hit on page %d: %s", page, message)
                return rejected
            for hit in hits:
                mention = _mention(hit)
                if mention is None:
                    rejected += 1
                elif mention.created_at in window:
                    found.setdefault(mention.post_id, mention)
            page += 1
            if page >= nb_pages or not hits:
                return rejected
            if page >= self._settings.max_pages:
                log.warning(
                    "hackernews: stopped after %d pages (sources.hackernews.max_pages) in "
                    "[%d, %d) with %d pages available",
                    page,
                    lo,
                    hi,
                    nb_pages,
                )
                return rejected

    async def _split(
        self, lo: int, hi: int, depth: int, window: Window, found: dict[str, Mention]
    ) -> int:
        mid = lo + (hi - lo) // 2
        rejected = await self._collect_range(lo, mid, depth + 1, window, found)
        return rejected + await self._collect_range(mid, hi, depth + 1, window, found)

    async def _fetch(self, lo: int, hi: int, page: int) -> Any:
        filters = f"created_at_i>={lo},created_at_i<{hi}"
        if self._settings.min_points:
            filters += f",points>={self._settings.min_points}"
        if self._settings.min_comments:
            filters += f",num_comments>={self._settings.min_comments}"
        params = {
            "query": QUERY,
            "restrictSearchableAttributes": "url",
            "tags": "story",
            "numericFilters": filters,
            "hitsPerPage": str(self._settings.hits_per_page),
            "page": str(page),
        }
        response = await self._http.get(self._url, params=params, throttle=self.limiter)
        return response.json(NAME)


def _page(payload: Any) -> tuple[list[Any], int, int, int | None, str | None]:
    """(hits, nbHits, nbPages, hitsPerPage, message) of one search answer, checked for shape."""
    if not isinstance(payload, dict):
        raise MalformedResponseError(
            NAME, f"answer is a JSON {type(payload).__name__}, not an object"
        )
    hits = payload.get("hits")
    if not isinstance(hits, list):
        raise MalformedResponseError(NAME, "answer has no `hits` list")
    counts = []
    for key in ("nbHits", "nbPages"):
        value = payload.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedResponseError(NAME, f"answer has no integer `{key}`")
        counts.append(value)
    per_page = payload.get("hitsPerPage")
    per_page = per_page if isinstance(per_page, int) and not isinstance(per_page, bool) else None
    message = payload.get("message")
    message = message if isinstance(message, str) and message else None
    return hits, counts[0], counts[1], per_page or None, message


def _mention(hit: Any) -> Mention | None:
    """The hit as a Mention, or None when its URL is not really an arXiv paper."""
    if not isinstance(hit, dict):
        raise MalformedResponseError(NAME, "a hit is not an object")
    object_id = hit.get("objectID")
    if not isinstance(object_id, str | int) or isinstance(object_id, bool):
        raise MalformedResponseError(NAME, "a hit has no `objectID`")
    url = hit.get("url")
    # Ask HN and text posts have no url; the fuzzy URL search also matches non-arXiv links.
    arxiv_ids = extract_arxiv_ids(url) if isinstance(url, str) else []
    if not arxiv_ids:
        return None
    created_at = _created_at(hit, str(object_id))
    title, author = hit.get("title"), hit.get("author")
    return Mention(
        source=NAME,
        post_id=str(object_id),
        url=f"https://news.ycombinator.com/item?id={object_id}",
        author=author if isinstance(author, str) else "",
        text=title if isinstance(title, str) else "",
        created_at=created_at,
        arxiv_ids=tuple(arxiv_ids),
        metrics={
            Metric.POINTS.value: _count(hit, "points", str(object_id)),
            Metric.COMMENTS.value: _count(hit, "num_comments", str(object_id)),
        },
    )


def _created_at(hit: dict[str, Any], object_id: str) -> dt.datetime:
    seconds = hit.get("created_at_i")
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        return dt.datetime.fromtimestamp(seconds, UTC)
    text = hit.get("created_at")
    if isinstance(text, str):
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise MalformedResponseError(NAME, f"hit {object_id} has no readable `created_at_i`")


def _count(hit: dict[str, Any], key: str, object_id: str) -> int:
    value = hit.get(key)
    if value is None:
        return 0  # null on some items (algolia/hn-search); absent means none
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponseError(NAME, f"hit {object_id} has a non-integer `{key}`")
    return value
