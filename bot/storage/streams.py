"""Stream state: the durable cursor of each streaming source and the gaps it could not replay."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from bot.storage.dialect import aware, insert_for
from bot.storage.engine import Database
from bot.storage.tables import stream_gaps, stream_state


@dataclass(frozen=True, slots=True)
class StreamCursor:
    """Where a stream's stored effects end: unix µs, on which instance, saved when."""

    cursor_us: int
    instance: str | None
    updated_at: dt.datetime

    @property
    def moment(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.cursor_us / 1_000_000, dt.UTC)


@dataclass(frozen=True, slots=True)
class StreamGap:
    """A stretch of a stream that was never read (it was older than the stream's lookback)."""

    stream: str
    start: dt.datetime
    end: dt.datetime
    detected_at: dt.datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


class StreamRepository:
    """Cursors (one row per stream, overwritten) and gaps (appended)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def cursor(self, stream: str) -> StreamCursor | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(stream_state).where(stream_state.c.stream == stream))
            ).first()
        if row is None:
            return None
        return StreamCursor(int(row.cursor_us), row.instance, row.updated_at)

    async def save_cursor(
        self, stream: str, cursor_us: int, instance: str | None, now: dt.datetime
    ) -> None:
        row = {
            "stream": stream,
            "cursor_us": int(cursor_us),
            "instance": instance,
            "updated_at": aware(now, "now"),
        }
        stmt = insert_for(self._db, stream_state)
        stmt = stmt.on_conflict_do_update(
            index_elements=[stream_state.c.stream],
            set_={name: stmt.excluded[name] for name in ("cursor_us", "instance", "updated_at")},
        )
        async with self._db.write() as conn:
            await conn.execute(stmt, [row])

    async def record_gap(
        self, stream: str, start: dt.datetime, end: dt.datetime, now: dt.datetime
    ) -> StreamGap:
        gap = StreamGap(stream, aware(start, "start"), aware(end, "end"), aware(now, "now"))
        async with self._db.write() as conn:
            await conn.execute(
                stream_gaps.insert().values(
                    stream=stream,
                    gap_start=gap.start,
                    gap_end=gap.end,
                    detected_at=gap.detected_at,
                )
            )
        return gap

    async def gaps(self, stream: str, since: dt.datetime) -> list[StreamGap]:
        """Gaps detected since ``since``, oldest first."""
        stmt = (
            select(stream_gaps)
            .where(
                stream_gaps.c.stream == stream,
                stream_gaps.c.detected_at >= aware(since, "since"),
            )
            .order_by(stream_gaps.c.detected_at, stream_gaps.c.id)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [StreamGap(r.stream, r.gap_start, r.gap_end, r.detected_at) for r in rows]
