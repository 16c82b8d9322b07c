"""In-memory world of the fake Discord: users, guilds, roles, members, channels, messages."""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DISCORD_EPOCH_MS = 1_420_070_400_000


class Permission(enum.IntFlag):
    """Discord permission bits (the subset the bot and its tests reason about)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    SEND_TTS_MESSAGES = 1 << 12
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38


# Every bit Discord currently defines; what an owner or an administrator holds.
ALL_PERMISSIONS = (1 << 51) - 1

# What a new guild's @everyone role holds by default.
DEFAULT_EVERYONE_PERMISSIONS = (
    Permission.CREATE_INSTANT_INVITE
    | Permission.ADD_REACTIONS
    | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS
    | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_EXTERNAL_EMOJIS
    | Permission.CONNECT
    | Permission.SPEAK
    | Permission.CHANGE_NICKNAME
    | Permission.USE_APPLICATION_COMMANDS
    | Permission.CREATE_PUBLIC_THREADS
    | Permission.CREATE_PRIVATE_THREADS
    | Permission.SEND_MESSAGES_IN_THREADS
)

# What the bot's managed role is granted by its invite link.
DEFAULT_BOT_PERMISSIONS = (
    Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES
    | Permission.SEND_MESSAGES_IN_THREADS
    | Permission.CREATE_PUBLIC_THREADS
    | Permission.EMBED_LINKS
    | Permission.READ_MESSAGE_HISTORY
    | Permission.USE_APPLICATION_COMMANDS
)


class ChannelType(enum.IntEnum):
    """Discord channel types the fake models."""

    GUILD_TEXT = 0
    GUILD_CATEGORY = 4
    GUILD_ANNOUNCEMENT = 5
    ANNOUNCEMENT_THREAD = 10
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    GUILD_FORUM = 15


THREAD_TYPES = frozenset(
    {ChannelType.ANNOUNCEMENT_THREAD, ChannelType.PUBLIC_THREAD, ChannelType.PRIVATE_THREAD}
)


def iso(moment: dt.datetime) -> str:
    """Discord's timestamp format (ISO 8601 with microseconds and +00:00)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


class SnowflakeFactory:
    """Makes increasing snowflakes whose timestamp part is the (injectable) wall clock."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock
        self._counter = itertools.count()
        self._last = 0

    def __call__(self) -> int:
        ms = int(self._wall_clock() * 1000) - DISCORD_EPOCH_MS
        value = (max(ms, 0) << 22) | (1 << 17) | (next(self._counter) & 0xFFF)
        self._last = value = max(value, self._last + 1)
        return value

    def on_shard(self, shard_id: int, shard_count: int) -> int:
        """The next snowflake whose guild would be on ``shard_id`` of ``shard_count``
        (``(id >> 22) % shard_count``): its timestamp moved on by under ``shard_count`` ms."""
        value = self()
        value += ((shard_id - (value >> 22)) % shard_count) << 22
        self._last = value
        return value


@dataclass(slots=True)
class FakeUser:
    """A Discord user (the bot or a human member)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "avatar_decoration_data": None,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "flags": 0,
            "bot": self.bot,
        }
        return data

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(slots=True)
class FakeRole:
    """A guild role; the @everyone role has the guild's id."""

    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    bot_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(slots=True)
class FakeMember:
    """A user's membership of a guild."""

    user: FakeUser
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = ""

    @property
    def id(self) -> int:
        return self.user.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user.to_dict(),
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }


@dataclass(slots=True)
class Overwrite:
    """A channel permission overwrite for a role (type 0) or a member (type 1)."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


@dataclass(slots=True)
class FakeChannel:
    """A guild channel, category or thread."""

    id: int
    guild_id: int
    type: int
    name: str
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    overwrites: list[Overwrite] = field(default_factory=list)
    nsfw: bool = False
    rate_limit_per_user: int = 0
    last_message_id: int | None = None
    deleted: bool = False
    # Thread-only fields.
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    invitable: bool = True
    auto_archive_duration: int = 1440
    created_at: str = ""
    message_count: int = 0

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def to_dict(self) -> dict[str, Any]:
        if self.is_thread:
            return self._thread_dict()
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.to_dict() for o in self.overwrites],
            "parent_id": None if self.parent_id is None else str(self.parent_id),
            "flags": 0,
        }
        if self.type != ChannelType.GUILD_CATEGORY:
            data.update(
                topic=self.topic,
                nsfw=self.nsfw,
                rate_limit_per_user=self.rate_limit_per_user,
                last_message_id=None if self.last_message_id is None else str(self.last_message_id),
                default_auto_archive_duration=1440,
            )
        return data

    def _thread_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "parent_id": str(self.parent_id),
            "owner_id": str(self.owner_id),
            "name": self.name,
            "last_message_id": None if self.last_message_id is None else str(self.last_message_id),
            "rate_limit_per_user": self.rate_limit_per_user,
            "message_count": self.message_count,
            "member_count": 1,
            "total_message_sent": self.message_count,
            "flags": 0,
            "thread_metadata": {
                "archived": self.archived,
                "auto_archive_duration": self.auto_archive_duration,
                "archive_timestamp": self.created_at,
                "locked": self.locked,
                "invitable": self.invitable,
                "create_timestamp": self.created_at,
            },
        }


@dataclass(slots=True)
class FakeGuild:
    """A guild with its roles, members and channels (threads included)."""

    id: int
    name: str
    owner_id: int
    joined_at: str
    locale: str = "en-US"
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    moderator_role_id: int | None = None

    @property
    def everyone(self) -> FakeRole:
        return self.roles[self.id]

    def live_channels(self) -> list[FakeChannel]:
        return [c for c in self.channels.values() if not c.deleted and not c.is_thread]

    def live_threads(self) -> list[FakeChannel]:
        return [c for c in self.channels.values() if not c.deleted and c.is_thread]

    def rest_dict(self) -> dict[str, Any]:
        """The guild object as GET /guilds/{id} returns it."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "roles": [r.to_dict() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_presences": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": self.locale,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "incidents_data": None,
        }

    def gateway_dict(self, *, joining: bool = False) -> dict[str, Any]:
        """The guild object as the GUILD_CREATE dispatch carries it. ``joining``: the bot was
        just added to the guild, and Discord leaves ``unavailable`` out (clients tell a join
        from a guild coming back from an outage, ``unavailable: false``, by it)."""
        data = self.rest_dict()
        data.update(
            joined_at=self.joined_at,
            large=False,
            unavailable=False,
            member_count=len(self.members),
            # Without the GUILD_MEMBERS intent Discord only sends the bot's own member.
            members=[m.to_dict() for m in self.members.values() if m.user.bot],
            channels=[c.to_dict() for c in self.live_channels()],
            threads=[c.to_dict() for c in self.live_threads()],
            presences=[],
            voice_states=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            embedded_activities=[],
            lazy=True,
        )
        if joining:
            del data["unavailable"]
        return data


class FakeWorld:
    """Everything the fake Discord knows, with Discord's permission arithmetic."""

    def __init__(
        self,
        *,
        bot_name: str = "HotPapers",
        application_id: int | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.wall_clock = wall_clock
        self.snowflake = SnowflakeFactory(wall_clock)
        self.application_id = application_id or self.snowflake()
        # A bot user's id is its application's id.
        self.bot_user = FakeUser(id=self.application_id, username=bot_name, bot=True)
        self.owner = FakeUser(id=self.snowflake(), username="guild-owner", global_name="Owner")
        self.users: dict[int, FakeUser] = {
            self.bot_user.id: self.bot_user,
            self.owner.id: self.owner,
        }
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.deleted_messages: dict[int, dict[str, Any]] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}

    # -- clock ----------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.wall_clock(), tz=dt.UTC)

    def now_iso(self) -> str:
        return iso(self.now())

    # -- application ----------------------------------------------------------------------

    def application_dict(self) -> dict[str, Any]:
        """GET /oauth2/applications/@me."""
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "Fake application served by hotpapers' fake Discord.",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": self.owner.to_dict(),
            "team": None,
            "bot": self.bot_user.to_dict(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "approximate_guild_count": len(self.guilds),
            "integration_types_config": {"0": {}},
        }

    def me_dict(self) -> dict[str, Any]:
        """GET /users/@me for a bot token."""
        data = self.bot_user.to_dict()
        data.update(mfa_enabled=False, locale="en-US", verified=True, email=None, bio="")
        return data

    # -- guilds, roles, members -----------------------------------------------------------

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        locale: str = "en-US",
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        shard: tuple[int, int] | None = None,
    ) -> FakeGuild:
        """A guild the bot has joined: @everyone, the bot's managed role, the bot and its owner.
        ``shard=(id, count)``: a guild id on that shard (``(guild_id >> 22) % count == id``)."""
        guild_id = self.snowflake() if shard is None else self.snowflake.on_shard(*shard)
        guild = FakeGuild(
            id=guild_id, name=name, owner_id=self.owner.id, joined_at=self.now_iso(), locale=locale
        )
        guild.roles[guild_id] = FakeRole(
            id=guild_id, name="@everyone", permissions=everyone_permissions
        )
        bot_role = FakeRole(
            id=self.snowflake(),
            name=self.bot_user.username,
            permissions=bot_permissions,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        guild.roles[bot_role.id] = bot_role
        guild.members[self.bot_user.id] = FakeMember(
            self.bot_user, guild_id, [bot_role.id], joined_at=guild.joined_at
        )
        guild.members[self.owner.id] = FakeMember(
            self.owner, guild_id, [], joined_at=guild.joined_at
        )
        self.guilds[guild_id] = guild
        log.debug("fake discord: guild %s (%s) created", guild_id, name)
        return guild

    def add_role(self, guild: FakeGuild, name: str, permissions: int) -> FakeRole:
        role = FakeRole(
            id=self.snowflake(), name=name, permissions=int(permissions), position=len(guild.roles)
        )
        guild.roles[role.id] = role
        return role

    def moderator_role(self, guild: FakeGuild) -> FakeRole:
        """The guild's 'Moderators' role (Manage Server), created on first use."""
        if guild.moderator_role_id is None:
            role = self.add_role(guild, "Moderators", Permission.MANAGE_GUILD)
            guild.moderator_role_id = role.id
        return guild.roles[guild.moderator_role_id]

    def bot_role(self, guild: FakeGuild) -> FakeRole:
        return next(r for r in guild.roles.values() if r.bot_id == self.bot_user.id)

    def add_member(
        self,
        guild: FakeGuild,
        username: str | None = None,
        *,
        manage_guild: bool = False,
        roles: Iterable[FakeRole] = (),
    ) -> FakeMember:
        """A human member; ``manage_guild`` gives them the guild's Moderators role."""
        user_id = self.snowflake()
        user = FakeUser(id=user_id, username=username or f"user{len(self.users)}", global_name=None)
        self.users[user_id] = user
        role_ids = [r.id for r in roles]
        if manage_guild:
            role_ids.append(self.moderator_role(guild).id)
        member = FakeMember(user, guild.id, role_ids, joined_at=self.now_iso())
        guild.members[user_id] = member
        return member

    def guild_of(self, channel: FakeChannel) -> FakeGuild:
        return self.guilds[channel.guild_id]

    # -- channels -------------------------------------------------------------------------

    def add_channel(
        self,
        guild: FakeGuild,
        name: str,
        *,
        type: int = ChannelType.GUILD_TEXT,
        parent: FakeChannel | None = None,
        topic: str | None = None,
        bot_allow: int = 0,
        bot_deny: int = 0,
        overwrites: Iterable[Overwrite] = (),
    ) -> FakeChannel:
        """A guild channel; ``bot_allow``/``bot_deny`` become a member overwrite for the bot."""
        channel = FakeChannel(
            id=self.snowflake(),
            guild_id=guild.id,
            type=int(type),
            name=name,
            position=len(guild.live_channels()),
            parent_id=None if parent is None else parent.id,
            topic=topic,
            overwrites=list(overwrites),
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        if bot_allow or bot_deny:
            self.set_bot_overwrite(channel, allow=bot_allow, deny=bot_deny)
        return channel

    def set_bot_overwrite(self, channel: FakeChannel, *, allow: int = 0, deny: int = 0) -> None:
        """Restrict (``deny``) or extend (``allow``) the bot's permissions in one channel."""
        channel.overwrites = [
            o for o in channel.overwrites if not (o.type == 1 and o.id == self.bot_user.id)
        ]
        if allow or deny:
            channel.overwrites.append(Overwrite(self.bot_user.id, 1, int(allow), int(deny)))

    def add_thread(
        self,
        parent: FakeChannel,
        name: str,
        *,
        type: int = ChannelType.PUBLIC_THREAD,
        thread_id: int | None = None,
        owner_id: int | None = None,
        auto_archive_duration: int = 1440,
        rate_limit_per_user: int = 0,
        invitable: bool = True,
    ) -> FakeChannel:
        thread = FakeChannel(
            id=thread_id or self.snowflake(),
            guild_id=parent.guild_id,
            type=int(type),
            name=name,
            parent_id=parent.id,
            owner_id=owner_id or self.bot_user.id,
            auto_archive_duration=auto_archive_duration,
            rate_limit_per_user=rate_limit_per_user,
            invitable=invitable,
            created_at=self.now_iso(),
        )
        guild = self.guild_of(parent)
        guild.channels[thread.id] = thread
        self.channels[thread.id] = thread
        return thread

    def live_channel(self, channel_id: int) -> FakeChannel | None:
        channel = self.channels.get(channel_id)
        return None if channel is None or channel.deleted else channel

    # -- permissions ----------------------------------------------------------------------

    def base_permissions(self, guild: FakeGuild, member: FakeMember) -> int:
        if member.id == guild.owner_id:
            return ALL_PERMISSIONS
        perms = guild.everyone.permissions
        for role_id in member.role_ids:
            role = guild.roles.get(role_id)
            if role is not None:
                perms |= role.permissions
        return ALL_PERMISSIONS if perms & Permission.ADMINISTRATOR else perms

    def permissions_in(self, channel: FakeChannel, member: FakeMember) -> int:
        """Discord's algorithm: base, then @everyone, role and member overwrites of the channel
        (a thread uses its parent's); no View Channel means no permission at all."""
        guild = self.guild_of(channel)
        perms = self.base_permissions(guild, member)
        if perms & Permission.ADMINISTRATOR:
            return ALL_PERMISSIONS
        source = channel
        if channel.is_thread and channel.parent_id is not None:
            source = self.channels.get(channel.parent_id, channel)
        overwrites = source.overwrites
        for o in overwrites:
            if o.type == 0 and o.id == guild.id:
                perms = (perms & ~o.deny) | o.allow
        allow = deny = 0
        for o in overwrites:
            if o.type == 0 and o.id != guild.id and o.id in member.role_ids:
                allow |= o.allow
                deny |= o.deny
        perms = (perms & ~deny) | allow
        for o in overwrites:
            if o.type == 1 and o.id == member.id:
                perms = (perms & ~o.deny) | o.allow
        if not perms & Permission.VIEW_CHANNEL:
            return 0
        return perms

    def bot_member(self, guild: FakeGuild) -> FakeMember:
        return guild.members[self.bot_user.id]

    def bot_permissions_in(self, channel: FakeChannel) -> int:
        guild = self.guild_of(channel)
        if self.bot_user.id not in guild.members:
            return 0  # removed from the guild: it sees nothing there (403 Missing Access)
        return self.permissions_in(channel, self.bot_member(guild))

    # -- messages -------------------------------------------------------------------------

    def build_message(
        self,
        channel_id: int,
        payload: dict[str, Any],
        *,
        author: FakeUser | None = None,
        message_type: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A full message object as Discord returns it for what the client sent."""
        message_id = self.snowflake()
        embeds = [{"type": "rich", **e} for e in payload.get("embeds") or []]
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "type": message_type,
            "author": (author or self.bot_user).to_dict(),
            "content": payload.get("content") or "",
            "embeds": embeds,
            "components": _echo_components(payload.get("components") or []),
            "attachments": [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": bool(payload.get("tts") or False),
            "flags": int(payload.get("flags") or 0),
            "timestamp": self.now_iso(),
            "edited_timestamp": None,
        }
        if payload.get("nonce") is not None:
            message["nonce"] = payload["nonce"]
        if extra:
            message.update(extra)
        return message

    def store_message(self, message: dict[str, Any]) -> dict[str, Any]:
        message_id = int(message["id"])
        self.messages[message_id] = message
        channel = self.channels.get(int(message["channel_id"]))
        if channel is not None and not message["flags"] & 64:
            channel.last_message_id = message_id
            if channel.is_thread:
                channel.message_count += 1
        return message

    def edit_message(self, message: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        for key in ("content", "flags"):
            if key in payload and payload[key] is not None:
                message[key] = payload[key]
        if "content" in payload and payload["content"] is None:
            message["content"] = ""
        if "embeds" in payload:
            message["embeds"] = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if "components" in payload:
            message["components"] = _echo_components(payload["components"] or [])
        message["edited_timestamp"] = self.now_iso()
        return message

    def delete_message(self, message_id: int) -> None:
        message = self.messages.pop(message_id, None)
        if message is not None:
            self.deleted_messages[message_id] = message

    def messages_in(self, channel_id: int) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if int(m["channel_id"]) == channel_id]

    # -- application commands -------------------------------------------------------------

    def store_commands(
        self, payload: list[dict[str, Any]], guild_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Bulk overwrite: keep ids of commands whose (name, type) survive, like Discord."""
        previous = (
            self.global_commands if guild_id is None else self.guild_commands.get(guild_id, [])
        )
        old_ids = {(c["name"], c.get("type", 1)): c["id"] for c in previous}
        stored = []
        for command in payload:
            key = (command["name"], command.get("type", 1))
            item: dict[str, Any] = {
                "id": old_ids.get(key) or str(self.snowflake()),
                "application_id": str(self.application_id),
                "version": str(self.snowflake()),
                "type": command.get("type", 1),
                "name": command["name"],
                "description": command.get("description") or "",
                "options": command.get("options") or [],
                "default_member_permissions": _str_or_none(
                    command.get("default_member_permissions")
                ),
                "dm_permission": command.get("dm_permission", True),
                "contexts": command.get("contexts"),
                "integration_types": command.get("integration_types") or [0],
                "nsfw": bool(command.get("nsfw") or False),
                "name_localizations": command.get("name_localizations"),
                "description_localizations": command.get("description_localizations"),
            }
            if guild_id is not None:
                item["guild_id"] = str(guild_id)
            stored.append(item)
        if guild_id is None:
            self.global_commands = stored
        else:
            self.guild_commands[guild_id] = stored
        return stored

    def find_command(
        self, name: str, guild_id: int | None, command_type: int = 1
    ) -> dict[str, Any] | None:
        """The registered command a user in ``guild_id`` would invoke (guild ones shadow global)."""
        candidates = list(self.guild_commands.get(guild_id, [])) if guild_id else []
        candidates += self.global_commands
        for command in candidates:
            if command["name"] == name and command.get("type", 1) == command_type:
                return command
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _echo_components(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Components as Discord echoes them (buttons gain nothing we need; copy defensively)."""
    return [dict(c) for c in components]
