"""The one interface every popularity source implements, and the parsing they share."""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable

from bot.core.errors import MalformedResponseError
from bot.core.models import Mention, Window


@runtime_checkable
class PopularitySource(Protocol):
    """Collects the posts that link arXiv papers, created in a time window.

    Implementations batch by window and page (never one request per paper), retry through
    :class:`bot.sources.http.HttpClient`, and raise a :class:`bot.core.errors.SourceError`
    when the service fails or answers with something malformed. ``requests`` counts the HTTP
    requests made so far, for the fetch summary.
    """

    name: str

    @property
    def requests(self) -> int: ...

    async def collect(self, window: Window) -> list[Mention]: ...


def parse_timestamp(value: object, source: str, what: str) -> dt.datetime:
    """An ISO 8601 timestamp from a service's answer, as an aware UTC datetime.

    ``what`` names the field for the error (e.g. "post 123 `created_at`"); anything that is not
    a readable ISO string is a :class:`MalformedResponseError` of ``source``.
    """
    if not isinstance(value, str):
        raise MalformedResponseError(source, f"{what} is missing or not a string")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise MalformedResponseError(source, f"{what} is unreadable: {value!r}") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
