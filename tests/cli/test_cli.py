"""The CLI in-process (bot.cli.main) and as `python -m bot`: errors, fetch, digest, paper, db."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import __version__
from bot.cli import log_level, main
from bot.fakes.demo import load_dataset
from bot.settings import load_settings
from bot.storage.engine import head_revision
from tests.cli.test_real_day import (
    DAY,
    TOKEN,
    ReferenceFakes,
    run_cli,
    serve_reference_day,
    summary_rows,
)
from tests.cli.test_reference import parse_post

DATA = load_dataset()
SCORES = {p["arxiv_id"]: p["retweets"] + p["favorites"] for p in DATA["papers"]}
TITLES = {p["arxiv_id"]: " ".join(p["title"].split()) for p in DATA["papers"]}
CATEGORIES = {p["arxiv_id"]: tuple(p["categories"]) for p in DATA["papers"]}
BEST_FIRST = [p["arxiv_id"] for p in sorted(DATA["papers"], key=lambda p: p["rank"])]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run ``main(argv)`` in a worker thread (it calls asyncio.run) while the fakes serve."""

    async def run(*argv: str) -> Result:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
async def world(tmp_path, monkeypatch) -> AsyncIterator[ReferenceFakes]:
    """The reference day's fakes, the CLI configured through documented environment keys."""
    async with serve_reference_day(tmp_path) as fakes:
        for name, value in fakes.env.items():
            monkeypatch.setenv(name, value)
        # Tests switch waits off: no 3 s between arXiv requests, no backoff between retries.
        monkeypatch.setenv("HOTPAPERS_ARXIV__MIN_INTERVAL_SECONDS", "0")
        monkeypatch.setenv("HOTPAPERS_HTTP__BACKOFF_INITIAL_SECONDS", "0")
        monkeypatch.setenv("HOTPAPERS_HTTP__RETRIES", "1")
        yield fakes


def db_count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def section_ids(markdown: str) -> list[str]:
    _, sections = parse_post(markdown)
    return [s.links.split("/abs/")[1].split(")")[0] for s in sections]


# -- bad input: one line on stderr, non-zero, no traceback, nothing opened ------------------------


BAD_INPUTS = [
    (
        ["digest", "--date", DAY, "--categories", "cs.XX"],
        "Unknown arXiv category `cs.XX`. Did you mean",
    ),
    (["digest", "--date", DAY, "--categories", "cs.LG,mashine"], "`mashine`"),
    (["digest", "--date", "2020-13-45"], "`2020-13-45` is not a date"),
    (["digest", "--date", "yesterday"], "`yesterday` is not a date"),
    (["fetch", "--since", "2020-12-23", "--until", "2020-12-22"], "--since"),
    (["fetch", "--since", "2020-12-22", "--until", "2020-12-22"], "must be before --until"),
    (["fetch", "--since", "soon"], "`soon` is not an ISO date"),
    (["paper", "2013.10885"], "month 13 does not exist"),
    (["paper", "2012.1088"], "5-digit numbers"),
    (["paper", "https://arxiv.org/abs/garbage"], "is not an arXiv id or arXiv URL"),
    (["paper", "https://example.com/2012.10885"], "is not an arXiv id or arXiv URL"),
    (["paper", "arXiv:nonsense"], "is not an arXiv id or arXiv URL"),
    (["paper", " "], "Give an arXiv id"),
    (["paper", "word " * 80], "too long"),
    (["digest", "--date", DAY, "--top", "0"], "--top: must be at least 1"),
    (["digest", "--date", DAY, "--top", "many"], "--top: `many` is not a whole number"),
    (["digest", "--date", DAY, "--top", "-3"], "--top"),
    (["digest", "--date", DAY, "--threshold", "-1"], "--threshold"),
    (["digest", "--date", DAY, "--threshold", "lots"], "--threshold: `lots` is not"),
    (["digest", "--date", DAY, "--threshold", "nan"], "--threshold: `nan` is not"),
    (["digest", "--date", DAY, "--threshold", "inf"], "--threshold: `inf` is not"),
    (["digest"], "--date"),
    (["fetch", "--format", "json"], "unrecognized arguments: --format"),
    (["nonsense"], "invalid choice: 'nonsense'"),
]


@pytest.mark.parametrize(("argv", "named"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, capsys, argv, named):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.endswith("\n")
    assert named in err
    assert err.startswith("hotpapers")
    assert "Traceback" not in err
    # Rejected before anything was opened.
    assert not (tmp_path / "hotpapers.db").exists()


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (None, "does not exist"),
        ("[ranking\n", "is not valid TOML"),
        ("[ranking]\nthresold = 3\n", "unknown setting `ranking.thresold`"),
        ("[ranking]\nthreshold = 'high'\n", "setting `ranking.threshold`"),
        ("[discord]\ntoken = 'x'\n", "`discord.token` does not belong in a file"),
    ],
)
def test_bad_config_file_is_one_line(tmp_path, capsys, config, named):
    path = tmp_path / "bad.toml"
    if config is not None:
        path.write_text(config)
    code = main(["--config", str(path), "digest", "--date", DAY])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert named in err
    assert str(path) in err


def test_config_that_is_a_directory_is_one_line(tmp_path, capsys):
    assert main(["--config", str(tmp_path), "db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is a directory" in err


def test_help_and_version_return_zero(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hotpapers {__version__}"
    assert main(["digest", "--help"]) == 0
    assert "--categories" in capsys.readouterr().out


def test_log_level_quiet_for_one_shot_commands_unless_set(monkeypatch):
    assert log_level(load_settings(), "run") == "INFO"
    assert log_level(load_settings(), "fetch") == "WARNING"
    monkeypatch.setenv("HOTPAPERS_LOGGING__LEVEL", "info")
    assert log_level(load_settings(), "fetch") == "INFO"


# -- python -m bot and the hotpapers script -------------------------------------------------------


def _programs() -> list[tuple[str, ...]]:
    programs = [(sys.executable, "-m", "bot")]
    script = Path(sys.executable).with_name("hotpapers")
    if script.is_file():
        programs.append((str(script),))
    return programs


@pytest.mark.parametrize("program", _programs(), ids=lambda p: Path(p[-1]).name)
@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["digest", "--date", DAY, "--categories", "cs.XX"], "Did you mean"),
        (["paper", "https://arxiv.org/abs/garbage"], "is not an arXiv id"),
        (["--config", "missing.toml", "fetch"], "missing.toml does not exist"),
        (["digest", "--date", DAY, "--top", "0"], "--top"),
    ],
)
async def test_real_process_bad_input_is_one_line(tmp_path, program, argv, named):
    run = await run_cli(*argv, env={}, cwd=tmp_path, program=program)
    assert run.code == 2
    assert run.out == ""
    assert run.err.count("\n") == 1, run.err
    assert named in run.err
    assert "Traceback" not in run.err


async def test_python_m_bot_is_the_hotpapers_command(tmp_path):
    run = await run_cli("--version", env={}, cwd=tmp_path)
    assert run.code == 0
    assert run.out.strip() == f"hotpapers {__version__}"


# -- db upgrade -----------------------------------------------------------------------------------


async def test_db_upgrade_prints_the_revision_and_is_idempotent(tmp_path, monkeypatch, cli):
    database = tmp_path / "sub" / "hp.db"
    database.parent.mkdir()
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", f"sqlite+aiosqlite:///{database}")
    first = await cli("db", "upgrade")
    assert first.code == 0
    assert first.out == f"database upgraded from revision (empty) to {head_revision()}\n"
    second = await cli("db", "upgrade")
    assert second.code == 0
    assert second.out == f"database already at revision {head_revision()}\n"
    assert db_count(database, "papers") == 0


# -- fetch ----------------------------------------------------------------------------------------


async def test_fetch_reports_progress_and_a_summary(world, cli):
    run = await cli("fetch", "--since", DAY, "--until", "2020-12-23")
    assert run.code == 0
    assert run.out == ""
    lines = run.err.splitlines()
    assert lines[0] == "x: collecting 2020-12-22 00:00 → 2020-12-23 00:00"
    assert "x: 16 mentions, 16 papers, 1 requests" in lines
    assert "arxiv: resolving 16 papers" in lines
    assert "arxiv: 16 papers stored, 0 unknown" in lines
    assert "window 2020-12-22T00:00:00+00:00 → 2020-12-23T00:00:00+00:00" in lines
    rows = summary_rows(run.err)
    assert rows["x"].split() == ["x", "16", "16", "1", "ok"]
    assert rows["arxiv"].split() == ["arxiv", "16", "ok"]
    assert db_count(world.database, "mentions") == 16
    assert db_count(world.database, "papers") == 16


async def test_fetch_again_updates_rows_instead_of_duplicating(world, cli):
    assert (await cli("fetch", "--since", DAY, "--until", "2020-12-23")).code == 0
    counts = {t: db_count(world.database, t) for t in ("mentions", "mention_papers", "papers")}
    second = await cli("fetch", "--since", DAY, "--until", "2020-12-23")
    assert second.code == 0
    assert {t: db_count(world.database, t) for t in counts} == counts
    assert counts == {"mentions": 16, "mention_papers": 16, "papers": 16}
    # Every fetch is a metrics snapshot (popularity over time); the papers are not asked again.
    assert db_count(world.database, "mention_metrics") == 32
    assert "arxiv: resolving" not in second.err
    assert len(world.arxiv.requests_to("/api/query")) == 1


async def test_fetch_with_one_source_failing_still_ranks_the_others(world, cli):
    # Hacker News is on and knows one paper; X answers 503 every time.
    world.hackernews.add_story(
        "25500000",
        "LieTransformer: Equivariant self-attention for Lie Groups",
        "https://arxiv.org/abs/2012.10885",
        "hn_user",
        dt.datetime(2020, 12, 22, 15, 0, tzinfo=dt.UTC),
        points=70,
        num_comments=12,
    )
    world.x.fail_next(503, b"Service Unavailable", times=10)
    env = {"HOTPAPERS_SOURCES__HACKERNEWS__ENABLED": "true"}
    env["HOTPAPERS_SOURCES__HACKERNEWS__API_URL"] = world.hackernews.api_url
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        run = await cli("fetch", "--since", DAY, "--until", "2020-12-23")
        digest = await cli("digest", "--date", DAY)
    assert run.code == 0
    rows = summary_rows(run.err)
    assert rows["x"].split()[1:3] == ["0", "0"]
    assert rows["x"].endswith("FAILED: HTTP 503 after 2 attempts")  # the name is not repeated
    assert rows["hackernews"].split() == ["hackernews", "1", "1", "1", "ok"]
    assert rows["arxiv"].split() == ["arxiv", "1", "ok"]
    assert digest.code == 0
    assert "warning: the last x fetch failed (HTTP 503 after 2 attempts)" in digest.err
    assert section_ids(digest.out) == ["2012.10885"]
    assert "- Hacker News: 70 points" in digest.out
    assert "- retweets: 0, favorites: 0" in digest.out


async def test_fetch_fails_when_every_source_fails(world, cli):
    world.x.fail_next(503, times=10)
    run = await cli("fetch", "--since", DAY, "--until", "2020-12-23")
    assert run.code == 1
    assert "FAILED" in summary_rows(run.err)["x"]


async def test_fetch_with_no_source_enabled_says_so(world, cli, monkeypatch):
    monkeypatch.setenv("HOTPAPERS_SOURCES__X__ENABLED", "false")
    run = await cli("fetch", "--since", DAY, "--until", "2020-12-23")
    assert run.code == 0
    assert "no popularity source is enabled" in run.err
    assert world.x.requests == []


async def test_the_token_never_reaches_output_or_logs(world, cli, caplog):
    caplog.set_level(logging.DEBUG)
    world.x.fail_next(401, b'{"title":"Unauthorized","status":401}')
    run = await cli("-v", "fetch", "--since", DAY, "--until", "2020-12-23")
    assert "X rejected the bearer token (401)" in run.err
    for text in (run.out, run.err, caplog.text):
        assert TOKEN not in text
    # ...while the fake did receive it.
    assert world.x.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


# -- digest ---------------------------------------------------------------------------------------


@pytest.fixture
async def fetched(world, cli) -> ReferenceFakes:
    assert (await cli("fetch", "--since", DAY, "--until", "2020-12-23")).code == 0
    return world


async def test_digest_lists_the_day_best_first(fetched, cli):
    run = await cli("digest", "--date", DAY)
    assert run.code == 0
    assert run.err == ""
    assert section_ids(run.out) == BEST_FIRST


async def test_digest_json_has_the_same_data_as_markdown(fetched, cli):
    markdown = (await cli("digest", "--date", DAY)).out
    raw = await cli("digest", "--date", DAY, "--format", "json")
    assert raw.code == 0
    data = json.loads(raw.out)
    _, sections = parse_post(markdown)
    assert data["title"] == "Hot Papers 2020-12-22"
    assert data["date"] == DAY
    assert data["threshold"] == 50
    assert len(data["papers"]) == len(sections) == 16
    for paper, section in zip(data["papers"], sections, strict=True):
        assert paper["rank"] == section.rank
        assert " ".join(paper["title"].split()) == section.title
        assert ", ".join(paper["authors"]) == section.authors
        assert (paper["retweets"], paper["favorites"]) == (section.retweets, section.favorites)
        assert paper["score"] == section.retweets + section.favorites
        assert tuple(paper["categories"]) == section.categories
        assert paper["abstract"] == section.abstract
        assert section.links == (
            f"- links: [abs]({paper['links']['abs']}) | [pdf]({paper['links']['pdf']})"
        )
        for post in paper["top_posts"]:
            assert post["url"] in markdown


async def test_digest_categories_filter_counts_cross_lists(fetched, cli):
    run = await cli("digest", "--date", DAY, "--categories", "cs.CV")
    assert run.code == 0
    expected = [i for i in BEST_FIRST if "cs.CV" in CATEGORIES[i]]
    assert section_ids(run.out) == expected
    # 2012.10544 is cs.LG first, cross-listed to cs.CV.
    assert CATEGORIES["2012.10544"][0] == "cs.LG"
    assert "2012.10544" in expected
    as_json = await cli("digest", "--date", DAY, "--format=json", "--categories", " CS.cv ")
    data = json.loads(as_json.out)
    assert data["categories"] == ["cs.CV"]
    assert [p["arxiv_id"] for p in data["papers"]] == expected


async def test_digest_categories_accept_archives_and_lists(fetched, cli):
    whole = await cli("digest", "--date", DAY, "--categories", "cs")
    assert section_ids(whole.out) == BEST_FIRST
    two = await cli("digest", "--date", DAY, "--categories", "cs.CL,cs.IR")
    wanted = {"cs.CL", "cs.IR"}
    assert section_ids(two.out) == [i for i in BEST_FIRST if wanted & set(CATEGORIES[i])]


async def test_digest_top(fetched, cli):
    run = await cli("digest", "--date", DAY, "--top", "3")
    assert section_ids(run.out) == BEST_FIRST[:3]


async def test_digest_threshold(fetched, cli):
    run = await cli("digest", "--date", DAY, "--threshold", "100")
    expected = [i for i in BEST_FIRST if SCORES[i] >= 100]
    assert section_ids(run.out) == expected
    assert len(expected) == 8
    as_json = await cli("digest", "--date", DAY, "--threshold", "100", "--format", "json")
    assert json.loads(as_json.out)["threshold"] == 100


async def test_digest_of_a_day_without_papers(fetched, cli):
    run = await cli("digest", "--date", "2020-12-21")
    assert run.code == 0
    assert "no paper scored 50 or more on 2020-12-21" in run.err
    front, sections = parse_post(run.out)
    assert sections == []
    assert "title: Hot Papers 2020-12-21" in front


async def test_digest_fetch_fetches_first(world, cli):
    run = await cli("digest", "--date", DAY, "--fetch")
    assert run.code == 0
    assert "x: 16 mentions, 16 papers, 1 requests" in run.err
    assert section_ids(run.out) == BEST_FIRST
    (search,) = world.x.requests
    assert search.params["start_time"] == "2020-12-22T00:00:00Z"


async def test_digest_without_fetch_does_not_touch_the_network(world, cli):
    run = await cli("digest", "--date", DAY)
    assert run.code == 0
    assert world.x.requests == []
    assert world.arxiv.requests == []


# -- paper ----------------------------------------------------------------------------------------


async def test_paper_by_id_fetched_from_arxiv_then_stored(world, cli):
    first = await cli("paper", "2012.10885")
    assert first.code == 0
    assert first.err == "1 paper(s), fetched from arXiv\n"
    assert first.out.startswith(TITLES["2012.10885"] + "\n  https://arxiv.org/abs/2012.10885")
    assert "Michael Hutchinson" in first.out
    assert db_count(world.database, "papers") == 1
    second = await cli("paper", "https://arxiv.org/pdf/2012.10885v1.pdf")
    assert second.code == 0
    assert second.err == "1 paper(s), stored\n"
    assert second.out == first.out
    assert len(world.arxiv.requests) == 1


async def test_paper_by_stored_id_and_url(fetched, cli):
    fetched.arxiv.clear_log()
    for query in ("2012.10885", "https://arxiv.org/pdf/2012.10885v1.pdf", "arXiv:2012.10885v2"):
        run = await cli("paper", query)
        assert run.code == 0
        assert run.err == "1 paper(s), stored\n"
        assert run.out.splitlines()[0] == TITLES["2012.10885"]
    assert fetched.arxiv.requests == []


async def test_paper_by_words_searches_stored_papers(fetched, cli):
    fetched.arxiv.clear_log()
    run = await cli("paper", "lie", "transformer")
    assert run.code == 0
    assert run.err.startswith("1 paper(s), stored")
    assert run.out.splitlines()[0] == TITLES["2012.10885"]
    assert fetched.arxiv.requests == []


async def test_paper_by_words_falls_back_to_arxiv(world, cli):
    run = await cli("paper", "lie transformer")
    assert run.code == 0
    assert run.err == "1 paper(s), fetched from arXiv\n"
    assert run.out.splitlines()[0] == TITLES["2012.10885"]
    (search,) = world.arxiv.requests
    assert "ti:lie" in search.params["search_query"]


async def test_paper_unknown_id_is_one_line(world, cli):
    run = await cli("paper", "2012.99999")
    assert run.code == 2
    assert run.out == ""
    assert run.err == "hotpapers: error: arXiv has no paper `2012.99999`.\n"


async def test_paper_words_nobody_wrote(world, cli):
    run = await cli("paper", "zyzzyva quux")
    assert run.code == 2
    assert run.err.count("\n") == 1
    assert "No paper matches" in run.err


async def test_arxiv_down_is_one_line_and_exit_1(world, cli):
    world.arxiv.fail_next(503, times=10)
    run = await cli("paper", "2012.10885")
    assert run.code == 1
    assert run.err == "hotpapers: error: arxiv: HTTP 503 after 2 attempts\n"


# --- review follow-ups: dates outside arXiv's era, bad URLs, the last-resort handler ---------


@pytest.mark.parametrize(
    "argv",
    [
        ["digest", "--date", "9999-12-31"],
        ["digest", "--date", "1900-01-01"],
        ["fetch", "--until", "0001-01-02"],
    ],
)
def test_dates_outside_arxivs_era_are_one_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "arXiv's era" in err


def test_a_bad_base_url_or_database_url_is_a_configuration_error(capsys, monkeypatch):
    monkeypatch.setenv("HOTPAPERS_ARXIV__API_URL", "notaurl")
    assert main(["paper", "2106.14108"]) == 2
    assert "arxiv.api_url" in capsys.readouterr().err
    monkeypatch.delenv("HOTPAPERS_ARXIV__API_URL")
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", "not a url")
    assert main(["db", "upgrade"]) == 2
    assert "database.url" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_not_a_traceback(capsys, monkeypatch):
    import bot.cli as cli

    async def boom(settings, args):
        raise RuntimeError("kaput")

    monkeypatch.setitem(cli.COMMANDS, "db", boom)
    assert main(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert (
        err.strip() == "hotpapers: error: unexpected RuntimeError: kaput (run with -v for details)"
    )


@pytest.mark.parametrize("argv", [["run"], ["-v", "db", "upgrade"]])
def test_a_crash_of_the_bot_or_under_v_logs_the_traceback(capsys, monkeypatch, caplog, argv):
    import bot.cli as cli

    async def boom(settings, args):
        raise RuntimeError("kaput")

    monkeypatch.setitem(cli.COMMANDS, "db" if "db" in argv else "run", boom)
    with caplog.at_level(logging.ERROR, logger="bot.cli"):
        assert main(argv) == 1
    (record,) = [r for r in caplog.records if r.name == "bot.cli"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "kaput"
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "hotpapers: error: unexpected RuntimeError: kaput (the traceback is in the log above)"
    )
