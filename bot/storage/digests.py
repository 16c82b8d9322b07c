"""Digest records: the exactly-once ledger of each guild's daily post and the papers it showed.

A digest goes ``pending → sending → sent | empty | failed``. :meth:`DigestRepository.begin` is
the only way into ``sending`` and is a compare-and-swap, so two schedulers (or a restart racing
a late job) cannot both claim the same guild and day. While sending, the caller records every
Discord message id right after Discord confirms it (:meth:`DigestRepository.add_message`),
which also refreshes ``heartbeat_at``.

After a crash the row is left in ``sending``. The rule for it: a ``sending`` row whose
heartbeat is older than ``stale_after`` (default 10 minutes, far longer than a send takes) is
considered abandoned and may be claimed again (up to ``max_attempts`` claims in all); the
claimer gets the record with the message ids already sent and resumes after the last one, so
nothing already posted is posted again. A fresher ``sending`` row belongs to a live sender and
``begin`` returns None; a sender calls ``heartbeat`` (every minute) while it works, so a send
held up by a long rate limit is never taken for a dead one. At start a bot may call
:meth:`DigestRepository.release_abandoned` with its start time: a ``sending`` row last heard of
before that *and* more than ``ABANDONED_AFTER`` ago (two missed heartbeats) was left by a dead
process and is resumed at once, while the old process of an overlapping deploy, still beating,
keeps its digest.

The one message that can repeat is one Discord accepted in the instant before the process died
and before its id was recorded. A message ``nonce`` with ``enforce_nonce`` narrows that too, but
Discord only remembers nonces for a few minutes, so it helps fast restarts only.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.core.errors import StorageError
from bot.core.models import DigestState
from bot.storage.dialect import aware, chunked, insert_for, utcnow
from bot.storage.engine import Database
from bot.storage.tables import digest_papers, digests

log = logging.getLogger(__name__)

# The states as the column stores them (plain strings: the same bound values on every driver).
PENDING, SENDING, SENT, EMPTY, FAILED = (
    DigestState.PENDING.value,
    DigestState.SENDING.value,
    DigestState.SENT.value,
    DigestState.EMPTY.value,
    DigestState.FAILED.value,
)
FINISHED_STATUSES = (SENT, EMPTY, FAILED)
DONE_STATUSES = (SENT, EMPTY)  # never claimed again
# How long a sender may go without a heartbeat (it beats every minute) before a restart takes
# its digest over.
ABANDONED_AFTER = dt.timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """One guild's digest for one day, as recorded."""

    id: int
    guild_id: int
    digest_date: dt.date
    status: str  # pending | sending | sent | empty | failed
    attempts: int
    started_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    message_ids: tuple[int, ...]
    paper_count: int
    owner: str | None = None  # host/boot/pid/start of the claiming process
    takeovers: int = 0
    alerted_at: dt.datetime | None = None

    @property
    def done(self) -> bool:
        """Sent, or deliberately empty: never to be posted again."""
        return self.status in DONE_STATUSES

    @property
    def resuming(self) -> bool:
        """An earlier attempt already posted some messages; continue after the last one."""
        return bool(self.message_ids)


class DigestRepository:
    """Claims, progress and outcome of daily digests, and which papers each guild was shown."""

    def __init__(
        self,
        db: Database,
        *,
        stale_after: dt.timedelta = dt.timedelta(minutes=10),
        max_attempts: int = 5,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._db = db
        self.stale_after = stale_after
        self.max_attempts = max_attempts
        self._clock = clock

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        return aware(self._clock() if now is None else now, "now")

    async def plan(self, guild_id: int, date: dt.date) -> DigestRecord:
        """Make sure a record exists for the day (``pending`` if new) and return it."""
        stmt = insert_for(self._db, digests).values(guild_id=guild_id, digest_date=date)
        async with self._db.write() as conn:
            await conn.execute(stmt.on_conflict_do_nothing())
            record = await _fetch(conn, guild_id, date)
        assert record is not None  # just inserted or already there, in this transaction
        return record

    async def begin(
        self,
        guild_id: int,
        date: dt.date,
        *,
        now: dt.datetime | None = None,
        owner: str | None = None,
    ) -> DigestRecord | None:
        """Claim the day's digest for sending, or None if it must not be sent now.

        Claimable: no record yet, ``pending``, or — while attempts are left — ``failed`` or a
        ``sending`` gone stale (see the module docstring). Never: ``sent``, ``empty``, a live
        ``sending``; and nothing after ``max_attempts`` (a send that crashes the bot each time
        must not loop forever).
        """
        claimed = await self.claim(guild_id, date, now=now, owner=owner)
        return None if claimed is None else claimed[0]

    async def claim(
        self,
        guild_id: int,
        date: dt.date,
        *,
        papers: Sequence[str] = (),
        now: dt.datetime | None = None,
        owner: str | None = None,
    ) -> tuple[DigestRecord, list[str]] | None:
        """:meth:`begin`, and the digest's papers, in one write transaction.

        Returns the claimed record and the papers it carries: those an earlier attempt planned
        (it may have posted some), else ``papers``, recorded now in rank order. None when the
        digest must not be sent now. One transaction for both keeps a fan-out of thousands of
        digests to a few writes each.
        """
        now = self._now(now)
        claim = {
            "status": SENDING,
            "owner": owner,
            "started_at": now,
            "heartbeat_at": now,
            "finished_at": None,
            "error": None,
        }
        async with self._db.write() as conn:
            inserted = await conn.execute(
                insert_for(self._db, digests)
                .values(guild_id=guild_id, digest_date=date, attempts=1, **claim)
                .on_conflict_do_nothing()
            )
            if not inserted.rowcount:
                stale = or_(
                    digests.c.heartbeat_at.is_(None),
                    digests.c.heartbeat_at < now - self.stale_after,
                )
                claimed = await conn.execute(
                    update(digests)
                    .where(
                        digests.c.guild_id == guild_id,
                        digests.c.digest_date == date,
                        or_(
                            digests.c.status == PENDING,
                            and_(
                                digests.c.status == FAILED,
                                digests.c.attempts < self.max_attempts,
                            ),
                            and_(
                                digests.c.status == SENDING,
                                stale,
                                digests.c.attempts < self.max_attempts,
                            ),
                        ),
                    )
                    .values(attempts=digests.c.attempts + 1, **claim)
                )
                if not claimed.rowcount:
                    return None
            record = await _fetch(conn, guild_id, date)
            assert record is not None
            planned = [] if inserted.rowcount else await _planned(conn, record.id)
            if not planned and papers:
                planned = list(dict.fromkeys(papers))
                await _record_papers(self._db, conn, record.id, guild_id, planned, now)
        if record.attempts > 1:
            log.info(
                "digest %s for guild %s on %s claimed again (attempt %d, %d messages already sent)",
                record.id,
                guild_id,
                date,
                record.attempts,
                len(record.message_ids),
            )
        return record, planned

    async def add_message(
        self, digest_id: int, message_id: int, *, now: dt.datetime | None = None
    ) -> None:
        """Record a message Discord confirmed as sent (and that the sender is alive)."""
        now = self._now(now)
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    select(digests.c.message_ids).where(digests.c.id == digest_id).with_for_update()
                )
            ).first()
            if row is None:
                raise StorageError(f"no digest with id {digest_id}")
            ids = list(row.message_ids)
            if message_id not in ids:
                ids.append(message_id)
            await conn.execute(
                update(digests)
                .where(digests.c.id == digest_id)
                .values(message_ids=ids, heartbeat_at=now)
            )

    async def release_abandoned(
        self,
        before: dt.datetime,
        *,
        now: dt.datetime | None = None,
        quiet_for: dt.timedelta = ABANDONED_AFTER,
    ) -> int:
        """Make ``sending`` rows last heard of before ``before`` and at least ``quiet_for``
        before ``now`` claimable now; returns how many.

        Called at start with the process's start time: such rows belong to a process that
        died. One still beating (the old process of an overlapping deploy, a send waiting out a
        rate limit) refreshed its heartbeat less than ``quiet_for`` ago and is left alone.
        """
        cutoff = min(aware(before, "before"), self._now(now) - quiet_for)
        async with self._db.write() as conn:
            result = await conn.execute(
                update(digests)
                .where(
                    digests.c.status == SENDING,
                    digests.c.heartbeat_at < cutoff,
                )
                .values(heartbeat_at=None)
            )
        if result.rowcount:
            log.warning("%d digests were left half-sent by a previous run", result.rowcount)
        return int(result.rowcount)

    async def take_over_dead(
        self,
        is_dead: Callable[[str], bool],
        *,
        max_takeovers: int = 20,
    ) -> list[DigestRecord]:
        """Make ``sending`` digests whose owner process is known dead claimable at once.

        ``is_dead(owner)`` answers only for owners it can judge (this host's processes); any
        other claim is respected until it goes stale. A takeover gives back the attempt the dead
        process used (a crash is not the digest's failure), at most ``max_takeovers`` times, so
        a digest that kills the bot every time still ends.
        """
        async with self._db.write() as conn:
            rows = (
                await conn.execute(
                    select(digests)
                    .where(digests.c.status == SENDING, digests.c.owner.is_not(None))
                    # Oldest claim first, on every backend (no implicit rowid order).
                    .order_by(digests.c.id)
                )
            ).all()
            dead = [row for row in rows if is_dead(row.owner)]
            for row in dead:
                refund = 1 if row.takeovers < max_takeovers and row.attempts > 0 else 0
                await conn.execute(
                    update(digests)
                    .where(digests.c.id == row.id, digests.c.status == SENDING)
                    .values(
                        heartbeat_at=None,
                        attempts=digests.c.attempts - refund,
                        takeovers=digests.c.takeovers + 1,
                    )
                )
            released = [await _fetch_id(conn, row.id) for row in dead]
        for record in released:
            log.warning(
                "digest %s of guild %s (%s) was left half-sent by process %s, which is gone: "
                "resuming it now",
                record.id,
                record.guild_id,
                record.digest_date,
                record.owner,
            )
        return released

    async def exhausted(self, *, now: dt.datetime | None = None) -> list[DigestRecord]:
        """Digests that can never be claimed again but were never finished: out of attempts
        while ``sending`` and stale. Marked failed here, so none is abandoned in silence."""
        now = self._now(now)
        stale = or_(
            digests.c.heartbeat_at.is_(None), digests.c.heartbeat_at < now - self.stale_after
        )
        async with self._db.write() as conn:
            rows = (
                await conn.execute(
                    select(digests.c.id)
                    .where(
                        digests.c.status == SENDING,
                        stale,
                        digests.c.attempts >= self.max_attempts,
                    )
                    .order_by(digests.c.id)
                )
            ).all()
            ids = [row.id for row in rows]
            if ids:
                await conn.execute(
                    update(digests)
                    .where(digests.c.id.in_(ids))
                    .values(
                        status=FAILED,
                        finished_at=now,
                        error=f"abandoned after {self.max_attempts} attempts",
                    )
                )
            return [await _fetch_id(conn, digest_id) for digest_id in ids]

    async def mark_alerted(self, digest_id: int, *, now: dt.datetime | None = None) -> bool:
        """Record that moderators were told; False if they already were (tell them once)."""
        async with self._db.write() as conn:
            result = await conn.execute(
                update(digests)
                .where(digests.c.id == digest_id, digests.c.alerted_at.is_(None))
                .values(alerted_at=self._now(now))
            )
        return bool(result.rowcount)

    async def heartbeat(self, digest_id: int, *, now: dt.datetime | None = None) -> bool:
        """Tell others this send is alive (for long work between messages). False when the
        digest is no longer being sent (finished meanwhile): nothing left to keep alive."""
        async with self._db.write() as conn:
            result = await conn.execute(
                update(digests)
                .where(digests.c.id == digest_id, digests.c.status == SENDING)
                .values(heartbeat_at=self._now(now))
            )
        return bool(result.rowcount)

    async def finish(
        self,
        digest_id: int,
        status: str,
        error: str | None = None,
        paper_count: int = 0,
        *,
        message_ids: Sequence[int] | None = None,
        now: dt.datetime | None = None,
    ) -> DigestRecord:
        """Record the outcome: ``sent``, ``empty`` (nothing to post) or ``failed``.

        ``message_ids``: every message of the digest, when the last one is recorded with the
        outcome (one write instead of two; a crash before it is reconciled like any other)."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"a digest finishes as one of {FINISHED_STATUSES}, not {status!r}")
        now = self._now(now)
        values: dict[str, Any] = {
            "status": status,
            "error": error,
            "paper_count": paper_count,
            "finished_at": now,
            "heartbeat_at": now,
        }
        if message_ids is not None:
            values["message_ids"] = list(dict.fromkeys(message_ids))
        async with self._db.write() as conn:
            result = await conn.execute(
                update(digests).where(digests.c.id == digest_id).values(**values)
            )
            if not result.rowcount:
                raise StorageError(f"no digest with id {digest_id}")
            return await _fetch_id(conn, digest_id)

    async def get(self, guild_id: int, date: dt.date) -> DigestRecord | None:
        async with self._db.read() as conn:
            return await _fetch(conn, guild_id, date)

    async def latest(self, guild_id: int) -> DigestRecord | None:
        """The guild's most recent digest by date, whatever its status."""
        stmt = (
            select(digests)
            .where(digests.c.guild_id == guild_id)
            .order_by(digests.c.digest_date.desc())
            .limit(1)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _record(row)

    async def record_papers(
        self, digest_id: int, guild_id: int, arxiv_ids: Iterable[str], at: dt.datetime
    ) -> None:
        """Remember which papers a digest showed, in rank order (idempotent on resume)."""
        async with self._db.write() as conn:
            await _record_papers(
                self._db, conn, digest_id, guild_id, dict.fromkeys(arxiv_ids), aware(at, "at")
            )

    async def planned(self, digest_id: int) -> list[str]:
        """The papers a digest recorded before its first message, in rank order."""
        async with self._db.read() as conn:
            return await _planned(conn, digest_id)

    async def states(self, dates: Iterable[dt.date]) -> dict[tuple[int, dt.date], str]:
        """The status of every guild's digest on ``dates``, in one query (the sweep asks for
        thousands of guilds at once)."""
        days = sorted(set(dates))
        if not days:
            return {}
        stmt = select(digests.c.guild_id, digests.c.digest_date, digests.c.status).where(
            digests.c.digest_date.in_(days)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return {(row.guild_id, row.digest_date): row.status for row in rows}

    async def recently_posted(self, guild_id: int, since: dt.datetime) -> set[str]:
        """Papers shown to the guild at or after ``since`` (to avoid repeating them)."""
        return set(await self.shown(guild_id, since))

    async def shown(self, guild_id: int, since: dt.datetime) -> dict[str, dt.datetime]:
        """Papers shown to the guild at or after ``since``, with when (the latest time).

        Only digests that members saw count: ``sent`` ones, or ones with a message recorded
        (posted in part, then failed for good). A digest that failed before its first message
        only *planned* its papers; they stay eligible.
        """
        stmt = (
            select(
                digest_papers.c.arxiv_id,
                digest_papers.c.posted_at,
                digests.c.status,
                digests.c.message_ids,
            )
            .join(digests, digests.c.id == digest_papers.c.digest_id)
            .where(
                digest_papers.c.guild_id == guild_id,
                digest_papers.c.posted_at >= aware(since, "since"),
            )
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        shown: dict[str, dt.datetime] = {}
        for row in rows:
            if row.status == SENT or row.message_ids:
                at = aware(row.posted_at, "posted_at")
                shown[row.arxiv_id] = max(at, shown.get(row.arxiv_id, at))
        return shown


async def _planned(conn: AsyncConnection, digest_id: int) -> list[str]:
    stmt = (
        select(digest_papers.c.arxiv_id)
        .where(digest_papers.c.digest_id == digest_id)
        .order_by(digest_papers.c.rank)
    )
    return list((await conn.execute(stmt)).scalars())


async def _record_papers(
    db: Database,
    conn: AsyncConnection,
    digest_id: int,
    guild_id: int,
    arxiv_ids: Iterable[str],
    at: dt.datetime,
) -> None:
    rows = [
        {
            "digest_id": digest_id,
            "guild_id": guild_id,
            "arxiv_id": arxiv_id,
            "rank": rank,
            "posted_at": at,
        }
        for rank, arxiv_id in enumerate(arxiv_ids, start=1)
    ]
    for batch in chunked(rows):
        await conn.execute(insert_for(db, digest_papers).on_conflict_do_nothing(), batch)


async def _fetch(conn: AsyncConnection, guild_id: int, date: dt.date) -> DigestRecord | None:
    stmt = select(digests).where(digests.c.guild_id == guild_id, digests.c.digest_date == date)
    row = (await conn.execute(stmt)).first()
    return None if row is None else _record(row)


async def _fetch_id(conn: AsyncConnection, digest_id: int) -> DigestRecord:
    row = (await conn.execute(select(digests).where(digests.c.id == digest_id))).first()
    if row is None:
        raise StorageError(f"no digest with id {digest_id}")
    return _record(row)


def _record(row: Row[Any]) -> DigestRecord:
    return DigestRecord(
        id=row.id,
        guild_id=row.guild_id,
        digest_date=row.digest_date,
        status=row.status,
        attempts=row.attempts,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
        error=row.error,
        message_ids=tuple(int(i) for i in row.message_ids),
        paper_count=row.paper_count,
        owner=row.owner,
        takeovers=row.takeovers,
        alerted_at=row.alerted_at,
    )
