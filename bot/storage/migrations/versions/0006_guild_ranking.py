"""Ranking per server: ``absolute`` (the seed's threshold on the score) or ``field``
(field-normalised heat).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("guilds") as batch:
        batch.add_column(
            sa.Column("ranking", sa.String(16), nullable=False, server_default="absolute")
        )
        batch.create_check_constraint("ranking", "ranking IN ('absolute', 'field')")


def downgrade() -> None:
    with op.batch_alter_table("guilds") as batch:
        batch.drop_constraint("ranking", type_="check")
        batch.drop_column("ranking")
