"""Public archive storage: each server's opt-in and slug, and the digests it sent, for the web.

What the archive shows of a server is what the bot really posted there: its ``sent`` digests
and the papers each recorded before its first message (``digest_papers``), in rank order. A
server is found by its slug only while its archive is on; otherwise it is as unknown as a slug
that never existed.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.core.errors import StorageError
from bot.core.models import DigestState
from bot.storage.dialect import aware, insert_for, utcnow
from bot.storage.engine import Database
from bot.storage.tables import digest_papers, digests, guilds, mentions

log = logging.getLogger(__name__)

SENT = DigestState.SENT.value
# The longest slug stored (the column holds 64): room for a "-NNN" suffix after the name.
SLUG_MAX = 48
# Lowercase ASCII words joined by single hyphens: safe in a URL and in a LIKE pattern as it is.
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Two servers opting in at the same instant with the same name race for one slug (PostgreSQL:
# separate transactions); the loser tries the next suffix.
_SLUG_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ArchiveState:
    """A server's public archive: on or off, and its slug (None until the first opt-in)."""

    guild_id: int
    enabled: bool
    slug: str | None


@dataclass(frozen=True, slots=True)
class ArchivedDigest:
    """A digest the bot sent to a server, as the archive lists it.

    ``chosen_at``: when its papers were chosen (the end of the 24 hours they were ranked over);
    ``papers``: their arXiv ids in rank order (empty in listings, which don't need them).
    """

    day: dt.date
    paper_count: int
    finished_at: dt.datetime | None
    chosen_at: dt.datetime | None = None
    papers: tuple[str, ...] = ()


class ArchiveRepository:
    """Opt-in and slugs of the servers' archives, and the sent digests the pages show."""

    def __init__(self, db: Database, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock

    # --- opt-in -------------------------------------------------------------------------------

    async def state(self, guild_id: int) -> ArchiveState:
        stmt = select(guilds.c.archive, guilds.c.archive_slug).where(guilds.c.guild_id == guild_id)
        async with self._db.read() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return ArchiveState(guild_id, False, None)
        return ArchiveState(guild_id, bool(row.archive), row.archive_slug)

    async def set_enabled(
        self, guild_id: int, enabled: bool, *, slug_base: str | None = None
    ) -> ArchiveState:
        """Turn the server's archive on or off, creating the guild row if it is new.

        The first time it is turned on, its slug is ``slug_base``, or ``slug_base-2``,
        ``-3``… when that is taken (by any server, published or not: a slug is never given to
        another server). Later changes keep the slug.
        """
        if slug_base is not None and (len(slug_base) > SLUG_MAX or not SLUG.match(slug_base)):
            raise ValueError(
                f"slug_base must be 1 to {SLUG_MAX} lowercase letters, digits and single "
                f"hyphens, got {slug_base!r}"
            )
        if enabled and slug_base is None:
            raise ValueError("turning an archive on needs a slug_base (its first slug)")
        for attempt in range(1, _SLUG_ATTEMPTS + 1):
            try:
                return await self._set_enabled(guild_id, enabled, slug_base)
            except StorageError as exc:
                if not isinstance(exc.__cause__, IntegrityError) or attempt == _SLUG_ATTEMPTS:
                    raise
                log.info("guild %s: slug %r taken meanwhile, trying again", guild_id, slug_base)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _set_enabled(
        self, guild_id: int, enabled: bool, slug_base: str | None
    ) -> ArchiveState:
        now = aware(self._clock(), "clock()")
        async with self._db.write() as conn:
            await conn.execute(
                insert_for(self._db, guilds)
                .values(guild_id=guild_id, created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=[guilds.c.guild_id])
            )
            slug = (
                await conn.execute(
                    select(guilds.c.archive_slug).where(guilds.c.guild_id == guild_id)
                )
            ).scalar_one()
            values: dict[str, object] = {"archive": enabled, "updated_at": now}
            if enabled and slug is None and slug_base is not None:
                taken = set(
                    (
                        await conn.execute(
                            select(guilds.c.archive_slug).where(
                                or_(
                                    guilds.c.archive_slug == slug_base,
                                    guilds.c.archive_slug.like(f"{slug_base}-%"),
                                )
                            )
                        )
                    ).scalars()
                )
                slug = _first_free(slug_base, taken)
                values["archive_slug"] = slug
            await conn.execute(update(guilds).where(guilds.c.guild_id == guild_id).values(values))
        return ArchiveState(guild_id, enabled, slug)

    async def published(self, slug: str) -> int | None:
        """The id of the server whose archive is at ``slug``, or None: no such slug, or its
        archive is off (the two look the same from outside)."""
        stmt = select(guilds.c.guild_id).where(
            guilds.c.archive_slug == slug, guilds.c.archive.is_(True)
        )
        async with self._db.read() as conn:
            return (await conn.execute(stmt)).scalar_one_or_none()

    # --- what was sent ------------------------------------------------------------------------

    async def sent(
        self, guild_id: int, *, limit: int, offset: int = 0
    ) -> tuple[list[ArchivedDigest], int]:
        """The server's sent digests, newest first (a page of them), and how many in all."""
        where = and_(digests.c.guild_id == guild_id, digests.c.status == SENT)
        page = (
            select(digests.c.digest_date, digests.c.paper_count, digests.c.finished_at)
            .where(where)
            .order_by(digests.c.digest_date.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self._db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(digests).where(where))
            ).scalar_one()
            rows = (await conn.execute(page)).all()
        return [ArchivedDigest(r.digest_date, r.paper_count, r.finished_at) for r in rows], total

    async def sent_on(self, guild_id: int, day: dt.date) -> ArchivedDigest | None:
        """The server's digest of ``day`` with its papers in rank order, if it was sent."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        digests.c.id,
                        digests.c.digest_date,
                        digests.c.paper_count,
                        digests.c.finished_at,
                    ).where(
                        digests.c.guild_id == guild_id,
                        digests.c.digest_date == day,
                        digests.c.status == SENT,
                    )
                )
            ).first()
            if row is None:
                return None
            papers = (
                await conn.execute(
                    select(digest_papers.c.arxiv_id, digest_papers.c.posted_at)
                    .where(digest_papers.c.digest_id == row.id)
                    .order_by(digest_papers.c.rank)
                )
            ).all()
        chosen = min((aware(p.posted_at, "posted_at") for p in papers), default=None)
        return ArchivedDigest(
            row.digest_date,
            row.paper_count,
            row.finished_at,
            chosen_at=chosen,
            papers=tuple(p.arxiv_id for p in papers),
        )

    async def recent(self, guild_id: int, limit: int) -> list[ArchivedDigest]:
        """The server's ``limit`` latest sent digests with their papers, newest first (its
        feed): two queries whatever the count."""
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        digests.c.id,
                        digests.c.digest_date,
                        digests.c.paper_count,
                        digests.c.finished_at,
                    )
                    .where(digests.c.guild_id == guild_id, digests.c.status == SENT)
                    .order_by(digests.c.digest_date.desc())
                    .limit(limit)
                )
            ).all()
            papers: dict[int, list[tuple[str, dt.datetime]]] = {row.id: [] for row in rows}
            if papers:
                found = await conn.execute(
                    select(
                        digest_papers.c.digest_id,
                        digest_papers.c.arxiv_id,
                        digest_papers.c.posted_at,
                    )
                    .where(digest_papers.c.digest_id.in_(list(papers)))
                    .order_by(digest_papers.c.digest_id, digest_papers.c.rank)
                )
                for digest_id, arxiv_id, posted_at in found:
                    papers[digest_id].append((arxiv_id, aware(posted_at, "posted_at")))
        return [
            ArchivedDigest(
                row.digest_date,
                row.paper_count,
                row.finished_at,
                chosen_at=min((at for _id, at in papers[row.id]), default=None),
                papers=tuple(arxiv_id for arxiv_id, _at in papers[row.id]),
            )
            for row in rows
        ]

    async def sent_around(
        self, guild_id: int, day: dt.date
    ) -> tuple[dt.date | None, dt.date | None]:
        """The dates of the server's sent digests just before and just after ``day``."""
        sent = and_(digests.c.guild_id == guild_id, digests.c.status == SENT)
        async with self._db.read() as conn:
            before = (
                await conn.execute(
                    select(func.max(digests.c.digest_date)).where(sent, digests.c.digest_date < day)
                )
            ).scalar_one_or_none()
            after = (
                await conn.execute(
                    select(func.min(digests.c.digest_date)).where(sent, digests.c.digest_date > day)
                )
            ).scalar_one_or_none()
        return before, after

    # --- the global pages ---------------------------------------------------------------------

    async def first_post_at(self) -> dt.datetime | None:
        """When the oldest stored post was made (the global daily pages start that day)."""
        async with self._db.read() as conn:
            # min() keeps the column's type: an aware datetime on every backend.
            return (await conn.execute(select(func.min(mentions.c.created_at)))).scalar()


def _first_free(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"
