"""Benchmark: ranking a busy day, ``score_papers`` + ``heat_by_category`` + ``field_select``.

Run by hand: ``python bench/bench_ranking.py [--mentions 50000] [--repeat 5] [--seed 7]``. The
synthetic day is what a deployment following every source reads for a window of one UTC day:

* papers in 150 categories (of arXiv's 155 ids, aliases included), whose sizes and attention
  follow a Zipf law (cs.LG busy, most categories quiet), a third of them cross-listed in one to
  three other categories (mostly of the same archive), submitted over the previous five days so
  that they fall into several announcement days;
* mentions from four sources (X 60%, Bluesky 25% with ``at://`` post ids, Hugging Face 10%,
  Hacker News 5%), heavy-tailed metrics (most posts get a few likes, a few get thousands),
  about 6% linking two or three papers, by 20,000 accounts;
* 5% of the mentions by 30 feed accounts posting new papers (about 80 each: their posts
  weigh 0 under the feed limit of 20), and a tenth of the posts observed twice (an older
  snapshot and the latest), as a caller passing every snapshot would.

Prints the time of each step (best of ``--repeat``), the machine's core count, the figures of
the day (papers, cohorts, chosen papers) and PASS/FAIL against the target; exits 1 on FAIL or
when field_select's answer breaks its rules.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from bot.core.heat import field_select, heat_by_category
from bot.core.models import Mention, Paper, Window
from bot.core.ranking import Observation, RankingRules, score_papers
from bot.core.taxonomy import ALIASES, CATEGORIES

TARGET = 1.0  # seconds for the whole ranking of the day
N_CATEGORIES = 150
DAY = dt.date(2026, 3, 10)
WINDOW = Window.for_day(DAY)
WEIGHTS = {
    "x": {"reposts": 1.0, "likes": 1.0},
    "bluesky": {"reposts": 1.0, "likes": 1.0},
    "huggingface": {"upvotes": 1.0},
    "hackernews": {"points": 1.0},
}
SOURCES = {"x": 60, "bluesky": 25, "huggingface": 10, "hackernews": 5}
RULES = RankingRules(weights=WEIGHTS, feed_limits={"x": 20, "bluesky": 20})


def build_day(n_mentions: int, seed: int) -> tuple[list[Observation], dict[str, Paper], list[str]]:
    """The day's observations, the papers they link and the categories, deterministically."""
    rng = random.Random(seed)
    # 150 of arXiv's 155 category ids (aliases included: papers list cs.SY as well as eess.SY),
    # the busy ones first: they rank first by attention.
    busy = ["cs.LG", "cs.CV", "cs.CL"]
    others = [c for c in sorted(CATEGORIES) if c not in busy]
    categories = busy + rng.sample(others, N_CATEGORIES - len(busy))
    cat_weights = [1 / (rank + 1) for rank in range(len(categories))]
    by_archive: dict[str, list[str]] = {}
    for cat in categories:
        by_archive.setdefault(CATEGORIES[cat].archive, []).append(cat)

    n_papers = max(200, n_mentions // 5)
    papers: dict[str, Paper] = {}
    start = dt.datetime.combine(DAY, dt.time(), dt.UTC) - dt.timedelta(days=5)
    for n in range(n_papers):
        arxiv_id = f"2603.{n:05d}"
        primary = rng.choices(categories, weights=cat_weights)[0]
        cats = [primary]
        if rng.random() < 0.33:
            pool = by_archive[CATEGORIES[primary].archive] if rng.random() < 0.7 else categories
            cats += rng.sample(pool, min(len(pool), rng.randint(1, 3)))
        cats = list(dict.fromkeys(cats))
        published = start + dt.timedelta(seconds=rng.randrange(5 * 86400))
        papers[arxiv_id] = Paper(
            arxiv_id, f"Paper {n}", "", ("A. Author",), primary, tuple(cats), published, published
        )
    ids = list(papers)
    # Attention per paper: Zipf over a shuffled order, boosted for the busy categories.
    attention = [
        (1 / (rank + 1) ** 0.9)
        * (1 + 3 * cat_weights[categories.index(papers[i].primary_category)])
        for rank, i in enumerate(rng.sample(ids, len(ids)))
    ]
    accounts = [f"user{n}" for n in range(20_000)]
    dids = [f"did:plc:{n:024d}" for n in range(20_000)]
    feeds = [f"arxiv_feed_{n}" for n in range(30)]
    noon = dt.datetime.combine(DAY, dt.time(12), dt.UTC)

    observations: list[Observation] = []
    source_names = list(SOURCES)
    source_weights = list(SOURCES.values())
    n_feed = n_mentions // 20
    for n in range(n_mentions - n_feed):
        source = rng.choices(source_names, weights=source_weights)[0]
        linked = rng.choices(ids, weights=attention, k=1 if rng.random() < 0.94 else 3)
        likes = int(rng.paretovariate(1.2)) - 1
        reposts = int(likes * rng.random() * 0.3)
        created = WINDOW.start + dt.timedelta(seconds=rng.randrange(86400))
        who = rng.randrange(len(accounts))
        if source == "bluesky":
            post_id = f"at://{dids[who]}/app.bsky.feed.post/{n:013d}"
            author = f"{accounts[who]}.bsky.social"
        else:
            post_id = str(10**15 + n)
            author = accounts[who]
        metrics: dict[str, int]
        if source in ("x", "bluesky"):
            metrics = {"likes": likes, "reposts": reposts, "replies": likes // 10}
        elif source == "huggingface":
            metrics = {"upvotes": likes, "comments": likes // 20}
        else:
            metrics = {"points": likes * 3, "comments": likes}
        mention = Mention(
            source, post_id, f"https://example.org/{n}", author, "look", created,
            tuple(dict.fromkeys(linked)), metrics,
        )  # fmt: skip
        fetched = created + dt.timedelta(hours=rng.randint(1, 11))
        if rng.random() < 0.1:  # an older snapshot of the same post, stored too
            older = dict(metrics, likes=max(0, likes - 5))
            observations.append(
                Observation(Mention(**{**_fields(mention), "metrics": older}), fetched)
            )
            fetched += dt.timedelta(hours=1)
        observations.append(Observation(mention, fetched))
    for n in range(n_feed):
        feed = feeds[n % len(feeds)]
        created = noon + dt.timedelta(seconds=n % 3600)
        mention = Mention(
            "x", f"feed{n}", f"https://example.org/feed/{n}", feed, "new paper", created,
            (ids[n % len(ids)],), {"likes": rng.randint(0, 3), "reposts": 0},
        )  # fmt: skip
        observations.append(Observation(mention, created + dt.timedelta(hours=1)))
    rng.shuffle(observations)
    return observations, papers, categories


def _fields(mention: Mention) -> dict[str, Any]:
    return {name: getattr(mention, name) for name in Mention.__slots__}


def best_of(repeat: int, step: Callable[[], Any]) -> tuple[float, Any]:
    best = float("inf")
    result: Any = None
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        result = step()
        best = min(best, time.perf_counter() - began)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    observations, papers, categories = build_day(args.mentions, args.seed)
    follows = ["cs.LG", "cs.CV", "math", "astro-ph", "q-bio.NC", "stat.ML"]

    t_score, ranked = best_of(
        args.repeat, lambda: score_papers(observations, papers, window=WINDOW, rules=RULES)
    )
    t_heat, heats = best_of(args.repeat, lambda: heat_by_category(ranked))
    t_heat_f, _ = best_of(args.repeat, lambda: heat_by_category(ranked, categories=follows))
    t_all, chosen = best_of(args.repeat, lambda: field_select(ranked, top_n=20))
    t_follow, chosen_f = best_of(
        args.repeat, lambda: field_select(ranked, categories=follows, top_n=20)
    )
    total = t_score + t_heat + t_all

    cohorts = {
        (h.cohort.category, h.cohort.day) for by_cat in heats.values() for h in by_cat.values()
    }
    print(f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}")
    print(
        f"day: {len(observations)} observations ({args.mentions} mentions), "
        f"{len(papers)} papers in {len(categories)} categories "
        f"({len({ALIASES.get(c, c) for c in categories})} once aliases merge); "
        f"{len(ranked)} ranked, {len(cohorts)} cohorts"
    )
    print(f"score_papers:                      {t_score * 1000:8.1f} ms")
    print(f"heat_by_category (primary):        {t_heat * 1000:8.1f} ms")
    print(f"heat_by_category ({len(follows)} follows):     {t_heat_f * 1000:8.1f} ms")
    print(f"field_select (primary, top 20):    {t_all * 1000:8.1f} ms  → {len(chosen)} papers")
    print(
        f"field_select ({len(follows)} follows, top 20): {t_follow * 1000:8.1f} ms"
        f"  → {len(chosen_f)} papers"
    )
    fields = {p.heat.cohort.category for p in chosen if p.heat}
    print(f"field_select's top 20 come from {len(fields)} categories")
    sound = all(
        len({p.paper.arxiv_id for p in picked}) == len(picked)
        and all(p.heat is not None and p.posters >= 2 and p.score > 0 for p in picked)
        for picked in (chosen, chosen_f)
    )
    if not sound:
        print("FAIL: field_select returned a paper twice, without heat or below its rules")
        return 1
    verdict = "PASS" if total <= TARGET else "FAIL"
    print(
        f"ranking (score + heat + field_select): {total * 1000:.1f} ms, "
        f"target ≤ {TARGET * 1000:.0f} ms: {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
