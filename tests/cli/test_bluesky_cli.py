"""End to end: ``hotpapers fetch`` replays Bluesky's stream, ``digest --format json`` ranks it.

Real child processes, configured only through the documented environment, against a fake
Jetstream and a fake AppView on 127.0.0.1 (and the fake arXiv serving the papers).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.fakes.arxiv import FakeArxiv
from bot.fakes.bluesky import (
    FakeBlueskyAppView,
    commit_event,
    external_embed,
    fake_did,
    link_facet,
    post_record,
)
from bot.fakes.demo import dataset_papers, load_dataset
from bot.fakes.jetstream import FakeJetstream
from bot.sources.bluesky import micros
from tests.cli.test_real_day import run_cli

UTC = dt.UTC
PAPERS = [p.arxiv_id for p in dataset_papers(load_dataset())]
P1, P2, P3 = PAPERS[0], PAPERS[1], PAPERS[2]


@dataclass
class World:
    env: dict[str, str]
    appview: FakeBlueskyAppView
    jetstream: FakeJetstream
    now: dt.datetime
    start: dt.datetime


@asynccontextmanager
async def bluesky_world(tmp_path: Path, history_hours: int = 0) -> AsyncIterator[World]:
    """A day on Bluesky: three human posts (P2 linked twice), a feed bot linking 22 papers with
    huge counts, and unrelated chatter from the window's first second on."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    start = now - dt.timedelta(minutes=10)
    async with AsyncExitStack() as stack:
        arxiv = await stack.enter_async_context(FakeArxiv())
        arxiv.add_papers(dataset_papers(load_dataset()))
        appview = await stack.enter_async_context(FakeBlueskyAppView())
        jetstream = await stack.enter_async_context(FakeJetstream())
        moment = start + dt.timedelta(seconds=1)

        def post(handle: str, rkey: str, text: str, **kwargs: object) -> None:
            nonlocal moment
            moment += dt.timedelta(seconds=2)
            uri = appview.add_post(
                fake_did(handle),
                rkey,
                handle=handle,
                display_name=handle.split(".")[0],
                text=text,
                created_at=moment,
                **kwargs,  # type: ignore[arg-type]
            )
            jetstream.add(appview.jetstream_event(uri))

        # Chatter: the stream holds the window from its start (no "hours missed" warning).
        for i in range(50):
            did = fake_did(f"chatter{i}.bsky.social")
            time_us = micros(start) + 1_000 + i * 1_000_000
            rkey = f"3chat{i:08d}"
            record = post_record(f"good morning {i} 🌅", start)
            jetstream.add(commit_event(did, rkey, record, time_us))
        # Older chatter, every 20 minutes, as far back as asked (the fake keeps 36 h of it).
        for i in range(history_hours * 3):
            moment_us = micros(now - dt.timedelta(hours=history_hours)) + i * 1_200_000_000
            did = fake_did(f"early{i}.bsky.social")
            record = post_record("earlier chatter", now - dt.timedelta(hours=history_hours))
            jetstream.add(commit_event(did, f"3early{i:07d}", record, moment_us))
        text1 = f"Ça marche 🎉 — read arxiv.org/abs/{P1}"
        post(
            "alice.bsky.social",
            "3alice000000a",
            text1,
            facets=[link_facet(text1, f"arxiv.org/abs/{P1}", f"https://arxiv.org/abs/{P1}v2")],
            likes=100,
            reposts=10,
            quotes=5,
            replies=3,
        )
        post(
            "bob.bsky.social",
            "3bob00000000b",
            "this one",
            embed=external_embed(f"https://arxiv.org/pdf/{P2}"),
            likes=50,
            reposts=30,
            replies=4,
        )
        post(
            "carol.bsky.social",
            "3carol00000c",
            f"two papers: arXiv:{P3} and arxiv.org/abs/{P2}",
            likes=60,
        )
        # A feed bot: 22 distinct papers in one day (over the default 20), huge counts.
        for i, arxiv_id in enumerate([*PAPERS, *(f"2012.0{i:04d}" for i in range(1, 7))]):
            post(
                "paperfeed.bsky.social",
                f"3feed{i:08d}",
                f"New: https://arxiv.org/abs/{arxiv_id}",
                likes=1000,
                reposts=500,
            )
        env = {
            "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'bsky.db'}",
            "HOTPAPERS_ARXIV__API_URL": arxiv.api_url,
            "HOTPAPERS_ARXIV__RSS_URL": arxiv.rss_url,
            "HOTPAPERS_ARXIV__MIN_INTERVAL_SECONDS": "0",
            "HOTPAPERS_SOURCES__HACKERNEWS__ENABLED": "false",
            "HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED": "false",
            "HOTPAPERS_SOURCES__BLUESKY__JETSTREAM_URLS": jetstream.subscribe_url,
            "HOTPAPERS_SOURCES__BLUESKY__API_URL": appview.url,
            "HOTPAPERS_SOURCES__BLUESKY__AUTH_URL": appview.url,
            "HOTPAPERS_SOURCES__BLUESKY__REPLAY_IDLE_SECONDS": "0.5",
        }
        yield World(env, appview, jetstream, now, start)


async def test_fetch_then_digest_ranks_bluesky_by_its_weights(tmp_path: Path) -> None:
    async with bluesky_world(tmp_path) as world:
        since = world.start.isoformat()
        fetched = await run_cli("fetch", "--since", since, env=world.env, cwd=tmp_path)
        assert fetched.code == 0, fetched.err
        assert "Traceback" not in fetched.err
        assert "replayed" in fetched.err
        assert "missing" not in fetched.err.lower()
        day = (world.start + dt.timedelta(minutes=1)).date().isoformat()
        digest = await run_cli(
            "digest", "--date", day, "--format", "json", env=world.env, cwd=tmp_path
        )
    assert digest.code == 0, digest.err
    papers = json.loads(digest.out)["papers"]
    # Weights likes + reposts + quotes (replies count 0): P2 = 80 + 60, P1 = 115, P3 = 60.
    assert [p["arxiv_id"] for p in papers] == [P2, P1, P3]
    assert [p["score"] for p in papers] == [140, 115, 60]
    by_source = {p["arxiv_id"]: p["by_source"] for p in papers}
    assert set(by_source[P1]) == {"bluesky"}
    assert by_source[P1]["bluesky"] == {"likes": 100, "reposts": 10, "quotes": 5, "replies": 3}
    # The feed bot's 1,000 likes on each paper add nothing.
    assert by_source[P3]["bluesky"] == {"likes": 60, "reposts": 0, "quotes": 0, "replies": 0}
    posts = papers[1]["top_posts"]
    assert posts[0]["url"] == "https://bsky.app/profile/alice.bsky.social/post/3alice000000a"


async def test_a_window_older_than_the_stream_names_the_hours_missed(tmp_path: Path) -> None:
    async with bluesky_world(tmp_path, history_hours=40) as world:
        since = (world.now - dt.timedelta(hours=40)).isoformat()
        fetched = await run_cli("fetch", "--since", since, env=world.env, cwd=tmp_path)
    assert fetched.code == 0, fetched.err
    assert "Traceback" not in fetched.err
    warning = next(line for line in fetched.err.splitlines() if "missed" in line)
    assert "h missed" in warning
    # The fake keeps 36 h: about 4 of the 40 hours asked are gone.
    hours = float(warning.split("(")[-1].split(" h missed")[0])
    assert 3.5 <= hours <= 4.5, warning


@pytest.mark.parametrize("auth", ["without", "with"])
async def test_an_appview_that_asks_for_a_login(tmp_path: Path, auth: str) -> None:
    async with bluesky_world(tmp_path) as world:
        world.appview.require_auth = True
        world.appview.handle = "hotpapers-bot.bsky.social"
        world.appview.app_password = "abcd-efgh-ijkl-mnop"
        env = dict(world.env)
        if auth == "with":
            env["BLUESKY_HANDLE"] = "hotpapers-bot.bsky.social"
            env["BLUESKY_APP_PASSWORD"] = "abcd-efgh-ijkl-mnop"
        fetched = await run_cli("fetch", "--since", world.start.isoformat(), env=env, cwd=tmp_path)
    assert "Traceback" not in fetched.err
    assert "abcd-efgh-ijkl-mnop" not in fetched.err + fetched.out
    line = next(ln for ln in fetched.err.splitlines() if ln.startswith("bluesky "))
    if auth == "without":
        assert fetched.code == 1  # the only source failed
        assert "FAILED" in line
        assert "BLUESKY_APP_PASSWORD" in line
    else:
        assert fetched.code == 0, fetched.err
        assert "FAILED" not in line
