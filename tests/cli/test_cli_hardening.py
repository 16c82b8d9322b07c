"""The command line under bad conditions and bad input (issue 10): a Discord out of reach,
sources down, typos in settings, impossible dates and ids, database errors, quiet logs.

Each test reproduces one finding of the issue and checks what an operator sees: the exit code,
stdout, and the one line on stderr. Processes run for real where their output is the point
(logging, signals); the rest calls ``bot.cli.main`` in-process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import signal
import sqlite3
import time
import types
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import aiohttp
import discord
import pytest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.cli import (
    FETCH_MAX_DAYS,
    ReconnectInOneLine,
    build_parser,
    latest_day,
    main,
    parse_day,
    reconnect_delay,
    unreachable_cause,
    unreachable_text,
)
from bot.config import HttpSettings
from bot.core.errors import ConfigError, InvalidDateError, StorageError
from bot.core.models import Metric
from bot.settings import Settings, load_settings
from bot.sources import x
from bot.sources.registry import REGISTRY
from bot.storage import engine
from tests.cli.test_real_day import (
    DAY,
    free_port,
    run_cli,
    serve_reference_day,
    spawn_bot,
    summary_rows,
)
from tests.cli.test_reference import parse_post
from tests.fakes import conftest as fakes_conftest
from tests.fakes.discord import DiscordHarness

# The fake Discord fixture (tests/fakes/conftest.py).
discord_harness = fakes_conftest.discord_harness

STOP_S = 10.0  # a stopped bot exits within this


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """``main(argv)`` in a worker thread (it calls asyncio.run) while fakes serve here."""

    async def run(*argv: str) -> Result:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite file for in-process commands, set through the documented environment key."""
    path = tmp_path / "hotpapers.db"
    monkeypatch.setenv("HOTPAPERS_DATABASE__URL", f"sqlite+aiosqlite:///{path}")
    return path


def closed_url() -> str:
    """An http:// base on 127.0.0.1 where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


def quiet_bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """``hotpapers run`` with every source off and arXiv on a closed port: only Discord matters."""
    closed = closed_url()
    return {
        "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "HOTPAPERS_ARXIV__API_URL": f"{closed}/api/query",
        "HOTPAPERS_ARXIV__RSS_URL": f"{closed}/rss",
        "HOTPAPERS_SOURCES__X__ENABLED": "false",
        "HOTPAPERS_SOURCES__BLUESKY__ENABLED": "false",
        "HOTPAPERS_SOURCES__HACKERNEWS__ENABLED": "false",
        "HOTPAPERS_SOURCES__HUGGINGFACE__ENABLED": "false",
        **extra,
    }


async def lines_matching(
    path: Path,
    pattern: re.Pattern[str],
    count: int,
    proc: asyncio.subprocess.Process,
    timeout: float = 30.0,  # noqa: ASYNC109 - a bounded wait for the child's log
) -> list[str]:
    """The lines of the child's stderr file matching ``pattern``, once there are ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        log = await asyncio.to_thread(path.read_text)
        lines = [line for line in log.splitlines() if pattern.search(line)]
        if len(lines) >= count:
            return lines
        if proc.returncode is not None:
            pytest.fail(f"the bot exited ({proc.returncode}) first:\n{log}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {count} lines like {pattern.pattern!r}:\n{log}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def forward(port: int, target: int) -> AsyncIterator[None]:
    """Listen on 127.0.0.1:``port`` and relay each connection to ``target``: the fake Discord
    "coming up" on the port the bot has been failing to reach (websockets included)."""
    tasks: set[asyncio.Task[Any]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(relay, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- 1. `run` while Discord cannot be reached -------------------------------------------------

ATTEMPT = re.compile(
    r"WARNING bot\.cli: cannot reach Discord at (?P<host>\S+): (?P<why>.+) "
    r"\(attempt (?P<n>\d+)\); trying again in (?P<delay>[\d.]+) s$"
)


@pytest.mark.parametrize("late", ["rest-and-gateway", "gateway"])
async def test_run_keeps_trying_until_discord_comes_up_then_connects(
    tmp_path: Path, discord_harness: DiscordHarness, late: str
) -> None:
    """As at boot before the network: connections refused, one line per attempt, then the fake
    Discord appears on that port and the same process logs in, connects and stops on SIGTERM.

    ``gateway``: the login works but the gateway is out of reach (another host in production),
    which discord.py 2.x fails with an AttributeError of its own when it happens first."""
    h = discord_harness
    port = free_port()
    moved = f":{h.fake.port}/"
    api_base = h.fake.api_base if late == "gateway" else h.fake.api_base.replace(moved, f":{port}/")
    env = quiet_bot_env(
        tmp_path,
        DISCORD_TOKEN=h.token,
        HOTPAPERS_DISCORD__API_BASE=api_base,
        HOTPAPERS_DISCORD__GATEWAY_URL=h.fake.gateway_url.replace(moved, f":{port}/"),
        # Waits of 0.5-1 s between attempts (the floor), not up to a minute.
        HOTPAPERS_HTTP__BACKOFF_MAX_SECONDS="1",
    )
    stderr = tmp_path / "run.err"
    proc = await spawn_bot(env=env, cwd=tmp_path, stderr_path=stderr)
    try:
        failed = await lines_matching(stderr, ATTEMPT, 3, proc)
        async with forward(port, h.fake.port):
            await h.wait_connected(timeout=20, alive=lambda: proc.returncode is None)
            await lines_matching(stderr, re.compile(r"bot\.client: connected as "), 1, proc)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), STOP_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = stderr.read_text()
    assert code == 0, log
    assert "Traceback" not in log
    attempts = [ATTEMPT.search(line) for line in log.splitlines() if ATTEMPT.search(line)]
    assert len(attempts) >= len(failed) >= 3
    for n, found in enumerate(attempts, start=1):
        assert found is not None
        assert (found["host"], found["why"]) == (f"127.0.0.1:{port}", "connection refused")
        assert int(found["n"]) == n
        assert 0.5 <= float(found["delay"]) <= 1.0
    assert f"reached Discord after {len(attempts)} failed attempts" in log
    assert len(h.fake.requests_to("GET", "/users/@me")) == 1  # the one login that got through


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_a_stop_during_the_wait_for_discord_exits_at_once_and_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A name that does not resolve (``.invalid`` resolves nowhere): one line naming it, then a
    wait of 15-30 s, which SIGTERM or Ctrl-C ends at once with exit code 0."""
    env = quiet_bot_env(
        tmp_path,
        DISCORD_TOKEN="token-never-checked",
        HOTPAPERS_DISCORD__API_BASE="https://discord.invalid/api/v10",
        HOTPAPERS_DISCORD__GATEWAY_URL="wss://gateway.discord.invalid",
        HOTPAPERS_HTTP__BACKOFF_INITIAL_SECONDS="30",
    )
    stderr = tmp_path / "run.err"
    proc = await spawn_bot(env=env, cwd=tmp_path, stderr_path=stderr)
    try:
        (line,) = await lines_matching(stderr, ATTEMPT, 1, proc)
        found = ATTEMPT.search(line)
        assert found is not None
        assert (found["host"], found["why"]) == ("discord.invalid:443", "the name does not resolve")
        assert 15 <= float(found["delay"]) <= 30
        started = time.monotonic()
        proc.send_signal(sig)
        code = await asyncio.wait_for(proc.wait(), STOP_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert time.monotonic() - started < 5
    log = stderr.read_text()
    assert code == 0, log
    assert "Traceback" not in log
    assert "token-never-checked" not in log
    assert "shutting down" in log


def test_the_wait_between_attempts_doubles_is_jittered_and_bounded() -> None:
    http = HttpSettings()  # 1 s doubling to at most 60 s
    steps = [reconnect_delay(n, http, rand=lambda: 1.0) for n in range(1, 9)]
    assert steps == [1, 2, 4, 8, 16, 32, 60, 60]
    assert reconnect_delay(3, http, rand=lambda: 0.0) == 2  # jitter: 50-100 % of the step
    assert reconnect_delay(100_000, http) <= 60  # days of retrying overflow nothing
    # Never a spin, whatever the settings (tests switch the HTTP backoff off with 0).
    instant = HttpSettings(backoff_initial_seconds=0, backoff_max_seconds=0)
    assert reconnect_delay(1, instant, rand=lambda: 0.0) == 0.5


def test_which_failures_mean_discord_is_out_of_reach() -> None:
    key = aiohttp.client_reqrep.ConnectionKey(
        "discord.invalid", 443, True, True, None, None, None, None
    )
    dns = aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))
    refused = aiohttp.ClientConnectorError(
        key._replace(host="127.0.0.1", port=9), ConnectionRefusedError(111, "Connect call failed")
    )
    assert unreachable_cause(dns) is dns
    dns_text = "cannot reach Discord at discord.invalid:443: the name does not resolve"
    assert unreachable_text(dns) == dns_text
    assert unreachable_text(refused) == "cannot reach Discord at 127.0.0.1:9: connection refused"
    assert unreachable_cause(TimeoutError()) is not None
    # A rejected token is not the network's doing: `run` stops at once.
    assert unreachable_cause(discord.LoginFailure("Improper token has been passed.")) is None
    assert unreachable_cause(ValueError("a bug")) is None

    # discord.py 2.x fails a first gateway connection with an AttributeError (no websocket yet)
    # raised while handling the connection error.
    bug = attribute_error_while_handling(refused)
    never_connected = types.SimpleNamespace(ws=None)
    assert unreachable_cause(bug, never_connected) is refused  # type: ignore[arg-type]
    connected = types.SimpleNamespace(ws=object())
    assert unreachable_cause(bug, connected) is None  # type: ignore[arg-type]


def test_discord_py_reconnects_on_the_network_are_one_warning_line() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None, None)
    refused = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connect failed"))

    def record(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "discord.client",
            logging.ERROR,
            __file__,
            1,
            "Attempting a reconnect in %.2fs",
            (1.5,),
            (type(error), error, None),
        )

    network = record(refused)
    assert ReconnectInOneLine().filter(network)
    assert network.getMessage() == (
        "Attempting a reconnect in 1.50s: cannot reach Discord at 127.0.0.1:9: connection refused"
    )
    assert (network.levelname, network.exc_info) == ("WARNING", None)
    bug = record(KeyError("a bug"))
    assert ReconnectInOneLine().filter(bug)
    assert (bug.levelname, bug.getMessage()) == ("ERROR", "Attempting a reconnect in 1.50s")
    assert bug.exc_info is not None  # its traceback stays


def attribute_error_while_handling(error: Exception) -> AttributeError:
    """What discord.py's reconnect path raises: ``self.ws.sequence`` with ``self.ws`` None."""
    ws: Any = None
    try:
        try:
            raise error
        except type(error):
            ws.sequence  # noqa: B018 - the attribute read that fails
    except AttributeError as exc:
        return exc
    raise AssertionError("unreachable")


# -- 2. `sync` and `invite` when Discord cannot be reached -------------------------------------


@pytest.mark.parametrize("command", ["sync", "invite"])
@pytest.mark.parametrize(
    ("api_base", "line"),
    [
        pytest.param(
            "https://discord.invalid/api/v10",
            "cannot reach Discord at discord.invalid:443: the name does not resolve",
            id="dns",
        ),
        pytest.param("REFUSED", "connection refused", id="refused"),
    ],
)
async def test_sync_and_invite_say_which_host_they_cannot_reach(
    cli, database, monkeypatch, command, api_base, line
) -> None:
    if api_base == "REFUSED":
        api_base = f"{closed_url()}/api/v10"
        line = f"cannot reach Discord at {api_base.split('/')[2]}: {line}"
    monkeypatch.setenv("DISCORD_TOKEN", "token-never-checked")
    monkeypatch.setenv("HOTPAPERS_DISCORD__API_BASE", api_base)
    result = await cli(command)
    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        f"hotpapers: error: {line} (check the network, and discord.api_base: {api_base})\n"
    )


# -- 3. `digest --fetch` with every source down --------------------------------------------------


async def test_digest_fetch_with_every_source_down_prints_no_post(tmp_path: Path) -> None:
    async with serve_reference_day(tmp_path) as fakes:
        env = dict(fakes.env)
        env["HOTPAPERS_SOURCES__X__API_URL"] = f"{closed_url()}/2"  # X, the one source, is down
        env["HOTPAPERS_HTTP__RETRIES"] = "0"
        run = await run_cli("digest", "--date", DAY, "--fetch", env=env, cwd=tmp_path)
    assert run.code == 1, run.err
    assert run.out == ""  # nothing a cron job could publish
    assert "FAILED" in summary_rows(run.err)["x"]
    assert run.err.splitlines()[-1] == (
        f"hotpapers: error: every enabled source failed (x: see above), so no post for {DAY} "
        "is printed; try again later"
    )
    assert "Traceback" not in run.err


# -- 4. weights of unknown sources or counts --------------------------------------------------


@pytest.mark.parametrize(
    ("table", "env", "key", "valid"),
    [
        pytest.param(
            "[ranking.weights.x]\nfavourites = 1\n",
            ("HOTPAPERS_RANKING__WEIGHTS__X__FAVOURITES", "1"),
            "ranking.weights.x.favourites",
            "unknown metric for X (its metrics: reposts, likes, replies, quotes)",
            id="typo",
        ),
        pytest.param(
            "[ranking.weights.hackernews]\nlikes = 1\n",
            ("HOTPAPERS_RANKING__WEIGHTS__HACKERNEWS__LIKES", "1"),
            "ranking.weights.hackernews.likes",
            "unknown metric for Hacker News (its metrics: points, comments)",
            id="another-sources-count",
        ),
        pytest.param(
            "[ranking.weights.twitter]\nlikes = 1\n",
            ("HOTPAPERS_RANKING__WEIGHTS__TWITTER__LIKES", "1"),
            "ranking.weights.twitter",
            "unknown source (sources: bluesky, hackernews, huggingface, x)",
            id="unknown-source",
        ),
    ],
)
def test_a_weight_of_an_unknown_source_or_count_is_refused(
    tmp_path, monkeypatch, table, env, key, valid
) -> None:
    path = tmp_path / "weights.toml"
    path.write_text(table)
    with pytest.raises(ConfigError) as in_file:
        load_settings(path)
    assert in_file.value.message == f"setting `{key}`: {valid} in {path}"

    monkeypatch.setenv(*env)
    with pytest.raises(ConfigError) as in_env:
        load_settings()
    assert in_env.value.message == (
        f"setting `{key}`: {valid} (from the environment variable {env[0]})"
    )


def test_every_count_a_source_reports_can_be_weighed(monkeypatch) -> None:
    monkeypatch.setenv("HOTPAPERS_RANKING__WEIGHTS__X__REPLIES", "0.5")
    monkeypatch.setenv("HOTPAPERS_RANKING__WEIGHTS__HUGGINGFACE__COMMENTS", "1")
    weights = load_settings().ranking.weights
    assert weights["x"] == {"reposts": 1.0, "likes": 1.0, "replies": 0.5}
    assert weights["huggingface"] == {"upvotes": 2.0, "comments": 1.0}
    for entry in REGISTRY:
        shown = {m.metric for m in (*entry.metrics, *entry.markdown_metrics)}
        assert set(entry.default_weights) | shown <= set(entry.counts), entry.key
        assert all(isinstance(count, Metric) for count in entry.counts)
    (x_entry,) = (e for e in REGISTRY if e.key == x.NAME)
    assert set(x.METRICS.values()) == set(x_entry.counts)  # what X's parser fills in


# -- 5. Discord ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("guild", ["-5", "0", str(2**63), "general"])
async def test_sync_refuses_a_guild_that_is_no_discord_id(
    cli, database, monkeypatch, discord_harness: DiscordHarness, guild
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", discord_harness.token)
    monkeypatch.setenv("HOTPAPERS_DISCORD__API_BASE", discord_harness.fake.api_base)
    result = await cli("sync", "--guild", guild)
    assert result.code == 2
    assert result.err.startswith(f"hotpapers sync: error: argument --guild: `{guild}` is not")
    assert result.err.count("\n") == 1
    assert discord_harness.fake.requests == []  # refused before anything reached Discord


@pytest.mark.parametrize("key", ["DEV_GUILD_ID", "APPLICATION_ID"])
@pytest.mark.parametrize("value", ["-5", "0", str(2**63)])
def test_discord_id_settings_are_snowflakes(monkeypatch, key, value) -> None:
    monkeypatch.setenv(f"HOTPAPERS_DISCORD__{key}", value)
    with pytest.raises(ConfigError, match=rf"^setting `discord\.{key.lower()}`: "):
        load_settings()


# -- 6. fetch windows -------------------------------------------------------------------------


async def test_fetch_refuses_a_window_longer_than_max_days(tmp_path, monkeypatch, cli) -> None:
    async with serve_reference_day(tmp_path) as fakes:
        for name, value in fakes.env.items():
            monkeypatch.setenv(name, value)
        # Hacker News, which serves any window (X's recent search reaches back 7 days only).
        monkeypatch.setenv("HOTPAPERS_SOURCES__X__ENABLED", "false")
        monkeypatch.setenv("HOTPAPERS_SOURCES__HACKERNEWS__ENABLED", "true")
        monkeypatch.setenv("HOTPAPERS_SOURCES__HACKERNEWS__API_URL", fakes.hackernews.api_url)
        refused = await cli("fetch", "--since", "1991-08-01", "--until", "2020-12-23")
        short = await cli("fetch", "--since", "2020-11-20T02:00+02:00", "--until", "2020-12-23")
        asked_before = len(fakes.hackernews.requests)
        allowed = await cli(
            "fetch", "--since", "2020-11-20", "--until", "2020-12-23", "--max-days", "33"
        )
        asked = len(fakes.hackernews.requests)
    assert refused.code == 2
    assert refused.err == (
        "hotpapers: error: the window 1991-08-01 00:00 → 2020-12-23 00:00 UTC is 10,737 days, "
        f"longer than {FETCH_MAX_DAYS} (--max-days): some sources are asked once per day "
        "(Hugging Face, when enabled: 10,737 requests here). Fetch a shorter window, or pass "
        "--max-days 10737 to fetch it all\n"
    )
    assert short.code == 2
    assert "window 2020-11-20 00:00 → 2020-12-23 00:00 UTC is 33 days, longer than 31" in short.err
    assert asked_before == 0  # refused before anything was asked
    assert allowed.code == 0, allowed.err
    assert asked > 0
    assert summary_rows(allowed.err)["hackernews"].endswith("ok")


# -- 7. a day in the future ---------------------------------------------------------------------


def test_the_latest_day_is_today_in_utc_plus_14() -> None:
    before = dt.datetime(2026, 1, 1, 9, 59, tzinfo=dt.UTC)  # 23:59 on 1 January in UTC+14
    assert latest_day(before) == dt.date(2026, 1, 1)
    assert latest_day(before + dt.timedelta(minutes=1)) == dt.date(2026, 1, 2)
    assert parse_day("2026-01-01", now=before) == dt.date(2026, 1, 1)
    with pytest.raises(InvalidDateError, match=r"^`2026-01-02` is in the future: no day after "):
        parse_day("2026-01-02", now=before)


async def test_digest_refuses_a_day_that_has_not_begun_anywhere(cli, database) -> None:
    future = await cli("digest", "--date", "2200-01-01")
    assert future.code == 2
    assert future.out == ""
    assert future.err.startswith("hotpapers: error: `2200-01-01` is in the future")
    tomorrow = (latest_day() + dt.timedelta(days=1)).isoformat()
    assert (await cli("digest", "--date", tomorrow)).code == 2
    today = await cli("digest", "--date", latest_day().isoformat())
    assert today.code == 0, today.err
    assert today.out.startswith("---\ntitle: Hot Papers ")


# -- 8. no infinity or NaN in any float setting ------------------------------------------------


def float_settings(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The dotted path of every float setting under ``model`` (sources' sections included)."""
    found = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if name in {"secrets", "config_path"}:
            continue
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found += float_settings(kind, (*prefix, name))
        elif kind is float or (
            get_origin(kind) in (Union, types.UnionType) and float in get_args(kind)
        ):
            found.append((*prefix, name))
    return found


FLOAT_SETTINGS = float_settings(Settings)


def test_the_walk_finds_the_float_settings() -> None:
    for path in [
        ("ranking", "threshold"),
        ("http", "timeout_seconds"),
        ("arxiv", "min_interval_seconds"),
        ("sources", "bluesky", "reconnect_max_seconds"),
    ]:
        assert path in FLOAT_SETTINGS
    assert len(FLOAT_SETTINGS) >= 20


@pytest.mark.parametrize("path", FLOAT_SETTINGS, ids=".".join)
def test_no_float_setting_takes_infinity_or_nan(tmp_path, monkeypatch, path) -> None:
    key = ".".join(path)
    table, name = ".".join(path[:-1]), path[-1]
    config = tmp_path / "floats.toml"
    for value in ("inf", "-inf", "nan", "1e400"):  # 1e400 is inf to a TOML reader
        config.write_text(f"[{table}]\n{name} = {value}\n")
        with pytest.raises(ConfigError, match=rf"^setting `{re.escape(key)}`: .* in {config}$"):
            load_settings(config)
    variable = "HOTPAPERS_" + "__".join(path).upper()
    for value in ("inf", "nan", "Infinity"):
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError, match=rf"^setting `{re.escape(key)}`: .*{variable}\)$"):
            load_settings()


def test_no_weight_takes_infinity_or_nan(tmp_path) -> None:
    config = tmp_path / "weights.toml"
    for value in ("inf", "nan", "1e400"):
        config.write_text(f"[ranking.weights.x]\nlikes = {value}\n")
        with pytest.raises(ConfigError, match=r"^setting `ranking\.weights\.x\.likes`: "):
            load_settings(config)


# -- 9. an empty config path --------------------------------------------------------------------


async def test_an_empty_config_path_is_refused(cli, database, monkeypatch) -> None:
    flag = await cli("--config", "", "digest", "--date", DAY)
    assert (flag.code, flag.out) == (2, "")
    assert flag.err == (
        "hotpapers: error: --config is empty: give the path of a TOML settings file\n"
    )
    monkeypatch.setenv("HOTPAPERS_CONFIG", " ")
    env = await cli("digest", "--date", DAY)
    assert (env.code, env.out) == (2, "")
    assert env.err == (
        "hotpapers: error: HOTPAPERS_CONFIG is set but empty: give the path of a TOML settings "
        "file, or unset it\n"
    )


# -- 10. database errors name the database ------------------------------------------------------


async def test_a_corrupt_database_is_named(cli, database) -> None:
    database.write_bytes(b"this is no SQLite database" * 200)
    result = await cli("digest", "--date", DAY)
    assert result.code == 1
    assert result.err == f"hotpapers: error: database {database}: file is not a database\n"


async def test_read_only_and_locked_databases_are_named(tmp_path, monkeypatch) -> None:
    path = tmp_path / "hotpapers.db"
    async with engine.Database.connect(f"sqlite+aiosqlite:///{path}"):
        pass
    # Read-only the way root can't bypass: SQLite's own read-only mode.
    read_only = engine.Database(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
    try:
        with pytest.raises(StorageError) as refused:
            async with read_only.write() as conn:
                await conn.execute(text("CREATE TABLE t (x)"))
    finally:
        await read_only.close()
    assert refused.value.message == f"database {path}: attempt to write a readonly database"

    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 50)  # not 5 s of waiting for the lock
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, for as long as it likes
    db = engine.Database(f"sqlite+aiosqlite:///{path}")
    try:
        with pytest.raises(StorageError) as locked:
            async with db.write() as conn:
                await conn.execute(text("CREATE TABLE t (x)"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await db.close()
    assert locked.value.message == f"database {path}: database is locked"


@pytest.mark.postgresql_only
async def test_a_postgresql_database_is_named_without_its_password(backend) -> None:
    from tests.postgres import POSTGRES_URL

    assert POSTGRES_URL is not None
    url = make_url(POSTGRES_URL).set(database="hotpapers_no_such_database", password="s3cret-pw")
    with pytest.raises(StorageError) as failed:
        await engine.open(url)
    message = failed.value.message
    assert "s3cret-pw" not in message
    shown = url.render_as_string(hide_password=True)
    assert message.startswith(f"database {shown}: "), message
    assert "hotpapers_no_such_database" in message.split(": ", 1)[1]  # the server's reason


# -- 11. -v and the SQL logs ------------------------------------------------------------------


async def test_verbose_goes_after_the_command_too_without_the_drivers_dumps(tmp_path) -> None:
    env = {"HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'hp.db'}"}
    run = await run_cli("digest", "--date", DAY, "-v", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    lines = run.err.splitlines()
    assert any(" DEBUG " in line for line in lines)  # debug logging is on
    loggers = {line.split()[3].rstrip(":") for line in lines if line[:2] == "20"}
    assert not {name for name in loggers if name.startswith(("aiosqlite", "sqlalchemy"))}
    assert len(lines) < 20, run.err  # was 325 lines, 322 of them aiosqlite's


async def test_database_echo_logs_the_statements_without_their_values(tmp_path) -> None:
    env = {
        "HOTPAPERS_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'hp.db'}",
        "HOTPAPERS_DATABASE__ECHO": "true",
    }
    run = await run_cli("digest", "--date", DAY, env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert "INFO    sqlalchemy.engine.Engine: SELECT" in run.err
    assert "[SQL parameters hidden due to hide_parameters=True]" in run.err
    assert run.out.startswith("---\ntitle: Hot Papers 2020-12-22\n")  # stdout: the post alone
    assert "sqlalchemy" not in run.out


async def test_a_failed_statement_carries_no_values(tmp_path) -> None:
    async with engine.Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'hp.db'}") as db:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE t (x TEXT UNIQUE)"))

        async def insert_twice() -> None:
            async with db.write() as conn:
                for _ in range(2):
                    await conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": "value-42"})

        with pytest.raises(StorageError) as failed:
            await insert_twice()
    cause = failed.value.__cause__
    assert cause is not None
    assert "UNIQUE constraint failed" in str(cause)
    assert "value-42" not in str(cause)  # hence in no logged traceback


# -- 12. invite is quiet ------------------------------------------------------------------------


async def test_invite_prints_the_url_and_nothing_else(
    tmp_path, discord_harness: DiscordHarness
) -> None:
    env = {
        "DISCORD_TOKEN": discord_harness.token,
        "HOTPAPERS_DISCORD__API_BASE": discord_harness.fake.api_base,
    }
    run = await run_cli("invite", env=env, cwd=tmp_path)
    assert run.code == 0, run.err
    assert run.out.startswith("https://discord.com/oauth2/authorize?client_id=")
    assert run.err == ""  # no PyNaCl, davey or intents warning


# -- 13. a fetch failure, said once -----------------------------------------------------------


async def test_a_fetch_failure_is_said_once(tmp_path) -> None:
    async with serve_reference_day(tmp_path) as fakes:
        env = dict(fakes.env)
        env["HOTPAPERS_SOURCES__HACKERNEWS__ENABLED"] = "true"
        env["HOTPAPERS_SOURCES__HACKERNEWS__API_URL"] = f"{closed_url()}/api/v1"
        env["HOTPAPERS_HTTP__RETRIES"] = "0"
        fetch = await run_cli(
            "fetch", "--since", DAY, "--until", "2020-12-23", env=env, cwd=tmp_path
        )
        digest = await run_cli("digest", "--date", DAY, "--fetch", env=env, cwd=tmp_path)
    reason = "connection failed after 1 attempts"
    for run in (fetch, digest):
        assert run.code == 0, run.err
        assert run.err.count(reason) == 1, run.err  # in the summary's row, nowhere else
        assert reason in summary_rows(run.err)["hackernews"]
        assert "hackernews: 0 mentions, 0 papers, 1 requests — FAILED" in run.err.splitlines()
        assert "source hackernews failed" not in run.err  # the service's log line
    # The partial failure still prints the post, with one note naming the source.
    assert "warning: hackernews failed; the ranking may be incomplete" in digest.err
    assert "the last hackernews fetch failed" not in digest.err
    assert len(parse_post(digest.out)[1]) == 16


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["-v", "fetch"], True),
        (["fetch", "-v"], True),
        (["db", "upgrade", "--verbose"], True),
        (["db", "-v", "upgrade"], True),
        (["fetch"], False),
    ],
)
def test_verbose_is_read_wherever_it_is_given(argv: list[str], verbose: bool) -> None:
    assert getattr(build_parser().parse_args(argv), "verbose", False) is verbose
