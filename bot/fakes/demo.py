"""The offline demo: the real pipeline against the fakes, serving the reference day's data."""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot.core.models import Paper, Window
from bot.fakes.arxiv import FakeArxiv
from bot.fakes.bluesky import (
    FakeBlueskyAppView,
    commit_event,
    external_embed,
    fake_did,
    link_facet,
    post_record,
)
from bot.fakes.hackernews import FakeHackerNews
from bot.fakes.huggingface import FakeHuggingFace
from bot.fakes.jetstream import FakeJetstream
from bot.fakes.x import FakeX, XLink
from bot.render.json import render_json
from bot.render.markdown import render_markdown
from bot.runtime import open_runtime
from bot.settings import Secrets, Settings
from bot.sources.bluesky import micros

REFERENCE_DATA = "hot-papers-2020-12-22.json"
DEMO_TOKEN = "demo-bearer-token"  # noqa: S105 - the local fake's credential, not a secret
_TCO = re.compile(r"https://t\.co/\w+")


def _links(text: str, urls: list[str]) -> list[XLink]:
    """The post's arXiv links, expanded from the t.co links already in its text: the post
    names which URL it links, not which t.co stands for it, so the last ones are taken
    (posts put the abstract link last: "pdf: … abs: …")."""
    shorts = _TCO.findall(text)[-len(urls) :] if urls else []
    return [XLink(url, url=shorts[i] if i < len(shorts) else None) for i, url in enumerate(urls)]


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def load_dataset(name: str = REFERENCE_DATA) -> dict[str, Any]:
    """The bundled data of a real day (see its ``_provenance``)."""
    return json.loads(resources.files("bot.fakes").joinpath("data", name).read_text("utf-8"))


def dataset_papers(data: dict[str, Any]) -> list[Paper]:
    return [
        Paper(
            arxiv_id=p["arxiv_id"],
            title=p["title"],
            abstract=p["abstract"],
            authors=tuple(p["authors"]),
            primary_category=p["categories"][0],
            categories=tuple(p["categories"]),
            published=_when(p["published"]),
            updated=_when(p["updated"]),
            version=p.get("version"),
        )
        for p in data["papers"]
    ]


@dataclass(frozen=True, slots=True)
class DemoWorld:
    """The running fakes, loaded with a dataset, and settings that point at them."""

    day: dt.date
    now: dt.datetime
    settings: Settings
    arxiv: FakeArxiv
    x: FakeX
    hackernews: FakeHackerNews
    huggingface: FakeHuggingFace
    bluesky: FakeBlueskyAppView
    jetstream: FakeJetstream

    def clock(self) -> dt.datetime:
        return self.now


def load_dataset_into(arxiv: FakeArxiv, x: FakeX, data: dict[str, Any]) -> None:
    """Serve the dataset's papers from the fake arXiv and its posts from the fake X."""
    arxiv.add_papers(dataset_papers(data))
    for post in data["posts"]:
        x.add_post(
            post["id"],
            post["text"],
            post["author_username"],
            post["author_name"],
            _when(post["created_at"]),
            _links(post["text"], post["urls"]),
            retweets=post["retweets"],
            likes=post["likes"],
            replies=post.get("replies", 0),
            quotes=post.get("quotes", 0),
            lang=post.get("lang", "en"),
        )


@dataclass(frozen=True, slots=True)
class SyntheticPost:
    """A made-up Bluesky post of the demo (labelled so in its author's display name)."""

    handle: str
    rkey: str
    text: str
    url: str  # the arXiv link
    minutes: int  # after the day's start
    likes: int
    reposts: int
    quotes: int
    replies: int
    shown: str | None = None  # linked through a facet over this text; else an external embed


# SYNTHETIC: the reference day predates Bluesky's papers crowd, so the demo's Bluesky posts are
# made up (accounts, texts and counts), linking the day's top paper. Their counts keep the
# reference's order: the top paper stays first, and its best tweet stays its best post.
SYNTHETIC_BLUESKY_POSTS = (
    SyntheticPost(
        handle="synthetic-ml-reader.bsky.social",
        rkey="3demo2ml0000a",
        text="Self-supervised learning on a budget, worth a read: arxiv.org/abs/2012.10885",
        url="https://arxiv.org/abs/2012.10885",
        shown="arxiv.org/abs/2012.10885",
        minutes=125,
        likes=180,
        reposts=40,
        quotes=6,
        replies=9,
    ),
    SyntheticPost(
        handle="synthetic-lab.bsky.social",
        rkey="3demo2lab000b",
        text="New from our friends, the PDF is up",
        url="https://arxiv.org/pdf/2012.10885v1",
        minutes=300,
        likes=12,
        reposts=3,
        quotes=0,
        replies=1,
    ),
)


def load_bluesky_into(appview: FakeBlueskyAppView, jetstream: FakeJetstream, day: dt.date) -> None:
    """Serve the synthetic Bluesky posts: their events on the fake Jetstream, their counts on
    the fake AppView."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    for post in SYNTHETIC_BLUESKY_POSTS:
        uri = appview.add_post(
            fake_did(post.handle),
            post.rkey,
            handle=post.handle,
            display_name="Synthetic demo account",
            text=post.text,
            created_at=start + dt.timedelta(minutes=post.minutes),
            likes=post.likes,
            reposts=post.reposts,
            quotes=post.quotes,
            replies=post.replies,
            facets=[link_facet(post.text, post.shown, post.url)] if post.shown else None,
            embed=None if post.shown else external_embed(post.url),
        )
        jetstream.add(appview.jetstream_event(uri))
    # The rest of the network: a post without a paper every hour of the day (on the real
    # stream, hundreds a second), so the replay sees the stream holds the whole day.
    for hour in range(24):
        moment = start + dt.timedelta(hours=hour, seconds=1)
        did = fake_did(f"synthetic-chatter-{hour}.bsky.social")
        record = post_record("Good morning, Bluesky (synthetic demo post)", moment)
        jetstream.add(commit_event(did, f"3demochat{hour:04d}", record, micros(moment)))


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@asynccontextmanager
async def demo_world(
    base: Settings, database_dir: Path, data: dict[str, Any] | None = None
) -> AsyncIterator[DemoWorld]:
    """Start fake arXiv, X, Hacker News and Hugging Face on 127.0.0.1 with the dataset."""
    data = data or load_dataset()
    now = _when(data["generated_at"])
    async with AsyncExitStack() as stack:
        arxiv = await stack.enter_async_context(FakeArxiv(now=lambda: now))
        x = await stack.enter_async_context(FakeX(token=DEMO_TOKEN, now=lambda: now))
        hn = await stack.enter_async_context(FakeHackerNews())
        hf = await stack.enter_async_context(FakeHuggingFace())
        appview = await stack.enter_async_context(FakeBlueskyAppView())
        jetstream = await stack.enter_async_context(FakeJetstream(clock=lambda: now))
        load_dataset_into(arxiv, x, data)
        day = dt.date.fromisoformat(data["day"])
        load_bluesky_into(appview, jetstream, day)
        overrides = {
            "database": {"url": f"sqlite+aiosqlite:///{database_dir / 'demo.db'}"},
            "arxiv": {"api_url": arxiv.api_url, "rss_url": arxiv.rss_url},
            "sources": {
                "x": {"enabled": True, "api_url": x.api_url},
                "hackernews": {"enabled": True, "api_url": hn.api_url},
                "huggingface": {"enabled": True, "api_url": hf.api_url},
                "bluesky": {
                    "enabled": True,
                    "jetstream_urls": [jetstream.subscribe_url],
                    "api_url": appview.url,
                    "auth_url": appview.url,
                    # The fake replays at socket speed: a short quiet spell is the live edge.
                    "replay_idle_seconds": 0.5,
                    "replay_connect_seconds": 10.0,
                },
            },
        }
        settings = Settings.model_validate(
            _deep_merge(base.model_dump(), overrides)
            | {"secrets": Secrets(sources={"X_BEARER_TOKEN": SecretStr(DEMO_TOKEN)})}
        )
        yield DemoWorld(day, now, settings, arxiv, x, hn, hf, appview, jetstream)


async def run_demo(
    base: Settings, *, output: str = "markdown", progress: Callable[[str], None] | None = None
) -> str:
    """Fetch the reference day through the real clients into a scratch database; render it."""
    with tempfile.TemporaryDirectory(prefix="hotpapers-demo-") as tmp:
        async with (
            demo_world(base, Path(tmp)) as world,
            open_runtime(world.settings, clock=world.clock) as rt,
        ):
            await rt.ingest.run(Window.for_day(world.day), progress=progress, replay=True)
            digest = await rt.digests.for_day(world.day)
    return render_json(digest) if output == "json" else render_markdown(digest)
