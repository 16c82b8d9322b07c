"""Shared fixtures of the command-line tests: ``main`` run in-process, its output captured."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from bot.cli import main


@dataclass(frozen=True)
class Result:
    """What one ``hotpapers`` command returned and printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``main(argv)`` in a worker thread (it calls asyncio.run)."""

    async def run(*argv: str) -> Result:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
