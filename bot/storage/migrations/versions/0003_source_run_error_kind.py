"""Source runs record the kind of a failure, so members are told it without the service's text.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# NULL for the runs recorded before: their failures are shown with the generic phrase.


def upgrade() -> None:
    with op.batch_alter_table("source_runs") as batch:
        batch.add_column(sa.Column("error_kind", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_runs") as batch:
        batch.drop_column("error_kind")
