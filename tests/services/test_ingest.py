"""IngestService: every source collected, failures reported not raised, ids resolved once."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
import pytest
from pydantic import SecretStr

from bot.core.errors import MalformedResponseError, SourceError, SourceUnavailableError
from bot.core.models import Mention, Window
from bot.fakes.arxiv import FakeArxiv
from bot.fakes.x import FakeX
from bot.services.ingest import IngestService
from bot.settings import ArxivSettings, HttpSettings, XSettings
from bot.sources.arxiv import ArxivClient, ArxivRateLimiter
from bot.sources.base import PopularitySource
from bot.sources.http import HttpClient
from bot.sources.x import XSource
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from tests.storage.factories import make_mention, make_paper

UTC = dt.UTC
NOW = dt.datetime(2025, 3, 2, 6, 0, tzinfo=UTC)
WINDOW = Window(dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 3, 2, tzinfo=UTC))
NOON = dt.datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KNOWN = ("2503.00001", "2503.00002")
UNKNOWN = "2503.99999"
NO_RETRIES = HttpSettings(retries=0, backoff_initial_seconds=0)


class StubSource:
    """A popularity source that returns canned mentions or raises."""

    def __init__(self, name: str, result: Sequence[Mention] | Exception, requests: int = 1):
        self.name = name
        self._result = result
        self._requests_per_call = requests
        self._requests = 0
        self.calls: list[Window] = []

    @property
    def requests(self) -> int:
        return self._requests

    async def collect(self, window: Window) -> list[Mention]:
        self.calls.append(window)
        self._requests += self._requests_per_call
        if isinstance(self._result, Exception):
            raise self._result
        return list(self._result)


@dataclass
class Pipeline:
    db: Database
    arxiv: FakeArxiv
    client: ArxivClient
    session: aiohttp.ClientSession
    papers: PaperRepository
    mentions: MentionRepository
    runs: RunRepository

    def service(self, *sources: PopularitySource) -> IngestService:
        return IngestService(
            sources=sources,
            arxiv=self.client,
            papers=self.papers,
            mentions=self.mentions,
            runs=self.runs,
            clock=lambda: NOW,
        )


@pytest.fixture
async def pipeline(db: Database) -> AsyncIterator[Pipeline]:
    async with (
        FakeArxiv() as arxiv,
        aiohttp.ClientSession() as session,
    ):
        arxiv.add_papers(make_paper(i, title=f"Paper {i}") for i in KNOWN)
        client = ArxivClient(
            HttpClient(session, NO_RETRIES, source="arxiv"),
            ArxivSettings(api_url=arxiv.api_url, min_interval_seconds=0),
            ArxivRateLimiter(0),
        )
        yield Pipeline(
            db,
            arxiv,
            client,
            session,
            PaperRepository(db),
            MentionRepository(db),
            RunRepository(db),
        )


def mention(post_id: str, *ids: str, source: str = "x", **metrics: int) -> Mention:
    return make_mention(
        post_id,
        source=source,
        arxiv_ids=ids or KNOWN[:1],
        created_at=NOON,
        metrics=metrics or {"reposts": 10, "likes": 50},
    )


async def test_a_good_run_stores_mentions_and_papers(pipeline):
    good = StubSource("x", [mention("1", KNOWN[0]), mention("2", *KNOWN)], requests=2)
    progress: list[str] = []
    report = await pipeline.service(good).run(WINDOW, progress=progress.append)
    assert report.ok
    assert report.failures == ()
    (summary,) = report.sources
    assert (summary.source, summary.mentions, summary.papers, summary.requests) == ("x", 2, 2, 2)
    assert summary.ok
    assert report.resolved == 2
    assert report.missing == ()
    assert good.calls == [WINDOW]
    assert {s.mention.post_id for s in await pipeline.mentions.in_window(WINDOW)} == {"1", "2"}
    assert set(await pipeline.papers.get_many(KNOWN)) == set(KNOWN)
    assert progress == [
        "x: collecting 2025-03-01 00:00 → 2025-03-02 00:00",
        "x: 2 mentions, 2 papers, 2 requests",
        "arxiv: resolving 2 papers",
        "arxiv: 2 papers stored, 0 unknown",
    ]


async def test_a_post_carrying_nul_characters_is_stored_without_them(pipeline):
    """A NUL in a post's text (PostgreSQL's text cannot hold one) fails neither the write nor
    the run: the post is stored, and read back, without it, on every backend."""
    hostile = dataclasses.replace(
        mention("n1", KNOWN[0]), text="look\x00 at\x00 this", author_name="Eve\x00"
    )
    report = await pipeline.service(StubSource("x", [hostile])).run(WINDOW)
    assert report.ok, report.failures
    (stored,) = await pipeline.mentions.in_window(WINDOW)
    assert (stored.mention.text, stored.mention.author_name) == ("look at this", "Eve")


async def test_failing_crashing_and_empty_sources_do_not_stop_the_others(pipeline, caplog):
    good = StubSource("hackernews", [mention("h1", KNOWN[1], source="hackernews", points=80)])
    down = StubSource("x", SourceUnavailableError("x", "HTTP 503 after 5 attempts"), requests=5)
    garbled = StubSource("bluesky", MalformedResponseError("bluesky", "answer is not JSON"))
    buggy = StubSource("huggingface", KeyError("paper"))
    empty = StubSource("mastodon", [])
    report = await pipeline.service(down, garbled, buggy, empty, good).run(WINDOW)

    by_name = {s.source: s for s in report.sources}
    assert list(by_name) == ["x", "bluesky", "huggingface", "mastodon", "hackernews"]
    # The summary shows the source's name beside its error: the error does not repeat it.
    assert by_name["x"].error == "HTTP 503 after 5 attempts"
    assert by_name["x"].requests == 5
    assert by_name["bluesky"].error == "answer is not JSON"
    assert by_name["huggingface"].error == "unexpected KeyError"  # no exception text leaks
    assert by_name["mastodon"].ok
    assert by_name["mastodon"].mentions == 0
    assert by_name["hackernews"].ok
    assert by_name["hackernews"].mentions == 1
    assert not report.ok
    assert report.failures == (
        "x: HTTP 503 after 5 attempts",
        "bluesky: answer is not JSON",
        "huggingface: unexpected KeyError",
    )
    # What worked is stored and resolved.
    (stored,) = await pipeline.mentions.in_window(WINDOW)
    assert stored.mention.source == "hackernews"
    assert await pipeline.papers.known_ids(KNOWN) == {KNOWN[1]}
    # Every run is recorded, with its error, for the digest's warnings.
    runs = await pipeline.runs.latest_by_source()
    assert runs["x"].error == "HTTP 503 after 5 attempts"
    assert runs["huggingface"].error == "unexpected KeyError"
    assert runs["hackernews"].ok
    assert runs["hackernews"].mentions == 1
    assert "source huggingface crashed" in caplog.text


async def test_an_error_naming_another_service_keeps_its_name(pipeline):
    # A source built on another service (a bridge, a proxy) may raise that service's error.
    bridged = StubSource("mastodon", SourceUnavailableError("bridge", "HTTP 502 after 5 attempts"))
    report = await pipeline.service(bridged).run(WINDOW)
    assert report.sources[0].error == "bridge: HTTP 502 after 5 attempts"
    assert report.failures == ("mastodon: bridge: HTTP 502 after 5 attempts",)


async def test_a_malformed_answer_from_a_real_client_is_reported(pipeline):
    async with FakeX(token="t", now=lambda: NOW) as fake:
        fake.malformed_next()
        x = XSource(
            HttpClient(pipeline.session, NO_RETRIES, source="x"),
            XSettings(api_url=fake.api_url),
            SecretStr("t"),
            now=lambda: NOW,
        )
        good = StubSource("hackernews", [mention("h1", source="hackernews", points=60)])
        report = await pipeline.service(x, good).run(WINDOW)
    x_summary, hn_summary = report.sources
    assert x_summary.error is not None
    assert x_summary.error.startswith("answer is not JSON")
    assert x_summary.requests == 1
    assert hn_summary.ok
    assert report.resolved == 1


async def test_unknown_ids_are_asked_once_and_remembered(pipeline):
    source = StubSource("x", [mention("1", KNOWN[0], UNKNOWN)])
    service = pipeline.service(source)
    first = await service.run(WINDOW)
    assert first.resolved == 1
    assert first.missing == (UNKNOWN,)
    assert await pipeline.papers.missing_ids([UNKNOWN]) == {UNKNOWN}
    (lookup,) = pipeline.arxiv.requests_to("/api/query")
    assert set(lookup.params["id_list"].split(",")) == {KNOWN[0], UNKNOWN}

    pipeline.arxiv.clear_log()
    second = await service.run(WINDOW)
    assert second.ok
    assert second.resolved == 0
    assert second.missing == ()
    assert pipeline.arxiv.requests == []  # neither the known nor the missing id is asked again


async def test_a_missing_id_is_asked_again_after_six_hours_while_recently_linked(pipeline):
    # A brand-new paper: the post links it before the arXiv API has it (up to a day of lag).
    service = pipeline.service(StubSource("x", [mention("1", UNKNOWN)]))
    first = await service.run(WINDOW)
    assert first.missing == (UNKNOWN,)
    assert await pipeline.papers.missing_ids([UNKNOWN]) == {UNKNOWN}

    pipeline.arxiv.clear_log()
    service.clock = lambda: NOW + dt.timedelta(hours=5)
    soon = await service.run(WINDOW)
    assert soon.missing == ()
    assert pipeline.arxiv.requests_to("/api/query") == []  # checked under six hours ago

    pipeline.arxiv.add_papers([make_paper(UNKNOWN, title="Announced a day late")])
    service.clock = lambda: NOW + dt.timedelta(hours=6)
    later = await service.run(WINDOW)
    (lookup,) = pipeline.arxiv.requests_to("/api/query")
    assert lookup.params["id_list"] == UNKNOWN
    assert later.resolved == 1
    assert later.missing == ()
    assert (await pipeline.papers.get(UNKNOWN)).title == "Announced a day late"
    assert await pipeline.papers.missing_ids([UNKNOWN]) == set()


async def test_a_missing_id_linked_only_by_old_posts_is_not_asked_again(pipeline):
    service = pipeline.service(StubSource("x", [mention("1", UNKNOWN)]))
    await service.run(WINDOW)
    pipeline.arxiv.clear_log()
    # The post (created at NOON) is now more than three days old.
    service.clock = lambda: NOON + dt.timedelta(days=3, hours=1)
    service.sources = []
    report = await service.run(WINDOW)
    assert report.ok
    assert pipeline.arxiv.requests_to("/api/query") == []


async def test_an_id_arxiv_refuses_does_not_fail_the_others(pipeline):
    refused = "2503.55555"
    pipeline.arxiv.reject_ids(refused)
    service = pipeline.service(StubSource("x", [mention("1", *KNOWN, refused)]))
    report = await service.run(WINDOW)
    assert report.ok
    assert report.arxiv_error is None
    assert report.resolved == 2
    assert report.missing == (refused,)
    assert await pipeline.papers.known_ids(KNOWN) == set(KNOWN)
    assert await pipeline.papers.missing_ids([refused]) == {refused}


async def test_only_new_ids_are_resolved(pipeline):
    service = pipeline.service(StubSource("x", [mention("1", KNOWN[0])]))
    await service.run(WINDOW)
    pipeline.arxiv.clear_log()
    service.sources = [StubSource("x", [mention("1", KNOWN[0]), mention("2", KNOWN[1])])]
    report = await service.run(WINDOW)
    assert report.resolved == 1
    (lookup,) = pipeline.arxiv.requests_to("/api/query")
    assert lookup.params["id_list"] == KNOWN[1]


async def test_arxiv_down_is_reported_and_ids_are_retried_next_run(pipeline):
    service = pipeline.service(StubSource("x", [mention("1", KNOWN[0])]))
    pipeline.arxiv.fail_next(503)
    progress: list[str] = []
    report = await service.run(WINDOW, progress=progress.append)
    assert report.arxiv_error == "HTTP 503 after 1 attempts"
    assert report.failures == ("arxiv: HTTP 503 after 1 attempts",)
    assert report.sources[0].ok  # the mentions are stored all the same
    assert "arxiv: FAILED" in progress  # the reason is the report's, said once (the summary)
    assert await pipeline.mentions.unresolved_ids() == [KNOWN[0]]
    assert await pipeline.papers.missing_ids([KNOWN[0]]) == set()  # not marked missing

    again = await service.run(WINDOW)
    assert again.ok
    assert again.resolved == 1
    assert await pipeline.papers.known_ids(KNOWN) == {KNOWN[0]}


async def test_a_rerun_updates_metrics_instead_of_duplicating(pipeline):
    service = pipeline.service(StubSource("x", [mention("1", reposts=1, likes=2)]))
    await service.run(WINDOW)
    service.sources = [StubSource("x", [mention("1", reposts=5, likes=9)])]
    service.clock = lambda: NOW + dt.timedelta(hours=1)
    await service.run(WINDOW)
    (stored,) = await pipeline.mentions.in_window(WINDOW)
    assert stored.mention.metrics == {"reposts": 5, "likes": 9}
    assert len(await pipeline.mentions.history("x", "1")) == 2
    assert await pipeline.papers.count() == 1


async def test_no_sources_is_an_empty_report(pipeline):
    report = await pipeline.service().run(WINDOW)
    assert report.sources == ()
    assert report.resolved == 0
    assert report.ok


async def test_a_source_error_is_the_base_of_what_sources_raise():
    # The service catches SourceError for reporting; the subclasses it relies on are in it.
    assert issubclass(SourceUnavailableError, SourceError)
    assert issubclass(MalformedResponseError, SourceError)
