"""arXiv client: Atom API and RSS parsing, batched id look-ups, title search and the rate limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Annotated, Any

from aiolimiter import AsyncLimiter
from lxml import etree
from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import NoDecode

from bot.config import HttpUrl, Section, comma_list
from bot.core.arxiv_ids import ArxivId, parse_arxiv_id
from bot.core.errors import (
    ArxivApiError,
    InvalidArxivIdError,
    MalformedResponseError,
    UnknownCategoryError,
)
from bot.core.models import Announcement, AnnounceType, Paper
from bot.core.taxonomy import validate_category
from bot.sources.http import HttpClient, Response

log = logging.getLogger(__name__)

SOURCE = "arxiv"

# Clark-notation namespaces: lxml reports tags as "{uri}local", so comparing against these
# constants is the cheapest way to dispatch on a child without XPath.
ATOM_NS = "http://www.w3.org/2005/Atom"
ARXIV_NS = "http://arxiv.org/schemas/atom"
OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"
DC_NS = "http://purl.org/dc/elements/1.1/"

_A = "{" + ATOM_NS + "}"
_X = "{" + ARXIV_NS + "}"
_OS = "{" + OPENSEARCH_NS + "}"
_FEED = _A + "feed"
_ENTRY = _A + "entry"
_ID = _A + "id"
_TITLE = _A + "title"
_SUMMARY = _A + "summary"
_AUTHOR = _A + "author"
_NAME = _A + "name"
_CATEGORY = _A + "category"
_LINK = _A + "link"
_PUBLISHED = _A + "published"
_UPDATED = _A + "updated"
_PRIMARY = _X + "primary_category"
_COMMENT = _X + "comment"
_JOURNAL_REF = _X + "journal_ref"
_DOI = _X + "doi"
_TOTAL = _OS + "totalResults"
_START = _OS + "startIndex"
_PER_PAGE = _OS + "itemsPerPage"
_ANNOUNCE_TYPE = _X + "announce_type"
_CREATOR = "{" + DC_NS + "}creator"

ERROR_AUTHOR = "arXiv api core"
API_OK_STATUSES = frozenset({200, 400})  # 400 carries an Atom error entry in the 2025+ service
RSS_OK_STATUSES = frozenset({200, 400})  # 400 carries an RSS "Feed error for query" channel

_CATEGORY_NAME = re.compile(r"[A-Za-z][A-Za-z-]*(?:\.[A-Za-z][A-Za-z-]*)?")
_ANNOUNCE_IN_DESCRIPTION = re.compile(r"Announce Type:\s*(\S+)")
_SEARCH_WORD = re.compile(r"[^\W_]+")
_AFFILIATION = re.compile(r"\s*\([^()]*\)\s*$")
_NAME_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"})
# Lower-cased words that would read as boolean operators or carry no meaning in a title search.
_SEARCH_STOPWORDS = frozenset({"and", "or", "andnot", "not", "the", "a", "an", "of"})
MAX_SEARCH_TERMS = 12
# Extra requests one id_list batch may spend isolating the ids arXiv refuses: isolating one bad
# id among 100 costs about 7, so this finds a few before deciding the error is not about ids.
DEFAULT_MAX_ISOLATION_REQUESTS = 24


# --------------------------------------------------------------------------------------------
# Parsed shapes


class ArxivSettings(Section):
    api_url: HttpUrl = "https://export.arxiv.org/api/query"
    rss_url: HttpUrl = "https://rss.arxiv.org/rss"
    min_interval_seconds: float = Field(3.0, ge=0)  # arXiv's terms: one request every 3 s
    batch_size: int = Field(100, ge=1, le=100)
    # Categories whose daily announcements (RSS) are ingested, besides those servers follow.
    categories: Annotated[list[str], NoDecode, BeforeValidator(comma_list)] = Field(
        default_factory=list
    )

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        try:
            return list(dict.fromkeys(validate_category(c) for c in value))
        except UnknownCategoryError as exc:
            raise ValueError(exc.message) from None


@dataclass(frozen=True, slots=True)
class PaperLinks:
    """Where an entry's landing page and PDF live, as the feed announced them (with fallbacks)."""

    abs_url: str
    pdf_url: str


@dataclass(frozen=True, slots=True)
class AtomPage:
    """One page of an arXiv API answer."""

    papers: list[Paper]
    total_results: int | None
    start_index: int | None
    items_per_page: int | None
    links: dict[str, PaperLinks] = field(default_factory=dict)  # by arxiv_id


@dataclass(frozen=True, slots=True)
class RssFeed:
    """One day's RSS feed for a ``+``-joined set of categories."""

    categories: str
    announcements: list[Announcement]
    published: dt.datetime | None
    skip_days: tuple[str, ...]
    empty: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Papers found by id (keyed by normalised id, request order) and the ids arXiv lacks.

    ``rejected`` are the ids among ``missing`` that arXiv refused with an error entry, isolated
    from the batches they would otherwise have failed.
    """

    papers: dict[str, Paper]
    missing: list[str]
    rejected: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Parsing helpers


def _parse_xml(data: bytes) -> Any:
    # A parser per call: lxml parsers are not safe to share between threads, and building one
    # costs microseconds. Entities are never expanded and nothing is fetched from the network.
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
    )
    if not data:
        raise MalformedResponseError(SOURCE, "empty answer")
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise MalformedResponseError(SOURCE, f"answer is not well-formed XML: {exc}") from None


def _clean(text: str | None) -> str:
    """Collapse every run of whitespace (arXiv hard-wraps titles and abstracts) into one space."""
    if not text:
        return ""
    # Fast path for already-clean text (most 2025+ abstracts): for ASCII these are the only
    # whitespace characters XML can carry, and the checks are C-speed scans, unlike split().
    if (
        text.isascii()
        and "  " not in text
        and "\n" not in text
        and "\t" not in text
        and "\r" not in text
        and text[0] != " "
        and text[-1] != " "
    ):
        return text
    return " ".join(text.split())


def _optional(text: str | None) -> str | None:
    return _clean(text) or None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _datetime(text: str | None) -> dt.datetime | None:
    """Both serializers: ``2016-05-26T17:59:46Z`` and ``2016-10-09T00:00:00-04:00``."""
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.tzinfo is None:  # arXiv stamps are UTC; never let a naive datetime escape
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _rfc822(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _arxiv_id(text: str) -> ArxivId | None:
    try:
        return parse_arxiv_id(text)
    except InvalidArxivIdError:
        return None


def _id_from_abs_url(text: str) -> ArxivId | None:
    # <id> keeps http://arxiv.org/abs/<id>vN while links are https:// in the new service; the
    # bare tail is the cheapest form for the parser to try first.
    _, sep, tail = text.strip().rpartition("/abs/")
    return _arxiv_id(tail) if sep else None


def split_authors(text: str | None) -> tuple[str, ...]:
    """Split RSS ``dc:creator`` (``"A, B (Lab, Univ), C"``) into names.

    Commas inside ``(…)`` affiliations or TeX groups ``{…}`` do not separate authors; a trailing
    affiliation is dropped so names match the API's ``<author><name>``; TeX escapes are kept.
    """
    if not text:
        return ()
    if "(" not in text and "{" not in text:
        parts = text.split(",")
    else:
        parts, depth, start = [], 0, 0
        for i, ch in enumerate(text):
            if ch in "({":
                depth += 1
            elif ch in ")}":
                depth = max(0, depth - 1)
            elif ch == "," and depth == 0:
                parts.append(text[start:i])
                start = i + 1
        parts.append(text[start:])
    names: list[str] = []
    for part in parts:
        name = _clean(_AFFILIATION.sub("", part))
        if not name:
            continue
        if names and name.lower() in _NAME_SUFFIXES:
            names[-1] = f"{names[-1]} {name}"  # "Kenneth M. Merz, Jr." is one author
        else:
            names.append(name)
    return tuple(names)


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


# --------------------------------------------------------------------------------------------
# Atom (API)


def _parse_entry(entry: Any) -> tuple[Paper, PaperLinks] | None:
    raw_id = title = summary = published = updated = primary = None
    comment = journal_ref = doi = abs_url = pdf_url = None
    authors: list[str] = []
    categories: list[str] = []
    # One pass over the children, dispatching on the tag: far cheaper than a find per field.
    for child in entry:
        tag = child.tag
        if tag == _AUTHOR:
            for sub in child:
                if sub.tag == _NAME:
                    authors.append(_clean(sub.text))
                    break
        elif tag == _CATEGORY:
            categories.append(child.get("term") or "")
        elif tag == _LINK:
            rel = child.get("rel")
            if rel == "alternate":
                abs_url = child.get("href")
            elif (
                rel == "related"
                and pdf_url is None
                # title="pdf" went missing for a while in Nov 2025 (arxiv.py #181): the MIME
                # type is the dependable marker.
                and (child.get("type") == "application/pdf" or child.get("title") == "pdf")
            ):
                pdf_url = child.get("href")
        elif tag == _ID:
            raw_id = child.text
        elif tag == _TITLE:
            title = child.text
        elif tag == _SUMMARY:
            summary = child.text
        elif tag == _PUBLISHED:
            published = child.text
        elif tag == _UPDATED:
            updated = child.text
        elif tag == _PRIMARY:
            primary = child.get("term")
        elif tag == _COMMENT:
            comment = child.text
        elif tag == _JOURNAL_REF:
            journal_ref = child.text
        elif tag == _DOI:
            doi = child.text

    raw_id = (raw_id or "").strip()
    clean_title = _clean(title)
    if "/api/errors" in raw_id or (clean_title == "Error" and authors == [ERROR_AUTHOR]):
        raise ArxivApiError(_clean(summary) or raw_id or "unspecified error")

    parsed = _id_from_abs_url(raw_id)
    if parsed is None:
        log.warning("arxiv: skipping an entry with an unreadable id %r", raw_id[:100])
        return None
    arxiv_id, version = parsed.id, parsed.version
    published_at = _datetime(published)
    updated_at = _datetime(updated)
    if published_at is None and updated_at is None:
        log.warning("arxiv: skipping %s: no readable published/updated date", arxiv_id)
        return None
    cats = _dedupe([primary or "", *categories])
    paper = Paper(
        arxiv_id=arxiv_id,
        title=clean_title,
        abstract=_clean(summary),
        authors=tuple(authors),
        primary_category=cats[0] if cats else "",
        categories=cats,
        published=published_at or updated_at,  # type: ignore[arg-type]
        updated=updated_at or published_at,  # type: ignore[arg-type]
        version=version,
        comment=_optional(comment),
        journal_ref=_optional(journal_ref),
        doi=_optional(doi),
    )
    links = PaperLinks(
        abs_url=abs_url or f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=pdf_url or f"https://arxiv.org/pdf/{arxiv_id}",
    )
    return paper, links


def parse_atom(data: bytes) -> AtomPage:
    """Parse an arXiv API answer (2016 and 2025+ serializers).

    Raises :class:`ArxivApiError` for an error entry (HTTP 400 now, 200 in the old service) and
    :class:`MalformedResponseError` for anything that is not an Atom feed.
    """
    root = _parse_xml(data)
    if root.tag != _FEED:
        raise MalformedResponseError(SOURCE, f"answer is not an Atom feed (root {root.tag!r})")
    papers: list[Paper] = []
    links: dict[str, PaperLinks] = {}
    total = start = per_page = None
    for child in root.iterchildren(_ENTRY, _TOTAL, _START, _PER_PAGE):
        tag = child.tag
        if tag == _ENTRY:
            parsed = _parse_entry(child)
            if parsed is not None:
                papers.append(parsed[0])
                links[parsed[0].arxiv_id] = parsed[1]
        elif tag == _TOTAL:
            total = _int(child.text)
        elif tag == _START:
            start = _int(child.text)
        else:
            per_page = _int(child.text)
    return AtomPage(papers, total, start, per_page, links)


# --------------------------------------------------------------------------------------------
# RSS


def _parse_item(item: Any, default_date: dt.datetime | None) -> Announcement | None:
    title = link = description = guid = pub_date = announce = creators = None
    categories: list[str] = []
    for child in item:
        tag = child.tag
        if tag == "category":
            categories.append(_clean(child.text))
        elif tag == "title":
            title = child.text
        elif tag == "link":
            link = child.text
        elif tag == "description":
            description = child.text or ""
        elif tag == "guid":
            guid = child.text
        elif tag == "pubDate":
            pub_date = child.text
        elif tag == _ANNOUNCE_TYPE:
            announce = child.text
        elif tag == _CREATOR:
            creators = child.text

    # The guid (oai:arXiv.org:2411.17702v1) is the only place besides the description that
    # carries the version; the link has none.
    parsed = _arxiv_id(guid.rpartition(":")[2]) if guid else None
    if parsed is None and link:
        parsed = _id_from_abs_url(link)
    if parsed is None:
        log.warning("arxiv rss: skipping an item without a readable id (%r)", (guid or link))
        return None
    arxiv_id, version = parsed.id, parsed.version

    description = description or ""
    if not announce:
        found = _ANNOUNCE_IN_DESCRIPTION.search(description)
        announce = found.group(1) if found else None
    try:
        announce_type = AnnounceType((announce or "").strip().lower())
    except ValueError:
        log.warning("arxiv rss: skipping %s: unknown announce type %r", arxiv_id, announce)
        return None
    _, sep, abstract = description.partition("Abstract: ")
    announced = _rfc822(pub_date) or default_date
    if announced is None:
        log.warning("arxiv rss: skipping %s: no readable pubDate", arxiv_id)
        return None
    return Announcement(
        arxiv_id=arxiv_id,
        version=version,
        announce_type=announce_type,
        title=_clean(title),
        abstract=_clean(abstract) if sep else "",
        authors=split_authors(creators),
        categories=_dedupe(categories),
        announced=announced,
    )


def parse_rss(data: bytes) -> RssFeed:
    """Parse an arXiv RSS 2.0 feed: announcements, an empty (weekend) day, or an error feed."""
    root = _parse_xml(data)
    channel = root.find("channel") if root.tag == "rss" else None
    if channel is None:
        raise MalformedResponseError(SOURCE, f"answer is not an RSS feed (root {root.tag!r})")
    title = link = description = None
    published: dt.datetime | None = None
    skip_days: tuple[str, ...] = ()
    announcements: list[Announcement] = []
    items = []
    for child in channel:
        tag = child.tag
        if tag == "item":
            items.append(child)
        elif tag == "title":
            title = _clean(child.text)
        elif tag == "link":
            link = (child.text or "").strip()
        elif tag == "description":
            description = _clean(child.text)
        elif tag == "pubDate":
            published = _rfc822(child.text)
        elif tag == "skipDays":
            skip_days = tuple(_clean(day.text) for day in child.iterchildren("day"))

    seen: set[str] = set()
    for item in items:
        announcement = _parse_item(item, published)
        if announcement is None:
            continue
        # Same-day duplicates happen when feeds are unioned; the id is the identity.
        if announcement.arxiv_id in seen:
            continue
        seen.add(announcement.arxiv_id)
        announcements.append(announcement)

    categories = link.rpartition("/rss/")[2] if link and "/rss/" in link else ""
    error = None
    if title and title.startswith("Feed error for query"):
        error = description or title
        if not categories:
            categories = title.rpartition("/")[2]
    elif not categories and title:
        categories = "+".join(title.removesuffix(" updates on arXiv.org").split(", "))
    return RssFeed(
        categories=categories,
        announcements=announcements,
        published=published,
        skip_days=skip_days,
        empty=not announcements and error is None,
        error=error,
    )


# --------------------------------------------------------------------------------------------
# Rate limit and client


class ArxivRateLimiter:
    """arXiv's terms for all of one process: one request at a time, starts ``interval`` apart.

    Build one per process (the entry point does, inside its running event loop: aiolimiter
    binds to the loop that first uses it) and hand it to every arXiv client, API and RSS alike.
    The lock is taken before the leaky bucket so that a request queued behind a slow one still
    waits the full interval after the previous start.
    """

    def __init__(self, min_interval_seconds: float = 3.0) -> None:
        if min_interval_seconds < 0:
            raise ValueError("min_interval_seconds must be >= 0")
        self.min_interval_seconds = min_interval_seconds
        self._lock = asyncio.Lock()
        self._bucket = AsyncLimiter(1, min_interval_seconds) if min_interval_seconds > 0 else None

    @classmethod
    def from_settings(cls, settings: ArxivSettings) -> ArxivRateLimiter:
        return cls(settings.min_interval_seconds)

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        try:
            if self._bucket is not None:
                await self._bucket.acquire()
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()


def build_title_query(words: str) -> str | None:
    """A ``search_query`` that ANDs ``ti:`` terms for a user's free text, or None if no words.

    Only letters and digits survive, so nothing the user types can reach arXiv's query syntax
    (quotes, parentheses, field prefixes, boolean operators).
    """
    words_found = _SEARCH_WORD.findall(words.lower())
    terms = _dedupe(w for w in words_found if w not in _SEARCH_STOPWORDS)[:MAX_SEARCH_TERMS]
    if not terms:
        return None
    return " AND ".join(f"ti:{term}" for term in terms)


class ArxivClient:
    """Looks papers up in the arXiv API and reads the daily RSS announcements.

    Every HTTP attempt, retries included, passes through the shared :class:`ArxivRateLimiter`
    (``HttpClient.get(throttle=...)`` enters it around each attempt), so retries never break
    the one-request-per-interval rule and backoff sleeps do not hold the connection slot.
    """

    name = SOURCE

    def __init__(
        self,
        http: HttpClient,
        settings: ArxivSettings,
        limiter: ArxivRateLimiter,
        *,
        empty_page_retries: int = 3,
        max_isolation_requests: int = DEFAULT_MAX_ISOLATION_REQUESTS,
    ) -> None:
        self._http = http
        self._settings = settings
        self._limiter = limiter
        self._empty_page_retries = empty_page_retries
        self._max_isolation_requests = max_isolation_requests
        self._requests = 0

    @property
    def requests(self) -> int:
        """Logical requests made so far (HTTP retries of one request count once)."""
        return self._requests

    async def _get(self, url: str, params: dict[str, Any] | None, ok: frozenset[int]) -> Response:
        self._requests += 1
        return await self._http.get(url, params=params, ok_statuses=ok, throttle=self._limiter)

    async def _query(self, params: dict[str, Any]) -> AtomPage:
        resp = await self._get(self._settings.api_url, params, API_OK_STATUSES)
        try:
            page = parse_atom(resp.body)
        except MalformedResponseError:
            if resp.status == 400:
                detail = resp.body[:120].decode("utf-8", "replace").strip()
                raise ArxivApiError(f"HTTP 400: {detail}") from None
            raise
        if resp.status == 400:  # a 400 that parsed as a feed but carried no error entry
            raise ArxivApiError("HTTP 400 without an error entry")
        return page

    async def fetch_papers(self, ids: Iterable[str]) -> FetchResult:
        """Look ids up in batches of at most ``batch_size``; unknown or invalid ids are missing.

        arXiv answers a whole request with an error entry when it refuses one id in it. When a
        batch of a multi-id look-up is refused, it is split in halves (recursively, within
        ``max_isolation_requests`` extra requests) until the refused ids stand alone: they are
        reported ``missing`` and ``rejected``, and the rest of the batch is still returned. The
        error of a look-up of one id alone is raised: there it is the answer about that id.
        """
        wanted: list[str] = []
        invalid: list[str] = []
        for raw in ids:
            parsed = _arxiv_id(raw)
            if parsed is None:
                invalid.append(raw)  # one bad id would make arXiv reject its whole batch
            else:
                wanted.append(parsed.id)
        wanted = list(dict.fromkeys(wanted))
        if invalid:
            log.warning("arxiv: not looking up %d invalid ids: %s", len(invalid), invalid[:5])

        found: dict[str, Paper] = {}
        rejected: list[str] = []
        size = max(1, min(self._settings.batch_size, 100))
        for i in range(0, len(wanted), size):
            batch = wanted[i : i + size]
            if len(wanted) == 1:
                found.update(await self._fetch_batch(batch))
            else:
                isolation = _Isolation(
                    self._fetch_batch, self._max_isolation_requests, found, rejected
                )
                await isolation.run(batch)
        papers = {arxiv_id: found[arxiv_id] for arxiv_id in wanted if arxiv_id in found}
        missing = [arxiv_id for arxiv_id in wanted if arxiv_id not in found]
        missing.extend(dict.fromkeys(invalid))
        if missing:
            log.info("arxiv: %d of %d ids not found", len(missing), len(wanted) + len(invalid))
        return FetchResult(papers, missing, rejected)

    async def _fetch_batch(self, batch: list[str]) -> dict[str, Paper]:
        found: dict[str, Paper] = {}
        pending = batch
        for attempt in range(self._empty_page_retries + 1):
            page = await self._query(
                {"id_list": ",".join(pending), "start": 0, "max_results": len(pending)}
            )
            requested = set(pending)
            for paper in page.papers:
                if paper.arxiv_id in requested:
                    found[paper.arxiv_id] = paper
                else:
                    log.debug("arxiv: ignoring unrequested entry %s", paper.arxiv_id)
            pending = [arxiv_id for arxiv_id in pending if arxiv_id not in found]
            # totalResults counts the requested ids arXiv knows; fewer entries than that is the
            # long-standing empty/short page flake (arxiv.py #43, #129), worth asking again.
            promised = page.total_results
            if not pending or promised is None or promised <= len(page.papers):
                break
            if attempt < self._empty_page_retries:
                log.warning(
                    "arxiv: page had %d of %d promised entries; asking again (%d/%d)",
                    len(page.papers),
                    promised,
                    attempt + 1,
                    self._empty_page_retries,
                )
        else:
            log.warning("arxiv: %d ids still missing after short-page retries", len(pending))
        return found

    async def search(self, words: str, max_results: int = 10) -> list[Paper]:
        """Papers whose titles contain every word of ``words``, most relevant first."""
        query = build_title_query(words)
        if query is None:
            return []
        params = {
            "search_query": query,
            "start": 0,
            "max_results": max(1, min(max_results, 100)),
            "sortBy": "relevance",
            "sortOrder": "descending",
        }
        for attempt in range(self._empty_page_retries + 1):
            page = await self._query(params)
            # A first page can only be empty when nothing matched; otherwise it is the flake.
            if page.papers or not page.total_results:
                break
            log.warning(
                "arxiv: empty first page of %d results; asking again (%d/%d)",
                page.total_results,
                attempt + 1,
                self._empty_page_retries,
            )
        return page.papers

    async def announcements(self, categories: Sequence[str]) -> RssFeed:
        """Today's RSS feed for ``categories``; an error feed comes back with ``error`` set."""
        if isinstance(categories, str):
            categories = [categories]
        if not categories:
            raise ValueError("announcements() needs at least one category")
        for category in categories:
            # The names go into the URL path; anything else would change the request.
            if not _CATEGORY_NAME.fullmatch(category):
                raise UnknownCategoryError(category)
        url = f"{self._settings.rss_url.rstrip('/')}/{'+'.join(categories)}"
        resp = await self._get(url, None, RSS_OK_STATUSES)
        feed = parse_rss(resp.body)
        if resp.status == 400 and feed.error is None:
            feed = RssFeed(feed.categories, [], feed.published, feed.skip_days, False, "HTTP 400")
        if feed.error:
            log.warning("arxiv rss: feed %s answered an error: %s", feed.categories, feed.error)
        return feed


class _Isolation:
    """Finds the ids arXiv refuses in a batch by halving it, within a budget of requests.

    A part that fails is split; when the left half of a failing part succeeds, the right half
    must hold the offender, so it is split without being asked first. One bad id among ``n``
    costs about ``log2(n)`` extra requests, every further one about as much again.
    """

    def __init__(
        self,
        fetch: Callable[[list[str]], Awaitable[dict[str, Paper]]],
        max_requests: int,
        found: dict[str, Paper],
        rejected: list[str],
    ) -> None:
        self._fetch = fetch
        self._max_requests = max_requests
        self._budget = max_requests
        self._found = found  # papers fetched are added here
        self._rejected = rejected  # and refused ids here
        self._first_error: ArxivApiError | None = None

    async def run(self, batch: list[str]) -> None:
        """Fetch ``batch``, isolating the ids arXiv refuses if it refuses the batch."""
        await self._part(batch, known_bad=False)

    async def _part(self, part: list[str], *, known_bad: bool) -> bool:
        """Fetch ``part`` or isolate its refused ids; True when one request fetched it all."""
        if not known_bad:
            if self._first_error is not None:
                if self._budget <= 0:
                    raise ArxivApiError(
                        f"{self._first_error.detail} (gave up isolating the refused ids after "
                        f"{self._max_requests} extra requests)"
                    )
                self._budget -= 1
            try:
                self._found.update(await self._fetch(part))
            except ArxivApiError as exc:
                if self._first_error is None:
                    self._first_error = exc
                    log.warning(
                        "arxiv: a batch of %d ids was refused (%s); splitting it to find the "
                        "offending ids",
                        len(part),
                        exc.detail,
                    )
                if len(part) == 1:
                    self._reject(part[0], exc.detail)
                    return False
            else:
                return True
        if len(part) == 1:
            self._reject(part[0], "the rest of its refused batch was fetched without it")
            return False
        middle = len(part) // 2
        left_ok = await self._part(part[:middle], known_bad=False)
        await self._part(part[middle:], known_bad=left_ok)
        return False

    def _reject(self, arxiv_id: str, why: str) -> None:
        log.warning("arxiv: refused id %s (%s); reported missing", arxiv_id, why)
        self._rejected.append(arxiv_id)
