"""Leader election: one process at a time runs ingestion and the streams; the others stand by.

Every process of a sharded bot posts its own shards' digests, but ingestion and the Bluesky
consumer must run once, not once per process: they would ask every source N times and follow
the same stream N times. The process holding the leader lock (``storage/leader.py``) runs them.
A follower stands for the lock every ``scheduler.leader_poll_seconds``; the leader checks its
lock as often, and steps down at once when it is gone (its connection lost), stopping both.
A leader that dies lets the lock go with its session, so a follower takes over within a poll of
PostgreSQL noticing (at once for a crash or a SIGKILL, ``KEEPALIVE_BOUND_SECONDS`` for a host
that vanished) and resumes the stream from the cursor saved in the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.storage.leader import LeaderLock

log = logging.getLogger(__name__)

Transition = Callable[[], Awaitable[None]]


class Leadership:
    """This process's standing (leader or follower), kept by polling the leader lock.

    ``on_lead`` runs when this process becomes the leader (start the work), ``on_follow`` when
    it stops being one while running (stop the work). Without an election (SQLite) the process
    leads from the start and :meth:`run` is not needed.
    """

    def __init__(
        self,
        lock: LeaderLock,
        *,
        poll_seconds: float,
        on_lead: Transition,
        on_follow: Transition,
    ) -> None:
        self.lock = lock
        self.poll_seconds = poll_seconds
        self._on_lead = on_lead
        self._on_follow = on_follow
        self._leading = not lock.elected
        self._announced = False  # "follower" said once, until the standing changes
        self._unreachable = False  # the database could not be reached: said once per outage

    @property
    def elected(self) -> bool:
        """Whether processes compete for the leadership (PostgreSQL), or this one simply leads."""
        return self.lock.elected

    @property
    def is_leader(self) -> bool:
        return self._leading

    def describe(self) -> str:
        """``leader`` or ``follower``, for the log and status output."""
        return "leader" if self._leading else "follower"

    async def run(self) -> None:
        """Poll for good: stand for the lock as a follower, check it as the leader. Only
        cancellation ends it; a failing transition is logged and the polling goes on."""
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "leader election: a poll failed; trying again in %g s", self.poll_seconds
                )
            await asyncio.sleep(self.poll_seconds)

    async def step(self) -> None:
        """One poll: a follower tries for the lock; the leader checks it still holds it."""
        if not self.elected:
            return
        if self._leading:
            if await self.lock.holds():
                return
            self._leading = False
            self._announced = True
            log.warning(
                "follower: the leader lock is lost (%s): this process stops ingestion and the "
                "streams, and stands for the lock again every %g s",
                self.lock.error or "its connection is gone",
                self.poll_seconds,
            )
            await self._on_follow()
            return
        if await self.lock.acquire():
            self._leading = True
            self._unreachable = False
            self._announced = False
            log.info("leader: this process runs ingestion and the streams")
            await self._on_lead()
            return
        if self.lock.error is not None:
            if not self._unreachable:
                self._unreachable = True
                log.warning(
                    "follower: cannot stand for the leader lock (%s); trying again every %g s",
                    self.lock.error,
                    self.poll_seconds,
                )
            return
        self._unreachable = False
        if not self._announced:
            self._announced = True
            log.info(
                "follower: another process runs ingestion and the streams; this one takes over "
                "if it stops (checking every %g s)",
                self.poll_seconds,
            )

    async def release(self) -> None:
        """Shutdown: give the lock up (after the work stopped) so a follower takes over now."""
        if self.elected:
            if self._leading:
                log.info("leader: stepping down for shutdown; another process can take over")
            self._leading = False
        await self.lock.release()
