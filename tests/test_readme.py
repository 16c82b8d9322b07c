"""README.md tells operators what they need: the sections issue 10 asked for, setup steps in an
order that works, and no command or setting it names that the code lacks."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bot.cli import build_parser
from bot.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")


def sections() -> list[str]:
    return re.findall(r"^#{2,3} (.+)$", README, flags=re.MULTILINE)


def test_the_operators_sections_are_there() -> None:
    for title in (
        "Run it as a service",
        "Upgrade",
        "Back up and restore",
        "Logs",
        "The data directory",
        "How fast the database grows",
        "Health checks and metrics",
        "Public archive",
        "Scaling out",
    ):
        assert title in sections(), title


def test_setup_starts_the_bot_before_configuring_it_with_slash_commands() -> None:
    owners = README.split("## For server owners", 1)[1].split("### Command reference", 1)[0]
    steps = re.findall(r"^\d+\. \*\*(.+?)\*\*", owners, flags=re.MULTILINE)
    assert steps.index("Start the bot.") < steps.index("Set the channel, time and categories.")
    start = owners.index("**Start the bot.**")
    assert owners.index("/digest channel") > start


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(
        action.choices
        for action in parser._actions  # argparse keeps its subcommands there
        if isinstance(action, argparse._SubParsersAction)
    )


def test_every_command_in_the_command_table_exists() -> None:
    table = README.split("## Command line", 1)[1].split("\n\n", 2)[1]
    commands = re.findall(r"^\| `hotpapers ([a-z]+)(?: ([a-z]+))?", table, flags=re.MULTILINE)
    known = _subcommands(build_parser())
    for command, sub in commands:
        assert command in known, command
        if command == "db":
            assert sub in _subcommands(known["db"]), sub
    assert {c for c, _ in commands} >= {"fetch", "digest", "paper", "db", "demo", "run", "web"}


def test_settings_named_in_the_readme_exist() -> None:
    named = set(re.findall(r"`((?:storage|web|scheduler|discord|digest)\.[a-z_]+)`", README))
    assert named, "the README names settings"
    for dotted in named:
        section, key = dotted.split(".")
        assert key in type(getattr(Settings(), section)).model_fields, dotted
