"""Helpers of the web server's tests: a real server on 127.0.0.1 (a free port), the bot of
tests/bot restarted as ``hotpapers run`` builds it, and ``/metrics`` read with prometheus_client's
own parser."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.client import HotPapersBot
from bot.runtime import Runtime
from bot.services.health import BotProbe
from bot.ui.telemetry import DiscordTelemetry
from bot.web.app import WebServer, build_server
from tests.bot.conftest import BotWorld

T = TypeVar("T")


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[aiohttp.ClientSession]:
    """``app`` served by :class:`WebServer` on 127.0.0.1 (a port the system picks), and a
    client session whose relative URLs go to it."""
    async with (
        WebServer(app, "127.0.0.1", 0) as server,
        aiohttp.ClientSession(base_url=server.url) as client,
    ):
        yield client


def on_free_port(rt: Runtime) -> Runtime:
    """``rt`` with ``web.port`` 0: the system picks a free port (the setting itself refuses 0)."""
    web_settings = rt.settings.web.model_copy(update={"port": 0})
    return dataclasses.replace(rt, settings=rt.settings.model_copy(update={"web": web_settings}))


@asynccontextmanager
async def bot_site(
    world: BotWorld, bot: BotProbe | None = None
) -> AsyncIterator[aiohttp.ClientSession]:
    """The site ``hotpapers run`` serves (``build_server``) for the world's bot, or ``bot``."""
    server = build_server(on_free_port(world.rt), bot if bot is not None else world.bot)
    async with server, aiohttp.ClientSession(base_url=server.url) as client:
        yield client


class CurrentBot:
    """The world's bot of the moment, across restarts (``BotWorld.restart`` replaces it)."""

    def __init__(self, world: BotWorld) -> None:
        self.world = world

    def gateway_shards(self) -> Any:
        return self.world.bot.gateway_shards()

    def leader_state(self) -> Any:
        return self.world.bot.leader_state()


async def no_identify_wait(shard_id: int | None, *, initial: bool = False) -> None:
    return None


async def with_telemetry(world: BotWorld) -> DiscordTelemetry:
    """Restart the world's bot as ``hotpapers run`` builds it (``make_bot``): its Discord
    traffic recorded in the runtime's metrics."""
    h = world.harness
    await h.stop_client(world.bot)
    world.jobs.stop_scheduler()
    telemetry = DiscordTelemetry(world.rt.metrics)
    bot = HotPapersBot(world.rt, schedule=False, telemetry=telemetry)
    bot.before_identify_hook = no_identify_wait  # type: ignore[method-assign]
    await h.start_client(bot)
    world.bot = bot
    return telemetry


async def get_json(client: aiohttp.ClientSession, path: str) -> tuple[int, dict[str, Any], str]:
    async with client.get(path) as response:
        text = await response.text()
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-store"
        return response.status, await response.json(), text


async def scrape(client: aiohttp.ClientSession) -> str:
    async with client.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, parsed by prometheus_client: (name, labels) → value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` in a scrape (None: not there)."""
    return samples(text).get((name, frozenset(labels.items())))


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 3.0) -> T:  # noqa: ASYNC109 - a bounded poll
    """The first truthy result of ``await probe()`` within ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not (found := await probe()):  # noqa: ASYNC110 - polls a server
            await asyncio.sleep(0.02)
    return found
