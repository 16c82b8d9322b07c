"""Digests: rank the stored mentions of a window into the day's hot papers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Collection

from bot.core.models import Digest, Window
from bot.core.ranking import Observation, RankingRules, rank
from bot.settings import RankingSettings
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository

Clock = Callable[[], dt.datetime]


class DigestService:
    """Builds a :class:`Digest` for a day or any window from what is stored."""

    def __init__(
        self,
        *,
        papers: PaperRepository,
        mentions: MentionRepository,
        runs: RunRepository,
        ranking: RankingSettings,
        clock: Clock,
    ) -> None:
        self.papers = papers
        self.mentions = mentions
        self.runs = runs
        self.ranking = ranking
        self.clock = clock

    def rules(self, *, threshold: float | None = None, top_n: int | None = None) -> RankingRules:
        return RankingRules(
            weights=self.ranking.weights,
            threshold=self.ranking.threshold if threshold is None else threshold,
            post_threshold=self.ranking.post_threshold,
            max_posts=self.ranking.max_posts,
            top_n=self.ranking.top_n if top_n is None else top_n,
        )

    async def build(
        self,
        window: Window,
        *,
        day: dt.date | None = None,
        categories: Collection[str] = (),
        threshold: float | None = None,
        top_n: int | None = None,
        exclude: Collection[str] = (),
    ) -> Digest:
        stored = await self.mentions.in_window(window)
        ids = {i for s in stored for i in s.mention.arxiv_ids}
        papers = await self.papers.get_many(ids)
        rules = self.rules(threshold=threshold, top_n=top_n)
        # Pure CPU (a second or more on a busy week): in a thread, so the bot's event loop
        # keeps answering interactions and heartbeats meanwhile.
        ranked = await asyncio.to_thread(
            rank,
            [Observation(s.mention, s.fetched_at) for s in stored],
            papers,
            window=window,
            rules=rules,
            categories=categories,
            exclude=exclude,
        )
        # A source counts as failed for this digest when its latest fetch covering any of the
        # window failed: a failure today says nothing about a day fetched fine last week.
        latest = await self.runs.latest_by_source(overlapping=window)
        failed = {name: run.error for name, run in latest.items() if run.error}
        return Digest(
            day=day or window.start.date(),
            window=window,
            categories=tuple(categories),
            papers=tuple(ranked),
            generated_at=min((r.as_of for r in ranked if r.as_of), default=self.clock()),
            threshold=rules.threshold,
            failed_sources=failed,
        )

    async def for_day(
        self,
        day: dt.date,
        *,
        categories: Collection[str] = (),
        threshold: float | None = None,
        top_n: int | None = None,
        exclude: Collection[str] = (),
    ) -> Digest:
        """The seed's post: the UTC day ``[D, D+1)``."""
        return await self.build(
            Window.for_day(day),
            day=day,
            categories=categories,
            threshold=threshold,
            top_n=top_n,
            exclude=exclude,
        )
