"""The web server in real processes: ``hotpapers web`` alone (no Discord token), and inside
``hotpapers run`` with ``web.enabled`` (against the fake Discord), configured only through the
documented environment, stopped with SIGTERM; a port in use is one line at start."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.bot import conftest as bot_conftest
from tests.bot.test_run_process import answered, fake_sources
from tests.cli.test_real_day import child_env, free_port, run_cli, spawn_bot
from tests.fakes.discord import DiscordHarness
from tests.web.serving import eventually, samples, value

discord_harness = bot_conftest.discord_harness  # the fake Discord, a fixture of this module

pytestmark = pytest.mark.sqlite_only  # processes are slow: the backends are covered in-process
START_S = 30.0
STOP_S = 10.0


@asynccontextmanager
async def web_process(env: dict[str, str], cwd: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot web`` (stderr in ``cwd/web.stderr``), killed on the way out if the test
    did not stop it."""
    with (cwd / "web.stderr").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "web",
            env=child_env(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def logged(path: Path) -> str:
    """What a process wrote to its log file so far."""
    return path.read_text()


async def wait_listening(
    base: str, proc: asyncio.subprocess.Process, log: Path
) -> aiohttp.ClientSession:
    """A session to ``base`` once ``/healthz`` answers (fails at once if the process ends)."""
    session = aiohttp.ClientSession(base_url=base)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_S
    while True:
        if proc.returncode is not None:
            await session.close()
            raise AssertionError(f"the process ended ({proc.returncode}):\n{logged(log)}")
        try:
            async with session.get("/healthz") as response:
                if response.status == 200:
                    return session
        except aiohttp.ClientConnectionError:
            pass
        if loop.time() > deadline:
            await session.close()
            raise AssertionError(f"/healthz did not answer in {START_S} s:\n{logged(log)}")
        await asyncio.sleep(0.1)


async def stop(proc: asyncio.subprocess.Process, log: Path) -> str:
    """SIGTERM: a clean stop, exit code 0; returns the process's log."""
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), STOP_S)
    text = logged(log)
    assert code == 0, text
    assert "Traceback" not in text, text
    return text


@contextmanager
def port_taken() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def in_use(port: int) -> str:
    return (
        f"hotpapers: error: setting `web.port`: 127.0.0.1:{port} is already in use by another "
        "program; choose a free port (HOTPAPERS_WEB__PORT) or stop that program"
    )


async def test_hotpapers_web_alone_serves_health_and_metrics(
    tmp_path: Path, migrated_url: str
) -> None:
    port = free_port()
    env = {"HOTPAPERS_DATABASE__URL": migrated_url, "HOTPAPERS_WEB__PORT": str(port)}
    log = tmp_path / "web.stderr"
    async with web_process(env, tmp_path) as proc:
        session = await wait_listening(f"http://127.0.0.1:{port}", proc, log)
        async with session:
            async with session.get("/healthz") as response:
                assert await response.json() == {"status": "ok"}
            async with session.get("/readyz") as response:
                assert response.status == 200
                ready: dict[str, Any] = await response.json()
            async with session.get("/metrics") as response:
                metrics = await response.text()
            async with session.get("/") as response:  # the public archive is mounted
                assert response.status == 200
                assert response.content_type == "text/html"
        assert ready["mode"] == "standalone"
        assert ready["database"]["ok"] is True
        assert ready["gateway"] is None
        assert value(metrics, "hotpapers_build_info", version="0.1.0") == 1
        assert ("process_cpu_seconds_total", frozenset()) in samples(metrics)
        text = await stop(proc, log)
    assert f"web server listening on http://127.0.0.1:{port}" in text
    assert "web server stopped" in text
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", port))


async def test_hotpapers_web_on_a_port_in_use_is_one_line(
    tmp_path: Path, migrated_url: str
) -> None:
    with port_taken() as port:
        env = {"HOTPAPERS_DATABASE__URL": migrated_url, "HOTPAPERS_WEB__PORT": str(port)}
        result = await run_cli("web", env=env, cwd=tmp_path)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert result.err.splitlines()[-1] == in_use(port)


def bot_env(h: DiscordHarness, sources: dict[str, str], url: str, port: int) -> dict[str, str]:
    return {
        "DISCORD_TOKEN": h.token,
        "HOTPAPERS_DISCORD__API_BASE": h.fake.api_base,
        "HOTPAPERS_DISCORD__GATEWAY_URL": h.fake.gateway_url,
        "HOTPAPERS_DATABASE__URL": url,
        "HOTPAPERS_WEB__ENABLED": "true",
        "HOTPAPERS_WEB__PORT": str(port),
        **sources,
    }


async def test_hotpapers_run_serves_the_site_while_it_runs(
    tmp_path: Path, discord_harness: DiscordHarness, migrated_url: str
) -> None:
    h = discord_harness
    port = free_port()
    log = tmp_path / "run.stderr"
    async with fake_sources() as sources:
        env = bot_env(h, sources, migrated_url, port)
        sync = await run_cli("sync", "--guild", str(h.guild.id), env=env, cwd=tmp_path)
        assert sync.code == 0, sync.err
        proc = await spawn_bot(env=env, cwd=tmp_path, stderr_path=log)
        try:
            session = await wait_listening(f"http://127.0.0.1:{port}", proc, log)
            async with session:
                await h.wait_connected(timeout=START_S, alive=lambda: proc.returncode is None)
                about = await answered(await h.slash("about", member=h.member(name="reader")))
                assert about.embeds

                async def ready() -> dict[str, Any] | None:
                    async with session.get("/readyz") as response:
                        body: dict[str, Any] = await response.json()
                        return body if response.status == 200 else None

                body = await eventually(ready, START_S)
                assert body["mode"] == "bot"
                assert body["gateway"] == {
                    "ok": True,
                    "shards": [
                        {
                            "shard": None,
                            "connected": True,
                            "latency_seconds": body["gateway"]["shards"][0]["latency_seconds"],
                        }
                    ],
                }
                assert body["leader"] == {"elected": False, "leading": True}

                async def counted() -> str | None:
                    async with session.get("/metrics") as response:
                        text = await response.text()
                    labels = {"command": "about", "type": "command"}
                    found = value(text, "hotpapers_interaction_latency_seconds_count", **labels)
                    return text if found == 1 else None

                metrics = await eventually(counted, 5.0)
                assert value(metrics, "hotpapers_gateway_connected", shard="none") == 1
                assert value(metrics, "hotpapers_leader") == 1
                assert h.token not in metrics
            text = await stop(proc, log)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert f"web server listening on http://127.0.0.1:{port}" in text
    assert text.index("shutting down") < text.index("web server stopped")
    assert h.fake.violations == []


async def test_hotpapers_run_on_a_port_in_use_stops_before_discord(
    tmp_path: Path, discord_harness: DiscordHarness, migrated_url: str
) -> None:
    h = discord_harness
    async with fake_sources() as sources:
        with port_taken() as port:
            env = bot_env(h, sources, migrated_url, port)
            result = await run_cli("run", env=env, cwd=tmp_path)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert result.err.splitlines()[-1] == in_use(port)
    assert h.fake.requests_to("GET", "/users/@me") == []  # it never logged in
    assert h.fake.identifies == []
