"""The archive in a real browser: headless Chromium (Debian's package, driven by Playwright)
loads every kind of page of a site served on 127.0.0.1 over a seeded database, at desktop
(1280 by 800, light) and phone (390 by 844, dark) sizes, and saves a screenshot of each.

A test fails on any console error, any failed request or error answer, any script on a page, a
page wider than the phone's screen, text below the WCAG AA contrast, a focus that can't be seen,
and any link of the site (crawled from the pages, same origin) that does not answer 200.

Screenshots go to ``--artefacts DIR`` when given, else to ``browser-artefacts`` under pytest's
base temporary directory (``/tmp/pytest-of-<user>/pytest-<n>/browser-artefacts``). Chromium is
found on PATH (``bash .ci/chromium.sh`` installs it) or at ``$HOTPAPERS_TEST_CHROMIUM``; without
it these tests are skipped, except under ``CI=true``, where they fail (as the PostgreSQL ones).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from bot.settings import Settings
from bot.storage.engine import Database
from bot.web.archive import routes
from tests.postgres import IN_CI
from tests.web.conftest import CLOCK
from tests.web.seed import DAY, NOW, Seeded, seed

# Read at import: the autouse _clean_environment fixture removes HOTPAPERS_* before each test.
CHROMIUM_VARIABLE = "HOTPAPERS_TEST_CHROMIUM"
CHROMIUM = os.environ.get(CHROMIUM_VARIABLE) or shutil.which("chromium")
NO_CHROMIUM = (
    f"Chromium not found on PATH nor at ${CHROMIUM_VARIABLE}: install it with "
    "`bash .ci/chromium.sh` (Debian's package) to run the browser tests"
)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = [
    pytest.param(("desktop", DESKTOP, "light"), id="desktop-light"),
    pytest.param(("phone", PHONE, "dark"), id="phone-dark"),
]
MAX_PAGES = 80  # the crawl's bound: the seeded site has about a dozen pages
TODAY = NOW.date()


@dataclass
class Served:
    base: str
    seeded: Seeded


@dataclass
class Watch:
    """What went wrong in a browser context: console errors, failed requests, error answers,
    dialogs (an ``alert()`` would be injected script running)."""

    problems: list[str] = field(default_factory=list)
    # Error answers a test asks for on purpose: the page itself, not what it loads.
    expected: dict[str, int] = field(default_factory=dict)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("dialog", lambda dialog: self.problems.append(f"dialog: {dialog.message}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        if where in self.expected and "status of" in message.text:
            return  # Chromium logs the error status of a page asked for it
        self.problems.append(f"console error: {message.text} ({where})")

    def _failed(self, request: Any) -> None:
        self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and self.expected.get(response.url) != response.status:
            self.problems.append(f"HTTP {response.status}: {response.url}")


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail(f"CI=true, so the browser tests must run, but {NO_CHROMIUM}")
        pytest.skip(NO_CHROMIUM)
    return CHROMIUM


@pytest.fixture
def artefacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``--artefacts DIR``, else ``$HOTPAPERS_TEST_ARTEFACTS`` (.ci/run
    sets it, so CI keeps them in the checkout), else pytest's base temporary directory."""
    chosen = request.config.getoption("--artefacts", default=None)
    chosen = chosen or os.environ.get("HOTPAPERS_TEST_ARTEFACTS")
    path = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "browser-artefacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The archive on 127.0.0.1 (a free port) over a seeded SQLite file."""
    async with Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'archive.db'}") as db:
        seeded = await seed(db, extra_days=1)
        app = web.Application()
        app.add_routes(routes(db, Settings(), clock=lambda: CLOCK))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            host, port = runner.addresses[0][:2]
            yield Served(f"http://{host}:{port}", seeded)
        finally:
            await runner.cleanup()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    # Chromium's sandbox needs user namespaces, which root in a container does not get.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            yield launched
        finally:
            await launched.close()


async def new_context(browser: Browser, viewport: dict[str, int], scheme: str) -> BrowserContext:
    return await browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        color_scheme=scheme,  # type: ignore[arg-type]
        java_script_enabled=True,  # for the checks below; the pages themselves have none
    )


def shot_name(path: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    return name or "index"


# What a page must be, checked in the browser.
PAGE_FACTS = """() => {
  const doc = document.documentElement;
  return {
    scripts: document.scripts.length,
    overflow: doc.scrollWidth - doc.clientWidth,
    lang: doc.lang,
    h1: document.querySelectorAll('h1').length,
    stylesheets: document.styleSheets.length,
    links: [...document.querySelectorAll('a[href], link[href]')].map(e => e.href),
  };
}"""

# Every element with its own text, its colour against the background it is drawn on
# (the nearest ancestor's opaque one): the WCAG contrast ratio, 4.5:1 at least (3:1 for large
# text). Visually hidden text (clipped to 1px) is read by screen readers, not seen: skipped.
CONTRAST = """() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const channel = (c) => {
    c /= 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) =>
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const found = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    if (box.width <= 1 || box.height <= 1) continue;
    const fg = luminance(rgb(style.color).slice(0, 3));
    const bg = luminance(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const text = el.textContent.trim().slice(0, 40);
    found.push({tag: el.tagName, text, ratio, need: large ? 3 : 4.5});
  }
  return found;
}"""


def same_origin(url: str, base: str) -> bool:
    return urlsplit(url).netloc == urlsplit(base).netloc


async def crawl(
    context: BrowserContext, served: Served, watch: Watch, shots: Path
) -> dict[str, int]:
    """Load every page of the site reachable from the index and the two archives (their
    addresses are not linked from the index: servers share them), screenshot each, and
    fetch every other link of the site (feeds, stylesheet, icon); returns each URL's status."""
    page = await context.new_page()
    watch.attach(page)
    base = served.base
    starts = ["/", f"/s/{served.seeded.slug}/", f"/s/{served.seeded.hostile_slug}/"]
    queue = deque(base + path for path in starts)
    statuses: dict[str, int] = {}
    while queue:
        url = queue.popleft().split("#", 1)[0]
        if url in statuses:
            continue
        assert len(statuses) < MAX_PAGES, "the crawl went on and on: a link loop?"
        path = urlsplit(url).path
        if path.startswith("/static/") or path.endswith(("/feed.atom", "/feed.json")):
            response = await context.request.get(url)
            statuses[url] = response.status
            continue
        answer = await page.goto(url, wait_until="load")
        assert answer is not None
        statuses[url] = answer.status
        assert answer.headers["content-type"] == "text/html; charset=utf-8", url
        facts = await page.evaluate(PAGE_FACTS)
        assert facts["scripts"] == 0, url
        assert facts["overflow"] <= 0, f"{url} is wider than the screen by {facts['overflow']}px"
        assert facts["lang"] == "en"
        assert facts["h1"] == 1, url
        assert facts["stylesheets"] == 1, url  # and it loaded
        await page.screenshot(path=shots / f"{shot_name(path)}.png", full_page=True)
        for link in facts["links"]:
            if same_origin(link, base):
                queue.append(link)
            else:
                # Outside links are never fetched here (no network): http(s) only.
                assert link.startswith(("https://", "http://")), link
    await page.close()
    return statuses


@pytest.mark.parametrize("size", SIZES)
async def test_every_page_and_link_of_the_site_loads_cleanly(
    browser: Browser, served: Served, artefacts: Path, size: tuple[str, dict[str, int], str]
) -> None:
    name, viewport, scheme = size
    context = await new_context(browser, viewport, scheme)
    watch = Watch()
    shots = artefacts / name
    shots.mkdir(exist_ok=True)
    try:
        statuses = await crawl(context, served, watch, shots)
    finally:
        await context.close()
    broken = {url: status for url, status in statuses.items() if status != 200}
    assert broken == {}
    assert watch.problems == []
    seeded = served.seeded
    paths = {urlsplit(url).path for url in statuses}
    # Every kind of page was reached, and every feed.
    assert {
        "/",
        f"/daily/{DAY}",
        f"/daily/{TODAY}",
        "/daily/feed.atom",
        "/daily/feed.json",
        f"/s/{seeded.slug}/",
        f"/s/{seeded.slug}/{TODAY}",
        f"/s/{seeded.slug}/{DAY}",
        f"/s/{seeded.slug}/{DAY - dt.timedelta(days=1)}",
        f"/s/{seeded.slug}/feed.atom",
        f"/s/{seeded.slug}/feed.json",
        f"/s/{seeded.hostile_slug}/{TODAY}",
        "/static/archive.css",
        "/static/favicon.svg",
    } <= paths
    pngs = sorted(p.name for p in shots.glob("*.png"))
    assert "index.png" in pngs
    assert f"daily-{DAY}.png" in pngs
    assert len(pngs) >= 8


@pytest.mark.parametrize("size", SIZES)
async def test_error_pages_render_cleanly(
    browser: Browser, served: Served, artefacts: Path, size: tuple[str, dict[str, int], str]
) -> None:
    name, viewport, scheme = size
    context = await new_context(browser, viewport, scheme)
    watch = Watch()
    page = await context.new_page()
    watch.attach(page)
    hidden = served.seeded.hidden_slug
    try:
        for path, status in (
            ("/s/no-such-server/", 404),
            (f"/s/{hidden}/{TODAY}", 404),  # unpublished: the same page
            ("/daily/2020-13-45", 400),
            (f"/s/{served.seeded.slug}/?page=abc", 400),
        ):
            url = served.base + path
            watch.expected[url] = status
            answer = await page.goto(url)
            assert answer is not None
            assert answer.status == status, path
            facts = await page.evaluate(PAGE_FACTS)
            assert facts["scripts"] == 0
            assert facts["stylesheets"] == 1
            assert facts["overflow"] <= 0
            assert facts["h1"] == 1
            await page.screenshot(path=artefacts / name / f"error-{status}-{shot_name(path)}.png")
    finally:
        await context.close()
    assert watch.problems == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_text_contrast_meets_wcag_aa_in_both_colour_schemes(
    browser: Browser, served: Served, scheme: str
) -> None:
    context = await new_context(browser, DESKTOP, scheme)
    page = await context.new_page()
    low: list[dict[str, Any]] = []
    checked = 0
    try:
        for path in (
            "/",
            f"/daily/{DAY}",
            f"/s/{served.seeded.slug}/",
            f"/s/{served.seeded.hostile_slug}/{TODAY}",
            "/s/no-such-server/",
        ):
            await page.goto(served.base + path)
            found = await page.evaluate(CONTRAST)
            checked += len(found)
            low += [f | {"page": path} for f in found if f["ratio"] < f["need"]]
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    finally:
        await context.close()
    assert checked > 100
    assert low == []
    # The schemes really differ (dark is not light's colours).
    assert background == ("rgb(255, 255, 255)" if scheme == "light" else "rgb(18, 20, 23)")


async def test_the_keyboard_focus_is_visible_and_skips_to_the_content(
    browser: Browser, served: Served, artefacts: Path
) -> None:
    context = await new_context(browser, PHONE, "light")
    page = await context.new_page()
    try:
        await page.goto(f"{served.base}/daily/{DAY}")
        await page.keyboard.press("Tab")
        focused = await page.evaluate(FOCUSED)
        assert focused["text"] == "Skip to content"
        assert focused["outline"] >= 2
        assert focused["visible"], focused
        await page.screenshot(path=artefacts / "focus-skip-link.png")
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "content"
        await page.keyboard.press("Tab")  # the first link of the content
        focused = await page.evaluate(FOCUSED)
        assert focused["outline"] >= 2
        assert focused["visible"], focused
        assert focused["text"].startswith("abs")
    finally:
        await context.close()


FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    text: el.textContent.trim(),
    outline: style.outlineStyle === 'none' ? 0 : parseFloat(style.outlineWidth),
    visible: box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight && box.right <= innerWidth,
  };
}"""
