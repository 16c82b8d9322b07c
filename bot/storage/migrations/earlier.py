"""An earlier revision's module, for a migration that builds on its SQL (a function it patches,
or puts back on downgrade). Revision files cannot import one another by name: their names start
with digits, and Alembic loads them by path."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

VERSIONS = Path(__file__).parent / "versions"


def revision_module(name: str) -> ModuleType:
    """The module of revision ``name`` (``"0010"``), loaded from its file in ``versions/``."""
    path = next(VERSIONS.glob(f"{name}_*.py"))
    spec = importlib.util.spec_from_file_location(f"_hotpapers_revision_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
