"""The reference day end to end: `hotpapers fetch` + `digest` as subprocesses against the fakes."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.fakes.arxiv import FakeArxiv
from bot.fakes.demo import load_dataset, load_dataset_into
from bot.fakes.hackernews import FakeHackerNews
from bot.fakes.huggingface import FakeHuggingFace
from bot.fakes.x import FakeX
from tests.cli.test_reference import Section, parse_post

TOKEN = "real-day-bearer-token-0123456789"
DAY = "2020-12-22"
SECRET_ENV = ("DISCORD_TOKEN", "X_BEARER_TOKEN", "HF_TOKEN")
# The dataset keeps the t.co link of the tweet's picture; FakeX appends t.co links of its own.


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class ReferenceFakes:
    """FakeArxiv and FakeX (plus empty HN/HF fakes) serving the reference day, and the env."""

    arxiv: FakeArxiv
    x: FakeX
    hackernews: FakeHackerNews
    huggingface: FakeHuggingFace
    database: Path
    env: dict[str, str] = field(default_factory=dict)


@asynccontextmanager
async def serve_reference_day(tmp_path: Path) -> AsyncIterator[ReferenceFakes]:
    """The fakes loaded as ``demo_world`` loads them; ``env`` uses only documented keys.

    The fakes' clocks read the morning after the day (the dataset's ``generated_at``): they
    stand for an archive that still serves 2020, while the CLI runs on the real clock.
    """
    data = load_dataset()
    now = _when(data["generated_at"])
    async with AsyncExitStack() as stack:
        arxiv = await stack.enter_async_context(FakeArxiv(now=lambda: now))
        x = await stack.enter_async_context(FakeX(token=TOKEN, now=lambda: now))
        hn = await stack.enter_async_context(FakeHackerNews())
        hf = await stack.enter_async_context(FakeHuggingFace())
        load_dataset_into(arxiv, x, data)
        database = tmp_path / "real-day.db"
        env = {
            "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{database}",
            "HOTPAPERS_ARXIV__API_URL": arxiv.api_url,
            "HOTPAPERS_SOURCES__X__API_URL": x.api_url,
            "HOTPAPERS_SOURCES__X__ENABLED": "true",
            "X_BEARER_TOKEN": TOKEN,
            "HOTPAPERS_SOURCES__HACKERNEWS__ENABLED": "false",
            "HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED": "false",
            # X's day: Bluesky (on by default) is checked on its own fakes elsewhere.
            "HOTPAPERS_SOURCES__BLUESKY__ENABLED": "false",
        }
        yield ReferenceFakes(arxiv, x, hn, hf, database, env)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    seconds: float


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without settings or tokens, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HOTPAPERS_") and k not in SECRET_ENV
    }
    env.update(extra)
    return env


async def spawn_bot(
    *args: str, env: Mapping[str, str], cwd: Path, stderr_path: Path
) -> asyncio.subprocess.Process:
    """``python -m bot run ARGS`` in a child process (stderr to ``stderr_path``); returns at
    once, the process running."""
    with stderr_path.open("wb") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            *args,
            env=child_env(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )


async def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path, program: tuple[str, ...] | None = None
) -> Run:
    """``python -m bot ARGS`` (or ``program``) in a child process; the fakes keep serving."""
    command = program or (sys.executable, "-m", "bot")
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        env=child_env(env),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode(), time.monotonic() - started)


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summary_rows(stderr: str) -> dict[str, str]:
    """The fetch summary table: source name → its row."""
    rows: dict[str, str] = {}
    lines = stderr.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("source "))
    for line in lines[header + 1 :]:
        name = line.split(" ", 1)[0]
        if name in {"x", "hackernews", "huggingface", "arxiv"}:
            rows[name] = line
    return rows


@pytest.fixture(scope="module")
def reference_post() -> tuple[str, list[Section]]:
    from tests.conftest import shared_dir

    text = (shared_dir() / "reference" / "hot-papers-2020-12-22.md").read_text("utf-8")
    return parse_post(text)


def assert_matches_reference(markdown: str, reference: tuple[str, list[Section]]) -> str:
    """Same 16 sections as the reference (title, authors, counts, links, categories,
    abstract), same title and slug; returns our front matter."""
    ours_front, ours = parse_post(markdown)
    ref_front, ref = reference
    assert len(ref) == 16
    assert [s.rank for s in ours] == list(range(1, 17))
    for mine, theirs in zip(ours, ref, strict=True):
        assert mine == theirs, f"section {theirs.rank} differs"
    for line in ("title: Hot Papers 2020-12-22", 'slug: "hot-papers-2020-12-22"'):
        assert line in ours_front
        assert line in ref_front
    return ours_front


def front_matter_date(front: str) -> dt.datetime:
    found = re.search(r"^date: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.Z$", front, re.MULTILINE)
    assert found, front
    return dt.datetime.fromisoformat(found.group(1)).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "x_switch",
    [
        pytest.param("true", id="x-enabled-and-token"),
        # The documented rule: a token alone turns X on.
        pytest.param(None, id="token-only"),
    ],
)
async def test_reference_day_through_the_cli(tmp_path, reference_post, x_switch):
    async with serve_reference_day(tmp_path) as fakes:
        env = dict(fakes.env)
        if x_switch is None:
            del env["HOTPAPERS_SOURCES__X__ENABLED"]
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        fetch = await run_cli(
            "fetch", "--since", DAY, "--until", "2020-12-23", env=env, cwd=tmp_path
        )
        assert fetch.code == 0, fetch.err
        assert "Traceback" not in fetch.err
        # Progress, then the summary: X collected 16 posts linking 16 papers, arXiv resolved them.
        assert "x: collecting 2020-12-22 00:00 → 2020-12-23 00:00" in fetch.err
        rows = summary_rows(fetch.err)
        assert rows["x"].split()[1:4] == ["16", "16", "1"]
        assert rows["x"].endswith("ok")
        assert rows["arxiv"].split()[1] == "16"
        assert "hackernews" not in rows
        assert "huggingface" not in rows
        # The X request asked for the day itself, although it is years older than 7 days.
        (search,) = fakes.x.requests
        assert search.params["start_time"] == "2020-12-22T00:00:00Z"
        assert search.params["end_time"] == "2020-12-23T00:00:00Z"
        assert TOKEN not in fetch.err + fetch.out
        # A one-shot command prints its own progress; INFO logs from below would repeat it.
        assert " INFO " not in fetch.err

        digest = await run_cli("digest", "--date", DAY, env=env, cwd=tmp_path)
        after = dt.datetime.now(dt.UTC)
    assert digest.code == 0, digest.err
    assert "Traceback" not in digest.err
    front = assert_matches_reference(digest.out, reference_post)
    # The post is dated when its numbers were fetched: during this test, not in 2020.
    assert before <= front_matter_date(front) <= after
    assert digest.out.count('<blockquote class="twitter-tweet">') == 16
    assert "https://twitter.com/ak92501/status/1341202937956233217" in digest.out


async def test_errors_after_io_are_one_line_too(tmp_path):
    async with serve_reference_day(tmp_path) as fakes:
        unknown = await run_cli("paper", "2012.99999", env=fakes.env, cwd=tmp_path)
        found = await run_cli("paper", "2012.10885", env=fakes.env, cwd=tmp_path)
    assert unknown.code == 2
    assert unknown.out == ""
    assert unknown.err == "hotpapers: error: arXiv has no paper `2012.99999`.\n"
    assert found.code == 0
    assert found.err == "1 paper(s), fetched from arXiv\n"
    assert found.out.startswith("LieTransformer: Equivariant self-attention for Lie Groups\n")


async def test_the_hotpapers_script_runs_the_same_day(tmp_path, reference_post):
    script = Path(sys.executable).with_name("hotpapers")
    assert script.is_file(), f"no `hotpapers` console script beside {sys.executable}"
    async with serve_reference_day(tmp_path) as fakes:
        fetch = await run_cli(
            *("fetch", "--since", DAY, "--until", "2020-12-23"),
            env=fakes.env,
            cwd=tmp_path,
            program=(str(script),),
        )
        assert fetch.code == 0, fetch.err
        digest = await run_cli(
            "digest", "--date", DAY, env=fakes.env, cwd=tmp_path, program=(str(script),)
        )
    assert digest.code == 0, digest.err
    assert_matches_reference(digest.out, reference_post)


async def test_unreachable_sources_degrade_the_ranking_not_the_command(tmp_path, reference_post):
    async with serve_reference_day(tmp_path) as fakes:
        env = dict(fakes.env)
        # Hacker News and Hugging Face stay on, pointed at ports where nothing listens.
        env["HOTPAPERS_SOURCES__HACKERNEWS__ENABLED"] = "true"
        env["HOTPAPERS_SOURCES__HACKERNEWS__API_URL"] = f"http://127.0.0.1:{free_port()}/api/v1"
        env["HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED"] = "true"
        env["HOTPAPERS_SOURCES__HUGGINGFACE__API_URL"] = f"http://127.0.0.1:{free_port()}/api"
        # With the default 4 retries (backoff 1, 2, 4, 8 s, jittered to 50-100 %) a refused
        # connection costs each source 7.5-15 s (measured: ~10 s); one retry proves the same
        # behaviour in about a second.
        env["HOTPAPERS_HTTP__RETRIES"] = "1"
        fetch = await run_cli(
            "fetch", "--since", DAY, "--until", "2020-12-23", env=env, cwd=tmp_path
        )
        digest = await run_cli("digest", "--date", DAY, env=env, cwd=tmp_path)
    # X worked, so the fetch succeeded; the summary names both failures.
    assert fetch.code == 0, fetch.err
    assert "Traceback" not in fetch.err
    rows = summary_rows(fetch.err)
    assert rows["x"].endswith("ok")
    for name in ("hackernews", "huggingface"):
        assert "FAILED" in rows[name], rows[name]
        assert "connection failed after 2 attempts" in rows[name], rows[name]
    assert fetch.seconds < 20, f"fetch took {fetch.seconds:.1f}s"
    assert digest.code == 0, digest.err
    assert "warning: the last hackernews fetch failed" in digest.err
    assert "warning: the last huggingface fetch failed" in digest.err
    assert_matches_reference(digest.out, reference_post)
