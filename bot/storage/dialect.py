"""The few dialect-specific pieces of SQL (upserts) and batching under bound-parameter limits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite

from bot.storage.engine import Database

T = TypeVar("T")

# Well under SQLite's 32766 bound parameters per statement even for IN lists of tuples.
CHUNK = 500


def insert_for(db: Database, table: Table) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT … DO UPDATE / DO NOTHING``.

    SQLite and PostgreSQL spell the upsert the same way and SQLAlchemy gives both the same API
    (``on_conflict_do_update(index_elements=…, set_=…)``, ``.excluded``).
    """
    if db.dialect == "sqlite":
        return sqlite.insert(table)
    if db.dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"upserts are not implemented for {db.dialect}")


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Split ``items`` into lists of at most ``size``."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def aware(moment: dt.datetime, name: str = "datetime") -> dt.datetime:
    """Refuse naive datetimes at the repository boundary, with the argument's name."""
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The default clock of the repositories (tests inject their own)."""
    return dt.datetime.now(dt.UTC)
