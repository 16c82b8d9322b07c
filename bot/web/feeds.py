"""The archive's feeds: a :class:`Feed` → Atom (RFC 4287) or JSON Feed 1.1 text (pure).

Both carry the same entries: one a day, its title ``Hot Papers YYYY-MM-DD``, its link the day's
page, its content the day's papers as HTML (escaped by the templates that make it). Outside text
reaches Atom through ElementTree, which escapes it, after losing the characters XML 1.0 cannot
hold (a control character in a post would otherwise make the whole feed unreadable).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

ATOM_NS = "http://www.w3.org/2005/Atom"
XML_NS = "http://www.w3.org/XML/1998/namespace"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
ATOM_TYPE = "application/atom+xml"
JSON_FEED_TYPE = "application/feed+json"
GENERATOR = "hotpapers"

# Everything XML 1.0 allows in text (its Char production); the rest is dropped.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One day of a feed."""

    id: str  # permanent: the day page's absolute URL
    url: str
    title: str
    updated: dt.datetime
    summary: str  # plain text
    content_html: str  # HTML, already escaped where it holds outside text


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed and its entries, newest first. Every URL is absolute."""

    title: str
    subtitle: str
    home_url: str  # the page the feed follows
    atom_url: str
    json_url: str
    updated: dt.datetime  # the newest entry's, or when the feed was made if it has none
    entries: Sequence[FeedEntry]
    language: str = "en"


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("", text)


def _stamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC, as both formats want it."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        node.text = xml_text(text)
    return node


def atom(feed: Feed) -> bytes:
    """The feed as an Atom 1.0 document (UTF-8, with its XML declaration)."""
    # Atom's namespace as the document's default, written as an attribute: ElementTree's own
    # namespace handling would need a process-wide prefix registry.
    root = ET.Element("feed", {"xmlns": ATOM_NS, f"{{{XML_NS}}}lang": feed.language})
    _element(root, "id", feed.home_url)
    _element(root, "title", feed.title)
    _element(root, "subtitle", feed.subtitle)
    _element(root, "updated", _stamp(feed.updated))
    _element(root, "link", rel="alternate", type="text/html", href=feed.home_url)
    _element(root, "link", rel="self", type=ATOM_TYPE, href=feed.atom_url)
    _element(root, "link", rel="alternate", type=JSON_FEED_TYPE, href=feed.json_url)
    author = _element(root, "author")
    _element(author, "name", GENERATOR)
    _element(root, "generator", GENERATOR)
    for item in feed.entries:
        entry = _element(root, "entry")
        _element(entry, "id", item.id)
        _element(entry, "title", item.title)
        _element(entry, "updated", _stamp(item.updated))
        _element(entry, "link", rel="alternate", type="text/html", href=item.url)
        _element(entry, "summary", item.summary, type="text")
        _element(entry, "content", item.content_html, type="html")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def json_feed(feed: Feed) -> str:
    """The feed as JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/)."""
    document = {
        "version": JSON_FEED_VERSION,
        "title": feed.title,
        "description": feed.subtitle,
        "home_page_url": feed.home_url,
        "feed_url": feed.json_url,
        "language": feed.language,
        "authors": [{"name": GENERATOR}],
        "items": [
            {
                "id": item.id,
                "url": item.url,
                "title": item.title,
                "summary": item.summary,
                "content_html": item.content_html,
                "date_published": _stamp(item.updated),
                "date_modified": _stamp(item.updated),
            }
            for item in feed.entries
        ],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
