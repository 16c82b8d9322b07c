"""GuildRepository: defaults, validated updates, categories, active guilds, deletion."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.storage.digests import DigestRepository
from bot.storage.engine import Database
from bot.storage.guilds import GuildConfig, GuildRepository
from tests.storage.factories import T0

GUILD = 123456789012345678  # snowflakes do not fit 32 bits


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def repo(db: Database, clock: Clock) -> GuildRepository:
    return GuildRepository(db, clock=clock)


async def test_unknown_guild_is_none_until_ensured(repo: GuildRepository) -> None:
    assert await repo.get(GUILD) is None
    config = await repo.ensure(GUILD)
    assert config == GuildConfig(
        guild_id=GUILD,
        channel_id=None,
        post_time="09:00",
        timezone="UTC",
        top_n=10,
        threshold=None,
        style="thread",
        empty_day="message",
        paused=False,
        pause_reason=None,
        created_at=T0,
        updated_at=T0,
        categories=(),
    )
    assert not config.active
    assert await repo.ensure(GUILD) == config
    assert await repo.get(GUILD) == config


async def test_configured_defaults_for_new_guilds(db: Database) -> None:
    repo = GuildRepository(db, defaults={"post_time": "08:15", "timezone": "Asia/Tokyo"})
    config = await repo.ensure(GUILD)
    assert (config.post_time, config.timezone, config.style) == ("08:15", "Asia/Tokyo", "thread")
    with pytest.raises(ValueError, match="post_time"):
        GuildRepository(db, defaults={"post_time": "8am"})


async def test_update_validates_and_stamps(repo: GuildRepository, clock: Clock) -> None:
    await repo.ensure(GUILD)
    clock.now = T0 + dt.timedelta(hours=1)
    config = await repo.update(
        GUILD,
        channel_id=987654321098765432,
        post_time="07:30",
        timezone="Europe/Paris",
        top_n=5,
        threshold=12.5,
        style="compact",
        empty_day="silent",
    )
    assert config.channel_id == 987654321098765432
    assert (config.post_time, config.timezone, config.top_n) == ("07:30", "Europe/Paris", 5)
    assert (config.threshold, config.style, config.empty_day) == (12.5, "compact", "silent")
    assert config.created_at == T0
    assert config.updated_at == clock.now
    assert config.active
    # Back to the global threshold.
    assert (await repo.update(GUILD, threshold=None)).threshold is None


async def test_update_creates_a_missing_guild(repo: GuildRepository) -> None:
    config = await repo.update(GUILD, channel_id=1)
    assert config.channel_id == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("guild_id", 1),
        ("created_at", T0),
        ("nonsense", 1),
        ("post_time", "9:00"),
        ("post_time", "24:00"),
        ("post_time", "09:60"),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "../etc/passwd"),
        ("top_n", 0),
        ("top_n", True),
        ("threshold", -1),
        ("style", "fancy"),
        ("empty_day", "shout"),
        ("paused", "yes"),
        ("channel_id", "123"),
    ],
)
async def test_update_refuses_bad_fields(repo: GuildRepository, field: str, value: object) -> None:
    before = await repo.ensure(GUILD)
    with pytest.raises(ValueError, match=field if field != "nonsense" else "unknown"):
        await repo.update(GUILD, **{field: value})
    assert await repo.get(GUILD) == before


async def test_pause_and_resume(repo: GuildRepository) -> None:
    await repo.update(GUILD, channel_id=1)
    paused = await repo.update(GUILD, paused=True, pause_reason="missing permission")
    assert paused.paused
    assert paused.pause_reason == "missing permission"
    assert not paused.active
    resumed = await repo.update(GUILD, paused=False)
    assert not resumed.paused
    assert resumed.pause_reason is None


async def test_categories(repo: GuildRepository) -> None:
    assert await repo.add_category(GUILD, "cs.LG") is True
    assert await repo.add_category(GUILD, "cs.CL") is True
    assert await repo.add_category(GUILD, "cs.LG") is False
    assert await repo.categories(GUILD) == ["cs.CL", "cs.LG"]
    config = await repo.get(GUILD)
    assert config is not None
    assert config.categories == ("cs.CL", "cs.LG")
    assert await repo.remove_category(GUILD, "cs.LG") is True
    assert await repo.remove_category(GUILD, "cs.LG") is False
    assert await repo.categories(GUILD) == ["cs.CL"]
    assert await repo.categories(42) == []


async def test_active_and_all(repo: GuildRepository) -> None:
    await repo.update(1, channel_id=10)
    await repo.update(2, channel_id=20, paused=True)
    await repo.ensure(3)  # no channel yet
    await repo.update(4, channel_id=40)
    await repo.add_category(4, "quant-ph")
    active = await repo.active()
    assert [g.guild_id for g in active] == [1, 4]
    assert active[1].categories == ("quant-ph",)
    assert [g.guild_id for g in await repo.all()] == [1, 2, 3, 4]


async def test_delete_cascades(repo: GuildRepository, db: Database) -> None:
    await repo.add_category(GUILD, "cs.LG")
    digests = DigestRepository(db)
    record = await digests.begin(GUILD, dt.date(2025, 3, 1), now=T0)
    assert record is not None
    await digests.record_papers(record.id, GUILD, ["2503.00001"], T0)
    assert await repo.delete(GUILD) is True
    assert await repo.delete(GUILD) is False
    assert await repo.get(GUILD) is None
    assert await repo.categories(GUILD) == []
    assert await digests.get(GUILD, dt.date(2025, 3, 1)) is None
    assert await digests.recently_posted(GUILD, T0 - dt.timedelta(days=1)) == set()
