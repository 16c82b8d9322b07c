"""Field-normalised heat, field selection, arXiv announcement days and rising papers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.heat import (
    MAD_FLOOR,
    MAD_SCALE,
    MIN_COHORT,
    announce_day,
    announced_at,
    field_select,
    heat_by_category,
    is_rising,
    rising_score,
    with_rising,
)
from bot.core.models import Cohort, Heat, Paper, RankedPaper
from bot.core.ranking import select

ET = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC
# Tuesday 4 March 2025, 10:00 EST: announced that evening.
SUBMITTED = dt.datetime(2025, 3, 4, 15, 0, tzinfo=UTC)
TUESDAY = dt.date(2025, 3, 4)


def et(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ET)  # type: ignore[misc]


def rp(
    arxiv_id: str,
    score: float,
    *categories: str,
    posters: int = 3,
    published: dt.datetime = SUBMITTED,
) -> RankedPaper:
    cats = categories or ("cs.LG",)
    paper = Paper(arxiv_id, "T", "A", ("X",), cats[0], cats, published, published)
    return RankedPaper(paper, float(score), {}, (), posters=posters)


def ids(papers: list[RankedPaper]) -> list[str]:
    return [p.paper.arxiv_id for p in papers]


# --- announcement days ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("submitted", "announced"),
    [
        # A weekday before the 14:00 ET cutoff: that evening; at or after it: the next one.
        (et(2025, 3, 4, 13, 59), dt.date(2025, 3, 4)),
        (et(2025, 3, 4, 14, 0), dt.date(2025, 3, 5)),
        (et(2025, 3, 3, 0, 5), dt.date(2025, 3, 3)),  # Monday just after midnight
        # Thursday after the cutoff and Friday before it: Sunday evening.
        (et(2025, 3, 6, 15, 0), dt.date(2025, 3, 9)),
        (et(2025, 3, 7, 10, 0), dt.date(2025, 3, 9)),
        # Friday afternoon and the weekend: Monday evening.
        (et(2025, 3, 7, 14, 30), dt.date(2025, 3, 10)),
        (et(2025, 3, 8, 12, 0), dt.date(2025, 3, 10)),
        (et(2025, 3, 9, 23, 0), dt.date(2025, 3, 10)),
        # Late Monday evening in New York is already Tuesday in UTC: still Tuesday's batch.
        (dt.datetime(2025, 3, 4, 2, 0, tzinfo=UTC), dt.date(2025, 3, 4)),
        # Across the new year.
        (et(2025, 12, 31, 16, 0), dt.date(2026, 1, 1)),
    ],
)
def test_announce_day(submitted: dt.datetime, announced: dt.date) -> None:
    assert announce_day(submitted) == announced
    assert announce_day(submitted.astimezone(UTC)) == announced


def test_announce_day_follows_daylight_saving_time() -> None:
    # 18:30 UTC is 13:30 EST (before the cutoff) on Monday 3 March 2025, but 14:30 EDT (after
    # it) on Monday 10 March, the day after clocks went forward.
    assert announce_day(dt.datetime(2025, 3, 3, 18, 30, tzinfo=UTC)) == dt.date(2025, 3, 3)
    assert announce_day(dt.datetime(2025, 3, 10, 18, 30, tzinfo=UTC)) == dt.date(2025, 3, 11)
    # And back: 18:30 UTC is 14:30 EDT on Friday 31 October, 13:30 EST on Monday 3 November.
    assert announce_day(dt.datetime(2025, 10, 31, 18, 30, tzinfo=UTC)) == dt.date(2025, 11, 3)
    assert announce_day(dt.datetime(2025, 11, 3, 18, 30, tzinfo=UTC)) == dt.date(2025, 11, 3)
    # The announcement is at 20:00 local time either side of the change: 01:00 UTC on Sunday
    # 2 March (EST), 00:00 UTC on Sunday 9 March, the day clocks went forward.
    assert announced_at(et(2025, 2, 28, 10, 0)) == dt.datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
    assert announced_at(et(2025, 3, 7, 10, 0)) == dt.datetime(2025, 3, 10, 0, 0, tzinfo=UTC)


def test_announce_day_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="published"):
        announce_day(dt.datetime(2025, 3, 4, 12, 0))


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 1, 1)))
def test_every_submission_is_announced_sunday_to_thursday_within_four_days(
    naive: dt.datetime,
) -> None:
    submitted = naive.replace(tzinfo=UTC)
    day = announce_day(submitted)
    assert day.weekday() in (6, 0, 1, 2, 3)
    announced = announced_at(submitted)
    assert announced.astimezone(ET).date() == day
    # Friday 14:00 ET to Monday 20:00 ET is the longest wait: 78 hours.
    assert dt.timedelta(0) < announced - submitted <= dt.timedelta(hours=78)


# --- heat ------------------------------------------------------------------------------------


def heat_of(papers: list[RankedPaper], arxiv_id: str, category: str = "cs.LG") -> Heat:
    return heat_by_category(papers)[arxiv_id][category]


def test_percentile_is_the_mid_rank() -> None:
    scores = [0, 0, 1, 2, 2, 2, 3, 4, 5, 6, 7, 8]
    papers = [rp(f"p{i}", s) for i, s in enumerate(scores)]
    heats = heat_by_category(papers)
    assert heats["p0"]["cs.LG"].percentile == pytest.approx(100 * 1 / 12)  # (0 + 2/2) / 12
    assert heats["p3"]["cs.LG"].percentile == pytest.approx(100 * 4.5 / 12)  # (3 + 3/2) / 12
    assert heats["p11"]["cs.LG"].percentile == pytest.approx(100 * 11.5 / 12)
    assert heats["p3"]["cs.LG"].cohort == Cohort("cs.LG", TUESDAY, 12)


def test_robust_z_uses_median_and_mad() -> None:
    papers = [rp(f"p{s}", s) for s in range(11)]  # median 5, MAD 3
    assert heat_of(papers, "p10").z == pytest.approx(5 / (MAD_SCALE * 3))
    assert heat_of(papers, "p5").z == 0
    assert heat_of(papers, "p0").z == pytest.approx(-5 / (MAD_SCALE * 3))


def test_mad_has_a_floor_so_z_is_finite() -> None:
    papers = [rp(f"p{i}", 7) for i in range(12)] + [rp("odd", 9)]  # MAD 0
    assert heat_of(papers, "odd").z == pytest.approx(2 / (MAD_SCALE * MAD_FLOOR))
    assert heat_of(papers, "p0").z == 0


def test_small_cohorts_are_padded_with_zero_scores() -> None:
    (alone,) = heat_by_category([rp("a", 30)])["a"].values()
    assert alone.percentile == pytest.approx(95.0)  # above 9 padded zeros
    assert alone.z == pytest.approx(30 / MAD_SCALE)  # median 0, MAD floored at 1
    assert alone.cohort.size == 1
    three = [rp("a", 10), rp("b", 20), rp("c", 30)]
    assert heat_of(three, "a").percentile == pytest.approx(75.0)  # (7 + 1/2) / 10
    assert heat_of(three, "c").percentile == pytest.approx(95.0)
    assert heat_of(three, "c").cohort.size == 3
    # A paper scoring 0 ties with the padding.
    assert heat_of([rp("z", 0)], "z").percentile == pytest.approx(50.0)
    # From MIN_COHORT papers on, no padding.
    full = [rp(f"p{i}", i + 1) for i in range(MIN_COHORT)]
    assert heat_of(full, f"p{MIN_COHORT - 1}").percentile == pytest.approx(95.0)
    assert heat_of(full, "p0").percentile == pytest.approx(5.0)


def test_cohorts_are_per_announcement_day() -> None:
    monday = dt.datetime(2025, 3, 3, 15, 0, tzinfo=UTC)
    papers = [rp("mon", 10, published=monday), rp("tue", 5), rp("tue2", 50)]
    heats = heat_by_category(papers)
    assert heats["mon"]["cs.LG"].cohort == Cohort("cs.LG", dt.date(2025, 3, 3), 1)
    assert heats["tue"]["cs.LG"].cohort == Cohort("cs.LG", TUESDAY, 2)


def test_cross_lists_count_in_each_of_their_categories() -> None:
    papers = [
        rp("ml", 100, "cs.LG"),
        rp("both", 40, "math.AG", "cs.LG"),
        rp("ag", 10, "math.AG"),
    ]
    # Without a filter, heat is reported in the primary category, but the cross-list is a
    # member of the cs.LG cohort all the same.
    plain = heat_by_category(papers)
    assert set(plain["both"]) == {"math.AG"}
    assert plain["ml"]["cs.LG"].cohort.size == 2
    followed = heat_by_category(papers, categories=["cs.LG", "math.AG"])
    assert set(followed["both"]) == {"math.AG", "cs.LG"}
    assert followed["both"]["math.AG"].cohort == Cohort("math.AG", TUESDAY, 2)
    assert followed["both"]["cs.LG"].cohort == Cohort("cs.LG", TUESDAY, 2)
    # A paper's heat in a category doesn't depend on what else is followed.
    assert followed["ml"]["cs.LG"] == plain["ml"]["cs.LG"]
    only_ag = heat_by_category(papers, categories=["math.AG"])
    assert set(only_ag) == {"both", "ag"}
    assert set(only_ag["both"]) == {"math.AG"}


def test_a_followed_archive_means_each_of_its_categories() -> None:
    papers = [rp("p", 10, "cs.LG", "cs.AI", "stat.ML")]
    assert set(heat_by_category(papers, categories=["cs"])["p"]) == {"cs.LG", "cs.AI"}
    assert set(heat_by_category(papers, categories=["stat"])["p"]) == {"stat.ML"}
    assert heat_by_category(papers, categories=["math"]) == {}


def test_aliases_are_one_cohort() -> None:
    papers = [rp("a", 10, "eess.SY", "cs.SY"), rp("b", 20, "cs.SY", "eess.SY")]
    heats = heat_by_category(papers, categories=["cs.SY"])
    assert set(heats["a"]) == set(heats["b"]) == {"eess.SY"}
    assert heats["a"]["eess.SY"].cohort.size == 2
    assert set(heat_by_category(papers)["b"]) == {"eess.SY"}


scores_strategy = st.lists(
    st.integers(0, 1000).map(float) | st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=60
)


@settings(max_examples=200, deadline=None)
@given(scores_strategy)
def test_heat_is_monotone_in_score_within_a_cohort(scores: list[float]) -> None:
    papers = [rp(f"p{i}", s) for i, s in enumerate(scores)]
    heats = heat_by_category(papers)
    pairs = sorted((p.score, heats[p.paper.arxiv_id]["cs.LG"]) for p in papers)
    for (low, a), (high, b) in itertools.pairwise(pairs):
        assert 0 < a.percentile < 100
        assert math.isfinite(a.z)
        if low == high:
            assert (a.percentile, a.z) == (b.percentile, b.z)
        else:
            assert a.percentile < b.percentile
            assert a.z <= b.z
    assert {h.cohort for _, h in pairs} == {Cohort("cs.LG", TUESDAY, len(scores))}


# --- field selection --------------------------------------------------------------------------

FIELDS = ["cs.LG", "math.AG", "astro-ph.GA"]


def multi_field_day() -> list[RankedPaper]:
    """A busy field in the hundreds, a quiet one from 5 to 40, one in between."""
    lg = [rp(f"lg{k:02d}", 100 + 20 * k, "cs.LG") for k in range(40)]  # 100 … 880
    ag = [rp(f"ag{k:02d}", 5 + 1.75 * k, "math.AG") for k in range(20)]  # 5 … 38.25
    ga = [rp(f"ga{k:02d}", 20 + 3 * k, "astro-ph.GA") for k in range(19)]  # 20 … 74
    ga.append(rp("ga19", 95, "astro-ph.GA"))  # an outlier: astro-ph.GA's best is the hotter
    return sorted(lg + ag + ga, key=lambda r: (-r.score, r.paper.arxiv_id))


def test_field_select_gives_each_field_its_top_papers() -> None:
    day = multi_field_day()
    chosen = field_select(day, categories=FIELDS)
    # Top 10%: 4 of cs.LG's 40, 2 of the others' 20, taking turns, cs.LG (the hottest) first.
    assert ids(chosen) == ["lg39", "ga19", "ag19", "lg38", "ga18", "ag18", "lg37", "lg36"]
    assert [p.heat.cohort.category for p in chosen if p.heat] == [
        "cs.LG", "astro-ph.GA", "math.AG", "cs.LG", "astro-ph.GA", "math.AG", "cs.LG", "cs.LG",
    ]  # fmt: skip
    assert chosen[0].heat == heat_by_category(day)["lg39"]["cs.LG"]
    # The same with no categories: each paper's primary category.
    assert ids(field_select(day)) == ids(chosen)
    # The absolute ranking keeps its answer: nothing of math.AG reaches 50.
    absolute = select(day, threshold=50, categories=FIELDS)
    expected = [r.paper.arxiv_id for r in day if r.score >= 50]
    assert ids(absolute) == expected
    assert len(expected) == 50
    assert not [i for i in ids(absolute) if i.startswith("ag")]
    assert all(p.heat is None for p in absolute)


def test_field_select_follows_only_the_wanted_categories() -> None:
    day = multi_field_day()
    assert ids(field_select(day, categories=["math"])) == ["ag19", "ag18"]
    assert ids(field_select(day, categories=["astro-ph", "cs.LG"], top_n=3)) == [
        "lg39",
        "ga19",
        "lg38",
    ]


def test_min_posters() -> None:
    papers = [rp(f"p{s}", s) for s in range(1, 11)]
    papers[-1] = dataclasses.replace(papers[-1], posters=1)  # the best: one account only
    assert ids(field_select(papers, min_posters=1)) == ["p10"]
    # The runner-up is at the 85th percentile: not in the top 10%, so nothing is chosen.
    assert field_select(papers) == []
    assert ids(field_select(papers, top_share=0.2)) == ["p9"]


def test_exclude_and_zero_scores() -> None:
    papers = [rp("zero", 0), rp("a", 5), rp("b", 7)]
    everything = field_select(papers, top_share=1.0, min_posters=0)
    assert ids(everything) == ["b", "a"]  # a paper scoring 0 never counts
    assert ids(field_select(papers, top_share=1.0, min_posters=0, exclude=["b"])) == ["a"]


def test_a_paper_appears_once_where_it_is_hottest() -> None:
    day = multi_field_day()
    day += [
        rp("cross", 45, "math.AG", "cs.LG"),  # the top of math.AG, the bottom of cs.LG
        rp("star", 2000, "math.AG", "cs.LG"),  # the top of both: hotter in the bigger cs.LG
    ]
    chosen = field_select(day, categories=["cs.LG", "math.AG"])
    assert ids(chosen).count("star") == 1
    assert ids(chosen).count("cross") == 1
    by_id = {p.paper.arxiv_id: p for p in chosen}
    assert by_id["star"].heat is not None
    assert by_id["star"].heat.cohort.category == "cs.LG"
    assert by_id["cross"].heat is not None
    assert by_id["cross"].heat.cohort.category == "math.AG"


CATEGORY_POOL = ["cs.LG", "cs.AI", "math.AG", "astro-ph.GA", "q-bio.NC"]


@st.composite
def days(draw: st.DrawFn) -> list[RankedPaper]:
    papers = []
    for n in range(draw(st.integers(0, 80))):
        cats = draw(st.lists(st.sampled_from(CATEGORY_POOL), min_size=1, max_size=3, unique=True))
        published = SUBMITTED + dt.timedelta(days=draw(st.integers(0, 1)))
        score = draw(st.integers(0, 300))
        papers.append(rp(f"p{n:03d}", score, *cats, posters=draw(st.integers(0, 4)),
                         published=published))  # fmt: skip
    return papers


@settings(max_examples=200, deadline=None)
@given(
    days(),
    st.sampled_from([(), ("cs",), ("cs.LG", "math.AG"), ("astro-ph", "q-bio.NC", "cs.AI")]),
    st.sampled_from([0.1, 0.3, 0.5]),
)
def test_field_select_is_a_fair_round_robin(
    papers: list[RankedPaper], follows: tuple[str, ...], share: float
) -> None:
    chosen = field_select(papers, categories=follows, top_share=share)
    heats = heat_by_category(papers, categories=follows)
    assert len(set(ids(chosen))) == len(chosen)
    for paper in chosen:
        assert paper.heat is not None
        assert paper.score > 0
        assert paper.posters >= 2
        assert paper.heat.percentile >= 100 * (1 - share) - 1e-9
        mine = heats[paper.paper.arxiv_id]
        assert mine[paper.heat.cohort.category] == paper.heat
        best = min((-h.percentile, -h.z, c) for c, h in mine.items())
        assert best[2] == paper.heat.cohort.category or best[:2] == (
            -paper.heat.percentile,
            -paper.heat.z,
        )
    # Every eligible paper is there.
    cutoff = 100 * (1 - share) - 1e-9
    eligible = {
        p.paper.arxiv_id
        for p in papers
        if p.score > 0
        and p.posters >= 2
        and any(h.percentile >= cutoff for h in heats.get(p.paper.arxiv_id, {}).values())
    }
    assert set(ids(chosen)) == eligible
    # Round robin: each round takes the next paper of every category that has one left, in
    # one fixed order, the category with the hottest paper first; each category hottest first.
    sequence = [p.heat.cohort.category for p in chosen if p.heat]
    order = list(dict.fromkeys(sequence))
    counts = {c: sequence.count(c) for c in order}
    rounds = max(counts.values(), default=0)
    assert sequence == [c for r in range(rounds) for c in order if counts[c] > r]
    firsts = [next(p.heat for p in chosen if p.heat and p.heat.cohort.category == c) for c in order]
    assert [(-h.percentile, -h.z) for h in firsts] == sorted((-h.percentile, -h.z) for h in firsts)
    for category in order:
        mine = [p.heat for p in chosen if p.heat and p.heat.cohort.category == category]
        assert [(-h.percentile, -h.z) for h in mine] == sorted((-h.percentile, -h.z) for h in mine)
    # top_n cuts the same list; excluded papers leave the others' turns as they were.
    assert field_select(papers, categories=follows, top_share=share, top_n=3) == chosen[:3]
    if chosen:
        dropped = chosen[0].paper.arxiv_id
        rest = field_select(papers, categories=follows, top_share=share, exclude=[dropped])
        assert dropped not in ids(rest)
        assert set(ids(rest)) == set(ids(chosen)) - {dropped}


# --- rising ----------------------------------------------------------------------------------


def test_rising_score_decays_gently_with_age() -> None:
    assert rising_score(10, 0) == 10
    assert rising_score(10, 24) == pytest.approx(10 / 2**0.8)
    assert rising_score(10, 9 * 24) == pytest.approx(10 / 10**0.8)
    assert rising_score(10, -5) == 10  # not announced yet: no decay
    assert rising_score(0, 3) == 0


def test_with_rising_sets_gain_and_rising_and_sorts() -> None:
    # Announced Tuesday 4 March 2025 at 20:00 EST = 01:00 UTC on the 5th.
    new = rp("new", 40)
    old = rp("old", 200, published=SUBMITTED - dt.timedelta(days=9))
    flat = rp("flat", 500)
    fresh = rp("fresh", 12)  # no score a day ago: all of it is gain
    now = dt.datetime(2025, 3, 5, 3, 0, tzinfo=UTC)  # two hours after the announcement
    out = with_rising([flat, old, new, fresh], {"new": 10, "old": 150, "flat": 520}, now=now)
    by_id = {p.paper.arxiv_id: p for p in out}
    assert by_id["new"].gain == 30
    assert by_id["new"].rising == pytest.approx(30 / (26 / 24) ** 0.8)
    assert by_id["flat"].gain == 0  # scores can drop (deleted posts): never a negative gain
    assert by_id["fresh"].gain == 12
    old_age = (now - announced_at(old.paper.published)).total_seconds() / 3600
    assert by_id["old"].rising == pytest.approx(50 / ((old_age + 24) / 24) ** 0.8)
    # 12 points on a paper announced two hours ago beat 50 on one nine days old.
    assert ids(out) == ["new", "fresh", "old", "flat"]
    assert [p.rising for p in out] == sorted((p.rising for p in out), reverse=True)


def test_with_rising_counts_age_from_the_announcement() -> None:
    before = dt.datetime(2025, 3, 4, 23, 0, tzinfo=UTC)  # 18:00 EST: not announced yet
    (paper,) = with_rising([rp("a", 20)], {}, now=before)
    assert paper.rising == 20


def test_with_rising_breaks_ties_deterministically() -> None:
    now = dt.datetime(2025, 3, 6, tzinfo=UTC)
    papers = [rp("b", 30), rp("a", 30), rp("c", 60)]
    then = {"c": 30}
    first = with_rising(papers, then, now=now)
    assert ids(first) == ["c", "a", "b"]  # equal rising and gain: the higher score, then the id
    assert with_rising(list(reversed(papers)), then, now=now) == first


def test_with_rising_refuses_naive_now() -> None:
    with pytest.raises(ValueError, match="now"):
        with_rising([], {}, now=dt.datetime(2025, 3, 6))


def test_is_rising() -> None:
    def with_gain(score: float, gain: float | None) -> RankedPaper:
        return dataclasses.replace(rp("a", score), gain=gain)

    assert is_rising(with_gain(40, 10))
    assert not is_rising(with_gain(41, 10))  # 10 is less than 25% of 41
    assert not is_rising(with_gain(20, 9))  # too few points, however large a share
    assert not is_rising(with_gain(40, None))
