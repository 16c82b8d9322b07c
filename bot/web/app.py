"""The web server: the application (health, metrics, the public archive) and its runner.

:func:`make_app` builds the ``aiohttp`` application from explicit dependencies, with no state of
its own; :class:`WebServer` runs it inside the caller's event loop (``AppRunner`` +
``TCPSite``), in the ``hotpapers run`` process when ``web.enabled`` is set or alone as
``hotpapers web``. Each process serves its own ``/metrics``: a sharded deployment is scraped
once per process.

The server listens on ``web.host`` (127.0.0.1 unless told otherwise: put a reverse proxy in
front to publish the archive). A port that can't be had is a one-line :class:`ConfigError` at
start, before the bot connects to Discord.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any, Self

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CollectorRegistry

from bot.core.errors import ConfigError
from bot.runtime import Runtime
from bot.services.health import BotProbe, HealthService
from bot.settings import Settings
from bot.storage.engine import Database
from bot.web import archive, ops

log = logging.getLogger(__name__)

SERVER_NAME = "hotpapers"  # not aiohttp's name and version
# Requests being answered at shutdown get this long to finish.
SHUTDOWN_SECONDS = 5.0


def make_app(
    *,
    db: Database,
    settings: Settings,
    health: ops.ReadinessProvider,
    registry: CollectorRegistry,
) -> web.Application:
    """The site: ``/healthz``, ``/readyz``, ``/metrics`` and the archive's pages and feeds."""
    app = web.Application()
    app.add_routes(ops.routes(health, registry))
    app.add_routes(archive.routes(db, settings))
    app.on_response_prepare.append(_common_headers)
    return app


async def _common_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_NAME
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


class _AccessLog(AbstractAccessLogger):
    """One DEBUG line per request: a scrape every 15 s would bury the bot's own INFO lines."""

    def log(self, request: Any, response: Any, time: float) -> None:
        self.logger.debug("%s %s %s %.3f s", request.method, request.path, response.status, time)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


class WebServer:
    """The application served on ``host:port`` in the running event loop, until :meth:`stop`."""

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        shutdown_seconds: float = SHUTDOWN_SECONDS,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner = web.AppRunner(
            app,
            handle_signals=False,  # the bot's own handlers stop everything in order
            access_log_class=_AccessLog,
            access_log=logging.getLogger("bot.web.access"),
            shutdown_timeout=shutdown_seconds,
        )
        self._started = False

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where it listens (the real port when ``port`` was 0)."""
        return [(str(a[0]), int(a[1])) for a in self._runner.addresses]

    @property
    def url(self) -> str:
        host, port = self.addresses[0] if self.addresses else (self.host, self.port)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def start(self) -> None:
        """Listen, or raise :class:`ConfigError` in one line (port in use, bad host…)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(listen_error(self.host, self.port, exc)) from None
        self._started = True
        log.info("web server listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening and let requests in flight finish; safe to call twice."""
        if not self._started:
            return
        self._started = False
        await self._runner.cleanup()
        log.info("web server stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def listen_error(host: str, port: int, exc: OSError) -> str:
    """Why the server cannot listen, naming the setting to change."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"setting `web.port`: {where} is already in use by another program; choose a free "
            "port (HOTPAPERS_WEB__PORT) or stop that program"
        )
    if exc.errno == errno.EACCES:
        return (
            f"setting `web.port`: not allowed to listen on {where} (ports below 1024 need "
            "privileges); choose a port of 1024 or more"
        )
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return f"setting `web.host`: cannot listen on {host!r}: not an address of this machine"
    return f"setting `web.host`/`web.port`: cannot listen on {where}: {exc.strerror or exc}"


def build_server(rt: Runtime, bot: BotProbe | None = None) -> WebServer:
    """The web server of a process: with ``bot``, readiness also covers its gateway, its
    leadership and its streams; without (``hotpapers web``), the database and ingestion."""
    health = HealthService(
        db=rt.db,
        runs=rt.runs,
        scheduler=rt.settings.scheduler,
        clock=rt.clock,
        source_names=[source.name for source in rt.sources],
        consumers=rt.consumers,
        bot=bot,
    )
    app = make_app(db=rt.db, settings=rt.settings, health=health, registry=rt.metrics.registry)
    return WebServer(app, rt.settings.web.host, rt.settings.web.port)
