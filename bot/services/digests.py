"""Digests: rank the stored mentions of a window into the day's hot papers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from bot.core.models import Digest, RankedPaper, Window
from bot.core.ranking import Observation, RankingRules, account_of, score_papers, select
from bot.settings import RankingSettings
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository

Clock = Callable[[], dt.datetime]
# How long a window's scores are reused. Every guild posting at 09:00 UTC, and every
# /digest status or /hot meanwhile, ranks the same day: one read of it serves them all. An
# ingestion that completes drops them at once (invalidate), so they are never older than
# the data by more than this even when something else (a /paper look-up) stores a paper.
SCORES_TTL = dt.timedelta(seconds=60)
# /hot shows this many papers, whatever their score.
HOT_TOP_N = 10

_Key = tuple[dt.datetime, dt.timedelta]


@dataclass(slots=True)
class _Scores:
    computed_at: dt.datetime
    task: asyncio.Task[list[RankedPaper]]


def _key(window: Window) -> _Key:
    """Windows ending in the same minute with the same length share their scores: the guilds
    of one slot each ask at their own instant, a few milliseconds apart."""
    return window.end.replace(second=0, microsecond=0), window.end - window.start


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
        scores_ttl: dt.timedelta = SCORES_TTL,
        feed_limits: Mapping[str, int] | None = None,
        ignored_authors: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.papers = papers
        self.feed_limits = dict(feed_limits or {})
        self.ignored_authors = dict(ignored_authors or {})
        self.mentions = mentions
        self.runs = runs
        self.ranking = ranking
        self.clock = clock
        self.scores_ttl = scores_ttl
        self._scores: dict[_Key, _Scores] = {}

    def rules(self, *, threshold: float | None = None, top_n: int | None = None) -> RankingRules:
        """The configured rules; ``None`` means the configured threshold or size (20 by
        default), not "no limit": :meth:`score` is the uncut ranking."""
        return RankingRules(
            weights=self.ranking.weights,
            threshold=self.ranking.threshold if threshold is None else threshold,
            post_threshold=self.ranking.post_threshold,
            max_posts=self.ranking.max_posts,
            top_n=self.ranking.top_n if top_n is None else top_n,
            feed_limits=self.feed_limits,
            ignored_authors=self.ignored_authors,
        )

    def invalidate(self) -> None:
        """Forget every window's scores (an ingestion stored new mentions or papers)."""
        self._scores.clear()

    async def score(self, window: Window) -> list[RankedPaper]:
        """Every paper mentioned in ``window`` with its score, best first, uncut: read and
        ranked once per window and minute, however many callers ask at the same time."""
        now = self.clock()
        key = _key(window)
        held = self._scores.get(key)
        if held is None or not self._fresh(held, now):
            for old in [k for k, s in self._scores.items() if not self._fresh(s, now)]:
                del self._scores[old]
            task = asyncio.get_running_loop().create_task(
                self._score(window), name=f"score:{window.start:%Y-%m-%dT%H:%M}"
            )
            held = _Scores(now, task)
            self._scores[key] = held
            task.add_done_callback(lambda done: self._forget_failed(key, done))
        # Shielded: a caller that gives up (a cancelled command) doesn't cancel the others'.
        return await asyncio.shield(held.task)

    def _fresh(self, held: _Scores, now: dt.datetime) -> bool:
        return held.computed_at <= now < held.computed_at + self.scores_ttl

    def _forget_failed(self, key: _Key, task: asyncio.Task[list[RankedPaper]]) -> None:
        if task.cancelled() or task.exception() is not None:
            held = self._scores.get(key)
            if held is not None and held.task is task:
                del self._scores[key]  # the next caller tries again

    async def _score(self, window: Window) -> list[RankedPaper]:
        stored = await self.mentions.in_window(window)
        ids = {i for s in stored for i in s.mention.arxiv_ids}
        papers = await self.papers.get_many(ids)
        # Pure CPU (a second or more on a busy week): in a thread, so the bot's event loop
        # keeps answering interactions and heartbeats meanwhile.
        return await asyncio.to_thread(
            score_papers,
            [Observation(s.mention, s.fetched_at) for s in stored],
            papers,
            window=window,
            rules=self.rules(),
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
        rules = self.rules(threshold=threshold, top_n=top_n)
        ranked = select(
            await self.score(window),
            threshold=rules.threshold,
            categories=categories,
            exclude=exclude,
            top_n=rules.top_n,
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

    # --- the cogs' queries ------------------------------------------------------------------

    async def hot(self, categories: list[str], days: int) -> Digest:
        """The best papers of the last ``days`` in ``categories``, whatever their score."""
        now = self.clock()
        return await self.build(
            Window(now - dt.timedelta(days=days), now),
            categories=categories,
            threshold=0,
            top_n=HOT_TOP_N,
        )

    async def paper_score(self, arxiv_id: str, days: int = 7) -> RankedPaper | None:
        """One paper's score over the last ``days``, from its own mentions only (a paper's
        score doesn't depend on the others: no need to rank the whole week for it)."""
        now = self.clock()
        window = Window(now - dt.timedelta(days=days), now)
        stored = await self.mentions.for_paper(arxiv_id, window)
        if not stored:
            return None
        # Feed bots are told by how many papers an account links in a day: load the other
        # posts of the accounts that rank under feed limits (a few per account and day).
        rules = self.rules()
        for source in rules.feed_limits:
            accounts = {
                f"at://{account_of(s.mention)}/" for s in stored if s.mention.source == source
            }
            if accounts:
                stored = stored + await self.mentions.by_accounts(source, accounts, window)
        papers = await self.papers.get_many([arxiv_id])
        ranked = score_papers(
            (Observation(s.mention, s.fetched_at) for s in stored),
            papers,
            window=window,
            rules=rules,
        )
        return next((r for r in ranked if r.paper.arxiv_id == arxiv_id), None)
