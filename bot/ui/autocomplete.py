"""Autocomplete choices: at most 25, names of 1-100 characters, values of at most 100."""

from __future__ import annotations

from collections.abc import Iterable

from discord import app_commands

from bot.core.schedule import search_timezones
from bot.core.taxonomy import ARCHIVES, search_categories
from bot.ui import limits
from bot.ui.text import clip


def _choice(name: str, value: str) -> app_commands.Choice[str]:
    name = clip(" ".join(name.split()), limits.CHOICE_NAME) or value[: limits.CHOICE_NAME]
    return app_commands.Choice(name=name, value=value[: limits.CHOICE_VALUE])


def paper_choices(pairs: Iterable[tuple[str, str]]) -> list[app_commands.Choice[str]]:
    choices = []
    for arxiv_id, title in pairs:
        suffix = f" ({arxiv_id})"
        choices.append(
            _choice(
                clip(" ".join(title.split()), limits.CHOICE_NAME - len(suffix)) + suffix, arxiv_id
            )
        )
    return choices[: limits.CHOICES]


def category_choices(current: str, *, archives: bool = True) -> list[app_commands.Choice[str]]:
    needle = current.strip().lower()
    found: list[app_commands.Choice[str]] = []
    if archives and needle:
        found += [
            _choice(f"{a} — {name} (whole archive)", a)
            for a, name in ARCHIVES.items()
            if a.lower().startswith(needle) and "." not in needle
        ][:5]
    found += [
        _choice(f"{c.id} — {c.name}", c.id)
        for c in search_categories(current, limit=limits.CHOICES)
    ]
    unique = list({c.value: c for c in found}.values())
    return unique[: limits.CHOICES]


def own_category_choices(categories: Iterable[str], current: str) -> list[app_commands.Choice[str]]:
    needle = current.strip().lower()
    return [_choice(c, c) for c in categories if needle in c.lower()][: limits.CHOICES]


def timezone_choices(current: str) -> list[app_commands.Choice[str]]:
    return [_choice(z, z) for z in search_timezones(current, limit=limits.CHOICES)]
