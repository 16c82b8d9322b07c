"""A fake of the arXiv API and RSS feeds on 127.0.0.1 that speaks the real wire formats."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import ClassVar

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.core.arxiv_ids import parse_arxiv_id
from bot.core.errors import InvalidArxivIdError
from bot.core.models import Announcement, Paper
from bot.core.taxonomy import CATEGORIES
from bot.fakes.atom import (
    ARXIV_TZ,
    ATOM_CONTENT_TYPE,
    RSS_CONTENT_TYPE,
    render_api_error,
    render_api_feed,
    render_rss_error,
    render_rss_feed,
)
from bot.fakes.server import FakeServer

log = logging.getLogger(__name__)

API_PATH = "/api/query"
RSS_PATH = "/rss"
# The archives rss.arxiv.org accepts, in the order its error message lists them
# (fixture aioarxiv_error_rss_mock_feed.xml).
RSS_ARCHIVES = (
    *("astro-ph", "cond-mat", "cs", "econ", "eess", "gr-qc", "hep-ex", "hep-lat", "hep-ph"),
    *("hep-th", "math", "math-ph", "nlin", "nucl-ex", "nucl-th", "physics", "q-bio", "q-fin"),
    *("quant-ph", "stat", "test"),
)
MAX_RESULTS_LIMIT = 30000  # the API refuses more than 30000 results in total

# The id forms the API itself accepts in id_list (no URLs, no arXiv: prefix).
_API_ID = re.compile(r"\d{4}\.\d{4,5}(?:v\d+)?|[a-z]+(?:-[a-z]+)?(?:\.[A-Za-z-]+)?/\d{7}(?:v\d+)?")
_QUERY_TOKEN = re.compile(r'\(|\)|[A-Za-z]+:"[^"]*"|"[^"]*"|[^\s()"]+')
_OPERATORS = frozenset({"AND", "OR", "ANDNOT"})
_FIELDS = frozenset({"ti", "au", "abs", "co", "jr", "cat", "rn", "id", "all"})
_CATEGORY_BY_LOWER = {cid.lower(): cid for cid in CATEGORIES}

Predicate = Callable[[Paper], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class Arrival:
    """When a request reached the fake (``time.monotonic()``), for measuring request spacing."""

    time: float
    path: str
    query: dict[str, str]


class _ApiError(Exception):
    """Becomes the API's Atom error entry with HTTP 400."""


# --------------------------------------------------------------------------------------------
# search_query: ti/au/abs/co/jr/cat/id/all terms, quoted phrases, AND/OR/ANDNOT, parentheses.
# Matching is a case-insensitive substring test, which is all the tests and the demo need.


def _haystack(paper: Paper, field: str) -> str:
    if field == "ti":
        return paper.title
    if field == "au":
        return " | ".join(paper.authors)
    if field == "abs":
        return paper.abstract
    if field == "co":
        return paper.comment or ""
    if field == "jr":
        return paper.journal_ref or ""
    if field == "id":
        return paper.arxiv_id
    if field == "rn":
        return ""
    return " | ".join(
        (paper.title, paper.abstract, *paper.authors, paper.comment or "", *paper.categories)
    )


def _term(token: str) -> Predicate:
    field, sep, value = token.partition(":")
    field = field.lower()
    if not sep or field not in _FIELDS:
        field, value = "all", token
    value = value.strip('"').lower()
    if field == "au":
        value = value.replace("_", " ")  # au:del_maestro is arXiv's way to write a full name
    if field == "cat":
        if value.endswith("*"):
            prefix = value[:-1]
            return lambda p: any(c.lower().startswith(prefix) for c in p.categories)
        return lambda p: value in {c.lower() for c in p.categories}
    return lambda p: value in _haystack(p, field).lower()


class _QueryParser:
    def __init__(self, query: str) -> None:
        self.tokens = _QUERY_TOKEN.findall(query)
        self.pos = 0

    def parse(self) -> Predicate:
        if not self.tokens:
            raise _ApiError("empty search_query")
        predicate = self._expr()
        if self.pos != len(self.tokens):
            raise _ApiError("unbalanced parentheses in search_query")
        return predicate

    def _expr(self) -> Predicate:
        left = self._operand()
        while self.pos < len(self.tokens) and self.tokens[self.pos] != ")":
            op = "AND"  # adjacent terms without an operator must all match
            if self.tokens[self.pos] in _OPERATORS:
                op = self.tokens[self.pos]
                self.pos += 1
            right = self._operand()
            left = _combine(op, left, right)
        return left

    def _operand(self) -> Predicate:
        if self.pos >= len(self.tokens):
            raise _ApiError("search_query ends with an operator")
        part = self.tokens[self.pos]
        self.pos += 1
        if part == "(":
            inner = self._expr()
            if self.pos >= len(self.tokens) or self.tokens[self.pos] != ")":
                raise _ApiError("unbalanced parentheses in search_query")
            self.pos += 1
            return inner
        if part == ")" or part in _OPERATORS:
            raise _ApiError(f"unexpected {part!r} in search_query")
        return _term(part)


def _combine(op: str, left: Predicate, right: Predicate) -> Predicate:
    if op == "OR":
        return lambda p: left(p) or right(p)
    if op == "ANDNOT":
        return lambda p: left(p) and not right(p)
    return lambda p: left(p) and right(p)


def _echo_query(search_query: str) -> str:
    # The real service normalises a bare word to all:word in the feed title (fixture q_testing).
    if search_query and ":" not in search_query and " " not in search_query.strip():
        return f"all:{search_query.strip()}"
    return search_query


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _ApiError(f"{name} must be an integer") from None
    if value < 0:
        raise _ApiError(f"{name} must be non-negative")
    return value


def _midnight(moment: dt.datetime) -> dt.datetime:
    local = moment.astimezone(ARXIV_TZ)
    return dt.datetime(local.year, local.month, local.day, tzinfo=ARXIV_TZ)


class FakeArxiv(FakeServer):
    """arXiv's ``/api/query`` and ``/rss/<cats>`` served from in-memory papers and announcements.

    * ``add_papers`` fills the API's store; ``id_list`` drops unknown ids silently and answers a
      badly formed id with HTTP 400 and the real Atom error entry, as arXiv does.
      ``reject_ids`` makes well-formed ids get that answer too (any id_list holding one fails).
    * ``set_announcements(category, [...])`` fills a category's feed (default: the empty
      weekend feed); an unknown archive or subject class gets the real error feed with HTTP 400.
    * Faults: ``fail_next``/``malformed_next``/``serve_next`` (from :class:`FakeServer`) and
      ``empty_page_next`` (the API's empty-page flake: totalResults as usual, no entries).
    * ``arrivals`` records when each request arrived, so tests can measure the spacing.
    """

    content_type: ClassVar[str] = ATOM_CONTENT_TYPE
    malformed_body: ClassVar[bytes] = (
        b"<?xml version='1.0' encoding='UTF-8'?>\n"
        b'<feed xmlns="http://www.w3.org/2005/Atom">\n  <entry>\n    <id>http://arxiv.org/abs/24'
    )

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], dt.datetime] | None = None,
        rss_published: dt.datetime | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.papers: dict[str, Paper] = {}
        self.announcements: dict[str, list[Announcement]] = {}
        self.arrivals: list[Arrival] = []
        self.rss_published = rss_published
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._empty_pages = 0
        self.rejected_ids: set[str] = set()
        # Outermost, so that canned answers (served by the base's middleware) are timed too.
        self.app.middlewares.insert(0, self._stamp)
        self.app.router.add_get(API_PATH, self._api)
        self.app.router.add_get(RSS_PATH + "/{cats}", self._rss)

    # -- urls ------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.url + API_PATH

    @property
    def rss_url(self) -> str:
        return self.url + RSS_PATH

    # -- state -----------------------------------------------------------------------------

    def add_papers(self, papers: Iterable[Paper]) -> None:
        """Serve these papers from the API (a paper with the same id is replaced)."""
        for paper in papers:
            self.papers[paper.arxiv_id] = paper

    def set_announcements(self, category: str, announcements: Sequence[Announcement]) -> None:
        """Today's feed items for ``category`` (an empty list gives the empty weekend feed)."""
        self.announcements[category] = list(announcements)

    def reject_ids(self, *ids: str) -> None:
        """Answer every ``id_list`` holding one of ``ids`` (any version) with the 400 error entry.

        The real service refuses a whole request for one id it cannot take; this reproduces it
        for ids that look well formed, which the client cannot weed out beforehand.
        """
        self.rejected_ids.update(parse_arxiv_id(i).id for i in ids)

    def empty_page_next(self, times: int = 1) -> None:
        """The next ``times`` API answers keep their totalResults but carry no entries."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._empty_pages += times

    def clear_log(self) -> None:
        super().clear_log()
        self.arrivals.clear()

    def gaps(self, path_prefix: str = "") -> list[float]:
        """Seconds between consecutive arrivals whose path starts with ``path_prefix``."""
        times = [a.time for a in self.arrivals if a.path.startswith(path_prefix)]
        return [b - a for a, b in itertools.pairwise(times)]

    @web.middleware
    async def _stamp(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.arrivals.append(Arrival(time.monotonic(), request.path, dict(request.query)))
        return await handler(request)

    # -- API -------------------------------------------------------------------------------

    def _api_error(self, message: str) -> web.Response:
        body = render_api_error(message, updated=self._now())
        return web.Response(status=400, body=body, headers={"Content-Type": ATOM_CONTENT_TYPE})

    def _lookup(self, raw_ids: list[str]) -> list[Paper]:
        found: dict[str, Paper] = {}
        for raw in raw_ids:
            if not _API_ID.fullmatch(raw):
                raise _ApiError(f"incorrect id format for {raw}")
            try:
                parsed = parse_arxiv_id(raw)
            except InvalidArxivIdError:
                raise _ApiError(f"incorrect id format for {raw}") from None
            if parsed.id in self.rejected_ids:
                raise _ApiError(f"incorrect id format for {raw}")
            paper = self.papers.get(parsed.id)
            if paper is None or parsed.id in found:
                continue  # unknown ids are dropped without a word, like the real service
            if parsed.version is not None:
                if paper.version is not None and parsed.version > paper.version:
                    continue
                paper = dataclasses.replace(paper, version=parsed.version)
            found[parsed.id] = paper
        return list(found.values())

    async def _api(self, request: web.Request) -> web.Response:
        query = request.query
        search_query = query.get("search_query", "")
        id_list = query.get("id_list", "")
        try:
            start = _int_param(query, "start", 0)
            max_results = _int_param(query, "max_results", 10)
            if start + max_results > MAX_RESULTS_LIMIT:
                raise _ApiError(f"start + max_results must not exceed {MAX_RESULTS_LIMIT}")
            raw_ids = [part.strip() for part in id_list.split(",") if part.strip()]
            candidates = self._lookup(raw_ids) if raw_ids else list(self.papers.values())
            if search_query.strip():
                predicate = _QueryParser(search_query).parse()
                candidates = [p for p in candidates if predicate(p)]
            elif not raw_ids:
                candidates = []
        except _ApiError as exc:
            return self._api_error(str(exc))

        sort_by = query.get("sortBy", "relevance")
        descending = query.get("sortOrder", "descending") != "ascending"
        if sort_by == "lastUpdatedDate":
            candidates.sort(key=lambda p: p.updated, reverse=descending)
        elif sort_by == "submittedDate":
            candidates.sort(key=lambda p: p.published, reverse=descending)
        # relevance: insertion (or id_list) order stands in for arXiv's ranking

        page = candidates[start : start + max_results]
        if self._empty_pages:
            self._empty_pages -= 1
            page = []
        body = render_api_feed(
            page,
            search_query=_echo_query(search_query),
            id_list=id_list,
            start=start,
            max_results=max_results,
            total_results=len(candidates),
            updated=self._now(),
        )
        return web.Response(body=body, headers={"Content-Type": ATOM_CONTENT_TYPE})

    # -- RSS -------------------------------------------------------------------------------

    @staticmethod
    def _canonical_category(name: str) -> str:
        """``cs.lg`` → ``cs.LG``; raises _ApiError with rss.arxiv.org's message otherwise."""
        parts = name.split(".")
        if len(parts) > 2 or not parts[0]:
            raise _ApiError(
                f"Bad archive/subject class structure '{name}'. Valid names include an archive, "
                "possibly followed by a single period and subject class."
            )
        archive = parts[0].lower()
        if archive not in RSS_ARCHIVES:
            raise _ApiError(
                f"Bad archive '{archive}'. Valid archive names are: {', '.join(RSS_ARCHIVES)}."
            )
        if len(parts) == 1:
            return archive
        canonical = _CATEGORY_BY_LOWER.get(name.lower())
        if canonical is None:
            classes = [c.split(".", 1)[1] for c in CATEGORIES if c.startswith(archive + ".")]
            raise _ApiError(
                f"Bad subject class '{parts[1]}'. Valid subject classes for the archive "
                f"'{archive}' are: {', '.join(classes)}."
            )
        return canonical

    def _items_for(self, category: str) -> list[Announcement]:
        items: list[Announcement] = []
        wanted = category.lower()
        for key, announcements in self.announcements.items():
            key_lower = key.lower()
            # An archive's feed holds every category of that archive.
            if key_lower == wanted or ("." not in wanted and key_lower.startswith(wanted + ".")):
                items.extend(announcements)
        return items

    async def _rss(self, request: web.Request) -> web.Response:
        query = request.match_info["cats"]
        now = self._now()
        try:
            categories = list(dict.fromkeys(self._canonical_category(c) for c in query.split("+")))
        except _ApiError as exc:
            published = self.rss_published or _midnight(now)
            body = render_rss_error(query, str(exc), published=published, last_build=now)
            return web.Response(status=400, body=body, headers={"Content-Type": RSS_CONTENT_TYPE})

        items: dict[str, Announcement] = {}
        for category in categories:
            for ann in self._items_for(category):
                items.setdefault(ann.arxiv_id, ann)  # one item per paper, as in the real feed
        published = self.rss_published or (
            _midnight(max(a.announced for a in items.values())) if items else _midnight(now)
        )
        body = render_rss_feed(
            categories, list(items.values()), published=published, last_build=now
        )
        return web.Response(body=body, headers={"Content-Type": RSS_CONTENT_TYPE})
