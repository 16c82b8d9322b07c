"""DigestService's rising gains, second chances and a paper's heat: their windows, the clock,
aliases, field mode, and how often they read the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from bot.core.heat import announced_at
from bot.core.models import Mention, Paper, RankingMode, Window
from bot.services.digests import SECOND_CHANCE_DAYS, DigestService, value_at
from bot.settings import RankingSettings
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository

UTC = dt.UTC
NOW = dt.datetime(2025, 3, 7, 12, 0, tzinfo=UTC)  # a Friday
DAY = Window(NOW - dt.timedelta(days=1), NOW)


@dataclass
class World:
    papers: PaperRepository
    mentions: MentionRepository
    runs: RunRepository
    now: dt.datetime = NOW

    def service(self, **ranking: object) -> DigestService:
        return DigestService(
            papers=self.papers,
            mentions=self.mentions,
            runs=self.runs,
            ranking=RankingSettings(**ranking),  # type: ignore[arg-type]
            clock=lambda: self.now,
        )

    async def paper(self, arxiv_id: str, published: dt.datetime, *categories: str) -> None:
        cats = categories or ("math.AG",)
        await self.papers.upsert(
            [
                Paper(
                    arxiv_id=arxiv_id,
                    title=f"Paper {arxiv_id}",
                    abstract="An abstract.",
                    authors=("Ada",),
                    primary_category=cats[0],
                    categories=cats,
                    published=published,
                    updated=published,
                )
            ],
            published,
        )

    async def post(
        self,
        arxiv_id: str,
        n: int,
        likes: int,
        created: dt.datetime,
        fetched: dt.datetime,
    ) -> None:
        mention = Mention(
            source="x",
            post_id=f"{arxiv_id}-{n}",
            url=f"https://x.com/p{n}/status/{n}",
            author=f"person{n}",
            text="a paper",
            created_at=created,
            arxiv_ids=(arxiv_id,),
            metrics={"reposts": 0, "likes": likes},
        )
        await self.mentions.upsert([mention], fetched)


@pytest.fixture
def world(db: Database) -> World:
    return World(PaperRepository(db), MentionRepository(db), RunRepository(db))


async def late_bloomer(world: World, arxiv_id: str = "2503.00001", *, days_ago: int = 3) -> None:
    """A paper announced ``days_ago`` days ago: two posts back then (20 likes each, read then),
    and their counts read again an hour ago, at 40 each: 80 in all, 40 gained in 24 hours,
    nothing posted in the last day."""
    published = NOW - dt.timedelta(days=days_ago, hours=12)
    await world.paper(arxiv_id, published)
    created = announced_at(published).astimezone(UTC) + dt.timedelta(hours=2)
    for n in (1, 2):
        await world.post(arxiv_id, n, 20, created, created + dt.timedelta(hours=1))
        await world.post(arxiv_id, n, 40, created, NOW - dt.timedelta(hours=1))


async def test_a_paper_that_took_off_after_its_day_gets_a_second_chance(world):
    await late_bloomer(world)
    service = world.service(threshold=50)
    chances = await service.second_chances(DAY, ranking=RankingMode.ABSOLUTE)
    (chance,) = chances
    assert chance.second_chance
    assert (chance.score, chance.gain) == (80, 40)
    # Already shown, or announced before the server began getting digests: none.
    assert (
        await service.second_chances(DAY, ranking=RankingMode.ABSOLUTE, exclude={"2503.00001"})
        == []
    )
    assert (
        await service.second_chances(
            DAY, ranking=RankingMode.ABSOLUTE, since=NOW - dt.timedelta(days=1)
        )
        == []
    )


async def test_second_chances_look_seven_days_before_the_window(world):
    await late_bloomer(world, "2503.00006", days_ago=SECOND_CHANCE_DAYS)
    await late_bloomer(world, "2503.00009", days_ago=SECOND_CHANCE_DAYS + 2)
    service = world.service(threshold=50)
    chances = await service.second_chances(DAY, ranking=RankingMode.ABSOLUTE)
    assert [c.paper.arxiv_id for c in chances] == ["2503.00006"]


async def test_a_paper_that_qualifies_on_the_day_alone_is_the_days_not_a_second_chance(world):
    await late_bloomer(world)
    # Two more posts today: it is in the day's ranking (cut by its size, maybe), not a chance.
    for n in (3, 4):
        await world.post("2503.00001", n, 30, NOW - dt.timedelta(hours=3), NOW)
    service = world.service(threshold=50)
    assert await service.second_chances(DAY, ranking=RankingMode.ABSOLUTE) == []


async def test_second_chances_in_field_mode_follow_the_field_rule(world):
    await late_bloomer(world)
    service = world.service()
    (chance,) = await service.second_chances(DAY, ranking=RankingMode.FIELD)
    assert chance.heat is not None
    assert chance.heat.cohort.category == "math.AG"
    # Two people are needed: with three, it doesn't count.
    strict = world.service(field_min_posters=3)
    assert await strict.second_chances(DAY, ranking=RankingMode.FIELD) == []


async def test_rising_for_a_past_window_uses_the_counts_of_then(world):
    """Counts read after a past window's end don't count as that window's gain."""
    await late_bloomer(world)
    service = world.service(threshold=0)
    # The window ends before the second read (an hour ago): its score is the latest counts'
    # (as any past window's), but in the 24 hours before its end nothing was gained.
    end = NOW - dt.timedelta(hours=2)
    (then,) = await service.with_gains(
        (await service.build(Window(end - dt.timedelta(days=7), end), threshold=0)).papers, end
    )
    assert (then.score, then.gain) == (80, 0)
    (now,) = await service.with_gains(
        (await service.build(Window(NOW - dt.timedelta(days=7), NOW), threshold=0)).papers, NOW
    )
    assert (now.score, now.gain) == (80, 40)


async def test_each_ranking_is_read_once_a_minute_however_many_servers_ask(world, monkeypatch):
    await late_bloomer(world)
    service = world.service(threshold=50)
    reads: list[object] = []
    real = world.mentions.in_window

    async def counted(window, **kwargs):
        reads.append((window, kwargs.get("as_of")))
        return await real(window, **kwargs)

    monkeypatch.setattr(world.mentions, "in_window", counted)
    for _ in range(20):
        assert len(await service.second_chances(DAY, ranking=RankingMode.ABSOLUTE)) == 1
    first = len(reads)
    assert first <= 4  # the 8 days, the day, the week now and as it stood 24 h ago
    # The stream flushes (invalidate): the day is read again, the week and the past are not.
    service.invalidate()
    await service.second_chances(DAY, ranking=RankingMode.ABSOLUTE)
    assert len(reads) - first <= 1


async def test_a_papers_heat_is_found_under_its_canonical_category(world):
    """cs.SY is eess.SY: a paper filed under the alias is in the same cohort, and /paper finds
    its heat."""
    published = NOW - dt.timedelta(days=2)
    await world.paper("2503.00020", published, "cs.SY")
    await world.paper("2503.00021", published, "eess.SY")
    for n in (1, 2):
        await world.post("2503.00020", n, 30, NOW - dt.timedelta(hours=5), NOW)
        await world.post("2503.00021", n + 10, 5, NOW - dt.timedelta(hours=5), NOW)
    report = await world.service().paper_report("2503.00020")
    assert report.ranked is not None
    heat = report.ranked.heat
    assert heat is not None
    assert heat.cohort.category == "eess.SY"
    assert heat.cohort.size == 2
    assert heat.percentile == 95.0  # the better of two, in a cohort padded to 10


def test_value_at_reads_a_step_series():
    t0 = NOW
    points = [(t0, 5.0), (t0 + dt.timedelta(hours=1), 8.0)]
    assert value_at(points, t0 - dt.timedelta(seconds=1)) == 0.0
    assert value_at(points, t0) == 5.0
    assert value_at(points, t0 + dt.timedelta(minutes=30)) == 5.0
    assert value_at(points, t0 + dt.timedelta(days=1)) == 8.0
    assert value_at([], t0) == 0.0
