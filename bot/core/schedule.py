"""Local posting times: HH:MM and IANA time zones → the next UTC moment to post."""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import zoneinfo

from bot.core.errors import UserFacingError

COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Seoul",
    "Australia/Sydney",
)


@functools.cache
def _zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


@functools.cache
def _zones_by_lower() -> dict[str, str]:
    return {z.lower(): z for z in _zones()}


def parse_post_time(text: str) -> dt.time:
    """``HH:MM`` in 24-hour time."""
    value = text.strip()
    parts = value.split(":")
    if len(parts) == 2 and all(p.isdigit() for p in parts) and len(parts[1]) == 2:
        hour, minute = int(parts[0]), int(parts[1])
        if 0 <= hour <= 23 and 0 <= minute <= 59:
            return dt.time(hour, minute)
    raise UserFacingError(f"`{value[:20]}` is not a time; use 24-hour HH:MM, e.g. 09:00 or 17:30.")


def validate_timezone(name: str) -> str:
    """The canonical IANA name, case-insensitively, or an error with suggestions."""
    value = name.strip()
    found = _zones_by_lower().get(value.lower())
    if found:
        return found
    close = difflib.get_close_matches(value.lower(), list(_zones_by_lower()), n=3, cutoff=0.6)
    hint = ""
    if close:
        hint = " Did you mean " + ", ".join(f"`{_zones_by_lower()[c]}`" for c in close) + "?"
    raise UserFacingError(f"`{value[:60]}` is not an IANA time zone (e.g. Europe/Paris).{hint}")


def search_timezones(text: str, limit: int = 25) -> list[str]:
    """Autocomplete: common zones first for empty input, then prefix, then substring matches."""
    needle = text.strip().lower()
    if not needle:
        return list(COMMON_ZONES[:limit])
    prefix = [z for z in _zones() if z.lower().startswith(needle)]
    inner = [z for z in _zones() if needle in z.lower() and z not in prefix]
    return (prefix + inner)[:limit]


def next_post_time(now: dt.datetime, post_time: dt.time, timezone: str) -> dt.datetime:
    """The first moment after ``now`` when the local clock reads ``post_time`` (UTC, aware).

    Across a DST gap the post goes out at the first valid local time after it; across a fold,
    at the first occurrence.
    """
    zone = zoneinfo.ZoneInfo(timezone)
    local_now = now.astimezone(zone)
    day = local_now.date()
    for offset in range(3):
        candidate_day = day + dt.timedelta(days=offset)
        naive = dt.datetime.combine(candidate_day, post_time)
        local = naive.replace(tzinfo=zone, fold=0)
        # A time in a spring-forward gap doesn't round-trip; normalise through UTC.
        moment = local.astimezone(dt.UTC)
        if moment > now:
            return moment
    raise AssertionError("unreachable: a local time recurs within three days")  # pragma: no cover


def local_date(moment: dt.datetime, timezone: str) -> dt.date:
    """The calendar date at ``moment`` in ``timezone``."""
    return moment.astimezone(zoneinfo.ZoneInfo(timezone)).date()
