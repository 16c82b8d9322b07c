"""Shared test fixtures: where ``shared/`` is, and a clean settings environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``../shared`` beside the repository (CI clones it there), or $HOTPAPERS_SHARED."""
    override = os.environ.get("HOTPAPERS_SHARED")
    path = Path(override) if override else REPO.parent / "shared"
    if not path.is_dir():
        pytest.fail(f"shared/ material not found at {path}; set HOTPAPERS_SHARED")
    return path


@pytest.fixture
def shared() -> Path:
    return shared_dir()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's config, tokens or overrides."""
    for key in list(os.environ):
        if key.startswith("HOTPAPERS_") and key != "HOTPAPERS_SHARED":
            monkeypatch.delenv(key)
    for key in ("DISCORD_TOKEN", "X_BEARER_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
