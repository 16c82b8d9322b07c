"""Scoring and selection: weighted metrics → paper scores → the ranked, filtered top papers.

The seed's rule, reproduced by the default weights: a paper's score is the sum, over the posts
created in the window that link it, of (reposts + likes). Papers at or above the threshold are
listed best first; under each, the posts that score at least ``post_threshold`` (always the best
one, at most ``max_posts``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from bot.core.models import Mention, Paper, RankedPaper, ScoredPost, Window
from bot.core.taxonomy import in_filter

Weights = Mapping[str, Mapping[str, float]]

SEED_WEIGHTS: Weights = {"x": {"reposts": 1.0, "likes": 1.0}}


@dataclass(frozen=True, slots=True)
class RankingRules:
    """How to score and cut a ranking."""

    weights: Weights = field(default_factory=lambda: dict(SEED_WEIGHTS))
    threshold: float = 50.0
    post_threshold: float = 25.0
    max_posts: int = 10
    top_n: int | None = None
    # Per source: an account linking more distinct papers than this in one UTC day is a feed
    # (a bot posting every new paper); its posts weigh 0 and add nothing to the totals.
    feed_limits: Mapping[str, int] = field(default_factory=dict)
    # Per source: accounts (handles) whose posts always weigh 0.
    ignored_authors: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """A mention with the time its metrics were fetched."""

    mention: Mention
    fetched_at: dt.datetime | None = None


def post_score(mention: Mention, weights: Weights) -> float:
    """The weighted sum of one post's metrics; metrics without a weight count for nothing."""
    source_weights = weights.get(mention.source, {})
    return float(sum(w * mention.metric(metric) for metric, w in source_weights.items()))


def account_of(mention: Mention) -> str:
    """The account behind a post: the DID of an AT Protocol post (``at://<did>/…``), whose
    handle may change or be unknown yet, else the author as the source names it."""
    if mention.post_id.startswith("at://"):
        return mention.post_id[5:].split("/", 1)[0]
    return mention.author


def feed_posts(observations: Iterable[Observation], rules: RankingRules) -> set[tuple[str, str]]:
    """The (source, post_id) of posts by feeds and ignored accounts, which weigh nothing."""
    if not rules.feed_limits and not rules.ignored_authors:
        return set()
    papers_by_day: dict[tuple[str, str, dt.date], set[str]] = defaultdict(set)
    posts_by_day: dict[tuple[str, str, dt.date], list[tuple[str, str]]] = defaultdict(list)
    muted: set[tuple[str, str]] = set()
    for obs in observations:
        m = obs.mention
        key = (m.source, m.post_id)
        ignored = rules.ignored_authors.get(m.source, frozenset())
        if ignored and (m.author.lower() in ignored or account_of(m).lower() in ignored):
            muted.add(key)
        if m.source in rules.feed_limits:
            day = (m.source, account_of(m), m.created_at.astimezone(dt.UTC).date())
            papers_by_day[day].update(m.arxiv_ids)
            posts_by_day[day].append(key)
    for day, linked in papers_by_day.items():
        if len(linked) > rules.feed_limits[day[0]]:
            muted.update(posts_by_day[day])
    return muted


def _post_key(post: ScoredPost) -> tuple[float, dt.datetime, str, str]:
    # Best first; among equals the earliest post (it started the conversation), then stable ids.
    m = post.mention
    return (-post.score, m.created_at, m.source, m.post_id)


def _latest(observations: Iterable[Observation | Mention]) -> list[Observation]:
    """One observation per post: the most recently fetched (a post counts once)."""
    newest: dict[tuple[str, str], Observation] = {}
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    for item in observations:
        obs = item if isinstance(item, Observation) else Observation(item)
        key = (obs.mention.source, obs.mention.post_id)
        held = newest.get(key)
        if held is None or (obs.fetched_at or epoch) >= (held.fetched_at or epoch):
            newest[key] = obs
    return list(newest.values())


def score_papers(
    observations: Iterable[Observation | Mention],
    papers: Mapping[str, Paper],
    *,
    window: Window,
    rules: RankingRules,
) -> list[RankedPaper]:
    """Score every known paper linked by a mention created in ``window``; best first, uncut."""
    posts: dict[str, list[ScoredPost]] = defaultdict(list)
    totals: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    as_of: dict[str, dt.datetime] = {}
    latest = _latest(observations)
    muted = feed_posts(latest, rules)
    for obs in latest:
        mention = obs.mention
        if mention.created_at not in window:
            continue
        feed = (mention.source, mention.post_id) in muted
        scored = ScoredPost(mention, 0.0 if feed else post_score(mention, rules.weights))
        for arxiv_id in dict.fromkeys(mention.arxiv_ids):
            if arxiv_id not in papers:
                continue
            posts[arxiv_id].append(scored)
            if feed:
                continue
            for metric, value in mention.metrics.items():
                totals[arxiv_id][mention.source][metric] += int(value or 0)
            if obs.fetched_at is not None and (
                arxiv_id not in as_of or obs.fetched_at > as_of[arxiv_id]
            ):
                as_of[arxiv_id] = obs.fetched_at

    ranked: list[RankedPaper] = []
    for arxiv_id, paper_posts in posts.items():
        paper_posts.sort(key=_post_key)
        score = sum(p.score for p in paper_posts)
        shown = [p for p in paper_posts if p.score >= rules.post_threshold] or paper_posts[:1]
        ranked.append(
            RankedPaper(
                paper=papers[arxiv_id],
                score=score,
                by_source={src: dict(m) for src, m in totals.get(arxiv_id, {}).items()},
                top_posts=tuple(shown[: rules.max_posts]),
                as_of=as_of.get(arxiv_id),
            )
        )
    ranked.sort(key=_paper_key)
    return ranked


def _paper_key(paper: RankedPaper) -> tuple[float, float, int, str]:
    # Deterministic tie-break: score, then the best single post, then more posts, then the id.
    best = paper.top_posts[0].score if paper.top_posts else 0.0
    return (-paper.score, -best, -len(paper.top_posts), paper.paper.arxiv_id)


def select(
    ranked: Iterable[RankedPaper],
    *,
    threshold: float,
    categories: Collection[str] = (),
    exclude: Collection[str] = (),
    top_n: int | None = None,
) -> list[RankedPaper]:
    """Keep papers at or above ``threshold`` in ``categories`` (cross-lists and archives count),
    drop ``exclude``d ids, keep the order, cut to ``top_n``."""
    excluded = set(exclude)
    chosen = [
        r
        for r in ranked
        if r.score >= threshold
        and r.paper.arxiv_id not in excluded
        and in_filter(r.paper.categories, categories)
    ]
    return chosen if top_n is None else chosen[:top_n]


def rank(
    observations: Iterable[Observation | Mention],
    papers: Mapping[str, Paper],
    *,
    window: Window,
    rules: RankingRules,
    categories: Collection[str] = (),
    exclude: Collection[str] = (),
) -> list[RankedPaper]:
    """Score, then select: the digest's papers for one window."""
    scored = score_papers(observations, papers, window=window, rules=rules)
    return select(
        scored,
        threshold=rules.threshold,
        categories=categories,
        exclude=exclude,
        top_n=rules.top_n,
    )
