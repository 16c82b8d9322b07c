"""The archive's site over a seeded database (every backend), served by aiohttp's test server,
and the structural checks every page must pass (semantic HTML, escaping, links)."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import lxml.html
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDictProxy

from bot.settings import Settings
from bot.storage.engine import Database
from bot.web.archive import routes
from tests.web.seed import NOW, Seeded, seed

# The site's clock: two hours after the reference post, on 2020-12-23 (UTC).
CLOCK = NOW + dt.timedelta(hours=2)


@dataclass(frozen=True)
class Page:
    status: int
    text: str
    headers: CIMultiDictProxy[str]

    @property
    def doc(self) -> Any:
        return lxml.html.document_fromstring(self.text)


@dataclass
class Site:
    client: TestClient
    seeded: Seeded
    db: Database

    async def get(self, path: str, **kwargs: Any) -> Page:
        response = await self.client.get(path, allow_redirects=False, **kwargs)
        return Page(response.status, await response.text(), response.headers)


def app_for(
    db: Database, settings: Settings | None = None, clock: Callable[[], dt.datetime] = lambda: CLOCK
) -> web.Application:
    app = web.Application()
    app.add_routes(routes(db, settings or Settings(), clock=clock))
    return app


@pytest.fixture
async def site(db: Database) -> AsyncIterator[Site]:
    seeded = await seed(db, extra_days=2)
    async with TestClient(TestServer(app_for(db))) as client:
        yield Site(client, seeded, db)


_HEADING = re.compile(r"^h([1-6])$")


def check_page(page: Page) -> Any:
    """What every HTML page of the archive is: returns the parsed document."""
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    doc = page.doc
    assert doc.get("lang") == "en"
    assert doc.xpath("//meta[@name='viewport']/@content") == ["width=device-width, initial-scale=1"]
    assert doc.xpath("//meta[@charset='utf-8']")
    assert doc.xpath("//link[@rel='stylesheet']/@href")[0].startswith("/static/archive.css")
    # Landmarks: one header, main and footer of the site; every nav named.
    for landmark in ("body/header", "body/main", "body/footer"):
        assert len(doc.xpath(landmark)) == 1, landmark
    for nav in doc.xpath("//nav"):
        assert nav.get("aria-label"), lxml.html.tostring(nav)
    # One h1, and no heading level skipped on the way down.
    levels = [int(_HEADING.match(h.tag).group(1)) for h in doc.iter("h1", "h2", "h3", "h4")]
    assert levels.count(1) == 1, levels
    assert levels[0] == 1
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, levels
    # No script anywhere, no inline handler or style: nothing outside text could make run.
    assert not doc.xpath("//script | //iframe | //object | //embed | //form")
    for element in doc.iter():
        for name in element.attrib:
            assert not name.lower().startswith("on"), (element.tag, name)
            assert name.lower() != "style", element.tag
    # Links: meaningful text, and only this site's paths or http(s) addresses.
    for link in doc.xpath("//a"):
        text = " ".join(link.text_content().split())
        assert text, lxml.html.tostring(link)
        href = link.get("href")
        assert href, lxml.html.tostring(link)
        assert href.startswith(("/", "#", "http://", "https://")), href
    for href in doc.xpath("//@href | //@src"):
        assert "javascript:" not in href.lower(), href
        assert not href.lower().startswith("data:"), href
    assert doc.xpath("//a[@class='skip' and @href='#content']")
    assert doc.xpath("//main[@id='content']")
    return doc
