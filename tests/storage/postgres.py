"""The PostgreSQL test server, now shared by every suite: see ``tests/postgres.py``."""

from __future__ import annotations

from tests.postgres import PostgresServer, run_sync

__all__ = ["PostgresServer", "run_sync"]
