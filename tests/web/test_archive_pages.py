"""The archive's pages over HTTP: the seed's layout, what a server's archive shows and hides,
error pages for bad addresses, hostile text escaped, and the site under a base path."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.services.archive import ArchiveReader, ArchiveService
from bot.settings import Settings
from bot.storage.engine import Database
from bot.web.archive import SECURITY_HEADERS, linkify, web_link
from tests.web.conftest import Page, Site, app_for, check_page
from tests.web.seed import (
    DAY,
    HOSTILE_ID,
    HOSTILE_POST_URL,
    MARKDOWN_LINK,
    NOW,
    PUBLISHED,
    SCRIPT,
    seed,
)

TODAY = NOW.date()


def texts(doc, xpath: str) -> list[str]:
    return [" ".join(e.text_content().split()) for e in doc.xpath(xpath)]


# -- the global pages ---------------------------------------------------------------------------


async def test_the_index_links_every_day_and_no_server(site: Site) -> None:
    page = await site.get("/")
    assert page.status == 200
    doc = check_page(page)
    assert texts(doc, "//h1") == ["Hot Papers"]
    days = doc.xpath("//ul[@class='days']//a")
    assert [a.get("href") for a in days] == [f"/daily/{TODAY}", f"/daily/{DAY}"]
    assert texts(doc, "//ul[@class='days']//a") == [f"Hot Papers {TODAY}", f"Hot Papers {DAY}"]
    # Which servers publish an archive is theirs to say: no slug on the index.
    assert site.seeded.slug not in page.text
    assert site.seeded.hostile_slug not in page.text
    assert "/s/" not in page.text
    feeds = doc.xpath("//link[@rel='alternate']")
    assert [(f.get("type"), f.get("href")) for f in feeds] == [
        ("application/atom+xml", "/daily/feed.atom"),
        ("application/feed+json", "/daily/feed.json"),
    ]


async def test_a_day_is_laid_out_like_the_seeds_post(site: Site) -> None:
    page = await site.get(f"/daily/{DAY}")
    assert page.status == 200
    doc = check_page(page)
    assert texts(doc, "//h1") == [f"Hot Papers {DAY}"]
    assert doc.xpath("//title/text()") == [f"Hot Papers {DAY}"]
    headings = texts(doc, "//article[@class='paper']/h2")
    assert headings[0] == "1. LieTransformer: Equivariant self-attention for Lie Groups"
    # Whitespace normalised: arXiv wraps long titles with double spaces.
    assert headings[1] == (
        "2. Online Bag-of-Visual-Words Generation for Unsupervised Representation Learning"
    )
    first = doc.xpath("//article[@class='paper']")[0]
    assert texts(first, "p[@class='authors']") == [
        "Michael Hutchinson, Charline Le Lan, Sheheryar Zaidi, Emilien Dupont, Yee Whye Teh, "
        "Hyunjik Kim"
    ]
    counts = texts(first, "ul[@class='counts']/li")
    assert counts[:2] == ["X: 1,000 reposts, 155 likes", "Hacker News: 120 points, 30 comments"]
    assert counts[2] == "counted 2020-12-23 10:50 UTC"
    links = first.xpath("p[@class='links']/a")
    assert [a.get("href") for a in links] == [
        "https://arxiv.org/abs/2012.10885",
        "https://arxiv.org/pdf/2012.10885",
    ]
    # Link text that makes sense alone (for a screen reader's list of links).
    assert texts(first, "p[@class='links']/a")[0] == (
        "abstract of “LieTransformer: Equivariant self-attention for Lie Groups” on arXiv"
    )
    assert first.xpath("ul[@class='categories']//a/@href") == [
        "https://arxiv.org/list/cs.LG/recent",
        "https://arxiv.org/list/stat.ML/recent",
    ]
    assert texts(first, "p[@class='abstract']")[0].startswith("Group equivariant neural networks")
    posts = first.xpath("section[@class='posts']//li")
    assert len(posts) == 2
    tweet = posts[0]
    assert "LieTransformer: Equivariant self-attention for Lie Groups" in tweet.text_content()
    credit = tweet.xpath(".//p[@class='credit']/a")[0]
    assert credit.get("href") == "https://twitter.com/ak92501/status/1341202937956233217"
    assert " ".join(credit.text_content().split()) == "AK (@ak92501) on X, December 22, 2020"
    # The post's t.co links are links; its text stays text.
    assert "https://t.co/NTiZMzwFoO" in tweet.xpath(".//blockquote//a/@href")
    # Every paper scores 50 or more, best first; the neighbours' links.
    assert len(headings) == 17  # the reference day's 16 and the hostile one (70)
    nav = doc.xpath("//nav[@aria-label='Other days']//a")
    assert [(a.get("rel"), a.get("href")) for a in nav] == [("next", f"/daily/{TODAY}")]


async def test_today_says_it_is_still_being_counted(site: Site) -> None:
    page = await site.get(f"/daily/{TODAY}")
    assert page.status == 200
    doc = check_page(page)
    assert "This day is not over" in page.text
    nav = doc.xpath("//nav[@aria-label='Other days']//a")
    assert [(a.get("rel"), a.get("href")) for a in nav] == [("prev", f"/daily/{DAY}")]


BAD_DAYS = [
    ("/daily/2020-12-21", 404, "No ranking for that day"),  # before the first post
    ("/daily/2020-12-24", 404, "No ranking for that day"),  # tomorrow
    ("/daily/2020-13-01", 400, "Not a date"),
    ("/daily/2020-02-30", 400, "Not a date"),
    ("/daily/2020-1-1", 400, "Not a date"),
    ("/daily/yesterday", 400, "Not a date"),
    ("/daily/%3Cscript%3E", 400, "Not a date"),
    ("/daily/2020-12-22/extra", 404, "Page not found"),
    ("/daily/", 404, "Page not found"),
    ("/static/nope.css", 404, "Page not found"),
]


@pytest.mark.sqlite_only  # addresses, not storage
async def test_bad_days_get_an_error_page(site: Site) -> None:
    for path, status, title in BAD_DAYS:
        page = await site.get(path)
        assert page.status == status, path
        doc = check_page(page)
        assert texts(doc, "//h1") == [title], path
        assert page.headers["Cache-Control"] == "no-store"
        assert "Traceback" not in page.text
        assert "<script" not in page.text


# -- a server's archive -------------------------------------------------------------------------


async def test_a_servers_index_lists_its_sent_digests(site: Site) -> None:
    slug = site.seeded.slug
    page = await site.get(f"/s/{slug}/")
    assert page.status == 200
    doc = check_page(page)
    assert texts(doc, "//h1") == [f"Hot Papers · {slug}"]
    listed = doc.xpath("//ul[@class='days']//a/@href")
    assert listed == [f"/s/{slug}/{day}" for day in site.seeded.sent_days]
    assert texts(doc, "//ul[@class='days']/li")[0] == f"Hot Papers {TODAY} 5 papers"
    feeds = doc.xpath("//link[@rel='alternate']/@href")
    assert feeds == [f"/s/{slug}/feed.atom", f"/s/{slug}/feed.json"]
    assert not doc.xpath("//nav[@aria-label='Pages']")  # one page
    # Nothing of the server itself: no guild id, channel, message id.
    for secret in (str(PUBLISHED), "1001", "100101"):
        assert secret not in page.text


async def test_a_servers_digest_is_what_the_bot_posted(site: Site) -> None:
    slug = site.seeded.slug
    page = await site.get(f"/s/{slug}/{TODAY}")
    assert page.status == 200
    doc = check_page(page)
    assert texts(doc, "//h1") == [f"Hot Papers {TODAY}"]
    titles = texts(doc, "//article[@class='paper']/h2")
    expected = [" ".join(p.title.split()) for p in site.seeded.papers[:5]]
    assert titles == [f"{n}. {t}" for n, t in enumerate(expected, start=1)]
    breadcrumb = doc.xpath("//nav[@aria-label='Breadcrumb']//a")
    assert [(a.get("href"), a.text_content()) for a in breadcrumb] == [(f"/s/{slug}/", slug)]
    nav = doc.xpath("//nav[@aria-label='Other digests']//a")
    assert [(a.get("rel"), a.get("href")) for a in nav] == [("prev", f"/s/{slug}/{DAY}")]
    assert "posted in machine-learning-reading-group on 2020-12-23 10:50 UTC" in (
        " ".join(doc.xpath("string(//p[@class='lede'])").split())
    )


async def test_a_day_without_a_sent_digest_is_not_found(site: Site) -> None:
    slug = site.seeded.slug
    failed = DAY - dt.timedelta(days=3)  # seeded as failed; DAY - 4 as empty
    for day in (failed, failed - dt.timedelta(days=1), dt.date(2019, 1, 1)):
        page = await site.get(f"/s/{slug}/{day}")
        assert page.status == 404
        assert texts(check_page(page), "//h1") == ["No digest that day"]
    page = await site.get(f"/s/{slug}/2020-13-01")
    assert page.status == 400
    assert texts(check_page(page), "//h1") == ["Not a date"]


async def test_an_unpublished_archive_is_indistinguishable_from_none(site: Site) -> None:
    """The hidden server sent a digest today, as the published one did: every address of its
    archive answers the very page an unknown slug gets."""
    unknown = await site.get("/s/no-such-server/")
    assert unknown.status == 404
    check_page(unknown)
    hidden = site.seeded.hidden_slug
    for path in (
        f"/s/{hidden}/",
        f"/s/{hidden}/{TODAY}",
        f"/s/{hidden}/feed.atom",
        f"/s/{hidden}/feed.json",
        f"/s/{hidden}/2020-13-01",  # even a bad date: the slug is checked first
        f"/s/{hidden}/?page=abc",
        f"/s/{hidden}",
        "/s/no-such-server/feed.atom",
        "/s/UPPER/",
        "/s/a..b/",
        "/s/%3Cscript%3E/",
        "/s/" + "a" * 200 + "/",
    ):
        page = await site.get(path)
        assert (page.status, page.text) == (404, unknown.text), path
        assert dict(page.headers).keys() >= SECURITY_HEADERS.keys()


async def test_opting_out_hides_the_archive_at_once_and_opting_in_brings_it_back(
    site: Site,
) -> None:
    slug = site.seeded.slug
    assert (await site.get(f"/s/{slug}/{TODAY}")).status == 200  # and now in the page cache
    # Checked again at every request, even by a cache in front of the site.
    assert (await site.get(f"/s/{slug}/")).headers["Cache-Control"] == "no-cache"
    assert (await site.get(f"/s/{slug}/feed.atom")).headers["Cache-Control"] == "no-cache"
    assert (await site.get(f"/daily/{DAY}")).headers["Cache-Control"] == "public, max-age=60"
    service = ArchiveService.on(site.db)
    await service.turn_off(PUBLISHED)
    for path in (f"/s/{slug}/", f"/s/{slug}/{TODAY}", f"/s/{slug}/feed.json"):
        assert (await site.get(path)).status == 404, path
    await service.turn_on(PUBLISHED, "A new name")
    assert (await site.get(f"/s/{slug}/{TODAY}")).status == 200  # the same address


async def test_a_long_archive_is_paged(db: Database) -> None:
    seeded = await seed(db, extra_days=40)
    async with TestClient(TestServer(app_for(db))) as client:
        site = Site(client, seeded, db)
        slug = seeded.slug
        first = await site.get(f"/s/{slug}/")
        doc = check_page(first)
        assert len(doc.xpath("//ul[@class='days']/li")) == 30
        nav = doc.xpath("//nav[@aria-label='Pages']//a")
        assert [(a.get("rel"), a.get("href")) for a in nav] == [("next", f"/s/{slug}/?page=2")]
        assert "Page 1 of 2" in first.text
        second = await site.get(f"/s/{slug}/?page=2")
        doc = check_page(second)
        assert len(doc.xpath("//ul[@class='days']/li")) == 12
        nav = doc.xpath("//nav[@aria-label='Pages']//a")
        assert [(a.get("rel"), a.get("href")) for a in nav] == [("prev", f"/s/{slug}/")]
        for query, status in (("3", 404), ("0", 400), ("-1", 400), ("abc", 400), ("1e3", 400)):
            page = await site.get(f"/s/{slug}/?page={query}")
            assert page.status == status, query
            check_page(page)


@pytest.mark.sqlite_only  # addresses and headers, not storage
async def test_the_slug_without_its_slash_redirects(site: Site) -> None:
    slug = site.seeded.slug
    page = await site.get(f"/s/{slug}")
    assert page.status == 308
    assert page.headers["Location"] == f"/s/{slug}/"


# -- hostile text ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["server", "daily"])
async def test_hostile_text_is_shown_as_text_and_never_runs(site: Site, where: str) -> None:
    path = f"/s/{site.seeded.hostile_slug}/{TODAY}" if where == "server" else f"/daily/{DAY}"
    page = await site.get(path)
    assert page.status == 200
    doc = check_page(page)  # no script element, no handler attribute, no javascript: link
    assert "<script" not in page.text.lower()
    assert "<img" not in page.text.lower()
    assert "<svg" not in page.text.lower()
    hostile = doc.xpath(
        f"//article[@class='paper'][.//a[@href='https://arxiv.org/abs/{HOSTILE_ID}']]"
    )[0]
    title = " ".join(hostile.xpath("string(h2)").split())
    assert SCRIPT in title  # shown as the text it is
    assert MARKDOWN_LINK in title  # markdown is not interpreted: still text
    assert "<img src=x onerror=alert(3)>" in hostile.xpath("string(p[@class='authors'])")
    posts = hostile.xpath(".//section[@class='posts']//li")
    first = posts[0]
    # The post's javascript: address is not a link; its credit is plain text.
    assert not first.xpath(".//p[@class='credit']/a")
    assert HOSTILE_POST_URL not in doc.xpath("//@href")
    assert SCRIPT in first.xpath("string(.//p[@class='credit'])")
    # In its text only the http(s) address became a link.
    assert first.xpath(".//blockquote//a/@href") == ["https://example.org/ok?a=1&b=2"]
    assert "javascript:alert(5)" in first.xpath("string(.//blockquote)")
    assert not posts[1].xpath(".//p[@class='credit']/a")  # a data: address neither


def test_only_http_addresses_become_links() -> None:
    for good in ("https://x.com/a/status/1", "http://example.org/a?b=c&d=e", "HTTPS://A.B/c"):
        assert web_link(good) == good
    for bad in (
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "//evil.example/x",
        "https://",
        "https:///path",
        'https://a.b/"onmouseover="alert(1)',
        "https://a.b/ x",
        "https://a.b/\nx",
        "",
        None,
    ):
        assert web_link(bad) is None, bad
    shown = str(linkify("go https://a.b/c?d=1&e=2). or [x](javascript:y) <b>"))
    assert shown == (
        'go <a href="https://a.b/c?d=1&amp;e=2" rel="nofollow ugc">https://a.b/c?d=1&amp;e=2</a>). '
        "or [x](javascript:y) &lt;b&gt;"
    )


# -- the site around the pages --------------------------------------------------------------------


@pytest.mark.sqlite_only  # addresses and headers, not storage
async def test_every_answer_carries_the_security_headers(site: Site) -> None:
    for path in ("/", f"/daily/{DAY}", f"/s/{site.seeded.slug}/", "/daily/x", "/s/none/"):
        page = await site.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value, (path, name)
    assert "script-src" not in SECURITY_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


@pytest.mark.sqlite_only  # addresses and headers, not storage
async def test_the_stylesheet_is_served_with_light_and_dark_colours(site: Site) -> None:
    doc = (await site.get("/")).doc
    href = doc.xpath("//link[@rel='stylesheet']/@href")[0]
    css = await site.client.get(href)
    assert css.status == 200
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert "max-age=86400" in css.headers["Cache-Control"]
    text = await css.text()
    assert "@media (prefers-color-scheme: dark)" in text
    assert ":focus-visible" in text
    again = await site.client.get(href, headers={"If-None-Match": css.headers["ETag"]})
    assert again.status == 304
    icon = await site.client.get(doc.xpath("//link[@rel='icon']/@href")[0])
    assert (icon.status, icon.headers["Content-Type"]) == (200, "image/svg+xml; charset=utf-8")


async def test_a_public_address_with_a_path_prefixes_every_link(db: Database) -> None:
    seeded = await seed(db)
    settings = Settings(web={"public_url": "https://papers.example.org/hot/"})
    async with TestClient(TestServer(app_for(db, settings))) as client:
        site = Site(client, seeded, db)
        doc = check_page_prefixed(await site.get(f"/s/{seeded.slug}/{TODAY}"), "/hot")
        assert doc.xpath("//link[@rel='stylesheet']/@href")[0].startswith("/hot/static/")
        assert doc.xpath("//nav[@aria-label='Breadcrumb']//a/@href") == [f"/hot/s/{seeded.slug}/"]
        feed = await client.get(f"/s/{seeded.slug}/feed.json")
        body = await feed.json()
        assert body["home_page_url"] == f"https://papers.example.org/hot/s/{seeded.slug}/"
        assert body["items"][0]["url"] == (
            f"https://papers.example.org/hot/s/{seeded.slug}/{TODAY}"
        )


def check_page_prefixed(page: Page, prefix: str):
    doc = page.doc
    for href in doc.xpath("//a/@href | //link/@href"):
        assert href.startswith((prefix + "/", "https://", "#")), href
    return doc


async def test_a_database_that_fails_gives_an_error_page(tmp_path: Path, caplog) -> None:
    gone = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'hotpapers.db'}")
    try:
        async with TestClient(TestServer(app_for(gone))) as client:
            response = await client.get("/")
            text = await response.text()
    finally:
        await gone.close()
    assert response.status == 503
    assert "The archive is unavailable" in text
    assert "Traceback" not in text
    assert "missing" not in text  # the database's path is the operator's business
    assert "archive: / failed" in caplog.text


@pytest.mark.sqlite_only  # addresses and headers, not storage
async def test_an_unexpected_failure_is_logged_and_answered_500(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: ArchiveReader) -> list[dt.date]:
        raise RuntimeError("boom with internal detail")

    monkeypatch.setattr(ArchiveReader, "days", broken)
    with caplog.at_level(logging.ERROR, logger="bot.web.archive"):
        page = await site.get("/")
    assert page.status == 500
    assert texts(check_page(page), "//h1") == ["Something went wrong"]
    assert "boom" not in page.text
    assert "boom with internal detail" in caplog.text
