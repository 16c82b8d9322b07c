"""RankedPaper.posters: the distinct human accounts whose posts linking a paper weigh > 0."""

from __future__ import annotations

import datetime as dt

from bot.core.models import Mention, Paper, Window
from bot.core.ranking import Observation, RankingRules, score_papers

WINDOW = Window.for_day(dt.date(2026, 8, 1))
NOON = dt.datetime(2026, 8, 1, 12, tzinfo=dt.UTC)
WHEN = dt.datetime(2026, 7, 31, tzinfo=dt.UTC)
ID = "2608.00001"
PAPERS = {
    f"2608.{n:05d}": Paper(f"2608.{n:05d}", "T", "A", ("X",), "cs.LG", ("cs.LG",), WHEN, WHEN)
    for n in range(1, 30)
}
WEIGHTS = {
    "x": {"reposts": 1.0, "likes": 1.0},
    "bluesky": {"reposts": 1.0, "likes": 1.0},
    "hackernews": {"points": 1.0},
}
RULES = RankingRules(weights=WEIGHTS)


def post(
    source: str,
    post_id: str,
    author: str,
    *ids: str,
    likes: int = 5,
    at: dt.datetime = NOON,
) -> Mention:
    metric = "points" if source == "hackernews" else "likes"
    return Mention(source, post_id, "u", author, "t", at, ids or (ID,), {metric: likes})


def posters(*mentions: Mention, rules: RankingRules = RULES) -> int:
    (ranked,) = [
        r
        for r in score_papers(mentions, PAPERS, window=WINDOW, rules=rules)
        if r.paper.arxiv_id == ID
    ]
    return ranked.posters


def test_one_account_posting_twice_is_one_poster() -> None:
    assert posters(post("x", "1", "ann"), post("x", "2", "ann")) == 1
    assert posters(post("x", "1", "ann"), post("x", "2", "bob")) == 2


def test_accounts_are_keyed_with_their_source() -> None:
    assert posters(post("x", "1", "ann"), post("hackernews", "1", "ann")) == 2


def test_a_bluesky_account_is_its_did_whatever_its_handle() -> None:
    did = "did:plc:annxxxxxxxxxxxxxxxxxxxxx"
    first = post("bluesky", f"at://{did}/app.bsky.feed.post/1", did)
    renamed = post("bluesky", f"at://{did}/app.bsky.feed.post/2", "ann.bsky.social")
    assert posters(first, renamed) == 1


def test_posts_weighing_nothing_do_not_count() -> None:
    unliked = post("x", "2", "bob", likes=0)
    unweighted = post("youtube", "3", "cyd", likes=100)  # a source without weights
    assert posters(post("x", "1", "ann"), unliked, unweighted) == 1


def test_feeds_and_ignored_accounts_do_not_count() -> None:
    feed = [post("x", f"f{n}", "arxivbot", ID, f"2608.{n + 2:05d}") for n in range(5)]
    rules = RankingRules(
        weights=WEIGHTS, feed_limits={"x": 3}, ignored_authors={"x": frozenset({"spam"})}
    )
    assert posters(post("x", "1", "ann"), post("x", "2", "spam"), *feed, rules=rules) == 1
    assert posters(post("x", "1", "ann"), post("x", "2", "spam"), *feed) == 3


def test_posts_outside_the_window_do_not_count() -> None:
    early = post("x", "2", "bob", at=WINDOW.start - dt.timedelta(seconds=1))
    assert posters(post("x", "1", "ann"), early) == 1


def test_only_the_latest_snapshot_of_a_post_decides() -> None:
    liked_then_not = [
        Observation(post("x", "2", "bob", likes=3), NOON),
        Observation(post("x", "2", "bob", likes=0), NOON + dt.timedelta(hours=1)),
    ]
    assert posters(post("x", "1", "ann"), *liked_then_not) == 1
