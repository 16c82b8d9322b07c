"""The public archive, opt-in per server: whether its sent digests are published on the web, and
the slug of its pages (``/s/<slug>/``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Every existing server starts unpublished: an archive is shown only once a moderator opts in.
# The slug is made at the first opt-in and kept when the archive is turned off, so links come
# back the same when it is turned on again; NULL until then (many NULLs: the unique index allows
# them on both backends).


def upgrade() -> None:
    with op.batch_alter_table("guilds") as batch:
        batch.add_column(
            sa.Column("archive", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("archive_slug", sa.String(64), nullable=True))
        batch.create_unique_constraint(op.f("uq_guilds_archive_slug"), ["archive_slug"])


def downgrade() -> None:
    # On SQLite this rebuilds the table; Database._migrate turns foreign keys off around it so
    # the copy-and-drop doesn't cascade into guild_categories and digests.
    with op.batch_alter_table("guilds") as batch:
        batch.drop_constraint(op.f("uq_guilds_archive_slug"), type_="unique")
        batch.drop_column("archive_slug")
        batch.drop_column("archive")
