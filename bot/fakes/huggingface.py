"""A fake of the Hugging Face Daily Papers API on 127.0.0.1 that speaks the real wire format."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from bot.fakes.server import FakeServer, json_response

log = logging.getLogger(__name__)

UTC = dt.UTC
CONTENT_TYPE = "application/json; charset=utf-8"
API_PREFIX = "/api"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
INVALID_TOKEN = {"error": "Invalid credentials in Authorization header"}


def hf_time(moment: dt.datetime) -> str:
    """Hugging Face's timestamps: ``2024-10-25T01:32:39.713Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _object_id(*parts: str) -> str:
    # 24 hex digits, the shape of the Mongo ids HF uses for _id and discussionId.
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bad_request(message: str) -> web.Response:
    return json_response({"error": message}, status=400, content_type=CONTENT_TYPE)


class FakeHuggingFace(FakeServer):
    """``GET /api/daily_papers`` over an in-memory list of Daily Papers entries.

    Filters by ``date=YYYY-MM-DD`` (or ``week=YYYY-Www`` / ``month=YYYY-MM``; no filter = the
    latest day that has papers) on the entry's top-level ``publishedAt`` (when it was featured),
    sorts by upvotes (``sort=publishedAt`` for newest first), pages with ``p``/``limit`` and
    answers a bare JSON array, as the real API does. With ``token`` set, a request carrying a
    different Bearer token gets HF's 401; anonymous requests are served, as HF serves them.
    """

    content_type = CONTENT_TYPE
    malformed_body = b'[{"paper":{"id":"2410.17243","authors":[{"_id":"671b005026d8'

    def __init__(self, *, token: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host=host, port=port)
        self.token = token
        self._entries: list[dict[str, Any]] = []
        self.app.router.add_get(f"{API_PREFIX}/daily_papers", self._daily_papers)

    @property
    def api_url(self) -> str:
        """The value for ``sources.huggingface.api_url``: ``http://127.0.0.1:PORT/api``."""
        return f"{self.url}{API_PREFIX}"

    # -- store -----------------------------------------------------------------------------

    def add_daily_paper(
        self,
        arxiv_id: str,
        title: str,
        featured_at: dt.datetime,
        *,
        upvotes: int = 0,
        num_comments: int = 0,
        submitted_by: str = "hf-user",
        submitter_fullname: str | None = None,
        authors: Iterable[str] = ("A. Author",),
        summary: str = "",
        published_at: dt.datetime | None = None,
        paper_title: str | None = None,
        extra: Mapping[str, Any] | None = None,
        paper_extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store an entry in the Oct-2024 shape of the real response; returns it.

        ``featured_at`` is the top-level ``publishedAt`` (when it made Daily Papers);
        ``published_at`` the arXiv date in ``paper.publishedAt``. ``extra``/``paper_extra`` add
        the fields the API grew later (``organization``, ``paper.githubRepo``, …).
        """
        if featured_at.tzinfo is None:
            raise ValueError("featured_at must be timezone-aware")
        arxiv_date = published_at or featured_at - dt.timedelta(days=1)
        paper: dict[str, Any] = {
            "id": arxiv_id,
            "authors": [
                {"_id": _object_id(arxiv_id, "author", name), "name": name, "hidden": False}
                for name in authors
            ],
            "publishedAt": hf_time(arxiv_date),
            "title": paper_title or title,
            "summary": summary,
            "upvotes": upvotes,
            "discussionId": _object_id(arxiv_id, "discussion"),
        }
        paper.update(paper_extra or {})
        entry: dict[str, Any] = {
            "paper": paper,
            "publishedAt": hf_time(featured_at),
            "title": title,
            "thumbnail": (
                f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv_id}.png"
            ),
            "numComments": num_comments,
            "submittedBy": {
                "avatarUrl": f"/avatars/{_object_id(submitted_by)[:32]}.svg",
                "fullname": submitter_fullname or submitted_by,
                "name": submitted_by,
                "type": "user",
                "isPro": False,
                "isHf": False,
                "isMod": False,
            },
        }
        entry.update(extra or {})
        return self.add_entry(entry)

    def add_entry(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Store a raw entry (e.g. one of the real fixture's); its top-level ``publishedAt``
        decides which ``date=`` serves it."""
        stored = dict(entry)
        if _parse_time(stored.get("publishedAt")) is None:
            raise ValueError("an entry needs a top-level publishedAt")
        self._entries.append(stored)
        return stored

    # -- handler ---------------------------------------------------------------------------

    async def _daily_papers(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        if self.token is not None and auth is not None and auth != f"Bearer {self.token}":
            return json_response(INVALID_TOKEN, status=401, content_type=CONTENT_TYPE)
        q = request.query
        try:
            limit = int(q.get("limit", str(DEFAULT_LIMIT)))
            page = int(q.get("p", "0"))
        except ValueError:
            return _bad_request("Invalid `limit` or `p`")
        if not 1 <= limit <= MAX_LIMIT:
            return _bad_request(f'"limit" must be between 1 and {MAX_LIMIT}')
        if page < 0:
            return _bad_request('"p" must be greater than or equal to 0')

        featured = [(e, _parse_time(e["publishedAt"])) for e in self._entries]
        days = {when.date() for _, when in featured if when is not None}
        if "date" in q:
            try:
                day = dt.date.fromisoformat(q["date"])
            except ValueError:
                return _bad_request('"date" must be in the YYYY-MM-DD format')
            wanted = {day}
        elif "week" in q:
            match = re.fullmatch(r"(\d{4})-W(\d{2})", q["week"])
            if match is None:
                return _bad_request('"week" must be in the YYYY-Www format')
            year, week = int(match.group(1)), int(match.group(2))
            wanted = {d for d in days if d.isocalendar()[:2] == (year, week)}
        elif "month" in q:
            match = re.fullmatch(r"(\d{4})-(\d{2})", q["month"])
            if match is None:
                return _bad_request('"month" must be in the YYYY-MM format')
            wanted = {d for d in days if (d.year, d.month) == (int(match[1]), int(match[2]))}
        else:
            wanted = {max(days)} if days else set()

        chosen = [(e, w) for e, w in featured if w is not None and w.date() in wanted]
        if q.get("sort") == "publishedAt":
            chosen.sort(key=lambda pair: pair[1], reverse=True)
        else:
            chosen.sort(key=lambda pair: _upvotes(pair[0]), reverse=True)
        window = chosen[page * limit : (page + 1) * limit]
        return json_response([e for e, _ in window], content_type=CONTENT_TYPE)


def _upvotes(entry: Mapping[str, Any]) -> int:
    paper = entry.get("paper")
    value = paper.get("upvotes") if isinstance(paper, dict) else None
    return value if isinstance(value, int) else 0
