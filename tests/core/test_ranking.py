"""Ranking and selection: the seed's rule, thresholds, ties, categories, windows."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.models import Mention, Paper, Window
from bot.core.ranking import Observation, RankingRules, post_score, rank, score_papers, select

DAY = dt.date(2020, 12, 22)
WINDOW = Window.for_day(DAY)
NOON = dt.datetime(2020, 12, 22, 12, tzinfo=dt.UTC)


def paper(arxiv_id: str, *cats: str) -> Paper:
    when = dt.datetime(2020, 12, 21, tzinfo=dt.UTC)
    cats = cats or ("cs.LG",)
    return Paper(
        arxiv_id, f"Title {arxiv_id}", "Abstract.", ("A. Author",), cats[0], cats, when, when
    )


def tweet(
    post_id: str, ids: tuple[str, ...], rt: int, likes: int, at: dt.datetime = NOON
) -> Mention:
    return Mention(
        source="x",
        post_id=post_id,
        url=f"https://twitter.com/u/status/{post_id}",
        author="u",
        text="t",
        created_at=at,
        arxiv_ids=ids,
        metrics={"reposts": rt, "likes": likes, "replies": 99, "quotes": 99},
    )


SEED = RankingRules()


def test_seed_score_is_reposts_plus_likes_only():
    assert post_score(tweet("1", ("2012.10885",), 30, 23), SEED.weights) == 53


def test_threshold_is_inclusive_and_papers_are_best_first():
    papers = {i: paper(i) for i in ("2012.00001", "2012.00002", "2012.00003")}
    mentions = [
        tweet("1", ("2012.00001",), 30, 23),  # 53
        tweet("2", ("2012.00002",), 25, 25),  # 50: exactly the threshold
        tweet("3", ("2012.00003",), 25, 24),  # 49: out
        tweet("4", ("2012.00001",), 100, 0),  # paper 1 → 153
    ]
    ranked = rank(mentions, papers, window=WINDOW, rules=SEED)
    assert [(r.paper.arxiv_id, r.score) for r in ranked] == [
        ("2012.00001", 153),
        ("2012.00002", 50),
    ]
    assert ranked[0].total("reposts") == 130
    assert ranked[0].total("likes") == 23


def test_top_posts_threshold_at_least_one_at_most_max():
    papers = {"2012.00001": paper("2012.00001")}
    small = [tweet(str(i), ("2012.00001",), 10, 10) for i in range(6)]  # 20 each: below 25
    ranked = rank(small, papers, window=WINDOW, rules=SEED)
    assert len(ranked[0].top_posts) == 1  # always the best one
    many = [tweet(str(i), ("2012.00001",), 20, 10 + i) for i in range(15)]  # all ≥ 25
    ranked = rank(many, papers, window=WINDOW, rules=SEED)
    shown = ranked[0].top_posts
    assert len(shown) == 10
    assert [p.score for p in shown] == sorted((p.score for p in shown), reverse=True)
    assert shown[0].mention.post_id == "14"


def test_only_mentions_created_in_the_window_count():
    papers = {"2012.00001": paper("2012.00001")}
    before = tweet("1", ("2012.00001",), 100, 100, WINDOW.start - dt.timedelta(seconds=1))
    edge = tweet("2", ("2012.00001",), 40, 10, WINDOW.start)
    after = tweet("3", ("2012.00001",), 100, 100, WINDOW.end)
    ranked = rank([before, edge, after], papers, window=WINDOW, rules=SEED)
    assert ranked[0].score == 50


def test_unknown_papers_are_skipped_and_duplicate_fetches_do_not_double_count():
    papers = {"2012.00001": paper("2012.00001")}
    m = tweet("1", ("2012.00001", "2012.99999", "2012.00001"), 40, 20)
    later = dt.datetime(2020, 12, 23, tzinfo=dt.UTC)
    ranked = rank([Observation(m, NOON), Observation(m, later)], papers, window=WINDOW, rules=SEED)
    assert len(ranked) == 1
    assert ranked[0].score == 60
    assert ranked[0].as_of == later


def test_categories_cross_lists_archives_and_exclusions():
    papers = {
        "2012.00001": paper("2012.00001", "cs.CV", "cs.LG"),
        "2012.00002": paper("2012.00002", "stat.ML"),
        "2012.00003": paper("2012.00003", "physics.optics"),
    }
    mentions = [tweet(str(i), (pid,), 60, 0) for i, pid in enumerate(papers)]

    def ids(**kw):
        return [r.paper.arxiv_id for r in rank(mentions, papers, window=WINDOW, rules=SEED, **kw)]

    assert ids(categories=["cs.LG"]) == ["2012.00001"]  # cross-list counts
    assert set(ids(categories=["cs"])) == {"2012.00001"}
    assert set(ids(categories=["physics"])) == {"2012.00003"}
    assert set(ids()) == set(papers)
    assert "2012.00002" not in ids(exclude=["2012.00002"])


def test_other_sources_weighted_and_broken_down():
    rules = RankingRules(
        weights={
            "x": {"reposts": 1, "likes": 1},
            "hackernews": {"points": 1},
            "huggingface": {"upvotes": 2},
        }
    )
    papers = {"2012.00001": paper("2012.00001")}
    hn = Mention(
        "hackernews",
        "9",
        "https://news.ycombinator.com/item?id=9",
        "pg",
        "t",
        NOON,
        ("2012.00001",),
        {"points": 30, "comments": 12},
    )
    hf = Mention(
        "huggingface",
        "2012.00001",
        "https://huggingface.co/papers/2012.00001",
        "ak",
        "t",
        NOON,
        ("2012.00001",),
        {"upvotes": 10, "comments": 3},
    )
    ranked = rank([hn, hf, tweet("1", ("2012.00001",), 1, 1)], papers, window=WINDOW, rules=rules)
    assert ranked[0].score == 30 + 20 + 2
    assert ranked[0].by_source["hackernews"] == {"points": 30, "comments": 12}
    assert ranked[0].by_source["huggingface"]["upvotes"] == 10


# --- properties -----------------------------------------------------------------------------

IDS = [f"2012.{n:05d}" for n in range(12)]
metric = st.integers(min_value=0, max_value=400)
mentions_strategy = st.lists(
    st.tuples(
        st.lists(st.sampled_from(IDS), min_size=1, max_size=3),
        metric,
        metric,
        st.integers(min_value=-3600, max_value=30 * 3600),
    ),
    max_size=40,
)


def _build(raw: list[tuple[list[str], int, int, int]]) -> list[Mention]:
    return [
        tweet(str(i), tuple(ids), rt, lk, WINDOW.start + dt.timedelta(seconds=offset))
        for i, (ids, rt, lk, offset) in enumerate(raw)
    ]


PAPERS = {i: paper(i, "cs.LG" if n % 2 else "cs.CV") for n, i in enumerate(IDS)}


@settings(max_examples=150, deadline=None)
@given(mentions_strategy, st.integers(min_value=0, max_value=600), st.integers(1, 20))
def test_ranking_properties(raw, threshold, top_n):
    mentions = _build(raw)
    rules = RankingRules(threshold=threshold, top_n=top_n)
    ranked = rank(mentions, PAPERS, window=WINDOW, rules=rules)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)  # best first
    assert all(s >= threshold for s in scores)
    assert len(ranked) <= top_n
    assert len({r.paper.arxiv_id for r in ranked}) == len(ranked)
    for r in ranked:
        expected = sum(
            m.metric("reposts") + m.metric("likes")
            for m in mentions
            if r.paper.arxiv_id in m.arxiv_ids and m.created_at in WINDOW
        )
        assert r.score == expected  # Σ over in-window posts of reposts + likes
        assert 1 <= len(r.top_posts) <= 10
        assert all(p.score >= 25 for p in r.top_posts[1:])
    # Deterministic: input order does not matter.
    again = rank(list(reversed(mentions)), PAPERS, window=WINDOW, rules=rules)
    assert [r.paper.arxiv_id for r in again] == [r.paper.arxiv_id for r in ranked]
    # Selection is a prefix-preserving filter of the full scoring.
    full = score_papers(mentions, PAPERS, window=WINDOW, rules=rules)
    assert ranked == select(full, threshold=threshold, top_n=top_n)
