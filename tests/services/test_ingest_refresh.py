"""IngestService with a refreshing source (Bluesky): stored posts re-read, snapshots, deletions,
and the stream replay of ``hotpapers fetch`` before the refresh.

The real ``BlueskySource`` talks to ``FakeBlueskyAppView``; the posts are stored the way the
stream stores them (``parse_event`` of the AppView's own Jetstream events).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bot.core.errors import SourceError
from bot.core.models import Mention, Window
from bot.fakes.arxiv import FakeArxiv
from bot.fakes.bluesky import FakeBlueskyAppView, fake_did, frame, link_facet
from bot.services.ingest import IngestService, RefreshingSource
from bot.services.stream import StreamConsumer
from bot.settings import ArxivSettings, HttpSettings
from bot.sources.arxiv import ArxivClient, ArxivRateLimiter
from bot.sources.base import PopularitySource
from bot.sources.bluesky import (
    GET_POSTS,
    BlueskySettings,
    BlueskySource,
    PostUpsert,
    micros,
    parse_event,
)
from bot.sources.http import HttpClient
from bot.sources.jetstream import Frame, frame_time_us
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from bot.storage.streams import StreamRepository
from tests.storage.factories import make_mention, make_paper

UTC = dt.UTC
NOW = dt.datetime(2025, 3, 2, 6, 0, tzinfo=UTC)
WINDOW = Window(dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 2, tzinfo=UTC))
NOON = dt.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KNOWN = ("2503.00001", "2503.00002")
NO_RETRIES = HttpSettings(retries=0, backoff_initial_seconds=0)
ALICE, BOB = "alice.example.com", "bob.bsky.social"


class Clock:
    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Setup:
    db: Database
    arxiv: FakeArxiv
    appview: FakeBlueskyAppView
    clock: Clock
    client: ArxivClient
    bluesky: BlueskySource
    mentions: MentionRepository
    papers: PaperRepository
    runs: RunRepository
    streams: StreamRepository

    def service(
        self, *sources: PopularitySource, consumers: dict[str, StreamConsumer] | None = None
    ) -> IngestService:
        return IngestService(
            sources=sources or (self.bluesky,),
            arxiv=self.client,
            papers=self.papers,
            mentions=self.mentions,
            runs=self.runs,
            clock=self.clock,
            consumers=consumers,
        )

    def add_post(
        self,
        handle: str,
        rkey: str,
        arxiv_id: str = KNOWN[0],
        *,
        created_at: dt.datetime = NOON,
        likes: int = 0,
        reposts: int = 0,
        quotes: int = 0,
        replies: int = 0,
    ) -> str:
        """A post on the AppView linking ``arxiv_id`` with a link facet; returns its at-uri."""
        text = f"Worth a read: arxiv.org/abs/{arxiv_id}"
        return self.appview.add_post(
            fake_did(handle),
            rkey,
            handle=handle,
            display_name=handle.split(".")[0].title(),
            text=text,
            created_at=created_at,
            facets=[
                link_facet(text, f"arxiv.org/abs/{arxiv_id}", f"https://arxiv.org/abs/{arxiv_id}")
            ],
            likes=likes,
            reposts=reposts,
            quotes=quotes,
            replies=replies,
        )

    def streamed(self, uri: str) -> Mention:
        """The post as the stream stores it (author: the DID; no metrics)."""
        _, event = parse_event(frame(self.appview.jetstream_event(uri)))
        assert isinstance(event, PostUpsert)
        return event.mention

    async def discover(self, *uris: str) -> list[Mention]:
        posts = [self.streamed(uri) for uri in uris]
        await self.mentions.upsert_discovered(posts, NOON)
        return posts

    async def stored(self) -> dict[str, Mention]:
        rows = await self.mentions.in_window(WINDOW, sources=["bluesky"])
        return {s.mention.post_id: s.mention for s in rows}


@pytest.fixture
async def setup(db: Database) -> AsyncIterator[Setup]:
    async with (
        FakeArxiv() as arxiv,
        FakeBlueskyAppView() as appview,
        aiohttp.ClientSession() as session,
    ):
        arxiv.add_papers(make_paper(i, title=f"Paper {i}") for i in KNOWN)
        client = ArxivClient(
            HttpClient(session, NO_RETRIES, source="arxiv"),
            ArxivSettings(api_url=arxiv.api_url, min_interval_seconds=0),
            ArxivRateLimiter(0),
        )
        bluesky = BlueskySource(
            HttpClient(session, NO_RETRIES, source="bluesky"),
            BlueskySettings(enabled=True, api_url=appview.url, auth_url=appview.url),
        )
        yield Setup(
            db,
            arxiv,
            appview,
            Clock(),
            client,
            bluesky,
            MentionRepository(db),
            PaperRepository(db),
            RunRepository(db),
            StreamRepository(db),
        )


def asked_uris(appview: FakeBlueskyAppView) -> list[str]:
    return [uri for r in appview.requests_to(GET_POSTS) for uri in r.query.getall("uris")]


class StubSource:
    """A popularity source that is not refreshing: canned mentions."""

    def __init__(self, name: str, result: Sequence[Mention]) -> None:
        self.name = name
        self.result = list(result)
        self.requests = 0

    async def collect(self, window: Window) -> list[Mention]:
        self.requests += 1
        return self.result


def test_the_bluesky_source_is_a_refreshing_source(setup: Setup) -> None:
    assert isinstance(setup.bluesky, RefreshingSource)
    assert not isinstance(StubSource("x", []), RefreshingSource)


async def test_stored_posts_are_refreshed_and_their_metrics_snapshotted(setup: Setup) -> None:
    a = setup.add_post(ALICE, "3lalice000001", likes=40, reposts=12, quotes=3, replies=5)
    b = setup.add_post(BOB, "3lbob00000001", KNOWN[1], likes=7)
    await setup.discover(a, b)
    progress: list[str] = []
    report = await setup.service().run(WINDOW, progress=progress.append)
    assert report.ok, report.failures
    (summary,) = report.sources
    assert (summary.source, summary.mentions, summary.papers, summary.requests) == (
        "bluesky",
        2,
        2,
        1,
    )
    assert summary.gone == 0
    assert await setup.mentions.history("bluesky", a) == [
        (NOW, {"likes": 40, "reposts": 12, "quotes": 3, "replies": 5})
    ]
    stored = await setup.stored()
    alice = stored[a]
    # What the AppView knows replaces what the stream knew; text, time and links stay.
    assert (alice.author, alice.author_name) == (ALICE, "Alice")
    assert alice.url == f"https://bsky.app/profile/{ALICE}/post/3lalice000001"
    assert alice.arxiv_ids == (KNOWN[0],)
    assert alice.created_at == NOON
    assert alice.text == setup.streamed(a).text
    assert stored[b].metrics == {"likes": 7, "reposts": 0, "quotes": 0, "replies": 0}
    assert sorted(asked_uris(setup.appview)) == sorted([a, b])
    assert any("bluesky: 2 mentions, 2 papers, 1 requests" in line for line in progress)
    (run,) = (await setup.runs.latest_by_source()).values()
    assert (run.source, run.mentions, run.requests, run.error) == ("bluesky", 2, 1, None)


async def test_a_later_run_adds_a_snapshot(setup: Setup) -> None:
    a = setup.add_post(ALICE, "3lalice000001", likes=10)
    await setup.discover(a)
    await setup.service().run(WINDOW)
    setup.appview.set_counts(a, likes=25, reposts=4)
    setup.appview.set_handle(fake_did(ALICE), "alice.new.example", "Alice B.")
    setup.clock.now = NOW + dt.timedelta(hours=6)
    await setup.service().run(WINDOW)
    history = await setup.mentions.history("bluesky", a)
    assert [(at, m["likes"], m["reposts"]) for at, m in history] == [
        (NOW, 10, 0),
        (NOW + dt.timedelta(hours=6), 25, 4),
    ]
    stored = (await setup.stored())[a]
    assert (stored.author, stored.author_name) == ("alice.new.example", "Alice B.")


async def test_posts_the_appview_no_longer_shows_are_forgotten(setup: Setup) -> None:
    a = setup.add_post(ALICE, "3lalice000001", likes=10)
    b = setup.add_post(BOB, "3lbob00000001", KNOWN[1], likes=10)
    await setup.discover(a, b)
    await setup.service().run(WINDOW)  # both refreshed once: a snapshot each
    setup.appview.delete_post(b)
    progress: list[str] = []
    report = await setup.service().run(WINDOW, progress=progress.append)
    (summary,) = report.sources
    assert (summary.mentions, summary.gone, summary.error) == (1, 1, None)
    assert set(await setup.stored()) == {a}
    assert await setup.mentions.history("bluesky", b) == []
    assert any("1 deleted posts forgotten" in line for line in progress)


async def test_only_the_windows_posts_are_refreshed(setup: Setup) -> None:
    inside = setup.add_post(ALICE, "3lalice000001")
    before = setup.add_post(BOB, "3lbob00000001", created_at=WINDOW.start - dt.timedelta(hours=1))
    await setup.discover(inside, before)
    report = await setup.service().run(WINDOW)
    assert report.sources[0].mentions == 1
    assert asked_uris(setup.appview) == [inside]
    assert await setup.mentions.history("bluesky", before) == []


async def test_more_posts_than_one_request_holds(setup: Setup) -> None:
    uris = [setup.add_post(f"user{n}.example.com", f"3lpost{n:07d}", likes=n) for n in range(30)]
    await setup.discover(*uris)
    report = await setup.service().run(WINDOW)
    (summary,) = report.sources
    assert (summary.mentions, summary.requests) == (30, 2)
    assert sorted(asked_uris(setup.appview)) == sorted(uris)
    stored = await setup.stored()
    assert all(stored[uri].metric("likes") == n for n, uri in enumerate(uris))


async def test_nothing_stored_nothing_asked(setup: Setup) -> None:
    report = await setup.service().run(WINDOW)
    assert report.ok
    assert report.sources[0].mentions == 0
    assert setup.appview.requests_to(GET_POSTS) == []


async def test_a_failing_appview_is_reported_and_deletes_nothing(setup: Setup) -> None:
    a = setup.add_post(ALICE, "3lalice000001", likes=10)
    await setup.discover(a)
    setup.appview.fail_next(503, "upstream down", path=GET_POSTS)
    other = StubSource("x", [make_mention("t1", arxiv_ids=(KNOWN[1],), created_at=NOON)])
    report = await setup.service(setup.bluesky, other).run(WINDOW)
    by_source = {s.source: s for s in report.sources}
    assert by_source["bluesky"].error is not None
    assert by_source["bluesky"].gone == 0
    assert by_source["x"].ok
    assert any(f.startswith("bluesky:") for f in report.failures)
    # The post is still there, without metrics: a failure is not a deletion.
    assert set(await setup.stored()) == {a}
    assert await setup.mentions.history("bluesky", a) == []
    # The streamed posts' papers are still resolved on arXiv.
    assert await setup.papers.known_ids(KNOWN) == set(KNOWN)


async def test_a_malformed_answer_deletes_nothing(setup: Setup) -> None:
    a = setup.add_post(ALICE, "3lalice000001")
    await setup.discover(a)
    setup.appview.serve_next(b'{"cursor": "x"}', path=GET_POSTS)
    report = await setup.service().run(WINDOW)
    assert report.sources[0].error is not None
    assert set(await setup.stored()) == {a}


async def test_the_papers_of_streamed_posts_are_resolved(setup: Setup) -> None:
    await setup.discover(setup.add_post(ALICE, "3lalice000001", KNOWN[1]))
    report = await setup.service().run(WINDOW)
    assert report.resolved == 1
    assert await setup.papers.known_ids(KNOWN) == {KNOWN[1]}


# -- replay (hotpapers fetch) --------------------------------------------------------------------


class ScriptedStream:
    """The AppView's posts' Jetstream frames, from a cursor on, then the live edge (silence)."""

    instance = "wss://jetstream.test/subscribe"

    def __init__(self, events: Sequence[dict[str, Any]]) -> None:
        self.texts = [frame(e) for e in events]
        self.cursors: list[int | None] = []

    async def frames(self, cursor_us: int | None) -> AsyncIterator[Frame]:
        self.cursors.append(cursor_us)
        for text in self.texts:
            time_us = frame_time_us(text)
            if cursor_us is None or time_us is None or time_us >= cursor_us:
                yield Frame(text, time_us, self.instance)
        await asyncio.Event().wait()


class StreamingBluesky:
    """The Bluesky source as the runtime sees it: refresh through the AppView, plus a stream."""

    name = "bluesky"

    def __init__(self, source: BlueskySource, stream: Any) -> None:
        self._source = source
        self.stream = stream

    @property
    def requests(self) -> int:
        return self._source.requests

    async def collect(self, window: Window) -> list[Mention]:
        return await self._source.collect(window)

    async def refresh(self, posts: Sequence[Mention]) -> Any:
        return await self._source.refresh(posts)

    def decode(self, text: str) -> Any:
        return parse_event(text)


def consumer_for(setup: Setup, source: StreamingBluesky) -> StreamConsumer:
    return StreamConsumer(
        source=source,
        settings=BlueskySettings(
            enabled=True, replay_idle_seconds=0.05, replay_connect_seconds=0.05
        ),
        mentions=setup.mentions,
        streams=setup.streams,
        clock=setup.clock,
    )


async def test_replay_reads_the_stream_first_then_refreshes_what_it_found(setup: Setup) -> None:
    a = setup.add_post(ALICE, "3lalice000001", likes=40, reposts=2)
    b = setup.add_post(BOB, "3lbob00000001", KNOWN[1], likes=3)
    early = setup.appview.jetstream_event(a, time_us=micros(WINDOW.start) + 1_000_000)
    stream = ScriptedStream([early, setup.appview.jetstream_event(b)])
    source = StreamingBluesky(setup.bluesky, stream)
    service = setup.service(source, consumers={"bluesky": consumer_for(setup, source)})
    progress: list[str] = []
    report = await service.run(WINDOW, progress=progress.append, replay=True)
    assert report.ok, report.failures
    assert stream.cursors == [micros(WINDOW.start)]
    (summary,) = report.sources
    assert summary.mentions == 2
    (note,) = summary.notes
    assert note.startswith("replayed 2 events: 2 posts linking arXiv")
    assert "WARNING" not in note
    assert any(line.startswith("bluesky: replayed 2 events") for line in progress)
    assert await setup.mentions.history("bluesky", a) == [
        (NOW, {"likes": 40, "reposts": 2, "quotes": 0, "replies": 0})
    ]
    assert (await setup.stored())[b].author == BOB
    assert report.resolved == 2


async def test_without_replay_the_stream_is_left_to_the_live_consumer(setup: Setup) -> None:
    a = setup.add_post(ALICE, "3lalice000001")
    stream = ScriptedStream([setup.appview.jetstream_event(a)])
    source = StreamingBluesky(setup.bluesky, stream)
    service = setup.service(source, consumers={"bluesky": consumer_for(setup, source)})
    report = await service.run(WINDOW)
    assert stream.cursors == []
    assert report.sources[0].notes == ()
    assert report.sources[0].mentions == 0
    assert await setup.stored() == {}


async def test_a_replay_that_misses_hours_says_so(setup: Setup) -> None:
    late = setup.add_post(ALICE, "3lalice000001", created_at=NOON)
    source = StreamingBluesky(setup.bluesky, ScriptedStream([setup.appview.jetstream_event(late)]))
    service = setup.service(source, consumers={"bluesky": consumer_for(setup, source)})
    report = await service.run(WINDOW, replay=True)
    (note,) = report.sources[0].notes
    assert "WARNING" in note
    assert "(12.0 h missed)" in note
    assert report.sources[0].mentions == 1


async def test_an_unreachable_stream_fails_the_source_not_the_run(setup: Setup) -> None:
    source = StreamingBluesky(setup.bluesky, ScriptedStream([]))
    other = StubSource("x", [make_mention("t1", arxiv_ids=(KNOWN[0],), created_at=NOON)])
    service = setup.service(source, other, consumers={"bluesky": consumer_for(setup, source)})
    report = await service.run(WINDOW, replay=True)
    by_source = {s.source: s for s in report.sources}
    assert by_source["bluesky"].error is not None
    assert "sent nothing" in by_source["bluesky"].error
    assert by_source["x"].ok
    assert report.resolved == 1


async def test_a_source_error_from_refresh_is_reported_with_its_kind(setup: Setup) -> None:
    class Refusing(StreamingBluesky):
        async def refresh(self, posts: Sequence[Mention]) -> Any:
            raise SourceError("bluesky", "AppView refused", kind="refused")

    a = setup.add_post(ALICE, "3lalice000001")
    await setup.discover(a)
    report = await setup.service(Refusing(setup.bluesky, ScriptedStream([]))).run(WINDOW)
    assert report.sources[0].error == "AppView refused"
    assert set(await setup.stored()) == {a}
    run = (await setup.runs.latest_by_source())["bluesky"]
    assert (run.error, run.error_kind) == ("AppView refused", "refused")
