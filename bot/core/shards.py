"""Discord sharding: the shard a guild's events come from, and the guilds a process serves.

Discord routes every event of a guild to the gateway sessions of the shard
``(guild_id >> 22) % shard_count``, interactions included. A process that connects some of the
shards (``discord.shard_ids`` of ``discord.shard_count``) schedules and posts the digests of
those shards' guilds only; the processes running the other shards post the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's sharding formula: the shard whose sessions receive ``guild_id``'s events."""
    if shard_count < 1:
        raise ValueError(f"a shard count is at least 1, not {shard_count}")
    return (guild_id >> 22) % shard_count


def check_shards(count: int | None, ids: Iterable[int] | None) -> tuple[int, ...] | None:
    """``ids`` sorted, or ``ValueError`` saying what is wrong with the pair (in words that
    name ``shard_count`` and ``shard_ids``, as the settings and the CLI both call them)."""
    if count is not None and count < 1:
        raise ValueError(f"shard_count must be at least 1, not {count}")
    if ids is None:
        return None
    given = list(ids)
    if count is None:
        raise ValueError("shard_ids need shard_count: the number of shards they are ids of")
    if not given:
        raise ValueError("shard_ids is empty: list at least one shard, or leave it out for all")
    repeated = sorted({i for i in given if given.count(i) > 1})
    if repeated:
        raise ValueError(f"shard_ids lists shard {repeated[0]} more than once")
    outside = [i for i in given if not 0 <= i < count]
    if outside:
        raise ValueError(
            f"shard {outside[0]} is not a shard of shard_count {count} (ids run 0 to {count - 1})"
        )
    return tuple(sorted(given))


@dataclass(frozen=True, slots=True)
class Shards:
    """The shards one process connects: every guild (``count`` None: unsharded, or no ``ids``:
    all ``count`` shards in this process), or the guilds of ``ids`` out of ``count``."""

    count: int | None = None
    ids: frozenset[int] | None = None

    @classmethod
    def of(cls, count: int | None, ids: Iterable[int] | None) -> Shards:
        """Checked as :func:`check_shards` does (``ValueError`` when the pair is invalid)."""
        checked = check_shards(count, ids)
        return cls(count, None if checked is None else frozenset(checked))

    @property
    def every_guild(self) -> bool:
        """This process serves every guild: no filtering needed."""
        return self.count is None or self.ids is None or len(self.ids) == self.count

    def owns(self, guild_id: int) -> bool:
        """Whether ``guild_id``'s events (and so its digest) belong to this process."""
        if self.count is None or self.ids is None or len(self.ids) == self.count:
            return True
        return shard_of(guild_id, self.count) in self.ids

    def describe(self) -> str:
        """For the log: ``unsharded``, ``all 4 shards``, ``shards 0, 1 of 4``."""
        if self.count is None:
            return "unsharded"
        if self.ids is None:
            return f"all {self.count} shards"
        listed = ", ".join(str(i) for i in sorted(self.ids))
        return f"shard{'s' if len(self.ids) > 1 else ''} {listed} of {self.count}"
