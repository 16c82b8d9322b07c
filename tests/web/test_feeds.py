"""The archive's Atom and JSON feeds: Atom read by feedparser (as feed readers do) and checked
against RFC 4287's required elements; JSON Feed checked against what version 1.1 of its spec
requires (feedparser 6 reads no JSON Feed)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from xml.etree import ElementTree as ET

import feedparser
import pytest

from bot.web.feeds import ATOM_NS, Feed, FeedEntry, atom, json_feed
from tests.web.conftest import Site
from tests.web.seed import DAY, HOSTILE_ID, NOW, SCRIPT

TODAY = NOW.date()
A = f"{{{ATOM_NS}}}"


def rfc3339(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None, text
    return moment


def check_json_feed(document: dict[str, Any]) -> None:
    """The JSON Feed 1.1 spec's requirements (and what it says a feed should have)."""
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(document["title"], str)
    assert document["title"]
    assert isinstance(document["items"], list)
    for key in ("home_page_url", "feed_url"):
        assert document[key].startswith(("http://", "https://")), key
    assert all(isinstance(a["name"], str) for a in document["authors"])
    ids = [item["id"] for item in document["items"]]
    assert len(ids) == len(set(ids))
    for item in document["items"]:
        assert isinstance(item["id"], str)
        assert item["id"]
        # "content_html and content_text are each optional strings — but one must be present"
        assert isinstance(item.get("content_html"), str) or isinstance(
            item.get("content_text"), str
        )
        assert item["url"].startswith(("http://", "https://"))
        rfc3339(item["date_published"])
        rfc3339(item["date_modified"])


def check_atom(body: bytes) -> ET.Element:
    """RFC 4287's required elements, on the document itself."""
    root = ET.fromstring(body)  # noqa: S314 - our own output
    assert root.tag == f"{A}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{A}{name}") is not None, name
    assert root.find(f"{A}link[@rel='self']") is not None
    for entry in root.findall(f"{A}entry"):
        for name in ("id", "title", "updated"):
            assert entry.find(f"{A}{name}") is not None, name
        assert entry.find(f"{A}link[@rel='alternate']") is not None
        assert entry.find(f"{A}content[@type='html']") is not None
        rfc3339(entry.findtext(f"{A}updated") or "")
    return root


async def fetch(site: Site, path: str) -> tuple[bytes, Any]:
    response = await site.client.get(path)
    assert response.status == 200, path
    return await response.read(), response


async def test_the_global_feeds_carry_the_complete_days(site: Site) -> None:
    body, response = await fetch(site, "/daily/feed.atom")
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    check_atom(body)
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Hot Papers"
    # Today (2020-12-23) is still being counted: only the reference day.
    assert [e.title for e in parsed.entries] == [f"Hot Papers {DAY}"]
    entry = parsed.entries[0]
    base = str(site.client.make_url("/")).rstrip("/")
    assert entry.link == f"{base}/daily/{DAY}"
    assert entry.id == entry.link
    content = entry.content[0].value
    assert "LieTransformer: Equivariant self-attention for Lie Groups" in content
    assert "X: 1,000 reposts, 155 likes" in content
    assert entry.summary.startswith("17 papers, led by “LieTransformer")

    body, response = await fetch(site, "/daily/feed.json")
    assert response.headers["Content-Type"] == "application/feed+json; charset=utf-8"
    document = json.loads(body)
    check_json_feed(document)
    assert [item["title"] for item in document["items"]] == [f"Hot Papers {DAY}"]
    assert document["title"] == "Hot Papers"


async def test_a_servers_feeds_carry_its_sent_digests(site: Site) -> None:
    slug = site.seeded.slug
    base = str(site.client.make_url("/")).rstrip("/")
    for kind in ("atom", "json"):
        body, _ = await fetch(site, f"/s/{slug}/feed.{kind}")
        if kind == "json":
            document = json.loads(body)
            check_json_feed(document)
            assert document["title"] == f"Hot Papers · {slug}"
            assert [(i["title"], i["url"]) for i in document["items"]] == [
                (f"Hot Papers {day}", f"{base}/s/{slug}/{day}") for day in site.seeded.sent_days
            ]
            continue
        check_atom(body)
        parsed = feedparser.parse(body)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == "atom10"
        assert parsed.feed.title == f"Hot Papers · {slug}"
        assert [e.title for e in parsed.entries] == [
            f"Hot Papers {day}" for day in site.seeded.sent_days
        ]
        assert [e.link for e in parsed.entries] == [
            f"{base}/s/{slug}/{day}" for day in site.seeded.sent_days
        ]
        newest = parsed.entries[0]
        assert newest.summary == (
            "5 papers, led by “LieTransformer: Equivariant self-attention for Lie Groups”."
        )
        assert "Michael Hutchinson" in newest.content[0].value


async def test_hostile_text_is_escaped_in_the_feeds(site: Site) -> None:
    slug = site.seeded.hostile_slug
    atom_body, _ = await fetch(site, f"/s/{slug}/feed.atom")
    root = check_atom(atom_body)
    content = root.findtext(f"{A}entry/{A}content") or ""
    # The entry's HTML holds the title as escaped text: a reader shows it, never runs it.
    assert "&lt;script&gt;" in content
    assert "<script" not in content
    assert f'href="https://arxiv.org/abs/{HOSTILE_ID}"' in content
    document = json.loads((await fetch(site, f"/s/{slug}/feed.json"))[0])
    html = document["items"][0]["content_html"]
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert (
        SCRIPT in document["items"][0]["summary"]
        or "LieTransformer" in document["items"][0]["summary"]
    )


async def test_a_feed_not_changed_is_answered_304(site: Site) -> None:
    path = f"/s/{site.seeded.slug}/feed.atom"
    _body, first = await fetch(site, path)
    again = await site.client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert await again.read() == b""


@pytest.mark.sqlite_only
async def test_the_pages_name_their_feeds(site: Site) -> None:
    for page, feeds in (
        (f"/daily/{DAY}", "/daily/feed"),
        (f"/s/{site.seeded.slug}/{TODAY}", f"/s/{site.seeded.slug}/feed"),
    ):
        response = await site.client.get(page)
        text = await response.text()
        assert '<link rel="alternate" type="application/atom+xml"' in text
        assert f'href="{feeds}.atom"' in text
        assert 'type="application/feed+json"' in text
        assert f'href="{feeds}.json"' in text


def test_characters_xml_cannot_hold_are_dropped_and_the_feed_stays_readable() -> None:
    at = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    nasty = "bell\x07 vt\x0b nul\x00 ffff\uffff surrogate-free 🧪 <&> ]]>"
    feed = Feed(
        title=f"T {nasty}",
        subtitle=nasty,
        home_url="https://h.example/",
        atom_url="https://h.example/feed.atom",
        json_url="https://h.example/feed.json",
        updated=at,
        entries=[
            FeedEntry(
                id="https://h.example/1",
                url="https://h.example/1",
                title=nasty,
                updated=at,
                summary=nasty,
                content_html=f"<p>{nasty}</p>",
            )
        ],
    )
    body = atom(feed)
    root = check_atom(body)
    assert root.findtext(f"{A}title") == "T bell vt nul ffff surrogate-free 🧪 <&> ]]>"
    assert root.findtext(f"{A}updated") == "2025-01-02T03:04:05Z"
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    document = json.loads(json_feed(feed))
    check_json_feed(document)
    assert document["items"][0]["title"] == nasty  # JSON holds any character, escaped


def test_an_empty_feed_is_still_valid() -> None:
    at = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    feed = Feed(
        "T", "S", "https://h.example/", "https://h.example/a", "https://h.example/j", at, []
    )
    parsed = feedparser.parse(atom(feed))
    assert not parsed.bozo
    assert parsed.entries == []
    check_json_feed(json.loads(json_feed(feed)))
