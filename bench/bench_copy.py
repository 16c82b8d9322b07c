"""Benchmark of ``hotpapers db copy``: rows per second, SQLite → PostgreSQL and back.

Run by hand::

    python bench/bench_copy.py [--papers 100000] [--mentions 300000]   # HOTPAPERS_TEST_POSTGRES_URL
    python bench/bench_copy.py --no-postgres                           # SQLite → SQLite only

A synthetic deployment is built once in a SQLite file under ``--cache-dir`` (default
``$TMPDIR/hotpapers-bench``), keyed by its size, the seed and ``CORPUS_VERSION``, and built
under a temporary name then renamed: papers with abstracts of about 1,200 characters and one to
three categories, mentions of about 200 characters each linking one or two papers with one or
two metrics snapshots, a few hundred guilds with their categories, digests and the papers they
showed, source runs, stream cursors and gaps. Rows go in through the real schema (the FTS5
triggers index every paper) by bulk insert.

Then the real :func:`bot.storage.copy.copy_database` runs, verification included: SQLite →
a new PostgreSQL database (dropped afterwards), that database → a new SQLite file, and SQLite
→ SQLite. Reported per copy: rows, seconds, rows per second, and the machine's cores and load
(``--progress`` adds the copy's own lines, with each table's time, on stderr).
Exit status 1 if a copy fails verification.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bot.storage.copy import copy_database
from bot.storage.engine import Database
from bot.storage.types import utc_text

CORPUS_VERSION = 1
POSTGRES_URL_VARIABLE = "HOTPAPERS_TEST_POSTGRES_URL"
T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def _words(text: str) -> list[str]:
    return text.split()


WORDS = _words(
    "model learning data method network results neural approach performance training graph "
    "language transformer attention diffusion quantum field theory estimation inference "
    "bayesian reinforcement policy agent vision image segmentation detection robust optimal "
    "convex sparse kernel spectral manifold topology entropy causal benchmark dataset"
)
CATEGORIES = ("cs.LG", "cs.CV", "cs.CL", "stat.ML", "quant-ph", "hep-th", "math.OC", "cs.AI")


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build(path: Path, papers: int, mentions: int, seed: int) -> None:
    """Fill a migrated SQLite file with a synthetic deployment."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            ids = [f"25{(i // 99999) % 12 + 1:02d}.{i % 99999 + 1:05d}" for i in range(papers)]
            paper_rows, category_rows = [], []
            for number, arxiv_id in enumerate(ids, 1):
                cats = rng.sample(CATEGORIES, rng.randint(1, 3))
                moment = utc_text(T0 - dt.timedelta(minutes=number))
                authors = json.dumps(
                    [f"Author {rng.randint(1, 50000)}" for _ in range(rng.randint(1, 6))],
                    ensure_ascii=False,
                    separators=(", ", ": "),
                )
                paper_rows.append(
                    (number, arxiv_id, 1, words(rng, 9).title(), words(rng, 170), authors,
                     cats[0], None, None, None, moment, moment, moment)
                )  # fmt: skip
                category_rows += [(arxiv_id, c, pos) for pos, c in enumerate(cats)]
            conn.executemany(
                "INSERT INTO papers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", paper_rows
            )
            conn.executemany("INSERT INTO paper_categories VALUES (?, ?, ?)", category_rows)
            conn.executemany(
                "INSERT INTO missing_ids VALUES (?, 'unknown', ?)",
                [(f"2599.{i:05d}", utc_text(T0)) for i in range(1, 101)],
            )
            del paper_rows, category_rows
            mention_rows, link_rows, metric_rows = [], [], []
            for number in range(1, mentions + 1):
                created = T0 - dt.timedelta(seconds=number * 7)
                mention_rows.append(
                    (number, rng.choice(("x", "bluesky", "hackernews")), f"post{number}",
                     f"https://example.org/p/{number}", f"user{rng.randint(1, 40000)}", None,
                     words(rng, 30), "en", utc_text(created), utc_text(created))
                )  # fmt: skip
                for pos, arxiv_id in enumerate(dict.fromkeys(rng.choices(ids, k=2))):
                    link_rows.append((number, arxiv_id, pos))
                for snapshot in range(rng.randint(1, 2)):
                    fetched = utc_text(created + dt.timedelta(hours=snapshot))
                    metric_rows.append(
                        (number, fetched, rng.randint(0, 50), rng.randint(0, 500), 0, 0,
                         None, None, None)
                    )  # fmt: skip
                if len(mention_rows) >= 50_000:
                    _flush(conn, mention_rows, link_rows, metric_rows)
            _flush(conn, mention_rows, link_rows, metric_rows)
            guilds = 300
            conn.executemany(
                "INSERT INTO guilds (guild_id, channel_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                [(10**17 + g, 10**17 + g, utc_text(T0), utc_text(T0)) for g in range(guilds)],
            )
            conn.executemany(
                "INSERT INTO guild_categories VALUES (?, ?, ?)",
                [(10**17 + g, c, utc_text(T0)) for g in range(guilds) for c in CATEGORIES[:2]],
            )
            digest_rows, shown_rows = [], []
            for g in range(guilds):
                for day in range(30):
                    digest_id = g * 30 + day + 1
                    date = (T0 - dt.timedelta(days=day)).date().isoformat()
                    digest_rows.append((digest_id, 10**17 + g, date, "[1, 2, 3]"))
                    shown_rows += [
                        (digest_id, 10**17 + g, ids[(digest_id * 7 + r) % len(ids)], r,
                         utc_text(T0))
                        for r in range(10)
                    ]  # fmt: skip
            conn.executemany(
                "INSERT INTO digests (id, guild_id, digest_date, status, message_ids) "
                "VALUES (?, ?, ?, 'sent', ?)",
                digest_rows,
            )
            conn.executemany("INSERT INTO digest_papers VALUES (?, ?, ?, ?, ?)", shown_rows)
            conn.executemany(
                "INSERT INTO source_runs (source, window_start, window_end, started_at, "
                "finished_at) VALUES ('x', ?, ?, ?, ?)",
                [(utc_text(T0),) * 4 for _ in range(1000)],
            )
            conn.execute(
                "INSERT INTO stream_state VALUES ('bluesky', 1, 'host', ?)", (utc_text(T0),)
            )
            conn.executemany(
                "INSERT INTO stream_gaps (stream, gap_start, gap_end, detected_at) "
                "VALUES ('bluesky', ?, ?, ?)",
                [(utc_text(T0),) * 3 for _ in range(100)],
            )
    finally:
        conn.close()


def _flush(conn: sqlite3.Connection, mentions: list, links: list, metrics: list) -> None:  # type: ignore[type-arg]
    conn.executemany("INSERT INTO mentions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", mentions)
    conn.executemany("INSERT INTO mention_papers VALUES (?, ?, ?)", links)
    conn.executemany("INSERT INTO mention_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", metrics)
    mentions.clear()
    links.clear()
    metrics.clear()


def corpus_path(args: argparse.Namespace) -> tuple[Path, bool]:
    """Where the corpus of these arguments lives, and whether it must be built."""
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"copy_c{CORPUS_VERSION}_p{args.papers}_m{args.mentions}_s{args.seed}.db"
    return path, args.rebuild or not path.exists()


async def corpus(args: argparse.Namespace) -> Path:
    path, build_it = corpus_path(args)
    if not build_it:
        async with Database.connect(f"sqlite+aiosqlite:///{path}"):
            pass  # brought to head, if the code moved on
        return path
    building = path.with_name(f"{path.name}.building")
    await asyncio.to_thread(building.unlink, missing_ok=True)
    async with Database.connect(f"sqlite+aiosqlite:///{building}"):
        pass  # migrated
    started = time.perf_counter()
    await asyncio.to_thread(build, building, args.papers, args.mentions, args.seed)
    print(f"built {path.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    await asyncio.to_thread(building.replace, path)
    return path


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def timed(label: str, source: str, target: str, *, progress: bool) -> bool:
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"{label}: {message}", file=sys.stderr, flush=True)

    report = await copy_database(source, target, progress=say if progress else None)
    seconds = time.perf_counter() - started
    print(
        f"{label:<22} {report.rows:>10,} rows  {seconds:>7.1f} s  "
        f"{report.rows / seconds:>9,.0f} rows/s (copy and verify: {report.seconds:.1f} s, "
        f"{report.rows_per_second:,.0f} rows/s)  {'ok' if report.ok else 'MISMATCH'}"
    )
    return report.ok


async def main(args: argparse.Namespace) -> int:
    source_path = await corpus(args)
    source = f"sqlite+aiosqlite:///{source_path}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    size = source_path.stat().st_size / 1e6
    print(
        f"{args.papers:,} papers, {args.mentions:,} mentions ({size:,.0f} MB of SQLite); "
        f"{os.cpu_count()} cores, load {load:.1f}"
    )
    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        postgres = None if args.no_postgres else os.environ.get(POSTGRES_URL_VARIABLE)
        if postgres:
            name = f"hp_bench_copy_{os.getpid()}_{secrets.token_hex(3)}"
            await _admin(postgres, f'CREATE DATABASE "{name}" TEMPLATE template0')
            target = make_url(postgres).set(database=name).render_as_string(False)
            try:
                ok &= await timed("SQLite → PostgreSQL", source, target, progress=args.progress)
                back = f"sqlite+aiosqlite:///{Path(scratch) / 'back.db'}"
                ok &= await timed("PostgreSQL → SQLite", target, back, progress=args.progress)
            finally:
                await _admin(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif not args.no_postgres:
            print(f"{POSTGRES_URL_VARIABLE} is not set: SQLite → SQLite only", file=sys.stderr)
        ok &= await timed(
            "SQLite → SQLite",
            source,
            f"sqlite+aiosqlite:///{Path(scratch) / 'copy.db'}",
            progress=args.progress,
        )
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--mentions", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "hotpapers-bench"))
    parser.add_argument("--rebuild", action="store_true", help="build the corpus again")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite → SQLite only")
    parser.add_argument("--progress", action="store_true", help="the copy's lines, per table")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
