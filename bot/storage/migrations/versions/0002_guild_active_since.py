"""Guilds remember when they became able to post, so setting a channel late posts nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# NULL for the guilds that exist already: nothing is known of when they became active, and
# they keep the old behaviour (a missed slot in the grace period is still posted) rather than
# lose a digest owed since before the upgrade.


def upgrade() -> None:
    with op.batch_alter_table("guilds") as batch:
        batch.add_column(sa.Column("active_since", UTCDateTime, nullable=True))


def downgrade() -> None:
    # On SQLite this rebuilds the table; Database._migrate turns foreign keys off around it so
    # the copy-and-drop doesn't cascade into guild_categories and digests.
    with op.batch_alter_table("guilds") as batch:
        batch.drop_column("active_since")
