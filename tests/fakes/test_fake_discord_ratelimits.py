"""The fake Discord's opt-in rate limits: the global limit (fixed and sliding windows), channel
message buckets and their headers, and the real discord.py client pacing itself against them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import discord
import pytest

from tests.fakes.discord import DiscordHarness, FakeChannel, FakeDiscord
from tests.fakes.discord.ratelimits import RateLimiter, RateLimits

TOKEN = "fake-bot-token"
AUTH = {"Authorization": f"Bot {TOKEN}"}
NO_PINGS: dict[str, list[str]] = {"parse": []}


class FrozenClock:
    """The fake's clock, moved by the test only: exact windows, whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Raw:
    """A started fake Discord on a frozen clock, and raw requests to it."""

    def __init__(self, fake: FakeDiscord, clock: FrozenClock, session: aiohttp.ClientSession):
        self.fake = fake
        self.clock = clock
        self.session = session
        guild = fake.world.add_guild("Rate Limited")
        self.channel = fake.world.add_channel(guild, "general")
        self.other = fake.world.add_channel(guild, "other")

    @property
    def limiter(self) -> RateLimiter:
        assert self.fake.ratelimiter is not None
        return self.fake.ratelimiter

    async def get(self, path: str = "/users/@me") -> tuple[int, dict[str, str], Any]:
        async with self.session.get(self.fake.api_base + path, headers=AUTH) as resp:
            return resp.status, dict(resp.headers), await resp.json()

    async def post(self, channel: FakeChannel | int, content: str = "hi") -> tuple[int, Any, Any]:
        channel_id = channel if isinstance(channel, int) else channel.id
        url = f"{self.fake.api_base}/channels/{channel_id}/messages"
        body = {"content": content, "allowed_mentions": NO_PINGS}
        async with self.session.post(url, json=body, headers=AUTH) as resp:
            return resp.status, resp.headers.copy(), await resp.json()

    async def statuses(self, count: int, path: str = "/users/@me") -> list[int]:
        return [(await self.get(path))[0] for _ in range(count)]


OpenRaw = Callable[..., Awaitable[Raw]]


@pytest.fixture
async def open_raw() -> AsyncIterator[OpenRaw]:
    """Starts a fake with ``RateLimits(**kwargs)`` on a frozen clock (closed at teardown,
    failing the test on any violation)."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        fakes: list[FakeDiscord] = []

        async def open_(**kwargs: Any) -> Raw:
            clock = FrozenClock()
            fake = FakeDiscord(clock=clock, ratelimits=RateLimits(**kwargs))
            raw = Raw(fake, clock, session)
            await stack.enter_async_context(fake)
            fakes.append(fake)
            return raw

        yield open_
        for fake in fakes:
            assert fake.violations == []


# -- off by default ---------------------------------------------------------------------------


async def test_limits_are_off_by_default() -> None:
    fake = FakeDiscord()
    assert fake.ratelimits is None
    assert fake.ratelimiter is None
    guild = fake.world.add_guild()
    channel = fake.world.add_channel(guild, "general")
    async with fake, aiohttp.ClientSession() as session:
        for _ in range(60):
            async with session.get(f"{fake.api_base}/users/@me", headers=AUTH) as resp:
                assert resp.status == 200
        for _ in range(8):
            url = f"{fake.api_base}/channels/{channel.id}/messages"
            body = {"content": "x", "allowed_mentions": NO_PINGS}
            async with session.post(url, json=body, headers=AUTH) as resp:
                assert resp.status == 200
                # The placeholder headers every answer had before limits existed.
                assert resp.headers["X-RateLimit-Remaining"] == "4"
                assert resp.headers["X-RateLimit-Reset-After"] == "1.000"
    assert len(fake.messages(channel)) == 8


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RateLimits(global_per_second=0)
    with pytest.raises(ValueError, match="positive"):
        RateLimits(channel_window_seconds=0)
    with pytest.raises(ValueError, match="fixed or sliding"):
        RateLimits(global_window="rolling")  # type: ignore[arg-type]


def test_limits_can_be_set_and_removed_on_a_fake() -> None:
    fake = FakeDiscord()
    fake.ratelimits = RateLimits(global_per_second=10)
    assert fake.ratelimiter is not None
    assert fake.ratelimiter.clock is fake.clock
    assert fake.ratelimits == RateLimits(global_per_second=10)
    fake.ratelimits = None
    assert fake.ratelimiter is None


# -- the global limit ------------------------------------------------------------------------


async def test_global_limit_answers_429_like_discord(open_raw: OpenRaw) -> None:
    raw = await open_raw(global_per_second=50, global_window="fixed")
    assert await raw.statuses(50) == [200] * 50
    status, headers, body = await raw.get()
    assert status == 429
    assert body == {"message": "You are being rate limited.", "retry_after": 1.0, "global": True}
    assert headers["Content-Type"] == "application/json"
    assert headers["Retry-After"] == "1"
    assert headers["X-RateLimit-Global"] == "true"
    assert headers["X-RateLimit-Scope"] == "global"
    assert headers["Via"] == "1.1 google"
    raw.clock.advance(0.25)
    status, _, body = await raw.get()
    assert (status, body["retry_after"]) == (429, 0.75)
    raw.clock.advance(0.75)
    assert await raw.statuses(1) == [200]
    assert raw.limiter.counts.as_dict() == {
        "counted": 51,
        "exempt": 0,
        "global_429": 2,
        "route_429": 0,
        "messages": 0,
    }


async def test_fixed_window_lets_a_burst_straddle_two_windows(open_raw: OpenRaw) -> None:
    raw = await open_raw(global_per_second=50, global_window="fixed")
    assert await raw.statuses(1) == [200]  # opens a window at t = 0
    raw.clock.advance(0.99)
    assert await raw.statuses(50) == [200] * 49 + [429]
    raw.clock.advance(0.01)
    # A new window: 99 requests within 10 ms, which a fixed window allows.
    assert await raw.statuses(51) == [200] * 50 + [429]


async def test_sliding_window_allows_the_limit_in_any_second(open_raw: OpenRaw) -> None:
    raw = await open_raw(global_per_second=50, global_window="sliding")
    assert await raw.statuses(1) == [200]
    raw.clock.advance(0.99)
    assert await raw.statuses(50) == [200] * 49 + [429]
    raw.clock.advance(0.01)
    # Only the request of t = 0 left the last second: one more, not fifty.
    assert await raw.statuses(2) == [200, 429]
    status, _, body = await raw.get()
    assert status == 429
    assert body["retry_after"] == pytest.approx(0.99, abs=0.002)  # when t = 0.99's leave


@pytest.mark.parametrize(("window", "allowed"), [("fixed", 50), ("sliding", 25)])
async def test_fixed_and_sliding_differ_after_a_spread_out_second(
    open_raw: OpenRaw, window: str, allowed: int
) -> None:
    raw = await open_raw(global_window=window)
    assert await raw.statuses(25) == [200] * 25  # t = 0
    raw.clock.advance(0.6)
    assert await raw.statuses(26) == [200] * 25 + [429]  # t = 0.6
    raw.clock.advance(0.45)  # t = 1.05: the fixed window reopened; 25 are still recent
    assert await raw.statuses(allowed + 1) == [200] * allowed + [429]


async def test_a_message_over_the_global_limit_is_a_global_429(open_raw: OpenRaw) -> None:
    raw = await open_raw(global_per_second=2)
    assert [(await raw.post(raw.channel))[0] for _ in range(2)] == [200, 200]
    status, headers, body = await raw.post(raw.other)
    assert status == 429
    assert body["global"] is True
    assert headers["X-RateLimit-Scope"] == "global"
    assert headers["X-RateLimit-Global"] == "true"
    assert raw.fake.messages(raw.other) == []
    assert raw.limiter.counts.global_429 == 1


async def test_interaction_endpoints_are_not_bound_by_the_global_limit(open_raw: OpenRaw) -> None:
    raw = await open_raw(global_per_second=1)
    assert await raw.statuses(2) == [200, 429]
    url = f"{raw.fake.api_base}/interactions/123/some-token/callback?with_response=1"
    async with raw.session.post(url, json={"type": 1}) as resp:
        assert resp.status != 429  # the fake knows no such interaction: not a rate limit
    raw.fake.take_violations()  # type 1 (PONG) is not a valid answer to anything here
    assert raw.limiter.counts.exempt == 1
    assert raw.limiter.counts.global_429 == 1


# -- channel buckets -------------------------------------------------------------------------


async def test_channel_bucket_headers_count_down_to_a_route_429(open_raw: OpenRaw) -> None:
    raw = await open_raw(channel_messages=5, channel_window_seconds=5.0)
    seen = []
    for _ in range(5):
        status, headers, _ = await raw.post(raw.channel)
        assert status == 200
        seen.append(
            (
                headers["X-RateLimit-Limit"],
                headers["X-RateLimit-Remaining"],
                headers["X-RateLimit-Reset-After"],
            )
        )
        reset = float(headers["X-RateLimit-Reset"])
        assert reset == pytest.approx(time.time() + float(headers["X-RateLimit-Reset-After"]), 1)
        bucket = headers["X-RateLimit-Bucket"]
        raw.clock.advance(0.5)
    assert seen == [
        ("5", "4", "5.000"),
        ("5", "3", "4.500"),
        ("5", "2", "4.000"),
        ("5", "1", "3.500"),
        ("5", "0", "3.000"),
    ]
    status, headers, body = await raw.post(raw.channel, "one too many")
    assert status == 429
    assert body == {"message": "You are being rate limited.", "retry_after": 2.5, "global": False}
    assert headers["Content-Type"] == "application/json"
    assert headers["Retry-After"] == "3"
    assert headers["X-RateLimit-Scope"] == "user"
    assert "X-RateLimit-Global" not in headers
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Reset-After"] == "2.500"
    assert headers["X-RateLimit-Bucket"] == bucket
    assert headers["Via"] == "1.1 google"
    assert "one too many" not in [m["content"] for m in raw.fake.messages(raw.channel)]

    # Another channel has its own bucket (same route bucket hash, another major parameter).
    status, headers, _ = await raw.post(raw.other)
    assert (status, headers["X-RateLimit-Remaining"]) == (200, "4")
    assert headers["X-RateLimit-Bucket"] == bucket

    raw.clock.advance(2.5)  # the channel's window closes
    status, headers, _ = await raw.post(raw.channel)
    assert (status, headers["X-RateLimit-Remaining"]) == (200, "4")
    assert headers["X-RateLimit-Reset-After"] == "5.000"
    counts = raw.limiter.counts
    assert (counts.messages, counts.route_429, counts.global_429) == (7, 1, 0)


async def test_a_thread_is_a_channel_with_its_own_bucket(open_raw: OpenRaw) -> None:
    raw = await open_raw(channel_messages=2, channel_window_seconds=5.0)
    thread = raw.fake.world.add_thread(raw.channel, "Hot Papers")
    assert [(await raw.post(raw.channel))[0] for _ in range(3)] == [200, 200, 429]
    assert [(await raw.post(thread))[0] for _ in range(3)] == [200, 200, 429]
    assert len(raw.fake.messages(thread)) == 2


async def test_other_routes_do_not_use_a_channels_message_bucket(open_raw: OpenRaw) -> None:
    raw = await open_raw(channel_messages=5, channel_window_seconds=5.0)
    for _ in range(8):
        assert (await raw.get(f"/channels/{raw.channel.id}"))[0] == 200
    status, headers, _ = await raw.post(raw.channel)
    assert (status, headers["X-RateLimit-Remaining"]) == (200, "4")


# -- the real discord.py client --------------------------------------------------------------


@pytest.fixture
async def client(discord_harness: DiscordHarness) -> discord.Client:
    """A plain discord.Client connected to the harness (which closes it)."""
    client = discord.Client(
        intents=discord.Intents(guilds=True), allowed_mentions=discord.AllowedMentions.none()
    )
    await discord_harness.start_client(client)
    return client


async def test_discord_py_paces_twelve_messages_to_one_channel(
    discord_harness: DiscordHarness, client: discord.Client
) -> None:
    h = discord_harness
    h.fake.ratelimits = RateLimits(channel_messages=5, channel_window_seconds=1.0)
    channel = client.get_channel(h.channel.id)
    assert isinstance(channel, discord.TextChannel)
    started = time.monotonic()
    for n in range(12):
        await channel.send(f"message {n}")
    elapsed = time.monotonic() - started
    posted = sorted(h.fake.messages(h.channel), key=lambda m: int(m["id"]))
    assert [m["content"] for m in posted] == [f"message {n}" for n in range(12)]
    # Three windows (5 + 5 + 2): paced by the bucket headers, not failed.
    assert elapsed >= 2.0
    assert h.fake.ratelimiter is not None
    assert h.fake.ratelimiter.counts.messages == 12
    assert h.fake.ratelimiter.counts.route_429 == 0


async def test_discord_py_paces_concurrent_sends_to_one_channel(
    discord_harness: DiscordHarness, client: discord.Client
) -> None:
    h = discord_harness
    h.fake.ratelimits = RateLimits(channel_messages=5, channel_window_seconds=1.0)
    channel = client.get_channel(h.channel.id)
    assert isinstance(channel, discord.TextChannel)
    sent = await asyncio.gather(*(channel.send(f"message {n}") for n in range(12)))
    assert len({m.id for m in sent}) == 12
    assert sorted(m["content"] for m in h.fake.messages(h.channel)) == sorted(
        f"message {n}" for n in range(12)
    )
    assert h.fake.ratelimiter is not None
    # discord.py learnt the bucket from the first answer and queued the rest: no 429.
    assert h.fake.ratelimiter.counts.route_429 == 0


async def test_discord_py_waits_out_global_429s(
    discord_harness: DiscordHarness, client: discord.Client
) -> None:
    h = discord_harness
    channels = [await h.text_channel(f"room-{n}") for n in range(12)]
    await h.fake.wait_until(lambda: all(client.get_channel(c.id) for c in channels), 5.0)
    h.fake.ratelimits = RateLimits(global_per_second=5)
    started = time.monotonic()
    targets = [client.get_channel(c.id) for c in channels]
    await asyncio.gather(*(t.send("hello") for t in targets if isinstance(t, discord.TextChannel)))
    elapsed = time.monotonic() - started
    assert all(len(h.fake.messages(c)) == 1 for c in channels)
    assert h.fake.ratelimiter is not None
    counts = h.fake.ratelimiter.counts
    assert counts.global_429 > 0  # refused, retried (Via), delivered
    assert counts.messages == 12
    assert elapsed >= 2.0  # 12 requests at 5 a second
