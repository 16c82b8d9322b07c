"""score_papers and feed_posts, optimised for busy days, give the answers of the plain version.

The reference below is the implementation before the optimisation (bench/bench_ranking.py),
kept verbatim: the optimised one must agree with it on every field, order included.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.models import Mention, Paper, RankedPaper, ScoredPost, Window
from bot.core.ranking import (
    Observation,
    RankingRules,
    _latest,
    _paper_key,
    account_of,
    feed_posts,
    post_score,
    score_papers,
)

DAY = Window.for_day(dt.date(2025, 3, 4))
PUBLISHED = dt.datetime(2025, 3, 3, 12, tzinfo=dt.UTC)
PAPERS = {
    f"2503.0000{n}": Paper(
        f"2503.0000{n}", "T", "A", ("X",), "cs.LG", ("cs.LG",), PUBLISHED, PUBLISHED
    )
    for n in range(6)
}
IDS = [*PAPERS, "2503.99999"]  # the last one is not a known paper


# --- the reference: ranking.py before the optimisation --------------------------------------


def reference_feed_posts(
    observations: Iterable[Observation], rules: RankingRules
) -> set[tuple[str, str]]:
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
    m = post.mention
    return (-post.score, m.created_at, m.source, m.post_id)


def reference_latest(observations: Iterable[Observation | Mention]) -> list[Observation]:
    newest: dict[tuple[str, str], Observation] = {}
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    for item in observations:
        obs = item if isinstance(item, Observation) else Observation(item)
        key = (obs.mention.source, obs.mention.post_id)
        held = newest.get(key)
        if held is None or (obs.fetched_at or epoch) >= (held.fetched_at or epoch):
            newest[key] = obs
    return list(newest.values())


def reference_score_papers(
    observations: Iterable[Observation | Mention],
    papers: Mapping[str, Paper],
    *,
    window: Window,
    rules: RankingRules,
) -> list[RankedPaper]:
    posts: dict[str, list[ScoredPost]] = defaultdict(list)
    totals: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    as_of: dict[str, dt.datetime] = {}
    latest = reference_latest(observations)
    muted = reference_feed_posts(latest, rules)
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


# --- random days --------------------------------------------------------------------------

SOURCES = ("x", "bluesky", "hackernews")
METRICS = ("likes", "reposts", "points")
DIDS = ("did:plc:aaa", "did:plc:bbb", "did:plc:ccc")
HANDLES = ("ann", "Bob", "bob", "cyd", "feedbot")


@st.composite
def observations(draw: st.DrawFn) -> list[Observation | Mention]:
    out: list[Observation | Mention] = []
    for _ in range(draw(st.integers(0, 40))):
        source = draw(st.sampled_from(SOURCES))
        n = draw(st.integers(0, 12))
        post_id = (
            f"at://{draw(st.sampled_from(DIDS))}/app.bsky.feed.post/{n}"
            if source == "bluesky"
            else str(n)
        )
        created = DAY.start + dt.timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)))
        metrics = draw(
            st.dictionaries(st.sampled_from(METRICS), st.none() | st.integers(0, 500), max_size=3)
        )
        mention = Mention(
            source=source,
            post_id=post_id,
            url="u",
            author=draw(st.sampled_from(HANDLES)),
            text="t",
            created_at=created,
            arxiv_ids=tuple(draw(st.lists(st.sampled_from(IDS), max_size=4))),
            metrics=metrics,  # type: ignore[arg-type]  # None: a metric the source didn't send
        )
        fetched = draw(st.none() | st.integers(0, 5))
        if fetched is None and draw(st.booleans()):
            out.append(mention)
        else:
            at = None if fetched is None else created + dt.timedelta(hours=fetched)
            out.append(Observation(mention, at))
    return out


rules_strategy = st.builds(
    RankingRules,
    weights=st.fixed_dictionaries(
        {
            "x": st.fixed_dictionaries(
                {"likes": st.sampled_from([1.0, 0.1, 2.5]), "reposts": st.just(1.0)}
            ),
            "bluesky": st.fixed_dictionaries({"likes": st.sampled_from([1.0, 0.3])}),
        }
    ),
    post_threshold=st.sampled_from([0.0, 1.0, 25.0, 100.0]),
    max_posts=st.integers(0, 4),
    feed_limits=st.dictionaries(st.sampled_from(["x", "bluesky"]), st.integers(0, 3)),
    ignored_authors=st.dictionaries(
        st.sampled_from(SOURCES),
        st.frozensets(st.sampled_from(["bob", "did:plc:bbb", "nobody"]), max_size=2),
        max_size=2,
    ),
)


def as_compared(ranked: list[RankedPaper]) -> list[tuple[object, ...]]:
    return [
        (
            r.paper.arxiv_id,
            r.score,
            [(src, list(m.items())) for src, m in r.by_source.items()],
            r.top_posts,
            r.as_of,
        )
        for r in ranked
    ]


@settings(max_examples=200, deadline=None)
@given(observations(), rules_strategy)
def test_score_papers_agrees_with_the_plain_version(
    items: list[Observation | Mention], rules: RankingRules
) -> None:
    expected = reference_score_papers(items, PAPERS, window=DAY, rules=rules)
    got = score_papers(items, PAPERS, window=DAY, rules=rules)
    assert as_compared(got) == as_compared(expected)


@settings(max_examples=150, deadline=None)
@given(observations(), rules_strategy)
def test_feed_posts_and_latest_agree_with_the_plain_versions(
    items: list[Observation | Mention], rules: RankingRules
) -> None:
    assert _latest(items) == reference_latest(items)
    latest = reference_latest(items)
    assert feed_posts(latest, rules) == reference_feed_posts(latest, rules)
    # Several observations of one post, as a caller may pass them: every one is named.
    everything = [o if isinstance(o, Observation) else Observation(o) for o in items]
    assert feed_posts(everything, rules) == reference_feed_posts(everything, rules)
