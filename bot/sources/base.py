"""The one interface every popularity source implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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
