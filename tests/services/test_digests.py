"""DigestService: the UTC day [D, D+1), the latest metrics, options and generated_at."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from bot.core.models import Window
from bot.services.digests import DigestService
from bot.settings import RankingSettings
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from tests.storage.factories import make_mention, make_paper

UTC = dt.UTC
DAY = dt.date(2025, 3, 1)
MIDNIGHT = dt.datetime(2025, 3, 1, tzinfo=UTC)
NEXT_MIDNIGHT = MIDNIGHT + dt.timedelta(days=1)
FETCHED = dt.datetime(2025, 3, 2, 10, 50, tzinfo=UTC)
CLOCK = dt.datetime(2025, 3, 5, 8, 0, tzinfo=UTC)
SECOND = dt.timedelta(seconds=1)


@dataclass
class Store:
    papers: PaperRepository
    mentions: MentionRepository
    runs: RunRepository

    def service(self, **ranking: object) -> DigestService:
        return DigestService(
            papers=self.papers,
            mentions=self.mentions,
            runs=self.runs,
            ranking=RankingSettings(**ranking),  # type: ignore[arg-type]
            clock=lambda: CLOCK,
        )

    async def paper(self, arxiv_id: str, *categories: str) -> None:
        await self.papers.upsert(
            [make_paper(arxiv_id, title=f"Paper {arxiv_id}", categories=categories or ("cs.LG",))],
            FETCHED,
        )

    async def post(
        self,
        post_id: str,
        arxiv_id: str,
        created_at: dt.datetime,
        *,
        reposts: int = 30,
        likes: int = 30,
        fetched_at: dt.datetime = FETCHED,
        source: str = "x",
        metrics: dict[str, int] | None = None,
    ) -> None:
        await self.mentions.upsert(
            [
                make_mention(
                    post_id,
                    source=source,
                    arxiv_ids=(arxiv_id,),
                    created_at=created_at,
                    metrics=metrics or {"reposts": reposts, "likes": likes},
                )
            ],
            fetched_at,
        )


@pytest.fixture
def store(db: Database) -> Store:
    return Store(PaperRepository(db), MentionRepository(db), RunRepository(db))


def ids(digest) -> list[str]:
    return [p.paper.arxiv_id for p in digest.papers]


async def test_only_mentions_created_in_the_utc_day_count(store):
    for arxiv_id in ("2503.00001", "2503.00002", "2503.00003", "2503.00004"):
        await store.paper(arxiv_id)
    await store.post("before", "2503.00001", MIDNIGHT - SECOND)  # the day before
    await store.post("first", "2503.00002", MIDNIGHT)  # the first instant of D
    await store.post("last", "2503.00003", NEXT_MIDNIGHT - SECOND)  # the last second of D
    await store.post("after", "2503.00004", NEXT_MIDNIGHT)  # D+1 is not D
    digest = await store.service().for_day(DAY)
    assert ids(digest) == ["2503.00002", "2503.00003"]
    assert digest.window == Window(MIDNIGHT, NEXT_MIDNIGHT)
    assert digest.day == DAY


async def test_a_paper_mentioned_on_both_sides_of_midnight_counts_only_the_day(store):
    await store.paper("2503.00001")
    await store.post("in", "2503.00001", MIDNIGHT + dt.timedelta(hours=3), reposts=20, likes=20)
    await store.post("out", "2503.00001", NEXT_MIDNIGHT + SECOND, reposts=500, likes=500)
    # 40 in the day: under 50.
    assert ids(await store.service().for_day(DAY)) == []
    (ranked,) = (await store.service().for_day(DAY, threshold=40)).papers
    assert ranked.score == 40
    assert [p.mention.post_id for p in ranked.top_posts] == ["in"]


async def test_the_latest_metrics_snapshot_counts(store):
    await store.paper("2503.00001")
    noon = MIDNIGHT + dt.timedelta(hours=12)
    await store.post("1", "2503.00001", noon, reposts=10, likes=20, fetched_at=FETCHED)
    later = FETCHED + dt.timedelta(hours=6)
    await store.post("1", "2503.00001", noon, reposts=40, likes=60, fetched_at=later)
    (ranked,) = (await store.service().for_day(DAY)).papers
    assert ranked.score == 100
    assert (ranked.total("reposts"), ranked.total("likes")) == (40, 60)
    assert ranked.as_of == later


async def test_the_latest_snapshot_wins_even_when_counts_drop(store):
    # Deleted likes, a suspended account: the newest numbers are the truth.
    await store.paper("2503.00001")
    noon = MIDNIGHT + dt.timedelta(hours=12)
    await store.post("1", "2503.00001", noon, reposts=50, likes=50, fetched_at=FETCHED)
    later = FETCHED + dt.timedelta(hours=1)
    await store.post("1", "2503.00001", noon, reposts=5, likes=5, fetched_at=later)
    assert ids(await store.service().for_day(DAY)) == []


async def test_generated_at_is_when_the_numbers_were_fetched(store):
    await store.paper("2503.00001")
    await store.paper("2503.00002")
    noon = MIDNIGHT + dt.timedelta(hours=12)
    await store.post("1", "2503.00001", noon, reposts=100, fetched_at=FETCHED)
    later = FETCHED + dt.timedelta(seconds=2)
    await store.post("2", "2503.00002", noon, fetched_at=later)
    digest = await store.service().for_day(DAY)
    assert [p.as_of for p in digest.papers] == [FETCHED, later]
    # The post's date is the first fetch behind it (the seed: 10:50:00, papers 10:50:00-05).
    assert digest.generated_at == FETCHED


async def test_generated_at_of_an_empty_digest_is_now(store):
    digest = await store.service().for_day(DAY)
    assert digest.papers == ()
    assert digest.generated_at == CLOCK


async def test_unresolved_papers_are_not_listed(store):
    await store.post("1", "2503.00009", MIDNIGHT + dt.timedelta(hours=1), reposts=900)
    assert ids(await store.service().for_day(DAY)) == []


async def test_threshold_top_categories_and_exclude(store):
    await store.paper("2503.00001", "cs.LG")
    await store.paper("2503.00002", "cs.LG", "cs.CV")  # cross-listed to cs.CV
    await store.paper("2503.00003", "cs.CV")
    await store.paper("2503.00004", "math.CO")
    noon = MIDNIGHT + dt.timedelta(hours=12)
    for n, score in enumerate((400, 300, 200, 60), start=1):
        await store.post(str(n), f"2503.0000{n}", noon, reposts=score // 2, likes=score // 2)
    service = store.service()
    assert ids(await service.for_day(DAY)) == [f"2503.0000{n}" for n in (1, 2, 3, 4)]
    assert ids(await service.for_day(DAY, threshold=250)) == ["2503.00001", "2503.00002"]
    assert (await service.for_day(DAY, threshold=250)).threshold == 250
    assert ids(await service.for_day(DAY, top_n=2)) == ["2503.00001", "2503.00002"]
    assert ids(await service.for_day(DAY, categories=("cs.CV",))) == ["2503.00002", "2503.00003"]
    assert ids(await service.for_day(DAY, categories=("math",))) == ["2503.00004"]
    assert ids(await service.for_day(DAY, exclude=("2503.00001",)))[0] == "2503.00002"
    assert (await service.for_day(DAY, categories=("cs.CV",))).categories == ("cs.CV",)


async def test_ranking_settings_drive_the_defaults(store):
    await store.paper("2503.00001")
    noon = MIDNIGHT + dt.timedelta(hours=12)
    await store.post("1", "2503.00001", noon, reposts=10, likes=10)
    await store.post("2", "2503.00001", noon + SECOND, reposts=1, likes=1)
    assert ids(await store.service().for_day(DAY)) == []
    digest = await store.service(threshold=20, post_threshold=3).for_day(DAY)
    (ranked,) = digest.papers
    assert ranked.score == 22
    assert digest.threshold == 20
    assert [p.mention.post_id for p in ranked.top_posts] == ["1"]
    # Overriding one weight keeps the others: reposts still count 1, likes now 3.
    weighted = await store.service(threshold=0, weights={"x": {"likes": 3.0}}).for_day(DAY)
    assert weighted.papers[0].score == 11 + 33
    off = await store.service(threshold=0, weights={"x": {"reposts": 0.0}}).for_day(DAY)
    assert off.papers[0].score == 11


async def test_several_sources_add_up(store):
    await store.paper("2503.00001")
    noon = MIDNIGHT + dt.timedelta(hours=12)
    await store.post("1", "2503.00001", noon, reposts=10, likes=10)
    await store.post("h", "2503.00001", noon, source="hackernews", metrics={"points": 20})
    await store.post("f", "2503.00001", noon, source="huggingface", metrics={"upvotes": 5})
    (ranked,) = (await store.service().for_day(DAY)).papers
    assert ranked.score == 20 + 20 + 2 * 5  # HF upvotes weigh 2 by default
    assert ranked.by_source["hackernews"] == {"points": 20}
    assert ranked.by_source["huggingface"] == {"upvotes": 5}


async def test_failed_sources_come_from_the_latest_runs(store):
    window = Window(MIDNIGHT, NEXT_MIDNIGHT)
    await store.runs.record("x", window, FETCHED, FETCHED, 0, 5, "x: HTTP 503 after 5 attempts")
    await store.runs.record("hackernews", window, FETCHED, FETCHED, 0, 1, "hackernews: down")
    later = FETCHED + dt.timedelta(hours=1)
    await store.runs.record("hackernews", window, later, later, 3, 1, None)  # recovered
    digest = await store.service().for_day(DAY)
    assert digest.failed_sources == {"x": "x: HTTP 503 after 5 attempts"}


async def test_a_failure_of_another_window_is_not_this_digests_failure(store):
    day = Window(MIDNIGHT, NEXT_MIDNIGHT)
    week_later = Window(MIDNIGHT + dt.timedelta(days=7), NEXT_MIDNIGHT + dt.timedelta(days=7))
    later = FETCHED + dt.timedelta(days=7)
    # The day itself was fetched fine by both; a week later X and HN fail for another window.
    await store.runs.record("x", day, FETCHED, FETCHED, 12, 1, None)
    await store.runs.record("hackernews", day, FETCHED, FETCHED, 3, 1, None)
    await store.runs.record("x", week_later, later, later, 0, 5, "HTTP 503 after 5 attempts")
    await store.runs.record("hackernews", week_later, later, later, 0, 1, "down")

    assert (await store.service().for_day(DAY)).failed_sources == {}
    failed_later = (await store.service().for_day(DAY + dt.timedelta(days=7))).failed_sources
    assert failed_later == {"x": "HTTP 503 after 5 attempts", "hackernews": "down"}


async def test_the_latest_overlapping_run_decides(store):
    day = Window(MIDNIGHT, NEXT_MIDNIGHT)
    lookback = Window(MIDNIGHT - dt.timedelta(hours=36), MIDNIGHT + dt.timedelta(hours=12))
    await store.runs.record("x", day, FETCHED, FETCHED, 12, 1, None)
    # A later run whose 48-hour look-back covers the morning of the day failed.
    later = FETCHED + dt.timedelta(hours=2)
    await store.runs.record("x", lookback, later, later, 0, 5, "HTTP 503 after 5 attempts")
    assert (await store.service().for_day(DAY)).failed_sources == {"x": "HTTP 503 after 5 attempts"}
    # A source never fetched for the day is not reported as failed (nothing ran, nothing failed).
    assert (await store.service().for_day(DAY - dt.timedelta(days=3))).failed_sources == {}


async def test_build_over_any_window(store):
    await store.paper("2503.00001")
    await store.post("1", "2503.00001", MIDNIGHT + dt.timedelta(hours=30))
    window = Window(MIDNIGHT, MIDNIGHT + dt.timedelta(days=2))
    digest = await store.service().build(window)
    assert ids(digest) == ["2503.00001"]
    assert digest.day == DAY  # the window's first day


async def test_a_windows_scores_are_read_once_a_minute_and_again_after_an_invalidation(
    store, monkeypatch
):
    await store.paper("2503.00001")
    await store.post("1", "2503.00001", MIDNIGHT + dt.timedelta(hours=1))
    now = [NEXT_MIDNIGHT + dt.timedelta(seconds=5)]
    service = DigestService(
        papers=store.papers,
        mentions=store.mentions,
        runs=store.runs,
        ranking=RankingSettings(),
        clock=lambda: now[0],
    )
    reads = []
    real = store.mentions.in_window

    async def counted(window, **kwargs):
        reads.append(window)
        return await real(window, **kwargs)

    monkeypatch.setattr(store.mentions, "in_window", counted)
    window = Window(MIDNIGHT, NEXT_MIDNIGHT)
    # The same window, asked a few seconds apart (another guild of the slot): one read.
    later = Window(MIDNIGHT + 3 * SECOND, NEXT_MIDNIGHT + 3 * SECOND)
    first, second = await service.build(window), await service.build(later, threshold=0)
    assert ids(first) == ids(second) == ["2503.00001"]
    assert len(reads) == 1
    now[0] += dt.timedelta(seconds=61)
    await service.build(window)
    assert len(reads) == 2
    service.invalidate()
    await service.build(window)
    assert len(reads) == 3


async def test_a_failed_read_is_not_cached(store, monkeypatch):
    service = store.service()
    real = store.mentions.in_window
    calls = []

    async def once_broken(window):
        calls.append(window)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return await real(window)

    monkeypatch.setattr(store.mentions, "in_window", once_broken)
    with pytest.raises(RuntimeError):
        await service.for_day(DAY)
    assert (await service.for_day(DAY)).papers == ()
    assert len(calls) == 2
