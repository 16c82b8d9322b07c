"""The one hierarchy of domain errors.

Every error a user can cause or an external service can produce is one of these, so the CLI and
the Discord error handler can turn it into one clear line instead of a traceback::

    HotPapersError
    ├── UserFacingError            message is safe to show to a user as-is
    │   ├── InvalidArxivIdError    not an arXiv id or URL
    │   ├── UnknownCategoryError   not in the arXiv taxonomy (carries suggestions)
    │   ├── InvalidDateError       not a YYYY-MM-DD date / bad window
    │   ├── PaperNotFoundError     arXiv has no such paper
    │   └── PermissionDeniedError  the member may not do this
    ├── ConfigError                unreadable or invalid configuration (names the key)
    ├── StorageError               the database failed or is at an unknown schema
    │   └── DatabaseInUseError     another `hotpapers run` holds this SQLite file
    ├── DeliveryError              posting to Discord failed
    │   ├── ChannelGoneError       the channel was deleted (404): pause that guild
    │   ├── MissingPermissionsError the bot may not post there (403)
    │   └── DeliveryUnavailableError Discord kept failing (5xx): retry later
    └── SourceError                an external service failed (after retries)
        ├── SourceUnavailableError timeouts, 5xx, 429 beyond the retry budget
        ├── MalformedResponseError the answer could not be parsed
        ├── SourceAuthError        the service wants credentials the bot lacks
        └── ArxivApiError          arXiv answered with an error entry
"""

from __future__ import annotations

from collections.abc import Sequence


class HotPapersError(Exception):
    """Base of every error hotpapers raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserFacingError(HotPapersError):
    """An error whose message is written for the user and safe to show verbatim."""


class InvalidArxivIdError(UserFacingError):
    """The text is not an arXiv identifier or an arXiv URL."""


class UnknownCategoryError(UserFacingError):
    """The category is not in the arXiv taxonomy."""

    def __init__(self, category: str, suggestions: Sequence[str] = ()) -> None:
        self.category = category
        self.suggestions = tuple(suggestions)
        hint = (
            f" Did you mean {', '.join(f'`{s}`' for s in self.suggestions)}?" if suggestions else ""
        )
        super().__init__(f"Unknown arXiv category `{category}`.{hint}")


class InvalidDateError(UserFacingError):
    """A date or time window that cannot be used."""


class PaperNotFoundError(UserFacingError):
    """arXiv has no paper with this identifier."""


class PermissionDeniedError(UserFacingError):
    """The member lacks the permission a command needs."""


class ConfigError(HotPapersError):
    """The configuration cannot be read or holds an invalid value."""


class StorageError(HotPapersError):
    """The database failed or is not at a known schema."""


class DatabaseInUseError(StorageError):
    """Another ``hotpapers run`` holds this SQLite file (SQLite serves one bot process)."""

    def __init__(self, database: str, pid: int | None) -> None:
        self.database = database
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(
            f"database {database} is in use by another hotpapers process ({holder}): "
            "SQLite serves one process; use PostgreSQL to run several (README: Scaling out)"
        )


class SourceError(HotPapersError):
    """An external service failed after the retry budget was spent.

    ``message`` names the source (``"hackernews: answer is not JSON"``) so that it reads on its
    own in a log or a CLI error line; ``detail`` is the same text without that prefix, for
    places that already show the source's name beside it (summaries, run records). Both may
    quote the service's answer: they are for operators. ``kind`` is a fixed word for the class
    of failure (see :data:`FAILURE_KINDS`), stored beside the detail, from which members are
    told what went wrong without seeing any of the service's text.
    """

    kind = "failed"

    def __init__(self, source: str, message: str, *, kind: str | None = None) -> None:
        self.source = source
        self.detail = message
        if kind is not None:
            self.kind = kind
        super().__init__(f"{source}: {message}")


class SourceUnavailableError(SourceError):
    """Timeouts, 5xx or 429 answers outlasted the retries."""

    kind = "unreachable"


class MalformedResponseError(SourceError):
    """The service answered with something that could not be parsed."""

    kind = "malformed"


class SourceAuthError(SourceError):
    """The service wants credentials the bot does not have (or rejected the ones it has)."""

    kind = "auth"


class ArxivApiError(SourceError):
    """arXiv answered with an error entry instead of papers."""

    kind = "refused"

    def __init__(self, message: str) -> None:
        super().__init__("arxiv", message)


# A source failure's kind → what members read after the source's name ("X timed out").
FAILURE_KINDS = {
    "failed": "is failing",
    "unreachable": "could not be reached",
    "timeout": "timed out",
    "malformed": "sent a malformed answer",
    "refused": "answered with an error",
    "auth": "needs a login the bot is not configured with",
}


def http_kind(status: int) -> str:
    """The kind of a failure that is an HTTP status (``"http 503"``)."""
    return f"http {status}"


def failure_phrase(kind: str | None) -> str:
    """What members are told about a source failure of ``kind``: a fixed phrase, never text
    that came from the service (an unknown or missing kind is the generic one)."""
    if kind is not None and kind.startswith("http "):
        status = kind.removeprefix("http ")
        if len(status) == 3 and status.isdigit():
            return f"answered HTTP {status}"
    return FAILURE_KINDS.get(kind or "failed", FAILURE_KINDS["failed"])


class DeliveryError(HotPapersError):
    """Posting to a Discord channel failed."""


class ChannelGoneError(DeliveryError):
    """The digest channel no longer exists (HTTP 404): the guild's digest is paused."""


class MissingPermissionsError(DeliveryError):
    """The bot lacks permissions in the channel (HTTP 403)."""

    def __init__(self, message: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


class DeliveryUnavailableError(DeliveryError):
    """Discord kept failing (5xx, timeouts) after retries: try again later."""
