"""Benchmark: ``render_chart`` of a paper's popularity, 4 sources of 500 points each.

Run by hand: ``python bench/bench_chart.py [--points 500] [--renders 30] [--fresh 3] [--seed 7]``.
The series are random walks of scores over five days, as ``score_series`` gives them for a paper
whose posts were fetched every ~15 minutes on X, Bluesky, Hacker News and Hugging Face, drawn
with a long title and a right edge (``now``) after the last point.

Prints, with the machine's core count:

* warm renders in this process (after one untimed render): median, best, p95 and worst, and
  PASS/FAIL of the median against the target;
* the cost of the first chart of a process, measured in ``--fresh`` new interpreters: importing
  matplotlib, then the first render (font files, caches) on top of it, and how long ``warm_up()``
  takes and what the first chart costs after it (what the bot pays at start, off the loop);
* the PNG's size.

Exits 1 when the median warm render misses the target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

TARGET_MS = 200.0  # per chart, warm, on the machine the bot runs on
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
SOURCES = ("x", "bluesky", "hackernews", "huggingface")
TITLE = (
    "Scaling $\\mathcal{O}(n \\log n)$ Attention: A Study of Long-Context Language Models "
    "Across Twelve Benchmarks and Three Hardware Generations"
)

Series = Mapping[str, Sequence[tuple[dt.datetime, float]]]


def make_series(points: int, seed: int) -> Series:
    rng = random.Random(seed)
    series: dict[str, list[tuple[dt.datetime, float]]] = {}
    for n, source in enumerate(SOURCES):
        value, at, walk = 0.0, START + dt.timedelta(minutes=7 * n), []
        for _ in range(points):
            at += dt.timedelta(minutes=rng.randint(10, 20))
            value += max(0.0, rng.gauss(2.0 + n, 3.0))
            walk.append((at, round(value)))
        series[source] = walk
    return series


def now_of(series: Series) -> dt.datetime:
    return max(points[-1][0] for points in series.values()) + dt.timedelta(hours=2)


def fresh(points: int, seed: int) -> dict[str, float]:
    """In a new interpreter (``--child``): matplotlib's import, the first render, warm_up."""
    timings: dict[str, float] = {}
    series = make_series(points, seed)
    start = time.perf_counter()
    from bot.render import chart  # imports no matplotlib yet

    timings["module_ms"] = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    import matplotlib.backends.backend_agg
    import matplotlib.dates
    import matplotlib.figure  # noqa: F401

    timings["import_ms"] = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    chart.render_chart(series, title=TITLE, now=now_of(series))
    timings["first_render_ms"] = (time.perf_counter() - start) * 1e3
    return timings


def fresh_warm_up(points: int, seed: int) -> dict[str, float]:
    """In a new interpreter (``--child-warm-up``): warm_up(), then the first chart."""
    series = make_series(points, seed)
    from bot.render import chart

    start = time.perf_counter()
    chart.warm_up()
    warm_up_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    chart.render_chart(series, title=TITLE, now=now_of(series))
    return {"warm_up_ms": warm_up_ms, "after_warm_up_ms": (time.perf_counter() - start) * 1e3}


def in_child(flag: str, args: argparse.Namespace) -> dict[str, float]:
    # This interpreter running this file again: no outside input reaches the command.
    result = subprocess.run(  # noqa: S603
        [sys.executable, __file__, flag, f"--points={args.points}", f"--seed={args.seed}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--renders", type=int, default=30)
    parser.add_argument("--fresh", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-warm-up", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(fresh(args.points, args.seed)))
        return 0
    if args.child_warm_up:
        print(json.dumps(fresh_warm_up(args.points, args.seed)))
        return 0

    firsts = [in_child("--child", args) for _ in range(args.fresh)]
    warm_ups = [in_child("--child-warm-up", args) for _ in range(args.fresh)]

    from bot.render.chart import CHART_HEIGHT, CHART_WIDTH, render_chart

    series = make_series(args.points, args.seed)
    now = now_of(series)
    png = render_chart(series, title=TITLE, now=now)  # untimed: this process's first
    times = []
    for _ in range(args.renders):
        gc.collect()
        start = time.perf_counter()
        render_chart(series, title=TITLE, now=now)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    median = statistics.median(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    ok = median < TARGET_MS

    def middle(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(row[key] for row in rows)

    print(
        f"chart: {len(series)} sources x {args.points} points, {CHART_WIDTH}x{CHART_HEIGHT} px, "
        f"PNG {len(png) / 1024:.0f} KiB, seed {args.seed}; cpus: {os.cpu_count()}"
    )
    print(
        f"warm render:   median {median:6.1f} ms  best {times[0]:6.1f} ms  "
        f"p95 {p95:6.1f} ms  worst {times[-1]:6.1f} ms  ({args.renders} renders)"
    )
    print(
        f"first render of a process (median of {args.fresh} fresh interpreters): "
        f"import matplotlib {middle(firsts, 'import_ms'):.0f} ms, then the first chart "
        f"{middle(firsts, 'first_render_ms'):.0f} ms "
        f"(bot.render.chart itself {middle(firsts, 'module_ms'):.0f} ms, no matplotlib)"
    )
    print(
        f"warm_up() at start: {middle(warm_ups, 'warm_up_ms'):.0f} ms (import included); "
        f"the first chart after it {middle(warm_ups, 'after_warm_up_ms'):.0f} ms"
    )
    print(f"target: warm median < {TARGET_MS:.0f} ms per chart   {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
