"""Bluesky as a popularity source: Jetstream posts that link arXiv, and their AppView counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_settings import NoDecode

from bot.config import HttpUrl, Section, WsUrl, comma_list
from bot.core.models import Mention

NAME = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"
PUBLIC_JETSTREAMS = (
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
)


class BlueskySettings(Section):
    enabled: bool = False  # TEMP
    jetstream_urls: Annotated[list[WsUrl], NoDecode, BeforeValidator(comma_list)] = Field(
        default_factory=lambda: list(PUBLIC_JETSTREAMS), min_length=1
    )
    api_url: HttpUrl = "https://public.api.bsky.app"  # the AppView: app.bsky.feed.getPosts
    auth_url: HttpUrl = "https://bsky.social"  # the PDS/entryway: createSession, refreshSession
    # Accounts linking more distinct papers than this in one UTC day are feeds: stored, weigh 0.
    max_papers_per_author_day: int = Field(20, ge=1)
    ignore_handles: Annotated[list[str], NoDecode, BeforeValidator(comma_list)] = Field(
        default_factory=list
    )
    # Stream: reconnect when silent this long; save the cursor at most this often.
    idle_timeout_seconds: float = Field(60.0, gt=0)
    cursor_save_seconds: float = Field(5.0, gt=0)
    # On restart, resume this much before the saved cursor (duplicates are absorbed).
    resume_rewind_seconds: float = Field(5.0, ge=0)
    lookback_hours: float = Field(36.0, gt=0)  # how far back Jetstream replays
    # `hotpapers fetch`: the replay has reached the live edge when no frame came for this long;
    # the stream is unreachable when the first frame takes longer than replay_connect_seconds.
    replay_idle_seconds: float = Field(3.0, gt=0)
    replay_connect_seconds: float = Field(30.0, gt=0)
    reconnect_initial_seconds: float = Field(1.0, gt=0)
    reconnect_max_seconds: float = Field(60.0, gt=0)
    # AppView: public API limit is 3000 requests per 5 minutes per IP.
    requests_per_window: int = Field(3000, ge=1)
    window_seconds: float = Field(300.0, gt=0)


@dataclass(frozen=True, slots=True)
class PostUpsert:
    """A post (create or update) that links at least one arXiv paper."""

    mention: Mention  # source "bluesky", post_id = the at-uri, metrics empty
    time_us: int


@dataclass(frozen=True, slots=True)
class PostDelete:
    """A deleted post (we may or may not hold it)."""

    uri: str
    time_us: int


@dataclass(frozen=True, slots=True)
class AccountDelete:
    """An account event with ``active: false`` and ``status: deleted``: drop all its posts."""

    did: str
    time_us: int


StreamEvent = PostUpsert | PostDelete | AccountDelete


def post_uri(did: str, rkey: str) -> str:
    return f"at://{did}/{POST_COLLECTION}/{rkey}"


def post_url(author: str, rkey: str) -> str:
    """The web link of a post; ``author`` is a handle or, before one is known, the DID."""
    return f"https://bsky.app/profile/{author}/post/{rkey}"


def did_of(uri: str) -> str:
    """``at://did:plc:x/app.bsky.feed.post/r`` → ``did:plc:x``."""
    return uri.removeprefix("at://").split("/", 1)[0]


def micros(moment: dt.datetime) -> int:
    """An aware datetime as unix microseconds (Jetstream's cursor unit)."""
    return round(moment.timestamp() * 1_000_000)
