"""/healthz and /readyz on a real server: the readiness transitions (database down, ingestion
stale, the gateway lost and back), each source's and stream's state, and no secret shown."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.client import make_bot
from bot.core.errors import ConfigError
from bot.core.models import Window
from bot.services.health import HealthService, LeaderState
from bot.services.metrics import Metrics, ShardState
from bot.settings import SchedulerSettings, Settings
from bot.storage.engine import Database
from bot.storage.mentions import MentionRepository
from bot.storage.runs import RunRepository
from bot.storage.streams import StreamRepository
from bot.web.app import WebServer, listen_error, make_app
from tests.bot import conftest as bot_conftest
from tests.bot.conftest import MutableClock
from tests.bot.test_shards import on_shards
from tests.cli.test_real_day import free_port
from tests.services.test_stream import NOW, ScriptedStream, at, paper, post
from tests.services.test_stream import Harness as StreamHarness
from tests.web.serving import (
    CurrentBot,
    bot_site,
    get_json,
    no_identify_wait,
    scrape,
    serving,
    value,
)

# The bot world of tests/bot and its fake Discord, as fixtures of this module.
botworld = bot_conftest.botworld
discord_harness = bot_conftest.discord_harness

HOUR = dt.timedelta(hours=1)
SECRET_PASSWORD = "s3cret-pw-never-shown"


def standalone_app(
    db: Database, clock: MutableClock, *, metrics: Metrics | None = None, **kwargs: object
):
    health = HealthService(
        db=db,
        runs=RunRepository(db),
        scheduler=SchedulerSettings(ingest_interval_minutes=60),
        clock=clock,
        source_names=["x", "hackernews"],
        **kwargs,  # type: ignore[arg-type]
    )
    registry = (metrics or Metrics()).registry
    return make_app(db=db, settings=Settings(), health=health, registry=registry)


async def record_run(
    runs: RunRepository,
    source: str,
    finished: dt.datetime,
    *,
    error: str | None = None,
    kind: str | None = None,
) -> None:
    window = Window(finished - 48 * HOUR, finished)
    await runs.record(
        source, window, finished - dt.timedelta(minutes=1), finished, 12, 3, error, kind
    )


async def test_healthz_is_liveness_only(db: Database) -> None:
    clock = MutableClock(NOW)
    async with serving(standalone_app(db, clock)) as client:
        status, body, _ = await get_json(client, "/healthz")
        assert (status, body) == (200, {"status": "ok"})
        async with client.head("/healthz") as head:
            assert head.status == 200
            assert head.headers["Server"] == "hotpapers"  # not aiohttp's name and version
            assert head.headers["X-Content-Type-Options"] == "nosniff"


async def test_readiness_follows_the_age_of_the_last_ingestion(db: Database) -> None:
    """Standalone (`hotpapers web`): the database and ingestion, and it says so."""
    clock = MutableClock(NOW)
    runs = RunRepository(db)
    async with serving(standalone_app(db, clock)) as client:
        # Just started, nothing recorded yet: the first ingestion is due, not late.
        status, body, _ = await get_json(client, "/readyz")
        assert status == 200, body
        assert body["status"] == "ok"
        assert body["ready"] is True
        assert body["mode"] == "standalone"
        assert "readiness covers the database and ingestion only" in body["note"]
        assert body["gateway"] is None
        assert body["leader"] is None
        assert body["streams"] is None
        assert body["database"]["ok"] is True
        assert body["database"]["backend"] == db.dialect
        assert body["ingestion"] == {
            "ok": True,
            "last_run": None,
            "age_seconds": 0.0,
            "interval_seconds": 3600.0,
            "stale_after_seconds": 7200.0,
        }
        assert body["sources"]["x"] == {
            "ok": None,
            "last_run": None,
            "error_kind": None,
            "mentions": None,
        }

        # Two hours on, still nothing: not ready, and why.
        clock.advance(hours=2, minutes=1)
        status, body, _ = await get_json(client, "/readyz")
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["reasons"] == [
            "ingestion: none recorded in the 2.0 h since this process started "
            "(expected every 60 min, stale after 2.0 h)"
        ]

        # An ingestion finishes: ready again, the source's run reported.
        await record_run(runs, "x", clock.now)
        status, body, _ = await get_json(client, "/readyz")
        assert status == 200, body
        assert body["ingestion"]["last_run"] == clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert body["sources"]["x"]["ok"] is True
        assert body["sources"]["x"]["mentions"] == 12
        assert body["sources"]["hackernews"]["ok"] is None  # never run

        # It goes stale: 503 with the age against the interval.
        clock.advance(hours=2, minutes=30)
        status, body, _ = await get_json(client, "/readyz")
        assert status == 503
        assert body["ingestion"]["ok"] is False
        assert body["ingestion"]["age_seconds"] == 2.5 * 3600
        assert body["reasons"] == [
            "ingestion: stale, the last run finished 2.5 h ago "
            "(expected every 60 min, stale after 2.0 h)"
        ]

        # A run where one source failed: ready but degraded, the failure by its kind only.
        await record_run(runs, "x", clock.now)
        await record_run(
            runs,
            "hackernews",
            clock.now,
            error="HTTP 503 from https://hn.example/?token=abc123",
            kind="http 503",
        )
        status, body, text = await get_json(client, "/readyz")
        assert status == 200, body
        assert body["status"] == "degraded"
        assert body["reasons"] == ["source hackernews: the last run failed (http 503)"]
        assert body["sources"]["hackernews"]["ok"] is False
        assert body["sources"]["hackernews"]["error_kind"] == "http 503"
        assert "abc123" not in text
        assert "hn.example" not in text


async def test_a_database_that_does_not_answer_is_not_ready(db: Database) -> None:
    """A PostgreSQL server that is down (nothing listens on its port): 503, and neither the
    URL nor its password in the answer. Liveness is unaffected."""
    down = Database(
        f"postgresql+asyncpg://hotpapers:{SECRET_PASSWORD}@127.0.0.1:{free_port()}/hotpapers"
    )
    try:
        async with serving(standalone_app(down, MutableClock(NOW))) as client:
            status, body, text = await get_json(client, "/readyz")
            assert status == 503
            assert body["database"] == {
                "ok": False,
                "backend": "postgresql",
                "error": "error",
                "seconds": None,
            }
            assert body["ingestion"]["ok"] is False
            assert body["reasons"] == [
                "database: not answering",
                "ingestion: unknown, the database is not answering",
            ]
            assert SECRET_PASSWORD not in text
            assert "hotpapers@" not in text
            status, body, _ = await get_json(client, "/healthz")
            assert (status, body) == (200, {"status": "ok"})
    finally:
        await down.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never says a word (a hung database)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_hung_database_times_out_rather_than_hang_the_probe(
    db: Database, silent_server: int
) -> None:
    hung = Database(f"postgresql+asyncpg://hotpapers@127.0.0.1:{silent_server}/hotpapers")
    try:
        app = standalone_app(hung, MutableClock(NOW), timeout=0.3)
        async with serving(app) as client:
            started = asyncio.get_running_loop().time()
            status, body, _ = await get_json(client, "/readyz")
            assert asyncio.get_running_loop().time() - started < 3.0
            assert status == 503
            assert body["database"]["error"] == "timeout"
            assert body["reasons"][0] == "database: no answer in time"
    finally:
        await hung.close()


@pytest.mark.sqlite_only  # the database file's folder goes away and comes back
async def test_readiness_goes_down_with_the_database_and_comes_back(
    db: Database, tmp_path: Path
) -> None:
    clock = MutableClock(NOW)
    await record_run(RunRepository(db), "x", clock.now)
    folder = Path(db.url.database or "").parent
    assert folder == tmp_path
    async with serving(standalone_app(db, clock)) as client:
        assert (await get_json(client, "/readyz"))[0] == 200
        moved = folder.with_name(folder.name + "-unmounted")
        folder.rename(moved)  # the volume holding the database is gone
        try:
            status, body, _ = await get_json(client, "/readyz")
            assert status == 503
            assert body["database"]["ok"] is False
            assert body["reasons"][0] == "database: not answering"
        finally:
            moved.rename(folder)
        status, body, _ = await get_json(client, "/readyz")
        assert status == 200, body


async def test_in_the_bot_readiness_covers_the_gateway_and_comes_back_with_it(botworld) -> None:
    """`hotpapers run`'s site: the gateway (here unsharded), the leadership (the one process on
    SQLite leads; on PostgreSQL it stands for election), the stream; 503 once the gateway is
    gone, 200 when the bot is connected again."""
    await botworld.ingest_reference_day()
    postgres = botworld.rt.db.dialect == "postgresql"
    async with bot_site(botworld, CurrentBot(botworld)) as client:
        status, body, text = await get_json(client, "/readyz")
        assert status == 200, body
        assert body["mode"] == "bot"
        assert "note" not in body
        assert body["gateway"]["ok"] is True
        ((shard,),) = [body["gateway"]["shards"]]
        assert shard["shard"] is None
        assert shard["connected"] is True
        assert body["leader"] == {"elected": postgres, "leading": not postgres}
        assert set(body["sources"]) == {"x", "hackernews", "huggingface", "bluesky"}
        assert all(s["ok"] is True for s in body["sources"].values()), body["sources"]
        stream = body["streams"]["bluesky"]
        if postgres:
            # Not elected yet (this test's bot runs no jobs): the leader would follow it.
            assert stream["state"] == "follower"
            assert body["status"] == "ok"
        else:
            # The leader is not following it (no jobs run here): degraded, still ready.
            assert stream["state"] == "stopped"
            assert body["status"] == "degraded"
            assert body["reasons"] == ["stream bluesky: not running on the leader (restarting)"]
        assert botworld.harness.token not in text

        await botworld.harness.stop_client(botworld.bot)
        status, body, _ = await get_json(client, "/readyz")
        assert status == 503
        assert body["gateway"]["shards"][0]["connected"] is False
        assert "gateway: not connected to Discord" in body["reasons"]

        await botworld.restart()
        status, body, _ = await get_json(client, "/readyz")
        assert status == 200, body


class Probe:
    """A bot's state as the test sets it: two shards, leading."""

    def __init__(self) -> None:
        self.shards = [ShardState(0, True, 0.04), ShardState(1, True, 0.05)]
        self.leader = LeaderState(elected=True, leading=True)

    def gateway_shards(self) -> list[ShardState]:
        return self.shards

    def leader_state(self) -> LeaderState | None:
        return self.leader


async def test_per_shard_gateway_and_the_stream_lag(db: Database) -> None:
    """A sharded process reports each shard; a stream followed live reports how far behind
    the live edge it is (its real consumer, on a scripted stream)."""
    clock = MutableClock(NOW)
    await record_run(RunRepository(db), "bluesky", clock.now)
    streams = StreamHarness(db, clock, MentionRepository(db), StreamRepository(db))  # type: ignore[arg-type]
    events = [post("did:plc:alice4ufkqhhjq2n7xsf3c2r", "a1", at(130), paper(1))]
    events.append(post("did:plc:alice4ufkqhhjq2n7xsf3c2r", "a2", at(90), paper(2)))
    stream = ScriptedStream(events, then_wait=True)
    consumer = streams.consumer(stream)
    probe = Probe()
    app = standalone_app(db, clock, consumers=[consumer], bot=probe, metrics=consumer.metrics)
    running = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(stream.exhausted.wait(), 5.0)
        async with serving(app) as client:
            status, body, _ = await get_json(client, "/readyz")
            assert status == 200, body
            assert body["gateway"]["shards"] == [
                {"shard": 0, "connected": True, "latency_seconds": 0.04},
                {"shard": 1, "connected": True, "latency_seconds": 0.05},
            ]
            assert body["leader"] == {"elected": True, "leading": True}
            lagging = body["streams"]["bluesky"]
            assert lagging["state"] == "running"
            assert lagging["lag_seconds"] == 90.0
            assert lagging["events"] == 2
            assert body["status"] == "ok"
            # The same lag on /metrics, read from the consumer when Prometheus scrapes.
            assert (
                value(await scrape(client), "hotpapers_stream_lag_seconds", stream="bluesky")
                == 90.0
            )

            # Far behind the live edge: degraded, not unready. One shard down: unready.
            clock.advance(minutes=10)
            probe.shards[1] = ShardState(1, False)
            status, body, _ = await get_json(client, "/readyz")
            assert status == 503
            assert body["reasons"] == [
                "gateway: shard 1 not connected",
                "stream bluesky: 12 min behind the live stream",
            ]
            assert body["streams"]["bluesky"]["ok"] is False
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_port_in_use_is_one_clear_line(db: Database) -> None:
    app = standalone_app(db, MutableClock(NOW))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = WebServer(app, "127.0.0.1", port)
        with pytest.raises(ConfigError) as caught:
            await server.start()
        assert str(caught.value) == (
            f"setting `web.port`: 127.0.0.1:{port} is already in use by another program; "
            "choose a free port (HOTPAPERS_WEB__PORT) or stop that program"
        )
        await server.stop()  # never started: nothing to do, no error
    refused = OSError(errno.EACCES, "Permission denied")
    assert listen_error("0.0.0.0", 80, refused).startswith(  # noqa: S104 - only a message
        "setting `web.port`: not allowed to listen on 0.0.0.0:80"
    )


async def test_a_sharded_process_reports_each_of_its_shards(botworld) -> None:
    """The real sharded bot (both shards of two in one process) on the fake Discord."""
    h = botworld.harness
    await botworld.ingest_reference_day()
    await h.stop_client(botworld.bot)
    for shard in (0, 1):
        await h.add_guild(f"Shard {shard}", shard=(shard, 2))
    bot = make_bot(on_shards(botworld.rt, 2, None), schedule=False)
    bot.before_identify_hook = no_identify_wait  # type: ignore[method-assign]
    assert [(s.shard_id, s.connected) for s in bot.gateway_shards()] == [(0, False), (1, False)]
    await h.start_client(bot)
    try:
        async with bot_site(botworld, bot) as client:
            status, body, _ = await get_json(client, "/readyz")
            assert status == 200, body
            assert [(s["shard"], s["connected"]) for s in body["gateway"]["shards"]] == [
                (0, True),
                (1, True),
            ]
            text = await scrape(client)
            assert value(text, "hotpapers_gateway_connected", shard="0") == 1
            assert value(text, "hotpapers_gateway_connected", shard="1") == 1

            await h.stop_client(bot)
            status, body, _ = await get_json(client, "/readyz")
            assert status == 503
            assert "gateway: shard 0, 1 not connected" in body["reasons"]
    finally:
        await h.stop_client(bot)
