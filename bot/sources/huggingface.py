"""Hugging Face Daily Papers as a popularity source: papers featured in a window."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from pydantic import Field, SecretStr

from bot.config import HttpUrl, Section
from bot.core.arxiv_ids import extract_arxiv_ids
from bot.core.errors import MalformedResponseError, SourceError
from bot.core.models import Mention, Metric, Window
from bot.sources.base import parse_timestamp
from bot.sources.http import HttpClient

log = logging.getLogger(__name__)

UTC = dt.UTC
NAME = "huggingface"
_OK = frozenset({200, 401, 403})


def window_dates(window: Window) -> Iterator[dt.date]:
    """Every UTC date the half-open window touches."""
    day = window.start.astimezone(UTC).date()
    # The end is exclusive: a window ending at midnight does not touch the next day.
    last = (window.end.astimezone(UTC) - dt.timedelta(microseconds=1)).date()
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


class HuggingFaceSettings(Section):
    enabled: bool = True
    api_url: HttpUrl = "https://huggingface.co/api"
    limit: int = Field(100, ge=1, le=100)
    max_pages: int = Field(5, ge=1)
    # Anonymous Hub API callers get 500 requests per fixed 5-minute window per IP.
    requests_per_window: int = Field(500, ge=1)
    window_seconds: float = Field(300.0, gt=0)


class HuggingFaceSource:
    """Collects the papers featured on HF Daily Papers in a window, one query per UTC date.

    Each date is paged with ``p``/``limit`` until a short page (at most ``max_pages``). An
    entry is one post: its id is the paper id, its time the top-level ``publishedAt`` (when it
    was featured), its metrics the paper's upvotes and the entry's comments. The answer must be
    a bare JSON array; only ``paper.id`` and a timestamp are required of an entry. ``limiter``
    (the Hub's rate limit, built once per process) is entered around every HTTP attempt.
    """

    name = NAME

    def __init__(
        self,
        http: HttpClient,
        settings: HuggingFaceSettings,
        token: SecretStr | None = None,
        *,
        limiter: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._token = token
        self.limiter = limiter
        self._url = f"{settings.api_url.rstrip('/')}/daily_papers"

    def __repr__(self) -> str:
        token_set = self._token is not None
        return f"HuggingFaceSource(api_url={self._settings.api_url!r}, token_set={token_set})"

    @property
    def requests(self) -> int:
        return self._http.requests

    async def collect(self, window: Window) -> list[Mention]:
        """Every Daily Papers entry featured in ``[window.start, window.end)``."""
        headers = {}
        if self._token is not None and self._token.get_secret_value().strip():
            headers["Authorization"] = f"Bearer {self._token.get_secret_value().strip()}"
        found: dict[str, Mention] = {}
        for day in window_dates(window):
            await self._collect_day(day, window, headers, found)
        log.info(
            "huggingface: %d papers featured in %s to %s",
            len(found),
            window.start.isoformat(),
            window.end.isoformat(),
        )
        return list(found.values())

    async def _collect_day(
        self, day: dt.date, window: Window, headers: dict[str, str], found: dict[str, Mention]
    ) -> None:
        limit = self._settings.limit
        for page in range(self._settings.max_pages):
            params = {"date": day.isoformat(), "limit": str(limit), "p": str(page)}
            response = await self._http.get(
                self._url, params=params, headers=headers, ok_statuses=_OK, throttle=self.limiter
            )
            if response.status in (401, 403):
                raise SourceError(
                    NAME, f"Hugging Face rejected the token ({response.status}); check HF_TOKEN"
                )
            entries = response.json(NAME)
            if not isinstance(entries, list):
                raise MalformedResponseError(
                    NAME,
                    f"daily_papers answered a JSON {type(entries).__name__}, not an array",
                )
            for entry in entries:
                mention = _mention(entry)
                if mention is not None and mention.created_at in window:
                    found.setdefault(mention.post_id, mention)
            if len(entries) < limit:
                return
        log.warning(
            "huggingface: stopped after %d pages (sources.huggingface.max_pages) for %s; "
            "more papers may be featured that day",
            self._settings.max_pages,
            day.isoformat(),
        )


def _mention(entry: Any) -> Mention | None:
    if not isinstance(entry, dict):
        raise MalformedResponseError(NAME, "a daily_papers entry is not an object")
    paper = entry.get("paper")
    if not isinstance(paper, dict):
        raise MalformedResponseError(NAME, "a daily_papers entry has no `paper` object")
    paper_id = paper.get("id")
    if not isinstance(paper_id, str) or not paper_id.strip():
        raise MalformedResponseError(NAME, "a daily_papers entry has no `paper.id`")
    arxiv_ids = extract_arxiv_ids(f"arXiv:{paper_id.strip()}")
    if not arxiv_ids:
        log.debug("huggingface: paper %r is not an arXiv id; skipped", paper_id)
        return None
    created_at = _featured_at(entry, paper, paper_id)
    title = entry.get("title")
    if not isinstance(title, str):
        # paper.title keeps arXiv's hard line breaks; the top-level one is clean.
        raw = paper.get("title")
        title = " ".join(raw.split()) if isinstance(raw, str) else ""
    submitter = entry.get("submittedBy")
    submitter = submitter if isinstance(submitter, dict) else {}
    author = submitter.get("name")
    fullname = submitter.get("fullname")
    return Mention(
        source=NAME,
        post_id=paper_id,
        url=f"https://huggingface.co/papers/{paper_id}",
        author=author if isinstance(author, str) and author else "huggingface",
        text=title,
        created_at=created_at,
        arxiv_ids=tuple(arxiv_ids),
        metrics={
            Metric.UPVOTES.value: _count(paper.get("upvotes"), "paper.upvotes", paper_id),
            Metric.COMMENTS.value: _count(entry.get("numComments"), "numComments", paper_id),
        },
        author_name=fullname if isinstance(fullname, str) and fullname else None,
    )


def _featured_at(entry: dict[str, Any], paper: dict[str, Any], paper_id: str) -> dt.datetime:
    """When the paper was featured: top-level publishedAt, else the later fields' fallbacks."""
    for value in (
        entry.get("publishedAt"),
        paper.get("submittedOnDailyAt"),
        paper.get("publishedAt"),
    ):
        if value is not None:
            return parse_timestamp(value, NAME, f"paper {paper_id} timestamp")
    raise MalformedResponseError(NAME, f"paper {paper_id} has no `publishedAt`")


def _count(value: Any, key: str, paper_id: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedResponseError(NAME, f"paper {paper_id} has a non-integer `{key}`")
    return value
