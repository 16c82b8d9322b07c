"""Feed bots and ignored accounts in the ranking: they are shown, they weigh nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.models import Mention, Paper, RankedPaper, Window
from bot.core.ranking import (
    Observation,
    RankingRules,
    account_of,
    feed_posts,
    rank,
    score_papers,
)

UTC = dt.UTC
DAY = dt.date(2026, 8, 1)
WINDOW = Window.for_day(DAY)
NOON = dt.datetime(2026, 8, 1, 12, tzinfo=UTC)
FETCHED = dt.datetime(2026, 8, 2, 6, tzinfo=UTC)
WEIGHTS = {
    "x": {"reposts": 1.0, "likes": 1.0},
    "bluesky": {"reposts": 1.0, "likes": 1.0},
    "hackernews": {"points": 1.0},
}
FEED_DID = "did:plc:feedbotxxxxxxxxxxxxxxxxx"
HUMAN_DID = "did:plc:humanxxxxxxxxxxxxxxxxxxx"
IDS = tuple(f"2608.{n:05d}" for n in range(1, 9))


def paper(arxiv_id: str) -> Paper:
    when = dt.datetime(2026, 7, 31, tzinfo=UTC)
    return Paper(
        arxiv_id, f"Title {arxiv_id}", "Abstract.", ("A. Author",), "cs.LG", ("cs.LG",), when, when
    )


PAPERS = {i: paper(i) for i in IDS}


def skeet(
    did: str,
    rkey: str,
    *ids: str,
    likes: int = 10,
    reposts: int = 0,
    at: dt.datetime = NOON,
    author: str | None = None,
) -> Mention:
    """A Bluesky post; ``author`` is the handle once a refresh learnt it, else the DID."""
    return Mention(
        source="bluesky",
        post_id=f"at://{did}/app.bsky.feed.post/{rkey}",
        url=f"https://bsky.app/profile/{author or did}/post/{rkey}",
        author=author or did,
        text="t",
        created_at=at,
        arxiv_ids=ids,
        metrics={"likes": likes, "reposts": reposts, "replies": 1, "quotes": 0},
    )


def tweet(post_id: str, author: str, *ids: str, likes: int = 10, at: dt.datetime = NOON) -> Mention:
    return Mention(
        source="x",
        post_id=post_id,
        url=f"https://x.com/{author}/status/{post_id}",
        author=author,
        text="t",
        created_at=at,
        arxiv_ids=ids,
        metrics={"reposts": 0, "likes": likes},
    )


def rules(
    feed_limits: dict[str, int] | None = None,
    ignored_authors: dict[str, frozenset[str]] | None = None,
) -> RankingRules:
    # Every post shown: a muted post is listed as a post all the same.
    return RankingRules(
        weights=WEIGHTS,
        threshold=0,
        post_threshold=0,
        max_posts=1000,
        feed_limits=feed_limits or {},
        ignored_authors=ignored_authors or {},
    )


def by_id(ranked: list[RankedPaper]) -> dict[str, RankedPaper]:
    return {r.paper.arxiv_id: r for r in ranked}


# -- account_of ------------------------------------------------------------------------------


def test_the_account_of_an_at_protocol_post_is_its_did_whatever_the_handle() -> None:
    assert account_of(skeet(FEED_DID, "r1", IDS[0])) == FEED_DID
    assert account_of(skeet(FEED_DID, "r1", IDS[0], author="feed.example.com")) == FEED_DID


def test_the_account_of_another_post_is_its_author() -> None:
    assert account_of(tweet("1", "arxiv_daily", IDS[0])) == "arxiv_daily"


# -- feed_posts ------------------------------------------------------------------------------


def obs(*mentions: Mention) -> list[Observation]:
    return [Observation(m, FETCHED) for m in mentions]


def test_no_rules_no_feeds() -> None:
    posts = [skeet(FEED_DID, f"r{n}", i) for n, i in enumerate(IDS)]
    assert feed_posts(obs(*posts), rules()) == set()


def test_more_distinct_papers_than_the_limit_in_a_day_is_a_feed() -> None:
    posts = [skeet(FEED_DID, f"r{n}", i) for n, i in enumerate(IDS[:4])]
    human = skeet(HUMAN_DID, "h1", IDS[0])
    muted = feed_posts(obs(*posts, human), rules(feed_limits={"bluesky": 3}))
    assert muted == {("bluesky", p.post_id) for p in posts}


def test_exactly_the_limit_is_not_a_feed() -> None:
    posts = [skeet(FEED_DID, f"r{n}", i) for n, i in enumerate(IDS[:3])]
    assert feed_posts(obs(*posts), rules(feed_limits={"bluesky": 3})) == set()


def test_papers_are_counted_once_however_often_linked() -> None:
    # Six posts, two of them in one post, but only three distinct papers.
    posts = [
        skeet(FEED_DID, "r1", IDS[0], IDS[1]),
        skeet(FEED_DID, "r2", IDS[1]),
        skeet(FEED_DID, "r3", IDS[2], IDS[2]),
        *(skeet(FEED_DID, f"s{n}", IDS[0]) for n in range(3)),
    ]
    assert feed_posts(obs(*posts), rules(feed_limits={"bluesky": 3})) == set()


def test_days_are_utc_days_and_counted_apart() -> None:
    late = dt.datetime(2026, 8, 1, 23, 30, tzinfo=UTC)
    # 22:30 at UTC-2 on the 1st is 00:30 UTC on the 2nd: the next day.
    next_day = dt.datetime(2026, 8, 1, 22, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))
    first = [skeet(FEED_DID, "a", IDS[0], at=late), skeet(FEED_DID, "b", IDS[1], at=late)]
    second = [skeet(FEED_DID, "c", IDS[2], at=next_day), skeet(FEED_DID, "d", IDS[3], at=next_day)]
    limits = rules(feed_limits={"bluesky": 2})
    assert feed_posts(obs(*first, *second), limits) == set()
    third = skeet(FEED_DID, "e", IDS[4], at=next_day)
    assert feed_posts(obs(*first, *second, third), limits) == {
        ("bluesky", p.post_id) for p in (*second, third)
    }


def test_an_account_is_one_account_before_and_after_its_handle_is_known() -> None:
    posts = [
        skeet(FEED_DID, "r1", IDS[0]),  # not refreshed yet: the DID as author
        skeet(FEED_DID, "r2", IDS[1], author="feed.example.com"),
        skeet(FEED_DID, "r3", IDS[2], author="renamed.example.com"),
    ]
    assert len(feed_posts(obs(*posts), rules(feed_limits={"bluesky": 2}))) == 3


def test_limits_are_per_source() -> None:
    bots = [tweet(f"t{n}", "arxiv_daily", i) for n, i in enumerate(IDS)]
    feed = [skeet(FEED_DID, f"r{n}", i) for n, i in enumerate(IDS)]
    muted = feed_posts(obs(*bots, *feed), rules(feed_limits={"bluesky": 2}))
    assert muted == {("bluesky", p.post_id) for p in feed}
    muted = feed_posts(obs(*bots, *feed), rules(feed_limits={"x": 2}))
    assert muted == {("x", p.post_id) for p in bots}


def test_ignored_handles_are_muted_per_source_whatever_their_case() -> None:
    ignored = skeet(HUMAN_DID, "r1", IDS[0], author="Paper-Bot.Example.com")
    same_name_elsewhere = tweet("1", "paper-bot.example.com", IDS[0])
    kept = skeet(FEED_DID, "r2", IDS[0], author="someone.example.com")
    muted = feed_posts(
        obs(ignored, same_name_elsewhere, kept),
        rules(ignored_authors={"bluesky": frozenset({"paper-bot.example.com"})}),
    )
    assert muted == {("bluesky", ignored.post_id)}


# -- score_papers ----------------------------------------------------------------------------


def test_a_feeds_posts_weigh_nothing_but_are_still_shown() -> None:
    feed = [skeet(FEED_DID, f"r{n}", i, likes=500, reposts=50) for n, i in enumerate(IDS[:4])]
    human = skeet(HUMAN_DID, "h1", IDS[0], likes=30, reposts=5)
    x = tweet("t1", "someone", IDS[0], likes=7)
    observations = [Observation(m, FETCHED) for m in (*feed, human)]
    observations.append(Observation(x, FETCHED + dt.timedelta(hours=1)))
    ranked = by_id(
        score_papers(observations, PAPERS, window=WINDOW, rules=rules(feed_limits={"bluesky": 3}))
    )
    first = ranked[IDS[0]]
    assert first.score == 35 + 7
    assert first.by_source == {
        "bluesky": {"likes": 30, "reposts": 5, "replies": 1, "quotes": 0},
        "x": {"reposts": 0, "likes": 7},
    }
    shown = {(p.mention.post_id, p.score) for p in first.top_posts}
    assert shown == {(human.post_id, 35.0), (feed[0].post_id, 0.0), (x.post_id, 7.0)}
    assert first.top_posts[-1].mention == feed[0]
    # A paper only a feed linked: listed (its post shown), worth nothing, no totals, no as_of.
    only_feed = ranked[IDS[1]]
    assert only_feed.score == 0
    assert only_feed.by_source == {}
    assert only_feed.as_of is None
    assert [p.mention for p in only_feed.top_posts] == [feed[1]]


def test_without_the_limit_the_same_posts_count() -> None:
    feed = [skeet(FEED_DID, f"r{n}", i, likes=500) for n, i in enumerate(IDS[:4])]
    ranked = by_id(score_papers(obs(*feed), PAPERS, window=WINDOW, rules=rules()))
    assert [ranked[i].score for i in IDS[:4]] == [500.0] * 4
    assert ranked[IDS[1]].as_of == FETCHED


def test_a_feed_cannot_lift_a_paper_over_the_threshold() -> None:
    feed = [skeet(FEED_DID, f"r{n}", i, likes=500) for n, i in enumerate(IDS[:4])]
    human = skeet(HUMAN_DID, "h1", IDS[2], likes=60)
    strict = dataclasses.replace(rules(feed_limits={"bluesky": 3}), threshold=50)
    ranked = rank(obs(*feed, human), PAPERS, window=WINDOW, rules=strict)
    assert [(r.paper.arxiv_id, r.score) for r in ranked] == [(IDS[2], 60.0)]


def test_ignored_accounts_weigh_nothing() -> None:
    bot = skeet(HUMAN_DID, "r1", IDS[0], likes=900, author="digest.bot.example")
    human = skeet(FEED_DID, "r2", IDS[0], likes=20, author="alice.example.com")
    ranked = score_papers(
        obs(bot, human),
        PAPERS,
        window=WINDOW,
        rules=rules(ignored_authors={"bluesky": frozenset({"digest.bot.example"})}),
    )
    (only,) = ranked
    assert only.score == 20
    assert only.total("likes") == 20
    assert len(only.top_posts) == 2


def test_the_latest_observation_of_a_post_decides() -> None:
    # An older fetch of the same post must not count towards the day twice, nor at all.
    posts = [skeet(FEED_DID, f"r{n}", i) for n, i in enumerate(IDS[:3])]
    older = [Observation(m, FETCHED - dt.timedelta(hours=3)) for m in posts]
    newer = [Observation(m, FETCHED) for m in posts]
    ranked = score_papers(
        [*older, *newer], PAPERS, window=WINDOW, rules=rules(feed_limits={"bluesky": 3})
    )
    assert sum(r.score for r in ranked) == 30


@pytest.mark.parametrize("limit", [1, 2])
def test_feeds_outside_the_window_do_not_change_what_is_inside(limit: int) -> None:
    # A busy account yesterday is not a feed today.
    yesterday = NOON - dt.timedelta(days=1)
    old = [skeet(FEED_DID, f"o{n}", i, at=yesterday) for n, i in enumerate(IDS)]
    today = skeet(FEED_DID, "t1", IDS[0], likes=40)
    ranked = score_papers(
        obs(*old, today), PAPERS, window=WINDOW, rules=rules(feed_limits={"bluesky": limit})
    )
    assert [(r.paper.arxiv_id, r.score) for r in ranked] == [(IDS[0], 40.0)]


# -- properties ------------------------------------------------------------------------------

SOURCES = ("x", "bluesky", "hackernews")
AUTHORS = ("a", "b", "c", "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb")


@st.composite
def observations(draw: st.DrawFn) -> list[Observation]:
    items = []
    n = draw(st.integers(min_value=0, max_value=25))
    for k in range(n):
        source = draw(st.sampled_from(SOURCES))
        author = draw(st.sampled_from(AUTHORS))
        post_id = (
            f"at://{author}/app.bsky.feed.post/r{k}"
            if source == "bluesky" and author.startswith("did:")
            else f"p{k}"
        )
        metrics = {
            "likes": draw(st.integers(0, 300)),
            "reposts": draw(st.integers(0, 50)),
            "points": draw(st.integers(0, 300)),
        }
        mention = Mention(
            source=source,
            post_id=post_id,
            url="https://example.org",
            author=author,
            text="t",
            created_at=NOON + dt.timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60))),
            arxiv_ids=tuple(draw(st.lists(st.sampled_from(IDS), min_size=1, max_size=4))),
            metrics=metrics,
        )
        fetched = FETCHED + dt.timedelta(minutes=draw(st.integers(0, 120)))
        items.append(Observation(mention, fetched))
    # Some posts observed twice (an older fetch), as the store's history gives them.
    for item in draw(st.lists(st.sampled_from(items), max_size=5)) if items else []:
        assert item.fetched_at is not None
        items.append(Observation(item.mention, item.fetched_at - dt.timedelta(hours=1)))
    return items


@settings(max_examples=200, deadline=None)
@given(observations())
def test_without_feeds_or_ignored_accounts_scores_are_unchanged(items: list[Observation]) -> None:
    base = score_papers(items, PAPERS, window=WINDOW, rules=rules())
    # A limit no account reaches, and empty ignore lists, for every source.
    roomy = rules(
        feed_limits={source: len(IDS) for source in SOURCES},
        ignored_authors={source: frozenset() for source in SOURCES},
    )
    assert score_papers(items, PAPERS, window=WINDOW, rules=roomy) == base


@settings(max_examples=200, deadline=None)
@given(observations(), st.integers(min_value=1, max_value=4), st.sampled_from(SOURCES))
def test_muting_only_lowers_scores_and_hides_no_post(
    items: list[Observation], limit: int, source: str
) -> None:
    base = by_id(score_papers(items, PAPERS, window=WINDOW, rules=rules()))
    limited = by_id(
        score_papers(items, PAPERS, window=WINDOW, rules=rules(feed_limits={source: limit}))
    )
    assert limited.keys() == base.keys()
    for arxiv_id, ranked in limited.items():
        assert ranked.score <= base[arxiv_id].score
        assert sorted(p.mention.post_id for p in ranked.top_posts) == sorted(
            p.mention.post_id for p in base[arxiv_id].top_posts
        )
        # Other sources' totals are untouched.
        for other, totals in base[arxiv_id].by_source.items():
            if other != source:
                assert ranked.by_source.get(other) == totals
