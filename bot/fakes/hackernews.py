"""A fake of the Hacker News Algolia search API on 127.0.0.1 that speaks the real wire format."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.fakes.server import FakeServer, json_response

log = logging.getLogger(__name__)

UTC = dt.UTC
CONTENT_TYPE = "application/json; charset=utf-8"
API_PREFIX = "/api/v1"
PAGINATION_LIMIT = 1000  # Algolia's paginationLimitedTo default, as on hn.algolia.com
MAX_HITS_PER_PAGE = 1000
CAP_MESSAGE = (
    "you can only fetch the {limit} hits for this query. You can extend the number of hits "
    "returned via the paginationLimitedTo index parameter or use the browse method. You can read "
    "our FAQ for more details about browsing: "
    "https://www.algolia.com/doc/faq/index-configuration/how-can-i-retrieve-all-the-records-in-my-index"
)
_NUMERIC = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|!=|<|>|=)\s*(-?\d+(?:\.\d+)?)\s*$")
_NUMERIC_ATTRIBUTES = frozenset({"created_at_i", "points", "num_comments"})
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def algolia_time(moment: dt.datetime) -> str:
    """HN Algolia's ``created_at``: ``2015-01-02T21:05:46.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _highlight(value: str, words: list[str]) -> dict[str, Any]:
    matched = [w for w in words if w in value.lower()]
    shown = value
    for word in sorted(set(matched), key=len, reverse=True):
        shown = re.sub(f"({re.escape(word)})", r"<em>\1</em>", shown, flags=re.IGNORECASE)
    level = "none" if not matched else ("full" if len(matched) == len(words) else "partial")
    out: dict[str, Any] = {"value": shown, "matchLevel": level, "matchedWords": matched}
    if matched:
        out["fullyHighlighted"] = False
    return out


class _BadRequest(Exception):
    pass


def _numeric_filters(raw: str) -> list[tuple[str, Callable[[float, float], bool], float]]:
    filters = []
    for part in (p for p in raw.split(",") if p.strip()):
        match = _NUMERIC.match(part)
        if match is None or match.group(1) not in _NUMERIC_ATTRIBUTES:
            raise _BadRequest(f"Invalid syntax for numeric condition:{part}")
        filters.append((match.group(1), _OPS[match.group(2)], float(match.group(3))))
    return filters


def _tag_filter(raw: str) -> list[set[str]]:
    """``a,(b,c)`` → [{a}, {b, c}]: AND of ORs, Algolia's tagFilters syntax."""
    groups: list[set[str]] = []
    for part in re.findall(r"\([^)]*\)|[^,]+", raw):
        part = part.strip()
        if part.startswith("("):
            groups.append({t.strip() for t in part[1:-1].split(",") if t.strip()})
        elif part:
            groups.append({part})
    return groups


class FakeHackerNews(FakeServer):
    """``GET /api/v1/search_by_date`` and ``/api/v1/search`` over an in-memory store of stories.

    Understands ``query`` (token-prefix matching, restricted to ``url`` with
    ``restrictSearchableAttributes=url``, so it is as fuzzy as the real index), ``tags``,
    ``numericFilters`` (``created_at_i``, ``points``, ``num_comments``), ``hitsPerPage`` and
    ``page``, and enforces the pagination cap: ``nbPages`` never reaches past
    ``pagination_limit`` hits and a page beyond it answers ``hits: []``, ``nbHits: 0`` and a
    ``message``, as hn.algolia.com does (algolia/hn-search#230).
    """

    content_type = CONTENT_TYPE
    malformed_body = b'{"hits":[{"created_at":"2015-01-02T21:05:46.000Z","title":"Why'

    def __init__(
        self, *, pagination_limit: int = PAGINATION_LIMIT, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host=host, port=port)
        self.pagination_limit = pagination_limit
        self._items: dict[str, dict[str, Any]] = {}
        self.app.router.add_get(f"{API_PREFIX}/search_by_date", self._search_by_date)
        self.app.router.add_get(f"{API_PREFIX}/search", self._search)

    @property
    def api_url(self) -> str:
        """The value for ``sources.hackernews.api_url``: ``http://127.0.0.1:PORT/api/v1``."""
        return f"{self.url}{API_PREFIX}"

    # -- store -----------------------------------------------------------------------------

    def add_story(
        self,
        object_id: str | int,
        title: str,
        url: str | None,
        author: str,
        created_at: dt.datetime,
        *,
        points: int | None = 1,
        num_comments: int | None = 0,
        story_text: str | None = None,
    ) -> dict[str, Any]:
        """Store a story; returns the hit as the index holds it (without ``_highlightResult``)."""
        if created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        oid = str(object_id)
        hit: dict[str, Any] = {
            "_tags": ["story", f"author_{author}", f"story_{oid}"],
            "author": author,
            "children": [],
            "created_at": algolia_time(created_at),
            "created_at_i": int(created_at.timestamp()),
            "num_comments": num_comments,
            "objectID": oid,
            "points": points,
            "story_id": int(oid) if oid.isdigit() else oid,
            "title": title,
            "updated_at": algolia_time(created_at),
        }
        if url is not None:
            hit["url"] = url
        if story_text is not None:
            hit["story_text"] = story_text
        return self.add_hit(hit)

    def add_hit(self, hit: Mapping[str, Any]) -> dict[str, Any]:
        """Store a raw hit (e.g. cloned from a real response); needs objectID, created_at_i."""
        stored = {k: v for k, v in hit.items() if k != "_highlightResult"}
        self._items[str(stored["objectID"])] = stored
        return dict(stored)

    # -- handlers --------------------------------------------------------------------------

    async def _search_by_date(self, request: web.Request) -> web.StreamResponse:
        return self._answer(request, key=lambda h: h["created_at_i"])

    async def _search(self, request: web.Request) -> web.StreamResponse:
        return self._answer(request, key=lambda h: (h.get("points") or 0, h["created_at_i"]))

    def _answer(
        self, request: web.Request, key: Callable[[dict[str, Any]], Any]
    ) -> web.StreamResponse:
        q = request.query
        try:
            hits_per_page = min(int(q.get("hitsPerPage", "20")), MAX_HITS_PER_PAGE)
            page = int(q.get("page", "0"))
            if hits_per_page < 0 or page < 0:
                raise ValueError
        except ValueError:
            return json_response(
                {"message": "Invalid value for hitsPerPage or page", "status": 400},
                status=400,
                content_type=CONTENT_TYPE,
            )
        try:
            numeric = _numeric_filters(q.get("numericFilters", ""))
        except _BadRequest as exc:
            return json_response(
                {"message": str(exc), "status": 400}, status=400, content_type=CONTENT_TYPE
            )
        tags = _tag_filter(q.get("tags", ""))
        query = q.get("query", "")
        words = _tokens(query)
        restrict = {a for a in q.get("restrictSearchableAttributes", "").split(",") if a}
        attributes = restrict or {"title", "url", "author", "story_text"}

        matches = sorted(
            (h for h in self._items.values() if self._matches(h, words, attributes, numeric, tags)),
            key=key,
            reverse=True,
        )
        params = urlencode(
            sorted(
                [
                    ("advancedSyntax", "true"),
                    ("analytics", "true"),
                    ("analyticsTags", "backend"),
                    *q.items(),
                ]
            )
        )
        limit = self.pagination_limit
        base: dict[str, Any] = {
            "exhaustive": {"nbHits": True, "typo": True},
            "exhaustiveNbHits": True,
            "exhaustiveTypo": True,
            "hitsPerPage": hits_per_page,
        }
        if hits_per_page and page * hits_per_page >= limit:
            return json_response(
                {
                    "hits": [],
                    "page": page,
                    "nbHits": 0,
                    "nbPages": 0,
                    **base,
                    "processingTimeMS": 1,
                    "message": CAP_MESSAGE.format(limit=limit),
                    "query": query,
                    "params": params,
                },
                content_type=CONTENT_TYPE,
            )
        reachable = min(len(matches), limit)
        nb_pages = math.ceil(reachable / hits_per_page) if hits_per_page else 0
        lo = page * hits_per_page
        hi = min(lo + hits_per_page, reachable)
        hits = [self._render(h, words, attributes) for h in matches[lo:hi]]
        payload = {
            **base,
            "hits": hits,
            "nbHits": len(matches),
            "nbPages": nb_pages,
            "page": page,
            "params": params,
            "processingTimeMS": 1,
            "processingTimingsMS": {"_request": {"roundTrip": 1}},
            "query": query,
            "serverTimeMS": 2,
        }
        return json_response(payload, content_type=CONTENT_TYPE)

    @staticmethod
    def _matches(
        hit: Mapping[str, Any],
        words: list[str],
        attributes: set[str],
        numeric: Iterable[tuple[str, Callable[[float, float], bool], float]],
        tags: list[set[str]],
    ) -> bool:
        if not all(group & set(hit.get("_tags", [])) for group in tags):
            return False
        for attribute, op, value in numeric:
            if not op(float(hit.get(attribute) or 0), value):
                return False
        if not words:
            return True
        searchable = [t for a in attributes if isinstance(hit.get(a), str) for t in _tokens(hit[a])]
        # Every query word must prefix some indexed token: the fuzziness the real index has.
        return all(any(t.startswith(w) for t in searchable) for w in words)

    @staticmethod
    def _render(hit: Mapping[str, Any], words: list[str], attributes: set[str]) -> dict[str, Any]:
        out = dict(hit)
        highlight: dict[str, Any] = {}
        for attribute in ("author", "title", "url", "story_text"):
            value = hit.get(attribute)
            if isinstance(value, str):
                highlight[attribute] = _highlight(value, words if attribute in attributes else [])
        out["_highlightResult"] = highlight
        return out
