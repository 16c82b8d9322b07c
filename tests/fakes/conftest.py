"""Fixtures for tests against the fake Discord: a harness that fails the test on any violation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest

from tests.fakes.discord import DiscordHarness


@pytest.fixture
async def discord_harness() -> AsyncIterator[DiscordHarness]:
    """A started fake Discord with one guild and #general, discord.py pointed at it.

    At teardown the clients it started are closed, discord.py's ``Route.BASE`` and
    ``DiscordWebSocket.DEFAULT_GATEWAY`` are restored, and the test fails if any request
    broke the spec, a documented limit or the project's rules (``fake.violations``).
    """
    base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        async with DiscordHarness() as harness:
            yield harness
    finally:
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
