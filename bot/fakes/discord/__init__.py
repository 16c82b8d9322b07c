"""Fake Discord (REST + gateway) for the real discord.py client, with request validation.

Production code points discord.py at it from the settings ``discord.api_base`` and
``discord.gateway_url`` (``discord.http.Route.BASE`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``); tests use :class:`DiscordHarness`.
"""

from __future__ import annotations

from bot.fakes.discord.harness import DiscordHarness
from bot.fakes.discord.server import (
    FakeDiscord,
    InteractionCallback,
    InteractionResult,
    RecordedRequest,
)
from bot.fakes.discord.state import (
    ChannelType,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    FakeWorld,
    Overwrite,
    Permission,
)
from bot.fakes.discord.validation import (
    OpenAPISpec,
    RequestValidator,
    SpecNotFoundError,
    default_spec_path,
)

__all__ = [
    "ChannelType",
    "DiscordHarness",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "FakeWorld",
    "InteractionCallback",
    "InteractionResult",
    "OpenAPISpec",
    "Overwrite",
    "Permission",
    "RecordedRequest",
    "RequestValidator",
    "SpecNotFoundError",
    "default_spec_path",
]
