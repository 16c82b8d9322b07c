"""The public archive on the web: each opted-in server's sent digests, the global daily
rankings, their Atom and JSON feeds, and the stylesheet (aiohttp handlers, Jinja2 templates).

:func:`routes` is what the web server (``bot.web.app``) mounts. The handlers are thin: parse the
address, ask :class:`~bot.services.archive.ArchiveReader`, render a template. A server's pages
answer 404 unless its moderators turned its archive on, exactly as for a slug that never
existed, so the site tells no one which servers use the bot. Outside text (titles, abstracts,
authors, posts, slugs) only ever reaches a page through Jinja2's autoescaping, and only http(s)
addresses become links. Pages need no JavaScript, and their Content-Security-Policy allows
none: an injected script could not run even if escaping failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from bot.core.errors import HotPapersError
from bot.core.models import Mention, Paper, RankedPaper
from bot.runtime import feed_rules, utc_now
from bot.services.archive import ArchiveReader
from bot.services.digests import DigestService
from bot.settings import Settings
from bot.sources.registry import BY_KEY, REGISTRY, metrics_text, source_name
from bot.storage.archive import SLUG, SLUG_MAX, ArchiveRepository
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from bot.web.feeds import ATOM_TYPE, JSON_FEED_TYPE, Feed, FeedEntry, atom, json_feed

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PAGE = re.compile(r"^[1-9]\d{0,5}$")
# An address that may become a link: http(s), a host, nothing a browser would strip or bend.
_WEB_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f<>\"'`\\]+$", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
POST_TEXT_MAX = 600
STATIC_TYPES = {"archive.css": "text/css", "favicon.svg": "image/svg+xml"}
FEED_KINDS = {"feed.atom": "atom", "feed.json": "json"}

# No script, no frame, no form, nothing from elsewhere: the pages are text, links and one
# stylesheet of this site.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The slug of a server's archive is not passed on to arXiv or the social sites.
    "Referrer-Policy": "no-referrer",
}
PAGE_CACHE = "public, max-age=60"
# A server's pages are checked again on every request, even by a cache in front: turned off,
# its archive must be gone at once.
SERVER_CACHE = "no-cache"
STATIC_CACHE = "public, max-age=86400"


def routes(
    db: Database, settings: Settings, *, clock: Clock = utc_now
) -> list[web.AbstractRouteDef]:
    """The archive's routes, for ``bot.web.app.make_app`` (or a test's Application).

    ``/`` (the index of daily pages), ``/daily/<YYYY-MM-DD>`` and ``/daily/feed.{atom,json}``
    (every category's ranking), ``/s/<slug>/``, ``/s/<slug>/<YYYY-MM-DD>`` and
    ``/s/<slug>/feed.{atom,json}`` (a server's sent digests, when published), ``/static/…``.
    """
    limits, ignored = feed_rules(settings)
    digests = DigestService(
        papers=PaperRepository(db),
        mentions=MentionRepository(db),
        runs=RunRepository(db),
        ranking=settings.ranking,
        clock=clock,
        feed_limits=limits,
        ignored_authors=ignored,
    )
    reader = ArchiveReader(archive=ArchiveRepository(db), digests=digests, clock=clock)
    site = _Site(reader, settings.web.public_url)
    guarded = site.guarded
    return [
        web.get("/", guarded(site.index)),
        web.get("/static/{name}", guarded(site.static)),
        web.get("/daily/{name}", guarded(site.daily)),
        web.get("/s/{slug}", guarded(site.server_slash)),
        web.get("/s/{slug}/", guarded(site.server_index)),
        web.get("/s/{slug}/{name}", guarded(site.server_page)),
        # Anything else under the archive's prefixes: its own 404 page, not aiohttp's.
        web.get("/daily/{tail:.*}", guarded(site.not_found)),
        web.get("/s/{tail:.*}", guarded(site.not_found)),
    ]


class _Problem(Exception):
    """A request the archive answers with an error page (404, 400)."""

    def __init__(self, status: int, kind: str) -> None:
        super().__init__(kind)
        self.status = status
        self.kind = kind  # which sentence the error template shows


@dataclass(frozen=True, slots=True)
class _Paths:
    """Every address the pages link, under the site's base path (``web.public_url``'s)."""

    base: str
    versions: dict[str, str]

    def home(self) -> str:
        return f"{self.base}/"

    def daily(self, day: dt.date) -> str:
        return f"{self.base}/daily/{day.isoformat()}"

    def daily_feed(self, kind: str) -> str:
        return f"{self.base}/daily/feed.{kind}"

    def server(self, slug: str, page: int = 1) -> str:
        return f"{self.base}/s/{slug}/" + (f"?page={page}" if page > 1 else "")

    def server_day(self, slug: str, day: dt.date) -> str:
        return f"{self.base}/s/{slug}/{day.isoformat()}"

    def server_feed(self, slug: str, kind: str) -> str:
        return f"{self.base}/s/{slug}/feed.{kind}"

    def static(self, name: str) -> str:
        # The version makes a changed stylesheet fetched again despite a day of caching.
        return f"{self.base}/static/{name}?v={self.versions[name]}"


@dataclass(frozen=True, slots=True)
class _FeedLink:
    type: str
    title: str
    href: str


@dataclass(frozen=True, slots=True)
class _Static:
    body: bytes
    content_type: str
    etag: str


class _Words:
    """The feeds' plain-text sentences, written in ``templates/feed_text.txt`` (macros)."""

    def __init__(self, env: jinja2.Environment) -> None:
        self._macros: Any = env.get_template("feed_text.txt").module

    def _say(self, name: str, *args: Any) -> str:
        return clean(str(getattr(self._macros, name)(*args)))

    def feed_title(self, slug: str | None) -> str:
        return self._say("feed_title", slug)

    def feed_subtitle(self, slug: str | None) -> str:
        return self._say("feed_subtitle", slug)

    def alternate(self, slug: str | None, kind: str) -> str:
        return self._say("alternate", slug, kind)

    def entry_title(self, day: dt.date) -> str:
        return self._say("entry_title", day)

    def summary(self, papers: Sequence[Paper]) -> str:
        return self._say("summary", papers)


class _Site:
    """The handlers, over one reader and one template environment (nothing module-wide)."""

    def __init__(self, reader: ArchiveReader, public_url: str | None) -> None:
        self.reader = reader
        parts = urlsplit(public_url) if public_url else None
        # Absolute links in feeds: the configured public address, else the request's own.
        self.origin = f"{parts.scheme}://{parts.netloc}" if parts else None
        self.statics = {name: _load_static(name, kind) for name, kind in STATIC_TYPES.items()}
        self.paths = _Paths(
            base=parts.path.rstrip("/") if parts else "",
            versions={name: s.etag[:10] for name, s in self.statics.items()},
        )
        self.env = _environment(self.paths)
        self.words = _Words(self.env)

    # --- plumbing -----------------------------------------------------------------------------

    def guarded(self, handler: Handler) -> Handler:
        """Every answer gets the security headers; a bad address or a failure becomes an
        error page (never a traceback): 400/404 as asked, 503 when the database fails."""

        async def run(request: web.Request) -> web.StreamResponse:
            try:
                response = await handler(request)
            except _Problem as problem:
                response = self.error(problem.status, problem.kind)
            except web.HTTPException:
                raise
            except HotPapersError as exc:
                log.warning("archive: %s failed: %s", request.rel_url.path, exc)
                response = self.error(503, "unavailable")
            except Exception:
                log.exception("archive: %s failed", request.rel_url.path)
                response = self.error(500, "internal")
            response.headers.update(SECURITY_HEADERS)
            return response

        return run

    def render(
        self, template: str, status: int = 200, *, cache: str = PAGE_CACHE, **context: Any
    ) -> web.Response:
        context.setdefault("feeds", [])
        text = self.env.get_template(template).render(**context)
        response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
        response.headers["Cache-Control"] = cache if status == 200 else "no-store"
        return response

    def error(self, status: int, kind: str) -> web.Response:
        return self.render("error.html", status=status, kind=kind)

    def absolute(self, request: web.Request, path: str) -> str:
        origin = self.origin or str(request.url.origin())
        return origin + path

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        raise _Problem(404, "not_found")

    async def static(self, request: web.Request) -> web.StreamResponse:
        found = self.statics.get(request.match_info["name"])
        if found is None:
            raise _Problem(404, "not_found")
        response = _cached(request, found.body, found.content_type, found.etag)
        response.headers["Cache-Control"] = STATIC_CACHE
        return response

    # --- the global pages ---------------------------------------------------------------------

    def _feed_links(self, slug: str | None) -> list[_FeedLink]:
        """The pages' ``<link rel="alternate">``: the server's feeds, or the global ones."""
        links = []
        for kind, content_type in (("atom", ATOM_TYPE), ("json", JSON_FEED_TYPE)):
            href = (
                self.paths.daily_feed(kind) if slug is None else self.paths.server_feed(slug, kind)
            )
            links.append(_FeedLink(content_type, self.words.alternate(slug, kind), href))
        return links

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self.render(
            "index.html",
            days=await self.reader.days(),
            today=self.reader.today(),
            feeds=self._feed_links(None),
        )

    async def daily(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name in FEED_KINDS:
            return await self.global_feed(request, FEED_KINDS[name])
        day = _parse_day(name)
        if not await self.reader.has_day(day):
            raise _Problem(404, "no_day")
        digest = await self.reader.day(day)
        first = await self.reader.first_day()
        before = day - dt.timedelta(days=1)
        after = day + dt.timedelta(days=1)
        return self.render(
            "daily.html",
            digest=digest,
            today=self.reader.today(),
            previous=before if first is not None and before >= first else None,
            next=after if after <= self.reader.today() else None,
            feeds=self._feed_links(None),
        )

    async def global_feed(self, request: web.Request, kind: str) -> web.StreamResponse:
        entries = []
        for digest in await self.reader.global_feed():
            url = self.absolute(request, self.paths.daily(digest.day))
            papers = tuple(r.paper for r in digest.papers)
            entries.append(self._entry(url, digest.day, digest.generated_at, papers, digest.papers))
        feed = self._feed(
            request,
            slug=None,
            home=self.paths.home(),
            atom_path=self.paths.daily_feed("atom"),
            json_path=self.paths.daily_feed("json"),
            entries=entries,
        )
        return _feed_response(request, feed, kind, PAGE_CACHE)

    # --- a server's archive -------------------------------------------------------------------

    async def _guild(self, request: web.Request) -> tuple[int, str]:
        slug = request.match_info["slug"]
        if len(slug) > SLUG_MAX + 8 or not SLUG.match(slug):
            raise _Problem(404, "not_found")
        guild_id = await self.reader.server(slug)
        if guild_id is None:
            raise _Problem(404, "not_found")
        return guild_id, slug

    async def server_slash(self, request: web.Request) -> web.StreamResponse:
        _guild_id, slug = await self._guild(request)
        raise web.HTTPPermanentRedirect(self.paths.server(slug))

    async def server_index(self, request: web.Request) -> web.StreamResponse:
        guild_id, slug = await self._guild(request)
        text = request.query.get("page", "1")
        if not _PAGE.match(text):
            raise _Problem(400, "bad_page")
        page = await self.reader.listing(guild_id, int(text))
        if page is None:
            raise _Problem(404, "no_page")
        return self.render(
            "server_index.html",
            cache=SERVER_CACHE,
            slug=slug,
            page=page,
            feeds=self._feed_links(slug),
        )

    async def server_page(self, request: web.Request) -> web.StreamResponse:
        guild_id, slug = await self._guild(request)
        name = request.match_info["name"]
        if name in FEED_KINDS:
            return await self.server_feed(request, guild_id, slug, FEED_KINDS[name])
        day = _parse_day(name)
        found = await self.reader.server_day(guild_id, day)
        if found is None:
            raise _Problem(404, "no_digest")
        return self.render(
            "server_day.html",
            cache=SERVER_CACHE,
            slug=slug,
            found=found,
            digest=found.digest,
            feeds=self._feed_links(slug),
        )

    async def server_feed(
        self, request: web.Request, guild_id: int, slug: str, kind: str
    ) -> web.StreamResponse:
        entries = []
        for day in await self.reader.feed(guild_id):
            url = self.absolute(request, self.paths.server_day(slug, day.sent.day))
            updated = day.sent.finished_at or _end_of(day.sent.day)
            entries.append(self._entry(url, day.sent.day, updated, day.papers, None))
        feed = self._feed(
            request,
            slug=slug,
            home=self.paths.server(slug),
            atom_path=self.paths.server_feed(slug, "atom"),
            json_path=self.paths.server_feed(slug, "json"),
            entries=entries,
        )
        return _feed_response(request, feed, kind, SERVER_CACHE)

    # --- feeds --------------------------------------------------------------------------------

    def _entry(
        self,
        url: str,
        day: dt.date,
        updated: dt.datetime,
        papers: Sequence[Paper],
        ranked: Sequence[RankedPaper] | None,
    ) -> FeedEntry:
        """A day of a feed: its papers, with their counts when ``ranked`` has them."""
        context = {"papers": papers, "ranked": ranked, "day": day}
        return FeedEntry(
            id=url,
            url=url,
            title=self.words.entry_title(day),
            updated=updated,
            summary=self.words.summary(papers),
            content_html=self.env.get_template("feed_entry.html").render(**context),
        )

    def _feed(
        self,
        request: web.Request,
        *,
        slug: str | None,
        home: str,
        atom_path: str,
        json_path: str,
        entries: list[FeedEntry],
    ) -> Feed:
        updated = max((e.updated for e in entries), default=None) or self.reader.clock()
        return Feed(
            title=self.words.feed_title(slug),
            subtitle=self.words.feed_subtitle(slug),
            home_url=self.absolute(request, home),
            atom_url=self.absolute(request, atom_path),
            json_url=self.absolute(request, json_path),
            updated=updated,
            entries=entries,
        )


def _parse_day(text: str) -> dt.date:
    if not _DATE.match(text):
        raise _Problem(400, "bad_date")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _Problem(400, "bad_date") from None


def _end_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1)


def _etag(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def _cached(request: web.Request, body: bytes, content_type: str, etag: str) -> web.Response:
    """``body``, or 304 when the client holds this version already (feed readers ask so)."""
    if request.if_none_match and any(e.value == etag for e in request.if_none_match):
        response = web.Response(status=304)
    else:
        response = web.Response(body=body, content_type=content_type, charset="utf-8")
    response.etag = etag
    return response


def _feed_response(request: web.Request, feed: Feed, kind: str, cache: str) -> web.Response:
    if kind == "atom":
        body, content_type = atom(feed), ATOM_TYPE
    else:
        body, content_type = json_feed(feed).encode("utf-8"), JSON_FEED_TYPE
    response = _cached(request, body, content_type, _etag(body))
    response.headers["Cache-Control"] = cache
    return response


def _load_static(name: str, content_type: str) -> _Static:
    body = resources.files("bot.web").joinpath("static", name).read_bytes()
    return _Static(body, content_type, _etag(body))


# --- what the templates call -------------------------------------------------------------------


def _environment(paths: _Paths) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        # Every template escapes what it prints, but the plain-text feed summaries.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "xml"), disabled_extensions=("txt",), default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.update(
        url=paths,
        counts=counts,
        web_link=web_link,
        linkify=linkify,
        who=who,
        post_counts=post_counts,
        source_name=source_name,
        arxiv_listing=arxiv_listing,
        clean=clean,
        clip=clip,
        long_date=long_date,
        stamp=stamp,
    )
    env.filters["source_name"] = source_name
    return env


def clean(text: str) -> str:
    """Whitespace as one space (arXiv wraps long titles with double spaces)."""
    return " ".join(text.split())


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def web_link(url: str | None) -> str | None:
    """``url`` if it may be a link (http or https, with a host), else None: a post's address
    comes from outside, and ``javascript:`` or ``data:`` must never become a link."""
    if not url or not _WEB_URL.match(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def _trim_url(url: str) -> str:
    """Drop the sentence punctuation a URL was written against (keep balanced brackets)."""
    while url and url[-1] in ".,;:!?":
        url = url[:-1]
    while url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1]
    return url


def linkify(text: str) -> Markup:
    """Post text, escaped, with its http(s) addresses as links (nothing else is a link:
    markdown such as ``[x](javascript:…)`` stays text)."""
    parts: list[str] = []
    last = 0
    for found in _URL_IN_TEXT.finditer(text):
        url = _trim_url(found.group(0))
        link = web_link(url)
        if link is None:
            continue
        parts.append(str(escape(text[last : found.start()])))
        parts.append(f'<a href="{escape(link)}" rel="nofollow ugc">{escape(link)}</a>')
        last = found.start() + len(url)
    parts.append(str(escape(text[last:])))
    return Markup("".join(parts))  # noqa: S704 - every piece escaped above


def counts(ranked: RankedPaper) -> Iterator[tuple[str, str]]:
    """Each source's counts for the paper, in the registry's order: ("X", "1,000 reposts,
    155 likes")."""
    for entry in REGISTRY:
        metrics = ranked.by_source.get(entry.key)
        if metrics:
            yield entry.name, metrics_text(entry.key, metrics)
    for key, metrics in sorted(ranked.by_source.items()):
        if key not in BY_KEY and metrics:
            yield source_name(key), metrics_text(key, metrics)


def post_counts(mention: Mention) -> str:
    """The post's own counts: "1,000 reposts, 155 likes"."""
    return metrics_text(mention.source, mention.metrics) if mention.metrics else ""


def who(mention: Mention) -> str:
    """The post's author as the site names them: "AK (@ak92501)", or the handle alone."""
    name = clean(mention.author_name or "")
    handle = clean(mention.author)
    if name and name != handle:
        return f"{name} (@{handle})"
    return f"@{handle}" if handle else "someone"


def arxiv_listing(category: str) -> str:
    return f"https://arxiv.org/list/{quote(category, safe='.-')}/recent"


def long_date(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%B} {moment.day}, {moment.year}"


def stamp(moment: dt.datetime | None) -> str:
    return "" if moment is None else f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
