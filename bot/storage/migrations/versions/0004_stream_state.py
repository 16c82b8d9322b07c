"""Streaming sources keep a durable cursor and a record of the gaps they could not replay.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_state",
        sa.Column("stream", sa.String(32), nullable=False),
        # Unix microseconds of the last event whose effects are stored (Jetstream's time cursor).
        sa.Column("cursor_us", sa.BigInteger(), nullable=False),
        sa.Column("instance", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("stream", name="pk_stream_state"),
    )
    op.create_table(
        "stream_gaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(32), nullable=False),
        sa.Column("gap_start", UTCDateTime, nullable=False),
        sa.Column("gap_end", UTCDateTime, nullable=False),
        sa.Column("detected_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stream_gaps"),
    )
    op.create_index("ix_stream_gaps_stream_detected_at", "stream_gaps", ["stream", "detected_at"])


def downgrade() -> None:
    op.drop_index("ix_stream_gaps_stream_detected_at", table_name="stream_gaps")
    op.drop_table("stream_gaps")
    op.drop_table("stream_state")
