"""Alembic environment: runs migrations on the connection that bot.storage.engine hands over."""

from __future__ import annotations

from alembic import context

from bot.storage.tables import metadata

config = context.config


def run_offline() -> None:
    """Emit SQL instead of running it (``alembic upgrade --sql``), for a DBA to review."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or "sqlite://",
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "hotpapers migrations run through bot.storage.engine.Database.upgrade() "
            "(or `hotpapers db upgrade`), which passes the connection in config.attributes"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
