"""Column types: UTC datetimes, ISO dates, JSON text, NUL-free text and byte-ordered keys on any
dialect."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import DateTime, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

UTC = dt.UTC


def utc_text(moment: dt.datetime) -> str:
    """The fixed-width ISO text SQLite stores, so that text order is time order."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: storage only accepts timezone-aware values")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


NUL = "\x00"


def without_nul(value: Any) -> Any:
    """``value`` with every NUL character removed from its strings (in lists, tuples and dicts
    too, keys included); anything else as it is.

    PostgreSQL's text types cannot hold NUL (asyncpg refuses the value, and the whole write
    fails), SQLite's can. Text from outside (a post, a display name, an abstract) may carry one:
    it is dropped on the way in on every backend, so both store and return the same text.
    """
    if isinstance(value, str):
        return value.replace(NUL, "") if NUL in value else value
    if isinstance(value, list | tuple):
        return type(value)(without_nul(item) for item in value)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


class CleanString(TypeDecorator[str]):
    """``String(length)`` whose values lose their NUL characters (see :func:`without_nul`)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return without_nul(value)


class CleanText(TypeDecorator[str]):
    """``Text`` whose values lose their NUL characters (see :func:`without_nul`)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return without_nul(value)


def key_string(length: int) -> TypeEngine[str]:
    """Identifier text (arXiv ids, post ids, categories) ordered byte by byte on every dialect.

    SQLite compares text with memcmp. PostgreSQL uses the database's collation, and a linguistic
    one (``en_US.UTF-8``) ignores punctuation at first: ``'2503.0' < x < '2503/'`` would then
    miss ``2503.01234``, breaking the prefix ranges of id autocomplete and of an account's posts,
    and "sorted" would not mean code-point order. ``COLLATE "C"`` keeps those ranges exact and
    served by the index (migration 0007 sets it on existing PostgreSQL databases).
    """
    return CleanString(length).with_variant(CleanString(length, collation="C"), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime: ISO-8601 text on SQLite, ``timestamptz`` elsewhere.

    Naive datetimes are refused on the way in (they are always a bug here) and every value comes
    back aware in UTC. On SQLite the text is fixed-width (microseconds, ``+00:00``) so that
    comparisons and ``ORDER BY`` on the text agree with time order.
    """

    impl = String(32)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if dialect.name == "sqlite":
            return utc_text(value)
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: storage only accepts aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            # Only rows written by hand can be naive; the column's contract is UTC.
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


class ISODate(TypeDecorator[dt.date]):
    """A calendar date stored as ``YYYY-MM-DD`` text on every dialect."""

    impl = String(10)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise TypeError(f"expected a date, got {type(value).__name__}")
        return value.isoformat()

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.date | None:
        return None if value is None else dt.date.fromisoformat(value)


class JSONText(TypeDecorator[Any]):
    """JSON kept as plain text, with non-ASCII letters left as they are and without NULs.

    ``ensure_ascii=False`` matters: the full-text index reads ``papers.authors`` as text, and an
    escaped ``P\\u00e9rez`` would never match a search for ``perez``. A NUL would be written as
    the escape ``\\u0000``, which PostgreSQL's text takes but its JSON functions refuse: strings
    lose their NULs first, as in every other text column.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(without_nul(value), ensure_ascii=False, separators=(", ", ": "))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)
