"""Scoring and selection: weighted metrics → paper scores → the ranked, filtered top papers.

The seed's rule, reproduced by the default weights: a paper's score is the sum, over the posts
created in the window that link it, of (reposts + likes). Papers at or above the threshold are
listed best first; under each, the posts that score at least ``post_threshold`` (always the best
one, at most ``max_posts``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
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
    listed = list(observations)
    return {(listed[i].mention.source, listed[i].mention.post_id) for i in _muted(listed, rules)}


def _accounts(observations: Sequence[Observation]) -> list[str]:
    """:func:`account_of` each post, inlined: one list for the whole day."""
    return [
        m.post_id[5:].split("/", 1)[0] if m.post_id.startswith("at://") else m.author
        for m in [obs.mention for obs in observations]
    ]


def _muted(
    observations: Sequence[Observation],
    rules: RankingRules,
    accounts: Sequence[str] | None = None,
) -> set[int]:
    """The positions in ``observations`` of the posts :func:`feed_posts` names (``accounts``:
    :func:`_accounts` of them, if already known).

    A busy day is tens of thousands of posts, so this keeps to cheap steps per post: an account
    that linked at most ``limit`` ids over all its posts cannot have linked more than ``limit``
    distinct papers on any one day, and only the others are grouped by day.
    """
    feed_limits = rules.feed_limits
    ignored_authors = rules.ignored_authors
    muted: set[int] = set()
    if not feed_limits and not ignored_authors:
        return muted
    if accounts is None:
        accounts = _accounts(observations)
    linked: dict[str, dict[str, int]] = {source: {} for source in feed_limits}
    for i, obs in enumerate(observations):
        m = obs.mention
        ignored = ignored_authors.get(m.source)
        counts = linked.get(m.source)
        if not ignored and counts is None:
            continue
        account = accounts[i]
        if ignored and (m.author.lower() in ignored or account.lower() in ignored):
            muted.add(i)
        if counts is not None:
            counts[account] = counts.get(account, 0) + len(m.arxiv_ids)
    suspects = {
        source: {account for account, n in counts.items() if n > feed_limits[source]}
        for source, counts in linked.items()
    }
    if not any(suspects.values()):
        return muted
    days: dict[tuple[str, str, dt.date], tuple[set[str], list[int]]] = {}
    for i, obs in enumerate(observations):
        m = obs.mention
        account = accounts[i]
        if account not in suspects.get(m.source, ()):
            continue
        key = (m.source, account, m.created_at.astimezone(dt.UTC).date())
        held = days.get(key)
        if held is None:
            held = days[key] = (set(), [])
        held[0].update(m.arxiv_ids)
        held[1].append(i)
    for (source, _, _), (papers, positions) in days.items():
        if len(papers) > feed_limits[source]:
            muted.update(positions)
    return muted


def _latest(observations: Iterable[Observation | Mention]) -> list[Observation]:
    """One observation per post: the most recently fetched (a post counts once), in the order
    the posts first appear."""
    kept: list[Observation] = []
    # source → post_id → position in kept: no key object kept alive per post.
    where: dict[str, dict[str, int]] = {}
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    for item in observations:
        obs = item if isinstance(item, Observation) else Observation(item)
        m = obs.mention
        posts = where.get(m.source)
        if posts is None:
            posts = where[m.source] = {}
        at = posts.get(m.post_id)
        if at is None:
            posts[m.post_id] = len(kept)
            kept.append(obs)
        elif (obs.fetched_at or epoch) >= (kept[at].fetched_at or epoch):
            kept[at] = obs
    return kept


_PostKey = tuple[float, dt.datetime, str, str, int]
_NO_KEY: _PostKey = (0.0, dt.datetime.min.replace(tzinfo=dt.UTC), "", "", -1)


def score_papers(
    observations: Iterable[Observation | Mention],
    papers: Mapping[str, Paper],
    *,
    window: Window,
    rules: RankingRules,
) -> list[RankedPaper]:
    """Score every known paper linked by a mention created in ``window``; best first, uncut.

    ``posters`` counts the distinct accounts (per source) whose posts linking the paper weigh
    more than 0: feeds' and ignored accounts' posts weigh 0, as do posts without any weighted
    engagement.
    """
    latest = _latest(observations)
    accounts = _accounts(latest)
    muted = _muted(latest, rules, accounts)
    weights = rules.weights
    no_weights: Mapping[str, float] = {}
    start, end = window.start, window.end
    # Per paper, the positions of its posts in latest; per position, the post's score and
    # sort key (best first; among equals the earliest post, which started the conversation,
    # then stable ids; (source, post_id) is unique, so the position never decides).
    linking: dict[str, list[int]] = {}
    scores = [0.0] * len(latest)
    keys: list[_PostKey] = [_NO_KEY] * len(latest)  # set for every post in the window
    totals: dict[str, dict[str, dict[str, int]]] = {}
    as_of: dict[str, dt.datetime] = {}
    for i, obs in enumerate(latest):
        mention = obs.mention
        created = mention.created_at
        if not start <= created < end:
            continue
        feed = i in muted
        metrics = mention.metrics
        source = mention.source
        score = 0.0
        if not feed:
            # post_score, inlined: the same sum in the same order.
            score = scores[i] = float(
                sum(
                    w * int(metrics.get(metric, 0) or 0)
                    for metric, w in weights.get(source, no_weights).items()
                )
            )
        keys[i] = (-score, created, source, mention.post_id, i)
        ids = mention.arxiv_ids
        for arxiv_id in dict.fromkeys(ids) if len(ids) > 1 else ids:
            if arxiv_id not in papers:
                continue
            held = linking.get(arxiv_id)
            if held is None:
                linking[arxiv_id] = [i]
            else:
                held.append(i)
            if feed:
                continue
            if metrics:  # a post without metrics adds no (empty) entry for its source
                by_source = totals.get(arxiv_id)
                if by_source is None:
                    by_source = totals[arxiv_id] = {}
                counts = by_source.get(source)
                if counts is None:
                    counts = by_source[source] = {}
                for metric, value in metrics.items():
                    counts[metric] = counts.get(metric, 0) + int(value or 0)
            fetched_at = obs.fetched_at
            if fetched_at is not None and (arxiv_id not in as_of or fetched_at > as_of[arxiv_id]):
                as_of[arxiv_id] = fetched_at

    ranked: list[RankedPaper] = []
    post_threshold = rules.post_threshold
    max_posts = rules.max_posts
    for arxiv_id, ordered in linking.items():
        if len(ordered) > 1:
            ordered.sort(key=keys.__getitem__)
        shown = [i for i in ordered if scores[i] >= post_threshold] or ordered[:1]
        weighing = {(latest[i].mention.source, accounts[i]) for i in ordered if scores[i] > 0}
        ranked.append(
            RankedPaper(
                paper=papers[arxiv_id],
                score=sum(map(scores.__getitem__, ordered)),
                by_source=totals.get(arxiv_id, {}),
                top_posts=tuple(
                    ScoredPost(latest[i].mention, scores[i]) for i in shown[:max_posts]
                ),
                as_of=as_of.get(arxiv_id),
                posters=len(weighing),
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
