"""/metrics counts real events: digests posted through the fake Discord, its 429s, commands
answered, ingestions and their failures, the gateway and the leadership; parsed with
prometheus_client's own parser; one registry per runtime, none of it global."""

from __future__ import annotations

import asyncio
import math
import time

import prometheus_client
import pytest

from bot.services.metrics import Metrics
from tests.bot import conftest as bot_conftest
from tests.web.serving import bot_site, eventually, samples, scrape, value, with_telemetry

# The bot world of tests/bot and its fake Discord, as fixtures of this module.
botworld = bot_conftest.botworld
discord_harness = bot_conftest.discord_harness

pytestmark = pytest.mark.sqlite_only  # what is counted does not depend on the backend


async def test_a_digest_posted_through_discord_is_counted(botworld) -> None:
    await with_telemetry(botworld)
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30", style="channel", top=3)
    async with bot_site(botworld) as client:
        before = await scrape(client)
        assert value(before, "hotpapers_digests_sent_total", result="papers") == 0
        assert value(before, "hotpapers_discord_messages_sent_total") == 0

        await botworld.jobs.deliver_guild(botworld.guild_id)

        after = await scrape(client)
    assert value(after, "hotpapers_digests_sent_total", result="papers") == 1
    assert value(after, "hotpapers_digests_sent_total", result="empty") == 0
    # The header and one message of three papers, as the fake Discord received them.
    posted = botworld.fake.messages(botworld.harness.channel)
    assert len(posted) == 2
    assert value(after, "hotpapers_discord_messages_sent_total") == 2
    assert value(after, "hotpapers_digests_failed_total", reason="channel_gone") == 0


async def test_a_digest_that_fails_is_counted_by_reason(botworld) -> None:
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30")
    await botworld.fake.delete_channel(botworld.harness.channel)
    await botworld.jobs.deliver_guild(botworld.guild_id)
    async with bot_site(botworld) as client:
        text = await scrape(client)
    assert value(text, "hotpapers_digests_failed_total", reason="channel_gone") == 1
    assert value(text, "hotpapers_digests_sent_total", result="papers") == 0


async def test_discord_429s_are_counted_by_scope(botworld) -> None:
    """A route's 429 and then a global one on the first message: discord.py waits each out and
    posts the message; both 429s are counted, each with its scope."""
    await with_telemetry(botworld)
    await botworld.ingest_reference_day()
    await botworld.configure(post_time="10:30", style="compact")
    fake = botworld.fake
    fake.fail_next("POST", "/channels/*/messages", 429, retry_after=0.05)
    fake.fail_next(
        "POST",
        "/channels/*/messages",
        429,
        body={"message": "You are being rate limited.", "retry_after": 0.05, "global": True},
        headers={"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"},
    )
    await botworld.jobs.deliver_guild(botworld.guild_id)
    statuses = [r.status for r in fake.requests_to("POST", "/channels/*/messages")]
    assert statuses == [429, 429, 200]
    async with bot_site(botworld) as client:
        text = await scrape(client)
    assert value(text, "hotpapers_discord_rate_limited_total", scope="route") == 1
    assert value(text, "hotpapers_discord_rate_limited_total", scope="global") == 1
    assert value(text, "hotpapers_digests_sent_total", result="papers") == 1
    assert value(text, "hotpapers_discord_messages_sent_total") == 1


async def test_interaction_latency_is_measured_per_command(botworld) -> None:
    await with_telemetry(botworld)
    await botworld.run("about")
    await botworld.harness.autocomplete(
        "category", "add", focused="name", value="cs.L", member=botworld.mod, timeout=3.0
    )
    async with bot_site(botworld) as client:

        async def answered() -> str | None:
            text = await scrape(client)
            count = value(
                text,
                "hotpapers_interaction_latency_seconds_count",
                command="category add",
                type="autocomplete",
            )
            return text if count == 1 else None

        text = await eventually(answered)
    about = {"command": "about", "type": "command"}
    assert value(text, "hotpapers_interaction_latency_seconds_count", **about) == 1
    seconds = value(text, "hotpapers_interaction_latency_seconds_sum", **about)
    assert seconds is not None
    assert 0 < seconds < 3.0
    within_3s = value(text, "hotpapers_interaction_latency_seconds_bucket", le="3.0", **about)
    assert within_3s == 1


async def test_ingestion_duration_and_source_failures(botworld) -> None:
    botworld.world.hackernews.malformed_next(times=50)
    await botworld.ingest_reference_day()
    async with bot_site(botworld) as client:
        text = await scrape(client)
        async with client.get("/readyz") as response:
            ready = await response.json()
    for source in ("x", "hackernews", "huggingface", "bluesky"):
        assert value(text, "hotpapers_ingestion_duration_seconds_count", source=source) == 1
        last = value(text, "hotpapers_ingestion_last_run_timestamp_seconds", source=source)
        assert last is not None
        assert abs(last - time.time()) < 60
    assert (
        value(text, "hotpapers_source_failures_total", source="hackernews", kind="malformed") == 1
    )
    assert value(text, "hotpapers_source_failures_total", source="x", kind="malformed") is None
    # /readyz tells the same: ready, degraded by the failed source.
    assert ready["status"] == "degraded"
    assert ready["sources"]["hackernews"] == {
        "ok": False,
        "last_run": ready["sources"]["hackernews"]["last_run"],
        "error_kind": "malformed",
        "mentions": 0,
    }


async def test_the_gateway_and_the_leadership_are_read_when_scraped(botworld) -> None:
    fake = botworld.fake
    fake.heartbeat_interval_ms = 50  # heartbeats (and their latency) within the test
    await with_telemetry(botworld)
    bot = botworld.bot
    await eventually(lambda: _finite(bot.latency))
    async with bot_site(botworld) as client:
        text = await scrape(client)
        assert value(text, "hotpapers_gateway_connected", shard="none") == 1
        latency = value(text, "hotpapers_gateway_latency_seconds", shard="none")
        assert latency is not None
        assert 0 <= latency < 5
        assert value(text, "hotpapers_leader") == 1  # the one process on SQLite leads
        await botworld.harness.stop_client(bot)
        text = await scrape(client)
    assert value(text, "hotpapers_gateway_connected", shard="none") == 0


async def _finite(number: float) -> bool:
    await asyncio.sleep(0)
    return math.isfinite(number)


async def test_process_metrics_and_no_secret(botworld) -> None:
    await with_telemetry(botworld)
    async with bot_site(botworld) as client:
        text = await scrape(client)
        async with client.get("/readyz") as response:
            readyz = await response.text()
        async with client.get("/metrics", headers={"Accept": "application/openmetrics-text"}) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await r.text()).endswith("# EOF\n")
    assert value(text, "hotpapers_build_info", version="0.1.0") == 1
    assert value(text, "process_resident_memory_bytes") is not None
    settings = botworld.rt.settings
    secrets = [botworld.harness.token]
    secrets += [s.get_secret_value() for s in settings.secrets.sources.values()]
    assert secrets[1:], "the demo world's X token"
    for secret in secrets:
        assert secret not in text
        assert secret not in readyz
    assert settings.database.url not in readyz


def test_metrics_live_in_their_own_registry() -> None:
    """Two runtimes in one process count apart, and nothing goes to the global registry."""
    first, second = Metrics.for_process("1.0"), Metrics.for_process("1.0")
    first.digest_sent("papers")
    first.discord_rate_limited("global")

    def count(metrics: Metrics, name: str, **labels: str) -> float | None:
        text = prometheus_client.generate_latest(metrics.registry).decode()
        return value(text, name, **labels)

    assert count(first, "hotpapers_digests_sent_total", result="papers") == 1
    assert count(second, "hotpapers_digests_sent_total", result="papers") == 0
    assert count(second, "hotpapers_discord_rate_limited_total", scope="global") == 0
    global_text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert not any(name.startswith("hotpapers") for name, _ in samples(global_text))
