"""Field-normalised heat and rising: a paper's score against its field's papers of the same day.

A score of 40 is a quiet day in ``cs.LG`` and a sensation in ``math.AG``. Heat compares a paper
with its **cohort**: the ranked papers listing the same category (cross-lists count in each of
their categories) that arXiv announced on the same day. The rules:

* **Announcement day.** arXiv's daily cutoff is 14:00 US/Eastern (America/New_York, so daylight
  saving time is followed), Monday to Friday; announcements go out at 20:00 ET, Sunday to
  Thursday evenings. A paper's announcement day is the ET date of the first announcement after
  its first submission (``Paper.published``): before 14:00 ET Monday to Thursday → that evening;
  Thursday 14:00 ET to Friday 14:00 ET → Sunday evening; Friday 14:00 ET to Monday 14:00 ET →
  Monday evening. arXiv's holidays are ignored: when arXiv skips an announcement and the next
  one carries two days' papers, they still fall into two (smaller) cohorts here.
* **Percentile** (0 to 100, the mid-rank): 100 * (papers scoring strictly less + 1/2 * others
  scoring the same + 1/2) / cohort size. Equal scores get equal percentiles and a higher score
  never gets a lower one.
* **Robust z**: (score - median) / (1.4826 * MAD), MAD being the median absolute deviation
  from the median (1.4826 * MAD estimates the standard deviation of normal data, but one
  viral paper doesn't inflate it).
* **Floor for small cohorts.** A cohort of fewer than ``MIN_COHORT`` (10) papers is padded to
  10 with papers scoring 0 (a day's many unmentioned papers do score 0) for both the percentile
  and z; the MAD is at least ``MAD_FLOOR`` (1 point), so z is always finite. The single paper of
  a tiny cohort therefore tops out at the 95th percentile, and ``Cohort.size`` reports the real
  number of papers.
* **Field selection** (:func:`field_select`): a paper is eligible in a cohort when its score is
  above 0, it has at least ``min_posters`` distinct human posters (feeds and posts weighing 0
  don't count) and its percentile is at least 100 * (1 - ``top_share``) (the top 10% by
  default). Each category contributes its eligible papers, hottest first; a paper listed in
  several is placed once, in the category where it is hottest. Categories take turns (round
  robin), the one with the hottest paper first.
* **Rising** (:func:`with_rising`): gain = score now - score 24 h ago (never below 0);
  rising = gain / ((age_h + 24) / 24) ** 0.8, age_h being the hours since the paper's
  announcement (ResearchHub's gentle ``(age_h + 24) ** 0.8`` decay, scaled so a paper announced
  right now keeps its whole gain). A paper is "rising" in a digest when it gained at least
  ``RISING_MIN_GAIN`` (10) points and at least ``RISING_MIN_SHARE`` (25%) of its score.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import zoneinfo
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from bot.core.models import Cohort, Heat, RankedPaper
from bot.core.taxonomy import ALIASES, in_filter

__all__ = [
    "ANNOUNCE_TIME",
    "CUTOFF_TIME",
    "EASTERN",
    "MAD_FLOOR",
    "MAD_SCALE",
    "MIN_COHORT",
    "RISING_DECAY",
    "RISING_MIN_GAIN",
    "RISING_MIN_SHARE",
    "announce_day",
    "announced_at",
    "field_select",
    "heat_by_category",
    "is_rising",
    "rising_score",
    "with_rising",
]

#: arXiv's clock.
EASTERN = zoneinfo.ZoneInfo("America/New_York")
#: Submissions received before this (ET, Monday to Friday) make that day's announcement.
CUTOFF_TIME = dt.time(14, 0)
#: When arXiv announces (ET, Sunday to Thursday).
ANNOUNCE_TIME = dt.time(20, 0)
#: Cohorts smaller than this are padded with papers scoring 0.
MIN_COHORT = 10
#: The least median absolute deviation, in score points: a cohort of equal scores still has a z.
MAD_FLOOR = 1.0
#: Scales the MAD into a standard deviation for normal data.
MAD_SCALE = 1.4826
#: The exponent of the rising score's age decay.
RISING_DECAY = 0.8
#: A digest calls a paper rising when it gained at least this many points in 24 h…
RISING_MIN_GAIN = 10.0
#: …and at least this share of its score.
RISING_MIN_SHARE = 0.25

_FRIDAY = 4
_DAY = dt.timedelta(days=1)
# Percentiles are sums of halves over a size: compare them to a cut-off with some slack.
_EPSILON = 1e-9


@functools.lru_cache(maxsize=1 << 16)
def announce_day(published: dt.datetime) -> dt.date:
    """The (ET) date of the evening arXiv announces a paper first submitted at ``published``.

    Memoised: every ranking of a fan-out asks it again of the same papers.

    The cutoff is 14:00 ET Monday to Friday; a submission goes to the first cutoff it beats, and
    the cutoffs of Monday to Thursday are announced that evening, Friday's on Sunday evening.
    Holidays are ignored.
    """
    if published.tzinfo is None:
        raise ValueError(f"published must be a timezone-aware datetime, got {published!r}")
    local = published.astimezone(EASTERN)
    day = local.date()
    if day.weekday() > _FRIDAY or local.time() >= CUTOFF_TIME:
        day += _DAY  # too late for this day's cutoff (or a weekend): the next weekday's
        while day.weekday() > _FRIDAY:
            day += _DAY
    return day + 2 * _DAY if day.weekday() == _FRIDAY else day


def announced_at(published: dt.datetime) -> dt.datetime:
    """The moment (aware, ET) arXiv announces a paper first submitted at ``published``."""
    return dt.datetime.combine(announce_day(published), ANNOUNCE_TIME, tzinfo=EASTERN)


def _canonical(category: str) -> str:
    return ALIASES.get(category, category)


def _median(ordered: Sequence[float]) -> float:
    n = len(ordered)
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


class _Stats:
    """One cohort's padded score distribution: what a percentile and a z need."""

    __slots__ = ("cohort", "median", "n", "pad", "scale", "scores")

    def __init__(self, cohort: Cohort, scores: list[float]) -> None:
        scores.sort()
        self.cohort = cohort
        self.scores = scores
        self.pad = max(0, MIN_COHORT - len(scores))
        self.n = len(scores) + self.pad
        padded = sorted([*scores, *([0.0] * self.pad)]) if self.pad else scores
        self.median = _median(padded)
        mad = _median(sorted(abs(s - self.median) for s in padded))
        self.scale = MAD_SCALE * max(mad, MAD_FLOOR)

    def heat(self, score: float) -> Heat:
        below = bisect.bisect_left(self.scores, score)
        equal = bisect.bisect_right(self.scores, score, lo=below) - below
        if score > 0:
            below += self.pad
        elif score == 0:
            equal += self.pad
        # (below + 1/2 * (equal - 1) + 1/2) / n, the paper itself being one of the equal.
        percentile = 100.0 * (below + equal / 2) / self.n
        return Heat(percentile, (score - self.median) / self.scale, self.cohort)


class _Listing:
    """Which cohorts a paper belongs to and which of them its heat is reported in, per
    (primary category, categories): papers share a handful of combinations, each worked out
    once."""

    __slots__ = ("_cache", "_matches", "_wanted")

    def __init__(self, categories: Collection[str]) -> None:
        self._wanted = tuple(categories)
        self._matches: dict[str, bool] = {}
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, ...], tuple[str, ...]]] = {}

    def __call__(
        self, primary: str, categories: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        held = self._cache.get((primary, categories))
        if held is None:
            # A paper without a category (arXiv's answer lacked it) belongs to no cohort.
            listed = tuple(dict.fromkeys(_canonical(c) for c in (primary, *categories) if c))
            if not self._wanted:
                reported: tuple[str, ...] = (_canonical(primary),) if primary else ()
            else:
                reported = tuple(
                    dict.fromkeys(_canonical(c) for c in categories if self._matches_filter(c))
                )
            held = self._cache[primary, categories] = (listed, reported)
        return held

    def _matches_filter(self, category: str) -> bool:
        hit = self._matches.get(category)
        if hit is None:
            hit = self._matches[category] = in_filter((category,), self._wanted)
        return hit


def heat_by_category(
    ranked: Sequence[RankedPaper], *, categories: Collection[str] = ()
) -> dict[str, dict[str, Heat]]:
    """Each paper's heat in its categories: arxiv_id → category → :class:`Heat`.

    A cohort is every paper of ``ranked`` listing the category (cross-lists count) announced
    the same day, whatever the filter. Heat is reported in each paper's primary category, or,
    with ``categories``, in each of its categories the filter wants (a followed archive ``cs``
    wants every ``cs.*`` category the paper lists). Aliases (``cs.SY``/``eess.SY``) are one
    category, named by its canonical id.
    """
    return _heats(ranked, categories)


def _heats(
    ranked: Sequence[RankedPaper],
    categories: Collection[str],
    only: Collection[str] | None = None,
) -> dict[str, dict[str, Heat]]:
    """:func:`heat_by_category`, reported only for the papers ``only`` names (every paper
    still counts in its cohorts)."""
    listing = _Listing(categories)
    # day → category → the scores of its papers
    members: dict[dt.date, dict[str, list[float]]] = {}
    reported: list[tuple[RankedPaper, dt.date, tuple[str, ...]]] = []
    for item in ranked:
        paper = item.paper
        day = announce_day(paper.published)
        listed, wanted = listing(paper.primary_category, paper.categories)
        by_category = members.get(day)
        if by_category is None:
            by_category = members[day] = {}
        for category in listed:
            scores = by_category.get(category)
            if scores is None:
                by_category[category] = [item.score]
            else:
                scores.append(item.score)
        if wanted and (only is None or paper.arxiv_id in only):
            reported.append((item, day, wanted))

    stats: dict[dt.date, dict[str, _Stats]] = {}
    heats: dict[str, dict[str, Heat]] = {}
    for item, day, wanted in reported:
        of_day = stats.get(day)
        if of_day is None:
            of_day = stats[day] = {}
        paper_heats = heats.get(item.paper.arxiv_id)
        if paper_heats is None:
            paper_heats = heats[item.paper.arxiv_id] = {}
        for category in wanted:
            held = of_day.get(category)
            if held is None:
                scores = members[day][category]
                held = of_day[category] = _Stats(Cohort(category, day, len(scores)), scores)
            paper_heats[category] = held.heat(item.score)
    return heats


def _heat_key(heat: Heat) -> tuple[float, float]:
    return (-heat.percentile, -heat.z)


def field_select(
    ranked: Sequence[RankedPaper],
    *,
    categories: Collection[str] = (),
    min_posters: int = 2,
    top_share: float = 0.10,
    exclude: Collection[str] = (),
    top_n: int | None = None,
) -> list[RankedPaper]:
    """Each category's hottest papers, the categories taking turns; see the module's rules.

    The categories are those of :func:`heat_by_category` (each paper's primary one, or those
    the ``categories`` filter wants). Each returned paper carries the :class:`Heat` of the
    category it was chosen in.
    """
    if top_n is not None and top_n <= 0:
        return []
    cutoff = 100.0 * (1.0 - top_share) - _EPSILON
    excluded = set(exclude)
    eligible = [
        r
        for r in ranked
        if r.score > 0 and r.posters >= min_posters and r.paper.arxiv_id not in excluded
    ]
    heats = _heats(ranked, categories, only={r.paper.arxiv_id for r in eligible})
    groups: dict[str, list[tuple[tuple[float, float, float, str], RankedPaper]]] = defaultdict(list)
    for item in eligible:
        qualifying = [
            (_heat_key(heat), category, heat)
            for category, heat in heats.get(item.paper.arxiv_id, {}).items()
            if heat.percentile >= cutoff
        ]
        if not qualifying:
            continue
        key, category, heat = min(qualifying, key=lambda q: (q[0], q[1]))
        groups[category].append(
            ((*key, -item.score, item.paper.arxiv_id), replace(item, heat=heat))
        )
    for members in groups.values():
        members.sort(key=lambda m: m[0])
    order = sorted(groups, key=lambda category: (groups[category][0][0], category))
    chosen: list[RankedPaper] = []
    for turn in range(max((len(m) for m in groups.values()), default=0)):
        for category in order:
            if turn < len(groups[category]):
                chosen.append(groups[category][turn][1])
                if top_n is not None and len(chosen) >= top_n:
                    return chosen
    return chosen


def rising_score(gain: float, age_hours: float) -> float:
    """``gain / ((age_hours + 24) / 24) ** 0.8``: the whole gain for a paper announced now,
    two fifths of it at 2 days, a seventh at 10 days. A negative age counts as 0."""
    return gain / ((max(age_hours, 0.0) + 24.0) / 24.0) ** RISING_DECAY


def with_rising(
    now_ranked: Sequence[RankedPaper],
    then_scores: Mapping[str, float],
    *,
    now: dt.datetime,
) -> list[RankedPaper]:
    """The papers with ``gain`` (score - ``then_scores``, a paper missing there having had 0;
    never below 0) and ``rising`` set, by rising score, best first.

    The age is counted from the paper's announcement (or its submission, if that were later).
    Ties go to the larger gain, then the higher score, then the arXiv id.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    out: list[RankedPaper] = []
    for item in now_ranked:
        paper = item.paper
        gain = max(0.0, item.score - then_scores.get(paper.arxiv_id, 0.0))
        since = max(announced_at(paper.published), paper.published)
        age_hours = max(0.0, (now - since).total_seconds() / 3600)
        out.append(replace(item, gain=gain, rising=rising_score(gain, age_hours)))
    out.sort(key=lambda r: (-(r.rising or 0.0), -(r.gain or 0.0), -r.score, r.paper.arxiv_id))
    return out


def is_rising(paper: RankedPaper) -> bool:
    """Whether a digest calls the paper rising: it gained at least ``RISING_MIN_GAIN`` points
    in 24 h, and at least ``RISING_MIN_SHARE`` of its score (a big paper's routine drift isn't
    news). A paper without a computed gain is not rising."""
    gain = paper.gain
    return gain is not None and gain >= RISING_MIN_GAIN and gain >= RISING_MIN_SHARE * paper.score
