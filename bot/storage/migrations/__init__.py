"""Alembic migrations of the hotpapers schema (a package so that env.py ships in the wheel)."""
