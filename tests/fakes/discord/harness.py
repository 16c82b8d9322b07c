"""Test harness: a started fake Discord, discord.py pointed at it, and slash/autocomplete helpers.

Usage (the fixture in ``tests/fakes/conftest.py`` does the ``async with`` for you)::

    async with DiscordHarness() as h:
        bot = make_bot()                      # any discord.Client / commands.Bot
        await h.start_client(bot)             # login + connect in a background task, wait READY
        await bot.tree.sync(guild=discord.Object(id=h.guild.id))
        mod = h.member(manage_guild=True)
        result = await h.slash("category", "add", name="cs.LG", member=mod)
        callback = await result.response()    # type, data, elapsed, ephemeral ...
        choices = await h.autocomplete("paper", focused="query", value="attention")

A client in another process (``hotpapers run`` pointed at ``h.fake.api_base`` and
``h.fake.gateway_url`` with ``h.token``) is waited for with ``await h.wait_connected()``; the
slash/autocomplete helpers then reach it the same way.

Pointing discord.py at the fake is two assignments, which production code makes from the
settings ``discord.api_base`` / ``discord.gateway_url``::

    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

The harness makes them on entry and restores the originals on exit. A plain ``Client``
connects to ``DEFAULT_GATEWAY`` directly; ``AutoShardedClient`` asks ``GET /gateway/bot``,
which the fake answers with its own websocket URL too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import discord
import yarl

from tests.fakes.discord.server import FakeDiscord, InteractionResult
from tests.fakes.discord.state import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser

log = logging.getLogger(__name__)

DEFAULT_TOKEN = "fake-bot-token"  # a fake token for a local fake
# How long discord.py waits after the last GUILD_CREATE before firing on_ready (default 2 s).
FAST_GUILD_READY_TIMEOUT = 0.05


class SteppableClock:
    """``time.monotonic`` plus an offset a test can advance: crosses the 3 s interaction
    deadline without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class DiscordHarness:
    """Starts :class:`FakeDiscord` with one guild and a ``#general`` channel, points discord.py
    at it, runs clients against it and, on exit, fails if any request broke a rule."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        validate: bool = True,
        spec_path: Path | str | None = None,
        fail_on_violations: bool = True,
        guild_name: str = "Test Guild",
        channel_name: str = "general",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.token = token
        self.fail_on_violations = fail_on_violations
        self.clock = clock or SteppableClock()
        self.fake = FakeDiscord(
            token=token, validate=validate, spec_path=spec_path, clock=self.clock
        )
        self.world = self.fake.world
        self.guild: FakeGuild = self.world.add_guild(guild_name)
        self.channel: FakeChannel = self.world.add_channel(self.guild, channel_name)
        self._default_member: FakeMember | None = None
        self._clients: dict[discord.Client, asyncio.Task[None]] = {}
        self._saved: tuple[str, yarl.URL] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.fake.start()
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.fake.gateway_url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            for client in list(self._clients):
                await self.stop_client(client)
            await self.fake.close()
        finally:
            if self._saved is not None:
                base, gateway = self._saved
                discord.http.Route.BASE = base
                discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
                self._saved = None
        if self.fail_on_violations and exc_type is None and self.fake.violations:
            listed = "\n  - ".join(self.fake.violations)
            raise AssertionError(f"requests to the fake Discord broke rules:\n  - {listed}")

    # -- clients --------------------------------------------------------------------------

    async def start_client(
        self,
        client: discord.Client,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the test API
        fast_ready: bool = True,
    ) -> None:
        """``login`` here, ``connect`` in a background task, then wait for READY."""
        if fast_ready:
            # discord.py waits guild_ready_timeout (2 s) after the last GUILD_CREATE; the fake
            # sends them all at once, so waiting is pure delay in tests.
            client._connection.guild_ready_timeout = FAST_GUILD_READY_TIMEOUT
        await client.login(self.token)
        self._clients[client] = asyncio.create_task(client.connect(), name="fake-discord-client")
        await self.wait_ready(client, timeout=timeout)

    def track(self, client: discord.Client, task: asyncio.Task[None]) -> None:
        """Adopt a client started elsewhere (``asyncio.create_task(client.start(token))``)
        so the harness closes it on exit."""
        self._clients[client] = task

    async def wait_ready(self, client: discord.Client, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a bounded wait is the test API
        """Waits for ``on_ready``; re-raises the client's own failure (bad token, crash...)."""
        task = self._clients.get(client)

        async def ready() -> None:
            while True:
                try:
                    await client.wait_until_ready()
                    return
                except RuntimeError:
                    # start() was called in a task that has not reached login() yet.
                    await asyncio.sleep(0.01)

        waiter = asyncio.ensure_future(ready())
        pending = {waiter} if task is None else {waiter, task}
        done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        if task is not None and task in done:
            task.result()
            raise AssertionError("the client stopped before it was ready")
        raise AssertionError(f"client not ready after {timeout} s")

    async def wait_connected(
        self,
        *,
        sessions: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the test API
        alive: Callable[[], bool] | None = None,
    ) -> None:
        """For a client the harness can't see (another process, e.g. ``hotpapers run``): waits,
        from the fake's side only, until ``sessions`` gateway sessions identified and were sent
        READY and their GUILD_CREATEs. An interaction sent after reaches the client after them.

        ``alive`` (e.g. ``lambda: proc.returncode is None``) turning false fails at once, so a
        client that crashed at start fails the wait without waiting out ``timeout``.
        """
        fake = self.fake
        await fake.wait_until(
            lambda: fake.ready_sessions >= sessions or (alive is not None and not alive()),
            timeout,
            f"{sessions} gateway session(s) READY (have {fake.ready_sessions}, "
            f"{len(fake.identifies)} IDENTIFY)",
        )
        if fake.ready_sessions < sessions:
            raise AssertionError("the client stopped before its gateway session was READY")

    async def stop_client(self, client: discord.Client, *, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a bounded wait is the test API
        """Close the client (websocket and HTTP session) and reap its task."""
        task = self._clients.pop(client, None)
        if not client.is_closed():
            await client.close()
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("fake discord: client task did not stop in %s s", timeout)
            except Exception:
                log.exception("fake discord: client task failed")

    # -- world ----------------------------------------------------------------------------

    def member(
        self,
        manage_guild: bool = False,
        *,
        name: str | None = None,
        guild: FakeGuild | None = None,
        roles: tuple[FakeRole, ...] = (),
    ) -> FakeMember:
        """A human member; ``manage_guild=True`` gives them Manage Server (bit 1 << 5)."""
        guild = guild or self.guild
        return self.world.add_member(guild, name, manage_guild=manage_guild, roles=roles)

    @property
    def default_member(self) -> FakeMember:
        """The member interactions come from when none is given (no Manage Server)."""
        if self._default_member is None:
            self._default_member = self.member(name="reader")
        return self._default_member

    async def add_guild(
        self,
        name: str = "Second Guild",
        *,
        channel_name: str = "general",
        shard: tuple[int, int] | None = None,
    ) -> FakeGuild:
        """A guild with a text channel, announced to the connected clients on its shard;
        ``shard=(id, count)`` puts it on that shard."""
        guild = self.world.add_guild(name, shard=shard)
        self.world.add_channel(guild, channel_name)
        await self.fake.dispatch("GUILD_CREATE", guild.gateway_dict(joining=True))
        return guild

    async def text_channel(
        self,
        name: str,
        *,
        guild: FakeGuild | None = None,
        bot_deny: int = 0,
        bot_allow: int = 0,
        topic: str | None = None,
    ) -> FakeChannel:
        """A text channel; ``bot_deny=Permission.SEND_MESSAGES`` etc. restricts the bot in it.
        Connected clients get CHANNEL_CREATE."""
        return await self.fake.add_channel(
            guild or self.guild, name, topic=topic, bot_deny=bot_deny, bot_allow=bot_allow
        )

    def guild_of(self, member: FakeMember) -> FakeGuild:
        return self.world.guilds[member.guild_id]

    # -- interactions ---------------------------------------------------------------------

    async def slash(
        self,
        *path: str,
        member: FakeMember | None = None,
        channel: FakeChannel | None = None,
        options: Mapping[str, Any] | None = None,
        locale: str = "en-US",
        **values: Any,
    ) -> InteractionResult:
        """Invoke ``/path[0] path[1] path[2]`` with option ``values`` (use ``options={...}``
        for option names that clash with this method's keywords, e.g. ``channel``)."""
        channel = channel or self.channel
        member = member or self.default_member
        name, nested, resolved = self._options(
            path, {**values, **(options or {})}, channel, member, None
        )
        return await self.fake.send_interaction(
            name,
            member=member,
            channel=channel,
            options=nested,
            resolved=resolved,
            locale=locale,
        )

    async def autocomplete(
        self,
        *path: str,
        focused: str,
        value: Any = "",
        member: FakeMember | None = None,
        channel: FakeChannel | None = None,
        options: Mapping[str, Any] | None = None,
        timeout: float = 3.0,  # noqa: ASYNC109 - a bounded wait is the test API
        **values: Any,
    ) -> list[dict[str, Any]]:
        """Type into option ``focused`` of ``/path`` and return the choices the bot offers."""
        channel = channel or self.channel
        member = member or self.default_member
        all_values = {**values, **(options or {}), focused: value}
        name, nested, resolved = self._options(path, all_values, channel, member, focused)
        result = await self.fake.send_interaction(
            name,
            member=member,
            channel=channel,
            options=nested,
            resolved=resolved,
            interaction_type=4,
        )
        callback = await result.response(timeout)
        return callback.choices

    def _options(
        self,
        path: tuple[str, ...],
        values: dict[str, Any],
        channel: FakeChannel,
        member: FakeMember,
        focused: str | None,
    ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
        """Nested INTERACTION_CREATE options for ``/group sub`` from the synced definition."""
        if not path:
            raise ValueError("slash() needs the command name")
        guild = self.world.guild_of(channel)
        command = self.world.find_command(path[0], guild.id)
        if command is None:
            raise LookupError(
                f"/{path[0]} is not registered with the fake Discord: sync the tree first "
                f"(await bot.tree.sync(guild=discord.Object(id={guild.id})))"
            )
        top: list[dict[str, Any]] = []
        container, definitions = top, command.get("options") or []
        for part in path[1:]:
            definition = next(
                (d for d in definitions if d["name"] == part and d["type"] in (1, 2)), None
            )
            if definition is None:
                raise ValueError(f"/{' '.join(path)}: no subcommand or group {part!r}")
            node: dict[str, Any] = {"type": definition["type"], "name": part, "options": []}
            container.append(node)
            container, definitions = node["options"], definition.get("options") or []
        if any(d["type"] in (1, 2) for d in definitions):
            raise ValueError(f"/{' '.join(path)} is a group: name a subcommand")
        resolved: dict[str, Any] = {}
        by_name = {d["name"]: d for d in definitions}
        for key, raw in values.items():
            definition = by_name.get(key)
            if definition is None:
                raise ValueError(f"/{' '.join(path)} has no option {key!r} (has {sorted(by_name)})")
            option: dict[str, Any] = {"name": key, "type": definition["type"]}
            if key == focused:
                if not definition.get("autocomplete"):
                    raise ValueError(f"/{' '.join(path)} option {key!r} has no autocomplete")
                option.update(value=str(raw), focused=True)
            else:
                option["value"] = self._value(definition["type"], raw, member, resolved)
            container.append(option)
        if focused is None:
            missing = [
                d["name"] for d in definitions if d.get("required") and d["name"] not in values
            ]
            if missing:
                raise ValueError(f"/{' '.join(path)}: required options missing: {missing}")
        return path[0], top, resolved

    def _value(self, kind: int, raw: Any, invoker: FakeMember, resolved: dict[str, Any]) -> Any:
        """An option value as Discord sends it, filling ``resolved`` for users/channels/roles."""
        if kind == 3:
            return str(raw)
        if kind == 4:
            return int(raw)
        if kind == 10:
            return float(raw)
        if kind == 5:
            return bool(raw)
        if kind in (6, 9) and isinstance(raw, FakeMember | FakeUser):
            user = raw.user if isinstance(raw, FakeMember) else raw
            resolved.setdefault("users", {})[str(user.id)] = user.to_dict()
            if isinstance(raw, FakeMember):
                member = raw.to_dict()
                member.pop("user")
                member["permissions"] = str(self.world.base_permissions(self.guild_of(raw), raw))
                resolved.setdefault("members", {})[str(user.id)] = member
            return str(user.id)
        if kind == 7:
            target = raw if isinstance(raw, FakeChannel) else self.world.channels[int(raw)]
            data = target.to_dict()
            data["permissions"] = str(self.world.permissions_in(target, invoker))
            resolved.setdefault("channels", {})[str(target.id)] = data
            return str(target.id)
        if kind in (8, 9) and isinstance(raw, FakeRole):
            resolved.setdefault("roles", {})[str(raw.id)] = raw.to_dict()
            return str(raw.id)
        return str(raw.id) if hasattr(raw, "id") else raw
