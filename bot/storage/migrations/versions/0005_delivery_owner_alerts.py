"""Delivery that holds: a claim names its owner process, takeovers of dead owners are counted
apart from failed attempts, moderators can name an alert channel, and a notice is sent once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        # host/boot/pid/start of the process that claimed it (NULL: claimed before 0005).
        batch.add_column(sa.Column("owner", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("takeovers", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        # When moderators were told this digest failed for good (a notice goes out once).
        batch.add_column(sa.Column("alerted_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("guilds") as batch:
        batch.add_column(sa.Column("alert_channel_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guilds") as batch:
        batch.drop_column("alert_channel_id")
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("alerted_at")
        batch.drop_column("takeovers")
        batch.drop_column("owner")
