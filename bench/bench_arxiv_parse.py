"""Benchmark: ``parse_atom`` against feedparser on one large Atom document of real arXiv entries.

Run by hand: ``python bench/bench_arxiv_parse.py [--entries 2000] [--repeat 20]``. The document is
built by cloning every real entry of the recorded API answers (2026 serializer and, unless
``--no-legacy``, the 2016 one) under a real 2026 feed header, each clone with a fresh id. Prints
entries/s for both parsers, the ratio and the target; exits 1 when the ratio misses the target.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
from lxml import etree

from bot.sources.arxiv import parse_atom

TARGET_RATIO = 10.0
ATOM = "{http://www.w3.org/2005/Atom}"
FIXTURES = Path(
    os.environ.get(
        "HOTPAPERS_REAL_FIXTURES",
        Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real",
    )
)
GOLDEN = FIXTURES / "arxiv_api" / "arxiv.py-golden-2026-extracted"
LEGACY = FIXTURES / "arxiv_api" / "arxiv.py-legacy-2016"


def build_document(entries: int, *, legacy: bool) -> tuple[bytes, int, int]:
    """(document bytes, distinct real entries used, fixture files read)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    files = sorted(GOLDEN.glob("*.atom.xml"))
    if legacy:
        files += sorted(LEGACY.glob("*.atom.xml"))
    pool: dict[str, object] = {}
    for path in files:
        root = etree.fromstring(path.read_bytes(), parser)
        for entry in root.iterchildren(ATOM + "entry"):
            entry_id = entry.findtext(ATOM + "id") or ""
            if "/api/errors" not in entry_id:
                pool.setdefault(entry_id, entry)
    if not pool:
        raise SystemExit(f"no arXiv entries found under {FIXTURES}")

    template = etree.fromstring((GOLDEN / "q_testing_s0_m100_cfe7536492ca.atom.xml").read_bytes())
    for entry in template.findall(ATOM + "entry"):
        template.remove(entry)
    originals = list(pool.values())
    for n in range(entries):
        clone = copy.deepcopy(originals[n % len(originals)])
        clone.find(ATOM + "id").text = f"http://arxiv.org/abs/2401.{10000 + n:05d}v1"  # type: ignore[attr-defined]
        template.append(clone)
    data = etree.tostring(template, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data, len(originals), len(files)


def best_time(func: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` runs: the least disturbed by the other work on a shared machine."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20, help="runs of parse_atom")
    parser.add_argument("--feedparser-repeat", type=int, default=3, help="runs of feedparser")
    parser.add_argument("--no-legacy", action="store_true", help="2026 entries only")
    args = parser.parse_args(argv)

    data, distinct, files = build_document(args.entries, legacy=not args.no_legacy)
    # Both parsers must see every entry, or the comparison means nothing.
    ours = len(parse_atom(data).papers)
    theirs = len(feedparser.parse(data).entries)
    if ours != args.entries or theirs != args.entries:
        raise SystemExit(f"entry counts differ: parse_atom {ours}, feedparser {theirs}")

    ours_s = best_time(lambda: parse_atom(data), args.repeat)
    theirs_s = best_time(lambda: feedparser.parse(data), args.feedparser_repeat)
    ratio = theirs_s / ours_s
    ok = ratio >= TARGET_RATIO

    print(
        f"document: {args.entries} entries, {len(data) / 1e6:.2f} MB "
        f"(cloned from {distinct} distinct real entries in {files} fixture files)"
    )
    print(
        f"parse_atom (lxml {'.'.join(map(str, etree.LXML_VERSION[:3]))}): "
        f"{ours_s * 1000:8.1f} ms/doc  {args.entries / ours_s:>10,.0f} entries/s  "
        f"(best of {args.repeat})"
    )
    print(
        f"feedparser {feedparser.__version__}:        "
        f"{theirs_s * 1000:8.1f} ms/doc  {args.entries / theirs_s:>10,.0f} entries/s  "
        f"(best of {args.feedparser_repeat})"
    )
    print(f"ratio: {ratio:.1f}x   target: >= {TARGET_RATIO:.0f}x   {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
