"""Render arXiv's wire formats from core models: the API's Atom feed and the daily RSS 2.0 feed.

Both real services serialise with lxml (the recorded 2026 API answers and the RSS feeds
round-trip byte for byte through ``etree.tostring(..., pretty_print=True)``), so building the
same element tree in the same order reproduces their bytes exactly, escaping included.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from bot.core.models import Announcement, Paper

ATOM_NS = "http://www.w3.org/2005/Atom"
ARXIV_NS = "http://arxiv.org/schemas/atom"
OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"
DC_NS = "http://purl.org/dc/elements/1.1/"
CONTENT_NS = "http://purl.org/rss/1.0/modules/content/"

ATOM_CONTENT_TYPE = "application/atom+xml; charset=utf-8"
RSS_CONTENT_TYPE = "application/rss+xml"  # arxiv-feed sets it without a charset

# Declaration order matters for byte equality: it is the order the real feeds print.
_API_NSMAP: dict[str | None, str] = {"opensearch": OPENSEARCH_NS, "arxiv": ARXIV_NS, None: ATOM_NS}
_RSS_NSMAP: dict[str | None, str] = {
    "arxiv": ARXIV_NS,
    "dc": DC_NS,
    "atom": ATOM_NS,
    "content": CONTENT_NS,
}
_A = "{" + ATOM_NS + "}"
_X = "{" + ARXIV_NS + "}"
_OS = "{" + OPENSEARCH_NS + "}"
_DC = "{" + DC_NS + "}"

ERROR_AUTHOR = "arXiv api core"
RSS_BASE = "http://rss.arxiv.org/rss/"
DEFAULT_LICENSE = "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"
# Announcement days are midnights in New York; the feed prints them with that offset (-0500).
ARXIV_TZ = ZoneInfo("America/New_York")


def atom_time(moment: dt.datetime) -> str:
    """The 2025+ API's timestamps: ``2016-05-26T17:59:46Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rss_time(moment: dt.datetime, tz: dt.tzinfo = ARXIV_TZ) -> str:
    """RFC 822 as the feed prints it: ``Thu, 28 Nov 2024 00:00:00 -0500``."""
    return email.utils.format_datetime(moment.astimezone(tz))


def _serialize(root: Any) -> bytes:
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def _sub(parent: Any, tag: str, text: str | None = None, **attrib: str) -> Any:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _feed_id(text: str) -> str:
    # The real ids look like base64 of a 20-byte digest of the query; stable per query here.
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).digest()
    return "https://arxiv.org/api/" + base64.b64encode(digest).decode().rstrip("=")


def _entry(parent: Any, paper: Paper) -> None:
    versioned = f"{paper.arxiv_id}v{paper.version or 1}"
    entry = _sub(parent, _A + "entry")
    # The 2025+ service keeps http:// in <id> but links with https://.
    _sub(entry, _A + "id", f"http://arxiv.org/abs/{versioned}")
    _sub(entry, _A + "title", paper.title)
    _sub(entry, _A + "updated", atom_time(paper.updated))
    _sub(
        entry,
        _A + "link",
        href=f"https://arxiv.org/abs/{versioned}",
        rel="alternate",
        type="text/html",
    )
    _sub(
        entry,
        _A + "link",
        href=f"https://arxiv.org/pdf/{versioned}",
        rel="related",
        type="application/pdf",
        title="pdf",
    )
    _sub(entry, _A + "summary", paper.abstract)
    categories = dict.fromkeys((paper.primary_category, *paper.categories))
    for term in categories:
        if term:
            _sub(entry, _A + "category", term=term, scheme=ARXIV_NS)
    _sub(entry, _A + "published", atom_time(paper.published))
    if paper.comment:
        _sub(entry, _X + "comment", paper.comment)
    _sub(entry, _X + "primary_category", term=paper.primary_category)
    if paper.journal_ref:
        _sub(entry, _X + "journal_ref", paper.journal_ref)
    for name in paper.authors:
        author = _sub(entry, _A + "author")
        _sub(author, _A + "name", name)
    if paper.doi:
        _sub(entry, _X + "doi", paper.doi)
        # Attribute order differs from the other links in the real feed: rel, href, title.
        _sub(entry, _A + "link", rel="related", href=f"https://doi.org/{paper.doi}", title="doi")


def render_api_feed(
    papers: Sequence[Paper],
    *,
    search_query: str,
    id_list: str,
    start: int,
    max_results: int,
    total_results: int,
    updated: dt.datetime,
) -> bytes:
    """An API answer in the 2025+ serializer's format (see the ``arxiv.py-golden-2026`` files)."""
    title = (
        f"arXiv Query: search_query={search_query}&id_list={id_list}"
        f"&start={start}&max_results={max_results}"
    )
    root = etree.Element(_A + "feed", nsmap=_API_NSMAP)
    _sub(root, _A + "id", _feed_id(title))
    _sub(root, _A + "title", title)
    _sub(root, _A + "updated", atom_time(updated))
    _sub(
        root,
        _A + "link",
        href=(
            f"https://arxiv.org/api/query?search_query={search_query}"
            f"&start={start}&max_results={max_results}&id_list={id_list}"
        ),
        type="application/atom+xml",
    )
    _sub(root, _OS + "itemsPerPage", str(max_results))
    _sub(root, _OS + "totalResults", str(total_results))
    _sub(root, _OS + "startIndex", str(start))
    for paper in papers:
        _entry(root, paper)
    return _serialize(root)


def render_api_error(message: str, *, updated: dt.datetime) -> bytes:
    """The 2025+ error answer (served with HTTP 400), cloned from fixture ``id_abc_…``."""
    error_id = "https://arxiv.org/api/errors#" + "_".join(message.split())
    stamp = atom_time(updated)
    root = etree.Element(_A + "feed", nsmap=_API_NSMAP)
    _sub(root, _A + "id", "https://arxiv.org/")
    _sub(root, _A + "title", "arXiv Search Results")
    _sub(root, _A + "updated", stamp)
    _sub(root, _OS + "itemsPerPage", "1")
    _sub(root, _OS + "totalResults", "1")
    _sub(root, _OS + "startIndex", "0")
    entry = _sub(root, _A + "entry")
    _sub(entry, _A + "id", error_id)
    _sub(entry, _A + "title", "Error")
    _sub(entry, _A + "updated", stamp)
    _sub(entry, _A + "link", href=error_id, rel="alternate", type="text/html")
    _sub(entry, _A + "summary", message)
    author = _sub(entry, _A + "author")
    _sub(author, _A + "name", ERROR_AUTHOR)
    return _serialize(root)


def _rss_channel(
    *, title: str, link: str, description: str, last_build: dt.datetime
) -> tuple[Any, Any]:
    root = etree.Element("rss", nsmap=_RSS_NSMAP)
    root.set("version", "2.0")
    channel = _sub(root, "channel")
    _sub(channel, "title", title)
    _sub(channel, "link", link)
    _sub(channel, "description", description)
    _sub(channel, _A + "link", href=link, rel="self", type="application/rss+xml")
    _sub(channel, "docs", "http://www.rssboard.org/rss-specification")
    _sub(channel, "language", "en-us")
    _sub(channel, "lastBuildDate", rss_time(last_build, dt.UTC))
    return root, channel


def render_rss_feed(
    categories: Sequence[str],
    announcements: Sequence[Announcement],
    *,
    published: dt.datetime,
    last_build: dt.datetime,
) -> bytes:
    """A day's feed as rss.arxiv.org serves it; no announcements gives the weekend's empty feed."""
    names = ", ".join(categories)
    root, channel = _rss_channel(
        title=f"{names} updates on arXiv.org",
        link=RSS_BASE + "+".join(categories),
        description=f"{names} updates on the arXiv.org e-print archive.",
        last_build=last_build,
    )
    _sub(channel, "managingEditor", "rss-help@arxiv.org")
    _sub(channel, "pubDate", rss_time(published))
    skip = _sub(channel, "skipDays")
    _sub(skip, "day", "Saturday")
    _sub(skip, "day", "Sunday")
    for ann in announcements:
        versioned = f"{ann.arxiv_id}v{ann.version or 1}"
        item = _sub(channel, "item")
        _sub(item, "title", ann.title)
        _sub(item, "link", f"https://arxiv.org/abs/{ann.arxiv_id}")
        # The space before the newline is in the real feed (arxiv-feed serializer.py).
        _sub(
            item,
            "description",
            f"arXiv:{versioned} Announce Type: {ann.announce_type.value} \n"
            f"Abstract: {ann.abstract}",
        )
        _sub(item, "guid", f"oai:arXiv.org:{versioned}", isPermaLink="false")
        for category in ann.categories:
            _sub(item, "category", category)
        _sub(item, "pubDate", rss_time(ann.announced))
        _sub(item, _X + "announce_type", ann.announce_type.value)
        _sub(item, _DC + "rights", DEFAULT_LICENSE)
        _sub(item, _DC + "creator", ", ".join(ann.authors))
    return _serialize(root)


def render_rss_error(
    query: str, message: str, *, published: dt.datetime, last_build: dt.datetime
) -> bytes:
    """The error feed (served with HTTP 400), cloned from ``aioarxiv_error_rss_mock_feed.xml``."""
    root, channel = _rss_channel(
        title=f"Feed error for query: {RSS_BASE}{query}",
        link=RSS_BASE + query,
        description=message,
        last_build=last_build,
    )
    _sub(channel, "managingEditor", "rss-help.arxiv.org")  # sic: the real error feed's typo
    _sub(channel, "pubDate", rss_time(published))
    return _serialize(root)
