"""Source run records: what each fetch of a popularity source did, for health and summaries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Row

from bot.core.models import Window
from bot.storage.dialect import aware
from bot.storage.engine import Database
from bot.storage.tables import source_runs


@dataclass(frozen=True, slots=True)
class SourceRun:
    """One fetch of one source over one window."""

    id: int
    source: str
    window: Window
    started_at: dt.datetime
    finished_at: dt.datetime
    mentions: int
    requests: int
    error: str | None = None
    # The failure's kind (bot.core.errors.FAILURE_KINDS), safe to show; ``error`` is not.
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def duration(self) -> dt.timedelta:
        return self.finished_at - self.started_at


class RunRepository:
    """Appends source runs and answers "how is each source doing"."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        source: str,
        window: Window,
        started_at: dt.datetime,
        finished_at: dt.datetime,
        mentions: int,
        requests: int,
        error: str | None = None,
        error_kind: str | None = None,
    ) -> SourceRun:
        started_at = aware(started_at, "started_at")
        finished_at = aware(finished_at, "finished_at")
        error_kind = error_kind if error is not None else None
        values = {
            "source": source,
            "window_start": aware(window.start, "window.start"),
            "window_end": aware(window.end, "window.end"),
            "started_at": started_at,
            "finished_at": finished_at,
            "mentions": mentions,
            "requests": requests,
            "error": error,
            "error_kind": error_kind,
        }
        async with self._db.write() as conn:
            result = await conn.execute(
                source_runs.insert().values(values).returning(source_runs.c.id)
            )
            run_id = int(result.scalar_one())
        return SourceRun(
            id=run_id,
            source=source,
            window=window,
            started_at=started_at,
            finished_at=finished_at,
            mentions=mentions,
            requests=requests,
            error=error,
            error_kind=error_kind,
        )

    async def latest_by_source(
        self, *, ok_only: bool = False, overlapping: Window | None = None
    ) -> dict[str, SourceRun]:
        """The most recent run of every source (``ok_only``: the most recent successful one).

        ``overlapping``: only runs whose window shares some time with it (both half-open), so
        that a digest of an old day is judged by the fetches of that day, not by today's.
        """
        ranked = select(
            source_runs,
            func.row_number()
            .over(
                partition_by=source_runs.c.source,
                order_by=(source_runs.c.started_at.desc(), source_runs.c.id.desc()),
            )
            .label("recency"),
        )
        if ok_only:
            ranked = ranked.where(source_runs.c.error.is_(None))
        if overlapping is not None:
            ranked = ranked.where(
                source_runs.c.window_start < aware(overlapping.end, "overlapping.end"),
                source_runs.c.window_end > aware(overlapping.start, "overlapping.start"),
            )
        latest = ranked.subquery()
        stmt = select(latest).where(latest.c.recency == 1).order_by(latest.c.source)
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return {row.source: _run_from_row(row) for row in rows}


def _run_from_row(row: Row[Any]) -> SourceRun:
    return SourceRun(
        id=row.id,
        source=row.source,
        window=Window(row.window_start, row.window_end),
        started_at=row.started_at,
        finished_at=row.finished_at,
        mentions=row.mentions,
        requests=row.requests,
        error=row.error,
        error_kind=row.error_kind,
    )
