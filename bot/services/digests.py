"""Digests: rank the stored mentions of a window into the day's hot papers."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from bot.core.heat import (
    announce_day,
    announced_at,
    field_select,
    heat_by_category,
    is_rising,
    with_rising,
)
from bot.core.models import Digest, Heat, HotSort, Paper, RankedPaper, RankingMode, Window
from bot.core.ranking import (
    Observation,
    RankingRules,
    account_of,
    feed_posts,
    score_papers,
    select,
)
from bot.core.series import score_series, total_series
from bot.core.taxonomy import ALIASES
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
# Rising: the score a paper's posts of the last week gained over the last 24 hours.
RISING_LOOKBACK = dt.timedelta(days=7)
RISING_SPAN = dt.timedelta(hours=24)
# Second chance: a paper announced this recently that qualifies only now is shown once; at most
# this many of them follow a digest's own papers.
SECOND_CHANCE_DAYS = 7
SECOND_CHANCE_MAX = 3
# A paper's cohort (its arXiv day) is found among the papers submitted this close to it.
COHORT_MARGIN = dt.timedelta(days=5)

# Windows longer than this keep their scores across invalidations (until SCORES_TTL).
_LONG_WINDOW = dt.timedelta(days=1, hours=1)
# (window end to the minute, window length, scores as of this long before the end or None)
_Key = tuple[dt.datetime, dt.timedelta, dt.timedelta | None]


@dataclass(slots=True)
class _Scores:
    computed_at: dt.datetime
    task: asyncio.Task[list[RankedPaper]]


def _key(window: Window, before_end: dt.timedelta | None = None) -> _Key:
    """Windows ending in the same minute with the same length share their scores: the guilds
    of one slot each ask at their own instant, a few milliseconds apart."""
    return window.end.replace(second=0, microsecond=0), window.end - window.start, before_end


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
        # id of a cached ranking → (that ranking, its scores by paper id)
        self._maps: dict[int, tuple[list[RankedPaper], dict[str, float]]] = {}

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
        """Forget the day-long windows' scores (an ingestion or the stream stored new mentions
        or papers). Scores as they stood in the past can't change; those of week-long windows
        (rising, second chances, ``/hot days:7``) are kept until they are a minute old: the
        stream flushes every few seconds, and a fan-out must not re-read a week each time."""
        for key in [k for k in self._scores if k[2] is None and k[1] <= _LONG_WINDOW]:
            del self._scores[key]

    async def score(
        self, window: Window, *, before_end: dt.timedelta | None = None
    ) -> list[RankedPaper]:
        """Every paper mentioned in ``window`` with its score, best first, uncut: read and
        ranked once per window and minute, however many callers ask at the same time.

        ``before_end``: the scores as they stood that long before the window's end (each post
        with its metrics of then; a post not fetched yet by then counts for nothing)."""
        now = self.clock()
        key = _key(window, before_end)
        held = self._scores.get(key)
        if held is None or not self._fresh(held, now):
            for old in [k for k, s in self._scores.items() if not self._fresh(s, now)]:
                del self._scores[old]
            task = asyncio.get_running_loop().create_task(
                self._score(window, None if before_end is None else window.end - before_end),
                name=f"score:{window.start:%Y-%m-%dT%H:%M}",
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

    async def _score(self, window: Window, as_of: dt.datetime | None) -> list[RankedPaper]:
        if as_of is None:
            stored = await self.mentions.in_window(window)
        else:
            stored = await self.mentions.in_window(window, as_of=as_of)
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

    # --- heat and rising --------------------------------------------------------------------

    def field_rule(self) -> tuple[int, float]:
        """Field mode's minimum evidence: distinct posters, and the top share of a cohort."""
        return self.ranking.field_min_posters, self.ranking.field_top_percent / 100

    def select_field(
        self,
        scored: list[RankedPaper],
        *,
        categories: Collection[str] = (),
        exclude: Collection[str] = (),
        top_n: int | None = None,
    ) -> list[RankedPaper]:
        min_posters, top_share = self.field_rule()
        return field_select(
            scored,
            categories=categories,
            min_posters=min_posters,
            top_share=top_share,
            exclude=exclude,
            top_n=top_n,
        )

    async def with_gains(
        self, papers: Sequence[RankedPaper], end: dt.datetime
    ) -> list[RankedPaper]:
        """``papers`` with their gain over the 24 hours before ``end`` and their rising score
        (``bot.core.heat.with_rising``), best rising first.

        The gain is the score the posts of the week before ``end`` gained in those 24 hours:
        the week's scores as they stood at ``end`` (the latest ones, for a window ending now)
        less those 24 hours earlier; both rankings are read once a minute for every caller,
        and only ``papers`` are worked out."""
        week = Window(end - RISING_LOOKBACK, end)
        past = end < self.clock() - dt.timedelta(minutes=1)
        now_side = await self._score_map(week, dt.timedelta(0) if past else None)
        then_side = await self._score_map(week, RISING_SPAN)
        base = [
            dataclasses.replace(r, score=now_side.get(r.paper.arxiv_id, r.score)) for r in papers
        ]
        gains = {r.paper.arxiv_id: r for r in with_rising(base, then_side, now=end)}
        return [
            dataclasses.replace(r, gain=gains[pid].gain, rising=gains[pid].rising)
            for pid, r in _in_order(gains, papers)
        ]

    async def _score_map(self, window: Window, before_end: dt.timedelta | None) -> dict[str, float]:
        """Each paper's score in ``window`` (as it stood ``before_end`` before its end), by id:
        built once per cached ranking."""
        scored = await self.score(window, before_end=before_end)
        held = self._maps.get(id(scored))
        if held is None or held[0] is not scored:
            if len(self._maps) > 16:
                self._maps.clear()
            held = self._maps[id(scored)] = (scored, {r.paper.arxiv_id: r.score for r in scored})
        return held[1]

    async def second_chances(
        self,
        day: Window,
        *,
        ranking: RankingMode,
        categories: Collection[str] = (),
        threshold: float | None = None,
        exclude: Collection[str] = (),
        limit: int = SECOND_CHANCE_MAX,
        since: dt.datetime | None = None,
    ) -> list[RankedPaper]:
        """The papers a one-day window missed, best rising first.

        A paper announced in the :data:`SECOND_CHANCE_DAYS` days before ``day`` began, which
        does not qualify on ``day``'s posts alone (then it is the day's, or was cut by its
        size), but qualifies over those days by the server's rule, and is rising (it gained
        in the last 24 hours, ``bot.core.heat.is_rising``). ``exclude``: what the server was
        already shown; ``since``: when the server began getting digests (a second chance
        needs a first one: a new server doesn't get the past week's papers)."""
        span = Window(day.start - dt.timedelta(days=SECOND_CHANCE_DAYS), day.end)
        start = span.start if since is None else max(span.start, since)
        rules = self.rules(threshold=threshold)

        def qualifying(scored: list[RankedPaper], skip: Collection[str]) -> list[RankedPaper]:
            if ranking is RankingMode.FIELD:
                return self.select_field(scored, categories=categories, exclude=skip)
            return select(scored, threshold=rules.threshold, categories=categories, exclude=skip)

        if start >= day.start:
            return []  # nothing announced in between: no read at all
        candidates = [
            r
            for r in qualifying(await self.score(span), exclude)
            if start <= announced_at(r.paper.published) < day.start
        ]
        if candidates:
            today = {r.paper.arxiv_id for r in qualifying(await self.score(day), ())}
            candidates = [r for r in candidates if r.paper.arxiv_id not in today]
        if not candidates:
            return []
        chances = [
            dataclasses.replace(r, second_chance=True)
            for r in await self.with_gains(candidates, day.end)
            if is_rising(r)
        ]
        return chances[:limit]

    @staticmethod
    def with_heat(
        scored: list[RankedPaper], chosen: list[RankedPaper], categories: Collection[str]
    ) -> list[RankedPaper]:
        """``chosen`` with each paper's heat: in its best followed category, or its primary
        one when every category is followed."""
        if all(r.heat is not None for r in chosen):
            return chosen
        heats = heat_by_category(scored, categories=categories)  # cohorts need every paper
        out = []
        for r in chosen:
            found = heats.get(r.paper.arxiv_id)
            if r.heat is None and found:
                best = max(found.values(), key=lambda h: (h.percentile, h.z))
                r = dataclasses.replace(r, heat=best)
            out.append(r)
        return out

    async def build(
        self,
        window: Window,
        *,
        day: dt.date | None = None,
        categories: Collection[str] = (),
        threshold: float | None = None,
        top_n: int | None = None,
        exclude: Collection[str] = (),
        ranking: RankingMode = RankingMode.ABSOLUTE,
        sort: HotSort = HotSort.SCORE,
        heat: bool = False,
    ) -> Digest:
        """The digest of ``window``: ``absolute`` ranking (the seed's threshold on the score)
        or ``field`` (each category's hottest by heat); by score, or by rising (the papers of
        the week before the window's end that qualify, by their last 24 hours). ``heat``: set
        each paper's heat in its cohort (field mode always does)."""
        rules = self.rules(threshold=threshold, top_n=top_n)
        by_rising = sort is HotSort.RISING
        scope = Window(window.end - RISING_LOOKBACK, window.end) if by_rising else window
        scored = await self.score(scope)
        if ranking is RankingMode.FIELD:
            ranked = self.select_field(
                scored,
                categories=categories,
                exclude=exclude,
                top_n=None if by_rising else rules.top_n,
            )
        else:
            ranked = select(
                scored,
                threshold=rules.threshold,
                categories=categories,
                exclude=exclude,
                top_n=None if by_rising else rules.top_n,
            )
        if by_rising:
            ranked = [r for r in await self.with_gains(ranked, window.end) if (r.gain or 0) > 0]
            ranked = ranked if rules.top_n is None else ranked[: rules.top_n]
        if heat:
            ranked = self.with_heat(scored, ranked, categories)
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
            ranking=ranking,
            sort=sort,
        )

    async def for_day(
        self,
        day: dt.date,
        *,
        categories: Collection[str] = (),
        threshold: float | None = None,
        top_n: int | None = None,
        exclude: Collection[str] = (),
        ranking: RankingMode = RankingMode.ABSOLUTE,
        sort: HotSort = HotSort.SCORE,
        heat: bool = False,
    ) -> Digest:
        """The seed's post: the UTC day ``[D, D+1)``."""
        return await self.build(
            Window.for_day(day),
            day=day,
            categories=categories,
            threshold=threshold,
            top_n=top_n,
            exclude=exclude,
            ranking=ranking,
            sort=sort,
            heat=heat,
        )

    # --- the cogs' queries ------------------------------------------------------------------

    async def hot(self, categories: list[str], days: int, sort: HotSort = HotSort.SCORE) -> Digest:
        """The best papers of the last ``days`` in ``categories``, whatever their score; or,
        by ``rising``, the papers of the last week that gained most in the last 24 hours."""
        now = self.clock()
        return await self.build(
            Window(now - dt.timedelta(days=days), now),
            categories=categories,
            threshold=0,
            top_n=HOT_TOP_N,
            sort=sort,
        )

    async def paper_score(self, arxiv_id: str, days: int = 7) -> RankedPaper | None:
        """One paper's score over the last ``days``, from its own mentions only (a paper's
        score doesn't depend on the others: no need to rank the whole week for it)."""
        ranked, _muted = await self._paper_score(arxiv_id, days)
        return ranked

    async def _paper_score(
        self, arxiv_id: str, days: int
    ) -> tuple[RankedPaper | None, set[tuple[str, str]]]:
        now = self.clock()
        window = Window(now - dt.timedelta(days=days), now)
        stored = await self.mentions.for_paper(arxiv_id, window)
        if not stored:
            return None, set()
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
        observations = [Observation(s.mention, s.fetched_at) for s in stored]
        ranked = score_papers(observations, papers, window=window, rules=rules)
        found = next((r for r in ranked if r.paper.arxiv_id == arxiv_id), None)
        return found, feed_posts(observations, rules)

    async def paper_report(self, arxiv_id: str, days: int = 7) -> PaperReport:
        """What ``/paper`` says of a paper's attention: its score over the last ``days`` with
        per-source totals, its heat in its primary category's cohort (the week's papers), its
        gain over the last 24 hours, and its score over time per source (for the chart)."""
        ranked, muted = await self._paper_score(arxiv_id, days)
        if ranked is None:
            return PaperReport(None, {})
        now = self.clock()
        window = Window(now - dt.timedelta(days=days), now)
        history = await self.mentions.paper_history(arxiv_id, window)
        series = score_series(history, self.ranking.weights, feed_posts=muted)
        then = value_at(total_series(series), now - RISING_SPAN)
        (ranked,) = with_rising([ranked], {arxiv_id: then}, now=now)
        heat = await self._heat_of(ranked.paper, window)
        return PaperReport(dataclasses.replace(ranked, heat=heat), series)

    async def _heat_of(self, paper: Paper, window: Window) -> Heat | None:
        """The paper's heat in its primary category's cohort over ``window``: only the
        cohort's mentions are read (the papers of that category submitted within days of it,
        then those announced the same day), not the whole window."""
        day = announce_day(paper.published)
        near = (paper.published - COHORT_MARGIN, paper.published + COHORT_MARGIN)
        category = ALIASES.get(paper.primary_category, paper.primary_category)
        spellings = {category, *(a for a, c in ALIASES.items() if c == category)}
        stored = await self.mentions.for_cohort(window, spellings, near)
        ids = {i for s in stored for i in s.mention.arxiv_ids}
        papers = await self.papers.get_many(ids)

        def heats() -> dict[str, dict[str, Heat]]:
            scored = score_papers(
                [Observation(s.mention, s.fetched_at) for s in stored],
                papers,
                window=window,
                rules=self.rules(),
            )
            cohort = [
                r
                for r in scored
                if spellings.intersection(r.paper.categories)
                and announce_day(r.paper.published) == day
            ]
            return heat_by_category(cohort)

        # Heat is named by the canonical category (cs.SY is eess.SY).
        return (await asyncio.to_thread(heats)).get(paper.arxiv_id, {}).get(category)


@dataclass(frozen=True, slots=True)
class PaperReport:
    """A paper's attention for ``/paper``: None when nobody posted it in the window."""

    ranked: RankedPaper | None
    series: Mapping[str, list[tuple[dt.datetime, float]]]


def _in_order(
    gains: Mapping[str, RankedPaper], papers: Sequence[RankedPaper]
) -> list[tuple[str, RankedPaper]]:
    """``papers`` by id, in the order of ``gains`` (best rising first)."""
    by_id = {r.paper.arxiv_id: r for r in papers}
    return [(pid, by_id[pid]) for pid in gains if pid in by_id]


def value_at(points: Sequence[tuple[dt.datetime, float]], moment: dt.datetime) -> float:
    """A step series' value at ``moment`` (0 before its first point)."""
    value = 0.0
    for at, score in points:
        if at > moment:
            break
        value = score
    return value
