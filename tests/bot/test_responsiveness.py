"""Every command answers (or defers) within Discord's 3 seconds, even while an ingestion runs."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot.core.models import Mention, Paper, Window

DEADLINE = 3.0


class HeldSource:
    """A real source that waits for the test before collecting: an ingestion stuck on a slow
    service (the X search taking minutes)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @property
    def requests(self) -> int:
        return self.inner.requests

    async def collect(self, window: Window) -> list[Mention]:
        self.entered.set()
        await self.release.wait()
        return await self.inner.collect(window)


class FloodSource:
    """A source that returns thousands of mentions: the ingestion keeps the database busy."""

    name = "flood"
    requests = 1

    async def collect(self, window: Window) -> list[Mention]:
        start = window.start
        return [
            Mention(
                source="flood",
                post_id=f"p{i}",
                url=f"https://example.org/p{i}",
                author=f"author{i % 50}",
                text="a paper",
                created_at=start + dt.timedelta(seconds=i),
                metrics={"likes": i % 7},
                arxiv_ids=(f"2012.{10000 + i % 900:05d}",),
            )
            for i in range(3000)
        ]


async def commands_answer_in_time(botworld) -> None:
    h = botworld.harness
    mod = botworld.mod
    checks = [
        (("about",), {}),
        (("paper",), {"query": "2012.11552"}),
        (("paper",), {"query": "attention"}),
        (("hot",), {}),
        (("hot",), {"category": "cs.CV", "days": 3}),
        (("category", "list"), {}),
        (("category", "add"), {"name": "cs.LG", "member": mod}),
        (("category", "remove"), {"name": "cs.LG", "member": mod}),
        (("category", "top"), {"name": "cs"}),
        (("digest", "channel"), {"options": {"channel": h.channel}, "member": mod}),
        (("digest", "time"), {"time": "08:00", "timezone": "Europe/Paris", "member": mod}),
        (("digest", "settings"), {"top": 5, "member": mod}),
        (("digest", "preview"), {"member": mod}),
        (("digest", "status"), {}),
        (("digest", "pause"), {"member": mod}),
        (("digest", "resume"), {"member": mod}),
    ]
    for path, values in checks:
        result = await h.slash(*path, member=values.pop("member", botworld.reader), **values)
        callback = await result.response(timeout=DEADLINE)
        assert callback.elapsed < DEADLINE, path
        if callback.deferred:
            await result.followups(count=1, timeout=10.0)
    for path, option, typed, member in [
        (("paper",), "query", "learn", botworld.reader),
        (("hot",), "category", "cs", botworld.reader),
        (("category", "add"), "name", "stat", mod),
        (("category", "remove"), "name", "", mod),
        (("digest", "time"), "timezone", "europe", mod),
    ]:
        choices = await h.autocomplete(
            *path, focused=option, value=typed, member=member, timeout=DEADLINE
        )
        assert len(choices) <= 25


async def test_commands_answer_while_an_ingestion_waits_on_a_slow_source(botworld):
    await botworld.ingest_reference_day()
    ingest = botworld.rt.ingest
    held = HeldSource(ingest.sources[0])
    ingest.sources[0] = held
    running = asyncio.create_task(ingest.run(Window.for_day(botworld.world.day)))
    await asyncio.wait_for(held.entered.wait(), 3)
    assert ingest.running
    await commands_answer_in_time(botworld)
    assert not running.done()  # all of that happened while the ingestion was stuck
    held.release.set()
    report = await asyncio.wait_for(running, 10)
    assert report.sources[0].mentions == 16


async def test_commands_answer_while_an_ingestion_writes_thousands_of_mentions(botworld):
    await botworld.ingest_reference_day()
    ingest = botworld.rt.ingest
    ingest.sources.append(FloodSource())
    running = asyncio.create_task(ingest.run(Window.for_day(botworld.world.day)))
    await asyncio.sleep(0)
    await commands_answer_in_time(botworld)
    await asyncio.wait_for(running, 60)


@pytest.mark.parametrize(
    "command",
    [("hot",), ("digest", "preview"), ("digest", "status"), ("digest", "settings")],
)
async def test_slow_work_is_deferred_before_the_deadline(botworld, command):
    """A command whose work takes longer than 3 s still acknowledges in time."""
    slow = asyncio.Event()
    digests, delivery = botworld.rt.digests, botworld.rt.delivery
    real_hot, real_preview, real_status = digests.hot, delivery.preview, delivery.status

    async def slow_hot(*args, **kwargs):
        await slow.wait()
        return await real_hot(*args, **kwargs)

    async def slow_preview(*args, **kwargs):
        await slow.wait()
        return await real_preview(*args, **kwargs)

    async def slow_status(*args, **kwargs):
        await slow.wait()
        return await real_status(*args, **kwargs)

    digests.hot = slow_hot  # type: ignore[method-assign]
    delivery.preview = slow_preview  # type: ignore[method-assign]
    delivery.status = slow_status  # type: ignore[method-assign]
    result = await botworld.harness.slash(*command, member=botworld.mod)
    callback = await result.response(timeout=DEADLINE)
    assert callback.deferred
    botworld.harness.clock.advance(10)  # far past the 3 s: the followup webhook still works
    slow.set()
    (message,) = await result.followups(count=1)
    assert message


async def busy_day(botworld, mentions: int = 20_000, papers: int = 2_000) -> list[str]:
    """A realistic busy day: ``mentions`` posts over the last 24 h linking ``papers`` papers
    (a few papers are very popular, most barely shared); returns the paper ids, best first."""
    now = botworld.clock.now
    ids = [f"2012.{20000 + i:05d}" for i in range(papers)]
    await botworld.rt.papers.upsert(
        [
            Paper(
                arxiv_id=arxiv_id,
                title=f"A busy paper number {n}",
                abstract="An abstract long enough to look like one. " * 12,
                authors=("Ada Lovelace", "Alan Turing"),
                primary_category="cs.LG",
                categories=("cs.LG", "stat.ML"),
                published=now - dt.timedelta(days=1),
                updated=now - dt.timedelta(days=1),
            )
            for n, arxiv_id in enumerate(ids)
        ],
        now,
    )
    await botworld.rt.mentions.upsert(
        [
            Mention(
                source="x",
                post_id=f"busy{i}",
                url=f"https://x.com/someone/status/{i}",
                author=f"author{i % 997}",
                text="new paper " * 20,
                created_at=now - dt.timedelta(seconds=1 + i * 86_000 // mentions),
                arxiv_ids=(ids[int(papers * (i / mentions) ** 3) % papers],),
                metrics={"reposts": i % 13, "likes": i % 41},
            )
            for i in range(mentions)
        ],
        now,
    )
    return ids


async def test_commands_answer_in_time_on_a_busy_day(botworld, monkeypatch):
    ids = await busy_day(botworld)
    await botworld.configure(post_time="10:30")
    mentions = botworld.rt.mentions
    whole_window = mentions.in_window

    async def not_for_paper(*args, **kwargs):
        raise AssertionError("/paper loaded every mention of the week to score one paper")

    h, mod = botworld.harness, botworld.mod
    for path, values in [
        (("digest", "status"), {}),
        (("digest", "settings"), {"top": 5, "member": mod}),
        (("paper",), {"query": ids[0]}),
        (("hot",), {}),
        (("hot",), {"days": 7}),
    ]:
        spy = not_for_paper if path == ("paper",) else whole_window
        monkeypatch.setattr(mentions, "in_window", spy)
        result = await h.slash(*path, member=values.pop("member", botworld.reader), **values)
        callback = await result.response(timeout=DEADLINE)
        assert callback.elapsed < DEADLINE, path
        if path[0] == "digest":
            assert callback.deferred, path  # the ranking runs after the acknowledgement
        if callback.deferred:
            (answer, *_) = await result.followups(count=1, timeout=30.0)
            (embed, *_) = answer["embeds"]
            assert not embed.get("description", "").startswith("⚠️"), path
            if path == ("paper",):
                assert embed["title"] == "A busy paper number 0"
                assert any(f["name"] == "Score" for f in embed["fields"])
    monkeypatch.setattr(mentions, "in_window", whole_window)


async def test_one_papers_score_is_the_one_the_full_ranking_gives(botworld):
    await botworld.ingest_reference_day()
    digests = botworld.rt.digests
    now = botworld.clock.now
    week = await digests.build(Window(now - dt.timedelta(days=7), now), threshold=0, top_n=None)
    assert week.papers
    for ranked in week.papers:
        assert await digests.paper_score(ranked.paper.arxiv_id) == ranked
    assert await digests.paper_score("2012.99999") is None
