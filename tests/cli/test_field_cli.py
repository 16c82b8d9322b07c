"""`hotpapers digest --ranking field|absolute --sort rising` and `hotpapers paper ID --chart` on
a synthetic multi-field day stored in a database (no network)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.heat import announce_day
from bot.core.models import Mention, Paper
from bot.storage.engine import open as open_database
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository

# Two days ago (`hotpapers paper` looks at the last 7 days from now).
DAY = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).date()
MIDDAY = dt.datetime.combine(DAY, dt.time(12), dt.UTC)
SUBMITTED = MIDDAY - dt.timedelta(days=1)
ANNOUNCED = announce_day(SUBMITTED).isoformat()


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def paper(arxiv_id: str, category: str, *, cross: tuple[str, ...] = ()) -> Paper:
    return Paper(
        arxiv_id=arxiv_id,
        title=f"A {category} paper {arxiv_id}",
        abstract="An abstract.",
        authors=("Ada Lovelace",),
        primary_category=category,
        categories=(category, *cross),
        published=SUBMITTED,
        updated=SUBMITTED,
    )


def post(
    arxiv_id: str, n: int, likes: int, *, created: dt.datetime = MIDDAY, author: str = ""
) -> Mention:
    return Mention(
        source="x",
        post_id=f"{arxiv_id}-{n}",
        url=f"https://x.com/u/status/{arxiv_id.replace('.', '')}{n}",
        author=author or f"person{n}",
        text=f"read https://arxiv.org/abs/{arxiv_id}",
        created_at=created,
        arxiv_ids=(arxiv_id,),
        metrics={"reposts": 0, "likes": likes},
    )


# cs.LG: a big field (scores in the hundreds); math.AG: a small one (scores 5-40); both cohorts
# of 20 papers. A cs.LG paper also cross-listed in math.AG scores 300.
LG = [f"2611.{10000 + i}" for i in range(20)]
AG = [f"2611.{20000 + i}" for i in range(20)]


async def store_day(database: Path) -> None:
    db = await open_database(f"sqlite+aiosqlite:///{database}")
    try:
        papers = PaperRepository(db)
        mentions = MentionRepository(db)
        fetched = MIDDAY + dt.timedelta(hours=6)
        await papers.upsert(
            [paper(i, "cs.LG") for i in LG] + [paper(i, "math.AG") for i in AG], fetched
        )
        items = []
        for rank, arxiv_id in enumerate(LG):
            # Two people each: 400, 380, ... 20 likes in all.
            likes = (20 - rank) * 10
            items += [post(arxiv_id, 1, likes), post(arxiv_id, 2, likes)]
        for rank, arxiv_id in enumerate(AG):
            likes = max(1, 20 - rank)  # 40, 38, ... 2 in all
            items += [post(arxiv_id, 1, likes), post(arxiv_id, 2, likes)]
        await mentions.upsert(items, fetched)
    finally:
        await db.close()


@pytest.fixture
async def cli(tmp_path, monkeypatch, capsys):
    database = tmp_path / "hotpapers.db"
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", f"sqlite+aiosqlite:///{database}")
    await store_day(database)

    async def run(*argv: str) -> Result:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    run.database = database  # type: ignore[attr-defined]
    return run


async def digest_json(cli, *extra: str) -> dict:
    result = await cli(
        "digest", "--date", DAY.isoformat(), "--categories", "cs.LG,math.AG", *extra,
        "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    return json.loads(result.out)


async def test_absolute_keeps_the_threshold_and_field_gives_each_category_its_best(cli):
    absolute = await digest_json(cli, "--top", "10")
    assert absolute["ranking"] == "absolute"
    ids = [p["arxiv_id"] for p in absolute["papers"]]
    assert ids == LG[:10]  # every paper over 50 is cs.LG: math.AG gets nothing
    field = await digest_json(cli, "--ranking", "field", "--top", "10")
    assert field["ranking"] == "field"
    ids = [p["arxiv_id"] for p in field["papers"]]
    # The top 10% of each cohort of 20 (two papers each), the categories taking turns (the
    # one whose best paper stands out more from its cohort first).
    assert ids in ([LG[0], AG[0], LG[1], AG[1]], [AG[0], LG[0], AG[1], LG[1]])
    for entry in field["papers"]:
        cohort = entry["cohort"]
        assert cohort["day"] == ANNOUNCED
        assert cohort["size"] == 20
        assert cohort["category"] == ("cs.LG" if entry["arxiv_id"] in LG else "math.AG")
        assert entry["heat"] >= 90.0
        assert entry["heat"] == round(entry["heat"], 1)


async def test_absolute_json_carries_heat_too(cli):
    absolute = await digest_json(cli, "--top", "3")
    first = absolute["papers"][0]
    assert first["heat"] == 97.5  # the best of 20: (19 + 1/2) / 20
    assert first["cohort"] == {"category": "cs.LG", "day": ANNOUNCED, "size": 20}


async def test_field_mode_with_every_category_uses_primary_categories(cli):
    result = await cli(
        "digest", "--date", DAY.isoformat(), "--ranking", "field", "--format", "json"
    )  # fmt: skip
    assert result.code == 0, result.err
    ids = [p["arxiv_id"] for p in json.loads(result.out)["papers"]]
    assert set(ids) == {LG[0], LG[1], AG[0], AG[1]}


async def test_field_mode_on_an_empty_day_says_why(cli):
    result = await cli("digest", "--date", "2026-11-10", "--ranking", "field")
    assert result.code == 0
    assert "top 10% of its field with 2+ people" in result.err


async def test_sort_rising_puts_todays_gain_before_an_old_big_score(cli):
    database = cli.database
    db = await open_database(f"sqlite+aiosqlite:///{database}")
    try:
        papers, mentions = PaperRepository(db), MentionRepository(db)
        old = paper("2611.30000", "cs.LG")
        await papers.upsert([old], MIDDAY)
        then = dt.datetime.combine(DAY - dt.timedelta(days=3), dt.time(12), dt.UTC)
        # 900 likes three days ago, 910 today: a big score, little gained in 24 h.
        early = [post(old.arxiv_id, 1, 450, created=then), post(old.arxiv_id, 2, 450, created=then)]
        await mentions.upsert(early, then + dt.timedelta(hours=1))
        later = [post(old.arxiv_id, 1, 455, created=then), post(old.arxiv_id, 2, 455, created=then)]
        await mentions.upsert(later, MIDDAY + dt.timedelta(hours=6))
    finally:
        await db.close()
    then = dt.datetime.combine(DAY - dt.timedelta(days=3), dt.time(12), dt.UTC)
    by_score = await digest_json(cli, "--top", "3")
    # The day's window: the old paper's posts (three days old) are not in it.
    assert [p["arxiv_id"] for p in by_score["papers"]] == LG[:3]
    by_rising = await digest_json(cli, "--top", "3", "--sort", "rising")
    assert by_rising["sort"] == "rising"
    ranked = [p["arxiv_id"] for p in by_rising["papers"]]
    assert ranked[0] == LG[0]
    assert old.arxiv_id not in ranked  # its 910 gained 10 in 24 h; the others hundreds
    gains = [p["gain_24h"] for p in by_rising["papers"]]
    assert gains == sorted(gains, reverse=True)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


async def test_paper_explains_and_writes_its_chart(cli, tmp_path):
    chart = tmp_path / "chart.png"
    # The CLI's 7-day window ends now: the synthetic day is in it when "now" is that day.
    result = await cli("paper", AG[0], "--chart", str(chart))
    assert result.code == 0, result.err
    assert png_size(chart.read_bytes()) == (800, 400)
    assert f"chart written to {chart}" in result.err
    assert "Score 40 over the last 7 days" in result.out
    assert "X: 0 reposts, 40 likes" in result.out
    assert f"Top 3% of math.AG on {ANNOUNCED} (20 papers)" in result.out
    # Its only counts were read more than 24 hours ago: nothing gained since.
    assert "not rising: +0 in the last 24 h" in result.out
    nobody = await cli("paper", "2611.30001")  # not stored, arXiv unreachable: one line
    assert nobody.code != 0


async def test_chart_must_be_a_png_in_an_existing_folder(cli, tmp_path):
    bad = await cli("paper", AG[0], "--chart", str(tmp_path / "chart.txt"))
    assert bad.code == 2
    assert "ending in .png" in bad.err
    missing = await cli("paper", AG[0], "--chart", str(tmp_path / "no" / "chart.png"))
    assert missing.code == 2
    assert "does not exist" in missing.err
