"""The source registry: one declaration per popularity source, which everything else loops over.

A source is its client module (settings model, client, parsing), its fake (``bot/fakes``), its
tests and one :class:`SourceEntry` in :data:`REGISTRY`. Settings, secrets, the runtime's
factories, default weights, score and post text in Discord and in the markdown post, ``/about``
and the README's source table all read these entries; nothing outside this module switches on a
source's name. A new metric is the only thing that also needs a migration (a metrics column).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter
from pydantic import SecretStr

from bot.config import Section
from bot.core.models import Mention, Metric
from bot.sources import bluesky, hackernews, huggingface, x
from bot.sources.base import PopularitySource
from bot.sources.http import HttpClient
from bot.sources.jetstream import JetstreamClient

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a factory may use to build its source: settings, secrets and shared resources."""

    settings: Any  # this source's own settings model (``entry.settings_model``)
    explicit: frozenset[str]  # the keys of its section that were written (file or environment)
    secrets: Mapping[str, SecretStr]  # this source's secrets present in the environment
    session: aiohttp.ClientSession
    http: HttpClient
    clock: Clock
    limiter: AbstractAsyncContextManager[Any]
    sleep: Callable[[float], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class Shown:
    """A metric as members read it: ``(metric, unit)`` → ``"1,000 reposts"``."""

    metric: str
    unit: str


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """Everything the rest of the bot knows about one popularity source."""

    key: str  # storage and settings key: ``sources.<key>``, ``by_source.<key>``
    name: str  # display name
    settings_model: type[Section]
    factory: Callable[[SourceContext], PopularitySource | None]  # None: off in this deployment
    metrics: tuple[Shown, ...]  # what it reports, in display order (score text, markdown line)
    default_weights: Mapping[str, float]
    # Every count its posts carry (``Mention.metrics``): what ``ranking.weights.<key>`` may weigh.
    counts: tuple[Metric, ...]
    post_label: Callable[[Mention], str]  # how a post is named in a list of top posts
    about: str  # one sentence for /about and the README: what is counted, and why so weighted
    reads: str  # README: what is read from the service
    credentials: str  # README: what credentials it takes, and what happens without them
    notes: str  # README: limits, pitfalls, how failures are handled
    secrets: tuple[str, ...] = ()  # environment variables holding its credentials
    markdown_tag: str = ""  # the seed post's front-matter tag; the display name by default
    # The seed's source: its counts open each paper's popularity lines ("retweets: …") and its
    # posts are the seed's embedded tweets.
    seed: bool = False
    markdown_units: tuple[Shown, ...] = ()  # the markdown line's metrics, if not ``metrics``
    # Accounts linking more distinct papers than this in a UTC day are feeds and weigh 0.
    feed_limit: Callable[[Any], int | None] = field(default=lambda _settings: None)
    ignored_authors: Callable[[Any], Iterable[str]] = field(default=lambda _settings: ())

    @property
    def tag(self) -> str:
        return self.markdown_tag or self.name

    @property
    def markdown_metrics(self) -> tuple[Shown, ...]:
        return self.markdown_units or self.metrics


def _shown(*pairs: str) -> tuple[Shown, ...]:
    return tuple(Shown(metric, metric) for metric in pairs)


def rate_limiter(settings: Any) -> AsyncLimiter:
    """``requests_per_window`` per ``window_seconds``: aiolimiter's leaky bucket lets a full
    window through at once, then one request per ``window_seconds / requests_per_window``."""
    return AsyncLimiter(settings.requests_per_window, settings.window_seconds)


def _x(ctx: SourceContext) -> PopularitySource | None:
    token = ctx.secrets.get("X_BEARER_TOKEN")
    if not x.is_on(ctx.settings, "enabled" in ctx.explicit, token is not None):
        return None
    return x.XSource(ctx.http, ctx.settings, token, now=ctx.clock, limiter=ctx.limiter)


def _hackernews(ctx: SourceContext) -> PopularitySource | None:
    if not ctx.settings.enabled:
        return None
    return hackernews.HackerNewsSource(ctx.http, ctx.settings, limiter=ctx.limiter)


def _huggingface(ctx: SourceContext) -> PopularitySource | None:
    if not ctx.settings.enabled:
        return None
    return huggingface.HuggingFaceSource(
        ctx.http, ctx.settings, token=ctx.secrets.get("HF_TOKEN"), limiter=ctx.limiter
    )


def _bluesky(ctx: SourceContext) -> PopularitySource | None:
    if not ctx.settings.enabled:
        return None
    return bluesky.BlueskySource(
        ctx.http,
        ctx.settings,
        handle=ctx.secrets.get("BLUESKY_HANDLE"),
        app_password=ctx.secrets.get("BLUESKY_APP_PASSWORD"),
        limiter=ctx.limiter,
        stream=JetstreamClient(ctx.session, ctx.settings, clock=ctx.clock),
    )


def _hn_label(m: Mention) -> str:
    return f"HN: {m.text}"


REGISTRY: tuple[SourceEntry, ...] = (
    SourceEntry(
        key=x.NAME,
        name="X",
        settings_model=x.XSettings,
        factory=_x,
        metrics=_shown(Metric.REPOSTS, Metric.LIKES),
        # The seed's score: reposts + likes on X.
        default_weights={Metric.REPOSTS: 1.0, Metric.LIKES: 1.0},
        counts=(Metric.REPOSTS, Metric.LIKES, Metric.REPLIES, Metric.QUOTES),
        post_label=lambda m: f"@{m.author}",
        about="reposts and likes of posts linking the paper (the original Hot Papers score); "
        "needs a paid API token",
        reads='API v2 recent search for `url:"arxiv.org" -is:retweet`: reposts, likes, '
        "replies, quotes; arXiv links from `entities.urls[].expanded_url`",
        credentials="`X_BEARER_TOKEN` (app-only bearer). Off without it",
        notes="recent search reaches back 7 days: an older window start is moved to the edge "
        "(with a warning); a window wholly older is asked anyway and X's refusal becomes a "
        "clear message. Paginates with `next_token`. Honours `Retry-After` and "
        "`x-rate-limit-reset`; at most 450 requests per 15 minutes",
        secrets=("X_BEARER_TOKEN",),
        markdown_tag="Twitter",
        seed=True,
        markdown_units=(Shown(Metric.REPOSTS, "retweets"), Shown(Metric.LIKES, "favorites")),
    ),
    SourceEntry(
        key=bluesky.NAME,
        name="Bluesky",
        settings_model=bluesky.BlueskySettings,
        factory=_bluesky,
        metrics=_shown(Metric.LIKES, Metric.REPOSTS),
        # Counted as the seed counts X: each like, repost and quote is one person's attention.
        default_weights={Metric.LIKES: 1.0, Metric.REPOSTS: 1.0, Metric.QUOTES: 1.0},
        counts=(Metric.LIKES, Metric.REPOSTS, Metric.QUOTES, Metric.REPLIES),
        post_label=lambda m: f"@{m.author}",
        about="likes, reposts and quotes of posts linking the paper, read from the open "
        "Jetstream; no account needed, and feed bots count for nothing",
        reads="Jetstream (`/subscribe`, `wantedCollections=app.bsky.feed.post`): every post, "
        "kept when a link facet, an external embed or the text names an arXiv paper; then "
        "`app.bsky.feed.getPosts` (25 posts a request) for likes, reposts, quotes, replies",
        credentials="none. If the AppView asks for a login: `BLUESKY_HANDLE` and "
        "`BLUESKY_APP_PASSWORD` (an app password)",
        notes="the bot follows the stream live with a durable cursor; `fetch` replays it (36 h "
        "back at most; missing hours are named). Deleted posts and accounts are forgotten. "
        "Accounts linking more than 20 papers a day (feeds) weigh 0. At most 3,000 AppView "
        "requests per 5 minutes",
        secrets=("BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD"),
        feed_limit=lambda s: s.max_papers_per_author_day,
        ignored_authors=lambda s: s.ignore_handles,
    ),
    SourceEntry(
        key=hackernews.NAME,
        name="Hacker News",
        settings_model=hackernews.HackerNewsSettings,
        factory=_hackernews,
        metrics=_shown(Metric.POINTS, Metric.COMMENTS),
        # One HN point is one person's vote, the same as a like.
        default_weights={Metric.POINTS: 1.0},
        counts=(Metric.POINTS, Metric.COMMENTS),
        post_label=_hn_label,
        about="points of stories linking the paper; one point is one vote, like a like",
        reads="Algolia `search_by_date`, stories whose URL is on arxiv.org, `numericFilters` on "
        "`created_at_i`, and on points and comments when `min_points` / `min_comments` are "
        "set: points, comments",
        credentials="none",
        notes="Algolia stops at 1,000 hits per query: busy windows are split in halves. Every "
        "hit's URL is re-checked for a real arXiv id. At most 10,000 requests per hour",
        markdown_units=_shown(Metric.POINTS),
    ),
    SourceEntry(
        key=huggingface.NAME,
        name="Hugging Face",
        settings_model=huggingface.HuggingFaceSettings,
        factory=_huggingface,
        metrics=_shown(Metric.UPVOTES),
        # HF upvotes are scarcer than likes: a paper with 25 upvotes is a hot paper that day.
        default_weights={Metric.UPVOTES: 2.0},
        counts=(Metric.UPVOTES, Metric.COMMENTS),
        post_label=lambda _m: "Hugging Face daily papers",
        about="upvotes on Daily Papers, counted twice: they are scarcer than likes",
        reads="`daily_papers?date=…` for each day of the window: upvotes, comments",
        credentials="optional `HF_TOKEN`",
        notes="at most 500 requests per 5 minutes (the anonymous limit)",
        secrets=("HF_TOKEN",),
    ),
)

BY_KEY: Mapping[str, SourceEntry] = {entry.key: entry for entry in REGISTRY}
# The seed's source (X): its reposts and likes are the post's "retweets" and "favorites".
SEED: SourceEntry = next(entry for entry in REGISTRY if entry.seed)

# Not popularity sources, but named in status lines and fetch summaries.
OTHER_NAMES = {"arxiv": "arXiv", "arxiv feed": "arXiv feed"}

SECRET_VARIABLES: tuple[str, ...] = tuple(
    dict.fromkeys(name for entry in REGISTRY for name in entry.secrets)
)


def entry(key: str) -> SourceEntry | None:
    return BY_KEY.get(key)


def default_weights() -> dict[str, dict[str, float]]:
    return {e.key: {str(k): v for k, v in e.default_weights.items()} for e in REGISTRY}


def source_name(key: str) -> str:
    """``"hackernews"`` → ``"Hacker News"``; an unknown key is shown as it is."""
    found = BY_KEY.get(key)
    return found.name if found else OTHER_NAMES.get(key, key)


def source_list(keys: Iterable[str]) -> str:
    """Display names in a sentence: ``"X, Hacker News and Hugging Face"`` (sorted by name)."""
    names = sorted({source_name(k) for k in keys})
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def post_label(mention: Mention) -> str:
    found = BY_KEY.get(mention.source)
    return found.post_label(mention) if found else mention.author


def metrics_text(key: str, metrics: Mapping[str, int]) -> str:
    """``"1,000 reposts, 155 likes"``: the source's metrics in its display order."""
    found = BY_KEY.get(key)
    if found is None:
        return ", ".join(f"{v:,} {k}" for k, v in sorted(metrics.items()) if v)
    return ", ".join(f"{metrics.get(s.metric, 0):,} {s.unit}" for s in found.metrics)


def weights_text(weights: Mapping[str, float]) -> str:
    """``reposts x 1 + likes x 1`` (with the multiplication sign); weight 0 is left out."""
    return " + ".join(f"{metric} × {weight:g}" for metric, weight in weights.items() if weight)


def readme_tables() -> str:
    """The README's source and default-weight tables, generated from the registry
    (``python -m bot.sources.registry``; a test keeps the README equal to it)."""
    rows = [
        "| source | what is read | credentials | notes |",
        "|---|---|---|---|",
        *(
            f"| {e.name} (`sources.{e.key}`) | {e.reads} | {e.credentials} | {e.notes} |"
            for e in REGISTRY
        ),
        "",
        "| source | default weight | why |",
        "|---|---|---|",
        *(
            f"| {e.name} | {weights_text({str(k): v for k, v in e.default_weights.items()})} "
            f"| {e.about} |"
            for e in REGISTRY
        ),
    ]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(readme_tables(), end="")
