"""The process's Prometheus metrics: one registry per process, recorded through named events.

Every process (``hotpapers run``, each shard process of a sharded deployment, ``hotpapers
web``) builds one :class:`Metrics` at start and hands it to the services that record events
(delivery, ingestion, the streams, the Discord client's HTTP layer) and to the web server that
exposes it on ``/metrics``. Nothing registers in prometheus_client's global default registry:
two runtimes in one process (the tests) never mix their counts.

Label values come from closed sets (delivery failure reasons, rate-limit scopes, source names
and failure kinds, command names), so no series is created from outside text.

Gauges that describe the present (the gateway's latency, a stream's lag, the leadership) are
read when Prometheus scrapes, from callbacks the bot registers: nothing updates them on every
heartbeat or stream event.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PREFIX = "hotpapers"
# What a delivered digest carried; why a delivery attempt failed (DeliveryService.deliver).
DIGEST_RESULTS = ("papers", "empty")
FAILURE_REASONS = (
    "channel_gone",
    "missing_permissions",
    "discord_unavailable",
    "delivery_error",
    "internal_error",
)
# Which Discord limit a 429 came from: the bot's global one, or a route's (or resource's) bucket.
RATE_LIMIT_SCOPES = ("global", "route")
# Ingestion per source: a page or two for a quiet hour, many minutes for a long window.
INGEST_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# Interactions: Discord's deadline for the first response is 3 s.
INTERACTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class ShardState:
    """One gateway connection as seen now: ``shard_id`` is None for an unsharded bot."""

    shard_id: int | None
    connected: bool
    latency: float | None = None  # seconds: the last heartbeat's round trip, if measured

    @property
    def label(self) -> str:
        return "none" if self.shard_id is None else str(self.shard_id)


# Read at scrape time: a stream's lag (None: not known now).
LagProbe = Callable[[], float | None]
GatewayProbe = Callable[[], Sequence[ShardState]]
LeaderProbe = Callable[[], bool | None]


class _LiveGauges(Collector):
    """The gauges computed at scrape time from the callbacks the running bot registered."""

    def __init__(self) -> None:
        self.streams: dict[str, LagProbe] = {}
        self.gateway: GatewayProbe | None = None
        self.leader: LeaderProbe | None = None

    def describe(self) -> Iterable[Metric]:
        # Names only: lets the registry check for clashes without calling the probes.
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        lag, connected, latency, leader = self._families()
        for name, probe in sorted(self.streams.items()):
            seconds = _read(probe, f"stream {name}")
            if seconds is not None and math.isfinite(seconds):
                lag.add_metric([name], max(0.0, seconds))
        shards = _read(self.gateway, "gateway") if self.gateway is not None else None
        for shard in shards or ():
            connected.add_metric([shard.label], 1.0 if shard.connected else 0.0)
            if shard.latency is not None and math.isfinite(shard.latency):
                latency.add_metric([shard.label], shard.latency)
        leading = _read(self.leader, "leader") if self.leader is not None else None
        if leading is not None:
            leader.add_metric([], 1.0 if leading else 0.0)
        return [lag, connected, latency, leader]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                f"{PREFIX}_stream_lag_seconds",
                "How far behind the live stream this process's consumer is (event time to now).",
                labels=["stream"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_gateway_connected",
                "1 when the shard's gateway connection is open, else 0.",
                labels=["shard"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_gateway_latency_seconds",
                "The shard's gateway heartbeat round trip.",
                labels=["shard"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_leader",
                "1 when this process runs ingestion and the streams (the leader), else 0.",
            ),
        )


T = TypeVar("T")


def _read(probe: Callable[[], T] | None, what: str) -> T | None:
    """A probe's value, or None if it fails: a broken probe must not break the whole scrape."""
    if probe is None:
        return None
    try:
        return probe()
    except Exception:
        log.debug("metrics: reading the %s failed", what, exc_info=True)
        return None


class Metrics:
    """The metrics of one process, and the events that move them.

    Build it with :meth:`for_process` in a real process (adds the process and Python runtime
    collectors and the build information); ``Metrics()`` alone, a fresh registry with the
    application's metrics only, is what services get when nobody passes one (tests).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.digests_sent = Counter(
            f"{PREFIX}_digests_sent",
            "Daily digests posted, by what they carried (papers, or the empty-day outcome).",
            ["result"],
            registry=r,
        )
        self.digests_failed = Counter(
            f"{PREFIX}_digests_failed",
            "Digest delivery attempts that failed, by reason (the sweep retries within the "
            "grace period).",
            ["reason"],
            registry=r,
        )
        self.messages_sent = Counter(
            f"{PREFIX}_discord_messages_sent",
            "Messages the bot posted in channels and threads (digests, empty-day notes, alerts).",
            registry=r,
        )
        self.rate_limited = Counter(
            f"{PREFIX}_discord_rate_limited",
            "HTTP 429 answers from Discord, by scope: the bot's global limit or a route's bucket.",
            ["scope"],
            registry=r,
        )
        self.ingestion_seconds = Histogram(
            f"{PREFIX}_ingestion_duration_seconds",
            "How long one ingestion took to collect a source, failed or not.",
            ["source"],
            buckets=INGEST_BUCKETS,
            registry=r,
        )
        self.ingestion_last = Gauge(
            f"{PREFIX}_ingestion_last_run_timestamp_seconds",
            "When this process last finished collecting the source (Unix time).",
            ["source"],
            registry=r,
        )
        self.source_failures = Counter(
            f"{PREFIX}_source_failures",
            "Failed collections of a source (and crashes of a stream), by failure kind.",
            ["source", "kind"],
            registry=r,
        )
        self.interaction_seconds = Histogram(
            f"{PREFIX}_interaction_latency_seconds",
            "From receiving an interaction to Discord accepting its first response.",
            ["command", "type"],
            buckets=INTERACTION_BUCKETS,
            registry=r,
        )
        self._live = _LiveGauges()
        r.register(self._live)
        # The closed label sets start at 0, so rate() and alerts see a series from the start.
        for result in DIGEST_RESULTS:
            self.digests_sent.labels(result)
        for reason in FAILURE_REASONS:
            self.digests_failed.labels(reason)
        for scope in RATE_LIMIT_SCOPES:
            self.rate_limited.labels(scope)

    @classmethod
    def for_process(cls, version: str) -> Metrics:
        """The metrics of a running process: the application's, the process's (CPU, memory,
        open files), Python's (version, garbage collector) and ``hotpapers_build_info``."""
        metrics = cls()
        r = metrics.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)  # registers nothing where gc.get_stats is missing
        info = Gauge(
            f"{PREFIX}_build_info", "The running version (always 1).", ["version"], registry=r
        )
        info.labels(version).set(1)
        return metrics

    # --- events -----------------------------------------------------------------------------

    def digest_sent(self, result: str) -> None:
        """A digest finished: ``papers`` (posted with papers) or ``empty`` (an empty day)."""
        self.digests_sent.labels(result).inc()

    def digest_failed(self, reason: str) -> None:
        """A delivery attempt failed, for one of :data:`FAILURE_REASONS`."""
        self.digests_failed.labels(reason).inc()

    def message_sent(self) -> None:
        self.messages_sent.inc()

    def discord_rate_limited(self, scope: str) -> None:
        """Discord answered 429 (``global`` or ``route``; discord.py waits and retries)."""
        self.rate_limited.labels(scope).inc()

    def source_collected(
        self, source: str, seconds: float, *, finished_at: float, error_kind: str | None
    ) -> None:
        """One collection of ``source`` ended after ``seconds``, at Unix time ``finished_at``;
        ``error_kind`` (``bot.core.errors.FAILURE_KINDS``, ``http NNN``) when it failed."""
        self.ingestion_seconds.labels(source).observe(max(0.0, seconds))
        self.ingestion_last.labels(source).set(finished_at)
        if error_kind is not None:
            self.source_failed(source, error_kind)

    def source_failed(self, source: str, kind: str) -> None:
        self.source_failures.labels(source, kind).inc()

    def interaction_answered(self, command: str, kind: str, seconds: float) -> None:
        """The first response to an interaction (``kind``: command or autocomplete) was
        accepted ``seconds`` after the bot received it."""
        self.interaction_seconds.labels(command, kind).observe(max(0.0, seconds))

    # --- what is read at scrape time ----------------------------------------------------------

    def watch_stream(self, name: str, lag: LagProbe) -> None:
        """Report ``lag()`` as the stream's ``hotpapers_stream_lag_seconds`` (when not None)."""
        self._live.streams[name] = lag

    def watch_gateway(self, shards: GatewayProbe) -> None:
        """Report the bot's gateway connections (the latest bot registered wins)."""
        self._live.gateway = shards

    def watch_leader(self, leading: LeaderProbe) -> None:
        """Report whether this process leads (None: not known yet, not reported)."""
        self._live.leader = leading
