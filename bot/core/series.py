"""A paper's score over time: metrics snapshots → one step series per source, and their total.

A post counts with its latest known snapshot, as in :func:`bot.core.ranking.score_papers`: at
the time of each snapshot, a source's value is the sum over its posts of each post's weighted
score as last fetched up to then. The series are steps: a value holds until the next point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence

from bot.core.models import Mention
from bot.core.ranking import post_score

Point = tuple[dt.datetime, float]


def score_series(
    history: Iterable[tuple[Mention, dt.datetime]],
    weights: Mapping[str, Mapping[str, float]],
    *,
    feed_posts: Collection[tuple[str, str]] = (),
) -> dict[str, list[Point]]:
    """Per source, the score of the posts in ``history`` over time, oldest point first.

    ``history`` holds (post with one snapshot's metrics, the snapshot's time), in any order; one
    point per distinct snapshot time of the source. Posts in ``feed_posts`` (source, post_id)
    weigh 0, as feeds do in the ranking. The last points summed are the paper's score from the
    same snapshots (up to float rounding).
    """
    muted = set(feed_posts)
    snapshots = list(history)
    for _, fetched_at in snapshots:
        if fetched_at.tzinfo is None:
            raise ValueError(f"snapshot times must be timezone-aware, got {fetched_at!r}")
    # Stable: of two snapshots of one post at the same time, the later one given wins.
    snapshots.sort(key=lambda item: item[1])
    scores: dict[tuple[str, str], float] = {}
    totals: dict[str, float] = {}
    series: dict[str, list[Point]] = {}
    for mention, fetched_at in snapshots:
        key = (mention.source, mention.post_id)
        score = 0.0 if key in muted else post_score(mention, weights)
        # Incremental, not a re-sum over the source's posts: linear in the snapshots.
        total = totals.get(mention.source, 0.0) + score - scores.get(key, 0.0)
        scores[key] = score
        totals[mention.source] = total
        points = series.setdefault(mention.source, [])
        if points and points[-1][0] == fetched_at:
            points[-1] = (fetched_at, total)  # one point per fetch, whatever its posts
        else:
            points.append((fetched_at, total))
    return series


def total_series(series: Mapping[str, Sequence[Point]]) -> list[Point]:
    """The sum of step series: a point at each time any of them has one (a series is 0 before
    its first point)."""
    changes = sorted(
        (
            (at, index, value)
            for index, points in enumerate(series.values())
            for at, value in points
        ),
        key=lambda change: change[0],
    )
    current: dict[int, float] = {}
    total: list[Point] = []
    for at, index, value in changes:
        current[index] = value
        # Re-summed, not incremented: a handful of sources, and no drift between them.
        value_now = sum(current.values())
        if total and total[-1][0] == at:
            total[-1] = (at, value_now)
        else:
            total.append((at, value_now))
    return total
