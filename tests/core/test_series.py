"""Score series: a paper's score over time per source, agreeing with the ranking's score."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.models import Mention, Paper, Window
from bot.core.ranking import Observation, RankingRules, feed_posts, post_score, score_papers
from bot.core.series import score_series, total_series

UTC = dt.UTC
WINDOW = Window.for_day(dt.date(2026, 8, 1))
NOON = dt.datetime(2026, 8, 1, 12, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)
PAPER_ID, OTHER_ID = "2608.00001", "2608.00002"
WEIGHTS = {
    "x": {"reposts": 1.0, "likes": 1.0},
    "bluesky": {"likes": 1.0, "reposts": 1.0, "quotes": 1.0},
    "hackernews": {"points": 1.0},
    "huggingface": {"upvotes": 2.0},
}
METRICS = {
    "x": ("reposts", "likes", "replies"),
    "bluesky": ("likes", "reposts", "quotes", "replies"),
    "hackernews": ("points", "comments"),
    "huggingface": ("upvotes", "comments"),
    "elsewhere": ("likes",),  # a source without weights: it counts for nothing
}


def paper(arxiv_id: str = PAPER_ID) -> Paper:
    when = dt.datetime(2026, 7, 31, tzinfo=UTC)
    return Paper(
        arxiv_id, f"Title {arxiv_id}", "Abstract.", ("A. Author",), "cs.LG", ("cs.LG",), when, when
    )


def post(
    source: str,
    post_id: str,
    *,
    author: str = "someone",
    ids: tuple[str, ...] = (PAPER_ID,),
    at: dt.datetime = NOON,
    **metrics: int,
) -> Mention:
    return Mention(
        source=source,
        post_id=post_id,
        url=f"https://example.org/{source}/{post_id}",
        author=author,
        text="t",
        created_at=at,
        arxiv_ids=ids,
        metrics=metrics,
    )


def test_steps_per_source_with_the_latest_snapshot_of_each_post() -> None:
    history = [
        (post("x", "1", reposts=1, likes=4), NOON + HOUR),
        (post("hackernews", "9", points=10, comments=3), NOON + HOUR),
        (post("x", "2", likes=2), NOON + HOUR),
        (post("x", "1", reposts=2, likes=10), NOON + 3 * HOUR),
        # Given out of order: a fetch stored late takes its place in time.
        (post("hackernews", "9", points=30), NOON + 2 * HOUR),
        (post("x", "2", likes=1), NOON + 4 * HOUR),  # a like withdrawn
    ]
    series = score_series(history, WEIGHTS)
    assert series == {
        "x": [(NOON + HOUR, 7.0), (NOON + 3 * HOUR, 14.0), (NOON + 4 * HOUR, 13.0)],
        "hackernews": [(NOON + HOUR, 10.0), (NOON + 2 * HOUR, 30.0)],
    }
    assert total_series(series) == [
        (NOON + HOUR, 17.0),
        (NOON + 2 * HOUR, 37.0),
        (NOON + 3 * HOUR, 44.0),
        (NOON + 4 * HOUR, 43.0),
    ]


def test_feed_posts_weigh_nothing_but_are_charted() -> None:
    history = [
        (post("bluesky", "feed", likes=50), NOON),
        (post("bluesky", "person", likes=5), NOON),
        (post("bluesky", "feed", likes=80), NOON + HOUR),
    ]
    series = score_series(history, WEIGHTS, feed_posts={("bluesky", "feed")})
    assert series == {"bluesky": [(NOON, 5.0), (NOON + HOUR, 5.0)]}


def test_empty_history_and_unweighted_sources() -> None:
    assert score_series([], WEIGHTS) == {}
    assert total_series({}) == []
    assert score_series([(post("elsewhere", "1", likes=9), NOON)], WEIGHTS) == {
        "elsewhere": [(NOON, 0.0)]
    }


def test_naive_snapshot_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        score_series([(post("x", "1", likes=1), dt.datetime(2026, 8, 1, 12))], WEIGHTS)


def test_total_of_series_that_start_at_different_times() -> None:
    series = {
        "a": [(NOON, 1.0), (NOON + 2 * HOUR, 3.0)],
        "b": [(NOON + HOUR, 10.0), (NOON + 2 * HOUR, 20.0)],
    }
    assert total_series(series) == [(NOON, 1.0), (NOON + HOUR, 11.0), (NOON + 2 * HOUR, 23.0)]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[Mention, dt.datetime]], RankingRules]:
    """Posts of several sources and authors, each fetched a few times in any order; some
    authors ignored and some accounts feeds (they link more papers than the limit)."""
    history: list[tuple[Mention, dt.datetime]] = []
    for n in range(draw(st.integers(0, 12))):
        source = draw(st.sampled_from(sorted(METRICS)))
        author = draw(st.sampled_from(["ann", "bob", "feedbot", "muted"]))
        ids = draw(st.sampled_from([(PAPER_ID,), (PAPER_ID, OTHER_ID), (OTHER_ID, PAPER_ID)]))
        created = NOON + dt.timedelta(minutes=draw(st.integers(-600, 600)))
        hours = draw(st.lists(st.integers(0, 30), min_size=1, max_size=5, unique=True))
        for hour in hours:
            counts = {
                metric: draw(st.integers(0, 500))
                for metric in draw(st.sets(st.sampled_from(METRICS[source])))
            }
            mention = post(source, str(n), author=author, ids=ids, at=created, **counts)
            history.append((mention, NOON + dt.timedelta(hours=hour)))
    weights = {
        source: {metric: draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7])) for metric in w}
        for source, w in WEIGHTS.items()
    }
    rules = RankingRules(
        weights=weights,
        feed_limits={"bluesky": 1, "x": 1},
        ignored_authors={"hackernews": frozenset({"muted"}), "x": frozenset({"muted"})},
    )
    return draw(st.permutations(history)), rules


@settings(max_examples=150, deadline=None)
@given(histories())
def test_the_last_points_add_up_to_the_ranking_score(
    drawn: tuple[list[tuple[Mention, dt.datetime]], RankingRules],
) -> None:
    history, rules = drawn
    observations = [Observation(m, at) for m, at in history]
    latest: dict[tuple[str, str], Observation] = {}
    for obs in sorted(observations, key=lambda o: o.fetched_at or NOON):
        latest[obs.mention.source, obs.mention.post_id] = obs
    muted = feed_posts(latest.values(), rules)

    series = score_series(history, rules.weights, feed_posts=muted)

    ranked = score_papers(observations, {PAPER_ID: paper()}, window=WINDOW, rules=rules)
    expected = ranked[0].score if ranked else 0.0
    assert sum(points[-1][1] for points in series.values()) == pytest.approx(expected)
    total = total_series(series)
    assert (total[-1][1] if total else 0.0) == pytest.approx(expected)


@settings(max_examples=100, deadline=None)
@given(histories())
def test_each_point_is_the_sum_of_the_latest_scores_until_then(
    drawn: tuple[list[tuple[Mention, dt.datetime]], RankingRules],
) -> None:
    history, rules = drawn
    series = score_series(history, rules.weights)
    assert set(series) == {m.source for m, _ in history}
    for source, points in series.items():
        times = [at for at, _ in points]
        assert times == sorted(set(times))
        assert set(times) == {at for m, at in history if m.source == source}
        for at, value in points:
            known: dict[str, tuple[dt.datetime, float]] = {}
            for m, fetched in history:
                if m.source == source and fetched <= at:
                    held = known.get(m.post_id)
                    if held is None or fetched >= held[0]:
                        known[m.post_id] = (fetched, post_score(m, rules.weights))
            assert value == pytest.approx(sum(score for _, score in known.values()))
