"""Building blocks of the settings that every layer may use: sections, URL and list types.

Source modules declare their own settings models with these (``bot.sources.registry`` collects
them); ``bot.settings`` assembles the whole tree. Nothing here reads a file or the environment.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _url(schemes: tuple[str, ...]) -> Any:
    """A URL setting checked at start: one of ``schemes`` and a host, or a ConfigError."""

    def check(value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme.lower() not in schemes or not parts.hostname:
            allowed = " or ".join(f"{s}://" for s in schemes)
            raise ValueError(f"must be an {allowed} URL with a host")
        return value.strip()

    return AfterValidator(check)


HttpUrl = Annotated[str, _url(("http", "https"))]
WsUrl = Annotated[str, _url(("ws", "wss"))]


def comma_list(value: Any) -> Any:
    # HOTPAPERS_ARXIV__CATEGORIES=cs.LG,cs.CV reads as a list, as a JSON list does.
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("is not a valid JSON list") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Section(BaseModel):
    # No infinity or NaN anywhere: `threshold = 1e400` in a file is a typo, not a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class HttpSettings(Section):
    timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    retries: int = Field(4, ge=0, le=10)  # attempts after the first
    backoff_initial_seconds: float = Field(1.0, ge=0)
    backoff_max_seconds: float = Field(60.0, ge=0)  # also caps how long a Retry-After is honoured
    user_agent: str = "hotpapers/0.1 (+https://github.com/hotpapers/hotpapers)"
