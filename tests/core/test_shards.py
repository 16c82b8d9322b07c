"""Discord's sharding formula, the shard settings' rules, and which guilds a process serves."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.shards import Shards, check_shards, shard_of

SNOWFLAKES = st.integers(min_value=0, max_value=(1 << 63) - 1)


def test_the_formula_is_discords() -> None:
    # shard_id = (guild_id >> 22) % num_shards: the snowflake's timestamp part decides.
    guild = 41771983423143937  # the guild of Discord's snowflake docs
    assert guild >> 22 == 9959216934
    assert shard_of(guild, 1) == 0
    assert shard_of(guild, 2) == 0
    assert shard_of(guild, 7) == 2
    assert shard_of(5 << 22, 4) == 1
    assert shard_of((1 << 22) - 1, 2) == 0  # the low 22 bits (worker, process, counter) don't count


def test_a_shard_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of(1 << 22, 0)


@given(SNOWFLAKES, st.integers(min_value=1, max_value=64))
def test_every_guild_is_on_exactly_one_shard(guild_id: int, count: int) -> None:
    owners = [i for i in range(count) if Shards.of(count, [i]).owns(guild_id)]
    assert owners == [shard_of(guild_id, count)]


@given(SNOWFLAKES)
def test_unsharded_and_all_shards_own_every_guild(guild_id: int) -> None:
    assert Shards().owns(guild_id)
    assert Shards.of(None, None).owns(guild_id)
    assert Shards.of(4, None).owns(guild_id)
    assert Shards.of(3, [2, 0, 1]).owns(guild_id)


def test_which_processes_need_filtering() -> None:
    assert Shards.of(None, None).every_guild
    assert Shards.of(4, None).every_guild
    assert Shards.of(2, [0, 1]).every_guild
    assert not Shards.of(2, [1]).every_guild


def test_descriptions_for_the_log() -> None:
    assert Shards().describe() == "unsharded"
    assert Shards.of(4, None).describe() == "all 4 shards"
    assert Shards.of(4, [3, 1]).describe() == "shards 1, 3 of 4"
    assert Shards.of(2, [0]).describe() == "shard 0 of 2"


def test_valid_ids_come_back_sorted() -> None:
    assert check_shards(None, None) is None
    assert check_shards(3, None) is None
    assert check_shards(4, [3, 0]) == (0, 3)


@pytest.mark.parametrize(
    ("count", "ids", "words"),
    [
        (0, None, "shard_count must be at least 1"),
        (None, [0], "shard_ids need shard_count"),
        (2, [], "shard_ids is empty"),
        (2, [0, 0], "lists shard 0 more than once"),
        (2, [0, 2], "shard 2 is not a shard of shard_count 2 (ids run 0 to 1)"),
        (2, [-1], "shard -1 is not a shard of shard_count 2"),
    ],
)
def test_invalid_shard_settings_say_what_is_wrong(
    count: int | None, ids: list[int] | None, words: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        check_shards(count, ids)
    with pytest.raises(ValueError, match=re.escape(words)):
        Shards.of(count, ids)
