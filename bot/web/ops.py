"""The operational endpoints: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

``/healthz`` answers as long as the process and its event loop do: nothing else is checked, so
a service manager restarts the process only when it is really stuck. ``/readyz`` reports the
facts of :class:`~bot.services.health.HealthService` as JSON, 200 when ready and 503 when not,
with the reasons in words. ``/metrics`` is the process's registry in Prometheus' text format
(or OpenMetrics, when the scraper asks for it).

Nothing here shows a secret: the database is named by its kind only, a source's failure by its
kind (never the service's answer), and the metrics' labels come from closed sets.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from bot import __version__
from bot.services.health import (
    DatabaseFailure,
    IngestionCheck,
    Readiness,
    SourceHealth,
    StreamHealth,
    StreamState,
)
from bot.services.metrics import ShardState

NO_STORE = {"Cache-Control": "no-store"}
STANDALONE_NOTE = (
    "standalone web process (hotpapers web): no Discord gateway, leadership or stream here; "
    "readiness covers the database and ingestion only"
)


class ReadinessProvider(Protocol):
    async def readiness(self) -> Readiness: ...


def routes(health: ReadinessProvider, registry: CollectorRegistry) -> list[web.AbstractRouteDef]:
    """``/healthz``, ``/readyz`` and ``/metrics`` (each also answers HEAD)."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, headers=NO_STORE)

    async def readyz(_request: web.Request) -> web.Response:
        readiness = await health.readiness()
        status = 200 if readiness.ready else 503
        return web.json_response(readiness_json(readiness), status=status, headers=NO_STORE)

    async def metrics(request: web.Request) -> web.Response:
        # In the event loop's thread, not a worker's: the live gauges read the bot's state.
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(registry)
        return web.Response(body=body, headers={"Content-Type": content_type, **NO_STORE})

    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
    ]


# --- /readyz as JSON ------------------------------------------------------------------------


def readiness_json(r: Readiness) -> dict[str, Any]:
    """The readiness report: ``status`` is ``ok``, ``degraded`` (ready, but a source failed or a
    stream is behind) or ``unavailable`` (not ready); ``reasons`` says why in words."""
    status = "unavailable" if not r.ready else "degraded" if r.degraded else "ok"
    body: dict[str, Any] = {
        "status": status,
        "ready": r.ready,
        "mode": "standalone" if r.standalone else "bot",
        "version": __version__,
        "checked_at": _stamp(r.checked_at),
        "reasons": reasons(r),
        "database": {
            "ok": r.database.ok,
            "backend": r.database.backend,
            "error": r.database.failure.value if r.database.failure else None,
            "seconds": _number(r.database.seconds),
        },
        "ingestion": _ingestion(r.ingestion),
        "sources": {s.name: _source(s) for s in r.sources},
        "gateway": None,
        "leader": None,
        "streams": None,
    }
    if r.gateway is not None:
        body["gateway"] = {"ok": r.gateway_ok, "shards": [_shard(s) for s in r.gateway]}
        if r.leader is not None:
            body["leader"] = {"elected": r.leader.elected, "leading": r.leader.leading}
        body["streams"] = {s.name: _stream(s) for s in r.streams or ()}
    else:
        body["note"] = STANDALONE_NOTE
    return body


def reasons(r: Readiness) -> list[str]:
    """Why the process is not ready, then what is degraded; empty when all is well."""
    found: list[str] = []
    if r.database.failure is DatabaseFailure.TIMEOUT:
        found.append("database: no answer in time")
    elif r.database.failure is not None:
        found.append("database: not answering")
    found.extend(_ingestion_reasons(r.ingestion))
    if r.gateway is not None and not r.gateway_ok:
        down = [s for s in r.gateway if not s.connected]
        if not r.gateway or (len(r.gateway) == 1 and r.gateway[0].shard_id is None):
            found.append("gateway: not connected to Discord")
        else:
            found.append(
                "gateway: shard " + ", ".join(str(s.shard_id) for s in down) + " not connected"
            )
    for source in r.sources:
        if source.run is not None and not source.run.ok:
            found.append(
                f"source {source.name}: the last run failed ({source.run.error_kind or 'failed'})"
            )
    for stream in r.streams or ():
        if stream.state is StreamState.STOPPED:
            found.append(f"stream {stream.name}: not running on the leader (restarting)")
        elif not stream.ok and stream.lag is not None:
            found.append(f"stream {stream.name}: {_duration(stream.lag)} behind the live stream")
    return found


def _ingestion_reasons(check: IngestionCheck) -> list[str]:
    if not check.known:
        return ["ingestion: unknown, the database is not answering"]
    if check.ok or check.age is None:
        return []
    expected = (
        f"expected every {_duration(check.interval.total_seconds())}, "
        f"stale after {_duration(check.stale_after.total_seconds())}"
    )
    age = _duration(check.age.total_seconds())
    if check.last_run is None:
        return [f"ingestion: none recorded in the {age} since this process started ({expected})"]
    return [f"ingestion: stale, the last run finished {age} ago ({expected})"]


def _ingestion(check: IngestionCheck) -> dict[str, Any]:
    return {
        "ok": check.ok,
        "last_run": _stamp(check.last_run),
        "age_seconds": _number(check.age.total_seconds() if check.age is not None else None),
        "interval_seconds": check.interval.total_seconds(),
        "stale_after_seconds": check.stale_after.total_seconds(),
    }


def _source(source: SourceHealth) -> dict[str, Any]:
    run = source.run
    if run is None:
        return {"ok": None, "last_run": None, "error_kind": None, "mentions": None}
    return {
        "ok": run.ok,
        "last_run": _stamp(run.finished_at),
        # The kind only: the recorded error may quote the service's answer.
        "error_kind": run.error_kind if not run.ok else None,
        "mentions": run.mentions,
    }


def _shard(shard: ShardState) -> dict[str, Any]:
    return {
        "shard": shard.shard_id,
        "connected": shard.connected,
        "latency_seconds": _number(shard.latency),
    }


def _stream(stream: StreamHealth) -> dict[str, Any]:
    return {
        "ok": stream.ok,
        "state": stream.state.value,
        "lag_seconds": _number(stream.lag),
        "position": _stamp(stream.position),
        "events": stream.events,
    }


def _stamp(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(value: float | None) -> float | None:
    """A finite number rounded to the millisecond; None for unknown (JSON has no inf or NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, 3)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
