"""Fixtures for storage tests: real SQLite databases (in memory or under tmp_path), migrated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage.engine import Database


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with Database.connect("sqlite+aiosqlite:///:memory:") as database:
        yield database


@pytest.fixture
async def file_db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'hotpapers.db'}") as database:
        yield database
