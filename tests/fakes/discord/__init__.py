"""Fake Discord (REST + gateway) for the real discord.py client, with request validation.

Tests only: it is not part of the installed package (nor is ``jsonschema``, which validates
each request against ``../shared/discord-api-spec``, a test dependency). The bot reaches it
through the settings ``discord.api_base`` and ``discord.gateway_url`` (``discord.http.Route.BASE``
and ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``); tests use :class:`DiscordHarness`.
"""

from __future__ import annotations

from tests.fakes.discord.harness import DiscordHarness
from tests.fakes.discord.server import (
    FakeDiscord,
    InteractionCallback,
    InteractionResult,
    RecordedRequest,
)
from tests.fakes.discord.state import (
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
from tests.fakes.discord.validation import (
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
