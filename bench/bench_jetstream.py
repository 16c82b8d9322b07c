"""Benchmark: ``parse_event`` over a synthetic Jetstream stream of every Bluesky post.

Run by hand: ``python bench/bench_jetstream.py [--frames 200000] [--repeat 3] [--seed 7]``. The
stream is what a ``/subscribe?wantedCollections=app.bsky.feed.post`` subscriber receives (likes,
reposts and follows are filtered out by the server; identity and account events come anyway):

* ~93% posts that link no paper: 1 to 300 characters in eight languages with emoji, replies,
  mention/tag/link facets, image, link-card and quote embeds; about 1% say "papers" or "XIV",
  and some link a page about Louis XIV, which the fast path's screen lets through to the full
  parser;
* ~1.5% posts linking arXiv by a link facet, a link card, a quote with a card, or the text,
  some linking several papers;
* ~3% post deletes, ~0.3% edits, ~1.5% identity and ~0.4% account events (half deletions).

Frames are compact JSON with non-ASCII as is, as Jetstream's Go encoder writes them, fed as str
(what aiohttp yields for a text frame). Prints events/s with the fast path, and without it for
comparison, the counts of each outcome, and PASS/FAIL against the target; exits 1 on FAIL or
when the matches differ from the posts generated with a paper.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import gc
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from bot.fakes.bluesky import (
    account_event,
    commit_event,
    external_embed,
    fake_did,
    frame,
    identity_event,
    link_facet,
    post_deleted_event,
    post_record,
    record_with_media_embed,
    tag_facet,
    tid,
)
from bot.sources import bluesky
from bot.sources.bluesky import MalformedEventError, micros, parse_event

TARGET = 10_000  # events/s on one core
START = dt.datetime(2026, 3, 9, 12, 0, tzinfo=dt.UTC)
_WORDS = {
    "en": "the a of and to in is it that for on with this just so really my we you today new "
    "think love great post thread people time work good day week night news game music",
    "ja": "今日 は とても 良い 天気 です 新しい ゲーム 音楽 仕事 友達 映画 猫 ありがとう 本当に "
    "すごい 楽しい 明日 週末",
    "pt": "hoje o a de que e do da em um para com não uma os no se na por mais as dos como "
    "mas foi ao ele das tem",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als "
    "auch es an werden aus",
    "es": "el la de que y a en un ser se no haber por con su para como estar tener le lo "
    "todo pero más hacer",
    "ko": "오늘 정말 좋은 하루 입니다 새로운 음악 게임 친구 영화 고양이 감사합니다 내일 주말",
    "fr": "le la de et à un il être et en avoir que pour dans ce son une sur avec ne se pas "
    "tout plus par",
    "zh": "今天 天气 很好 我们 一起 新的 音乐 游戏 朋友 电影 猫 谢谢 明天 周末",
}
WORDS = {lang: words.split() for lang, words in _WORDS.items()}
LANG_WEIGHTS = {"en": 55, "ja": 15, "pt": 10, "de": 5, "es": 5, "ko": 3, "fr": 4, "zh": 3}
EMOJI = "🎉😂❤️🔥👀🙏✨😭🥲👍🧵📷🌸☕"
SITES = (
    "https://www.nytimes.com/2026/03/09/world/europe/story.html",
    "https://youtu.be/dQw4w9WgXcQ",
    "https://github.com/bluesky-social/atproto",
    "https://en.wikipedia.org/wiki/Louis_XIV",  # "XIV": the screen lets it through
    "https://www.theguardian.com/science/2026/mar/09/a-story",
    "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC",
)
FALSE_ALARMS = (
    "grading papers all weekend",
    "Louis XIV had opinions",
    "the papers are in, results tomorrow",
    "Super Bowl XIV rewatch",
)


class Stream:
    """Builds the frames and remembers what it built."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.time_us = micros(START)
        self.dids = [fake_did(f"user{n}") for n in range(5000)]
        self.recent: list[tuple[str, str]] = []
        self.expected = collections.Counter[str]()

    def _tick(self) -> int:
        self.time_us += self.rng.randint(200, 8000)  # a few hundred events a second
        return self.time_us

    def _text(self, lang: str, limit: int) -> str:
        rng = self.rng
        words = []
        size = 0
        while size < limit:
            word = rng.choice(WORDS[lang])
            if rng.random() < 0.06:
                word += rng.choice(EMOJI)
            words.append(word)
            size += len(word) + 1
        joiner = "" if lang in ("ja", "zh") and rng.random() < 0.5 else " "
        return joiner.join(words)[:limit]

    def _plain_post(self, did: str, rkey: str, time_us: int) -> dict[str, Any]:
        rng = self.rng
        lang = rng.choices(list(LANG_WEIGHTS), weights=list(LANG_WEIGHTS.values()))[0]
        text = self._text(lang, rng.choice((12, 40, 80, 140, 220, 300)))
        facets: list[dict[str, Any]] = []
        embed: dict[str, Any] | None = None
        roll = rng.random()
        if roll < 0.01:
            text = f"{text} {rng.choice(FALSE_ALARMS)}"
        elif roll < 0.11:
            site = rng.choice(SITES)
            shown = site.removeprefix("https://")[:24] + "..."
            text = f"{text} {shown}"
            facets.append(link_facet(text, shown, site))
        elif roll < 0.18:
            text = f"{text} #art"
            facets.append(tag_facet(text, "art"))
        kind = rng.random()
        if kind < 0.25:
            image = {"$type": "blob", "ref": {"$link": "bafkrei" + "a" * 52},
                     "mimeType": "image/jpeg", "size": rng.randint(10_000, 900_000)}  # fmt: skip
            embed = {"$type": "app.bsky.embed.images",
                     "images": [{"alt": "", "image": image}] * rng.randint(1, 4)}  # fmt: skip
        elif kind < 0.32:
            embed = external_embed(rng.choice(SITES), self._text(lang, 60), self._text(lang, 150))
        elif kind < 0.36 and self.recent:
            quoted = bluesky.post_uri(*rng.choice(self.recent))
            embed = {"$type": "app.bsky.embed.record",
                     "record": {"uri": quoted, "cid": "bafyrei" + "b" * 52}}  # fmt: skip
        reply_to = None
        if self.recent and rng.random() < 0.35:
            reply_to = bluesky.post_uri(*rng.choice(self.recent))
        created = START + dt.timedelta(microseconds=time_us - micros(START) - 300_000)
        record = post_record(
            text, created, langs=[lang], facets=facets, embed=embed, reply_to=reply_to
        )
        return commit_event(did, rkey, record, time_us)

    def _paper_post(self, did: str, rkey: str, time_us: int) -> dict[str, Any]:
        rng = self.rng
        papers = [f"26{rng.randint(1, 3):02d}.{rng.randint(1, 29999):05d}"]
        if rng.random() < 0.1:
            papers.append(f"25{rng.randint(1, 12):02d}.{rng.randint(1, 29999):05d}")
        lang = rng.choice(("en", "en", "en", "ja", "pt", "de"))
        text = self._text(lang, rng.choice((40, 120, 200)))
        facets: list[dict[str, Any]] = []
        embed: dict[str, Any] | None = None
        how = rng.random()
        first = papers[0]
        url = f"https://arxiv.org/abs/{first}"
        if how < 0.4:
            shown = f"arxiv.org/abs/{first[:7]}..."
            text = f"{text} {shown}"
            facets.append(link_facet(text, shown, url))
        elif how < 0.75:
            embed = external_embed(url, f"[{first}] A title", "Abstract: we study…")
        elif how < 0.85 and self.recent:
            quoted = bluesky.post_uri(*rng.choice(self.recent))
            embed = record_with_media_embed(external_embed(url, first, ""), quoted)
        else:
            text = f"{text} arXiv:{first}"
        for extra in papers[1:]:
            text = f"{text} https://arxiv.org/pdf/{extra}v2"
        created = START + dt.timedelta(microseconds=time_us - micros(START) - 300_000)
        record = post_record(text, created, langs=[lang], facets=facets, embed=embed)
        return commit_event(did, rkey, record, time_us)

    def frames(self, count: int) -> list[str]:
        rng = self.rng
        out = []
        for _ in range(count):
            time_us = self._tick()
            did = rng.choice(self.dids)
            roll = rng.random()
            if roll < 0.015:
                rkey = tid(time_us, rng.randrange(1024))
                event = self._paper_post(did, rkey, time_us)
                self.expected["upsert"] += 1
                self.recent.append((did, rkey))
            elif roll < 0.045 and self.recent:
                event = post_deleted_event(*rng.choice(self.recent), time_us)
                self.expected["delete"] += 1
            elif roll < 0.06:
                event = identity_event(did, time_us, f"user{rng.randrange(5000)}.bsky.social")
                self.expected["none"] += 1
            elif roll < 0.064:
                deleted = rng.random() < 0.5
                event = account_event(
                    did,
                    time_us,
                    active=not deleted and rng.random() < 0.5,
                    status="deleted" if deleted else "deactivated",
                )
                self.expected["account" if deleted else "none"] += 1
            else:
                rkey = tid(time_us, rng.randrange(1024))
                event = self._plain_post(did, rkey, time_us)
                if rng.random() < 0.003:
                    event["commit"]["operation"] = "update"  # an edit: drops a stored copy
                    self.expected["delete"] += 1
                else:
                    self.expected["none"] += 1
                self.recent.append((did, rkey))
            if len(self.recent) > 2000:
                del self.recent[:1000]
            out.append(frame(event))
        return out


def run(frames: list[str], parse: Callable[[str], tuple[int | None, Any]]) -> collections.Counter:
    outcomes = collections.Counter[str]()
    for raw in frames:
        try:
            _, event = parse(raw)
        except MalformedEventError:
            outcomes["malformed"] += 1
            continue
        outcomes[_outcome(event)] += 1
    return outcomes


def _outcome(event: object) -> str:
    if isinstance(event, bluesky.PostUpsert):
        return "upsert"
    if isinstance(event, bluesky.PostDelete):
        return "delete"
    if isinstance(event, bluesky.AccountDelete):
        return "account"
    return "none"


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
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    stream = Stream(args.seed)
    built = time.perf_counter()
    frames = stream.frames(args.frames)
    built = time.perf_counter() - built
    total_bytes = sum(len(f.encode()) for f in frames)

    outcomes = run(frames, parse_event)
    if outcomes != stream.expected:
        print(f"outcomes differ: parse_event {dict(outcomes)}, generated {dict(stream.expected)}")
        return 1
    slow = run(frames, lambda raw: bluesky._parse(raw, screen=False))
    if slow != outcomes:
        print(f"the fast path changed the answers: {dict(outcomes)} vs {dict(slow)}")
        return 1
    screened_in = sum(bluesky._may_name_a_paper(f) for f in frames)

    fast_s = best_time(lambda: run(frames, parse_event), args.repeat)
    full_s = best_time(lambda: run(frames, lambda r: bluesky._parse(r, screen=False)), args.repeat)
    as_bytes = [f.encode() for f in frames]
    bytes_s = best_time(lambda: [parse_event(b) for b in as_bytes], args.repeat)
    rate = args.frames / fast_s
    ok = rate >= TARGET

    print(
        f"stream: {args.frames:,} frames, {total_bytes / 1e6:.1f} MB "
        f"(avg {total_bytes / args.frames:.0f} B), built in {built:.1f} s, seed {args.seed}; "
        f"cpus: {os.cpu_count()}"
    )
    print(
        "outcomes: "
        + ", ".join(f"{k} {outcomes[k]:,}" for k in ("upsert", "delete", "account", "none"))
        + f", malformed {outcomes['malformed']:,}; "
        f"screen passed {screened_in:,} frames to the full parser"
    )
    print(
        f"parse_event (str):         {fast_s * 1e6 / args.frames:6.2f} us/event  "
        f"{rate:>10,.0f} events/s  (best of {args.repeat})"
    )
    print(
        f"parse_event (bytes):       {bytes_s * 1e6 / args.frames:6.2f} us/event  "
        f"{args.frames / bytes_s:>10,.0f} events/s"
    )
    print(
        f"without the fast path:     {full_s * 1e6 / args.frames:6.2f} us/event  "
        f"{args.frames / full_s:>10,.0f} events/s"
    )
    print(f"matches (posts linking arXiv): {outcomes['upsert']:,}")
    print(f"target: >= {TARGET:,} events/s on one core   {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
