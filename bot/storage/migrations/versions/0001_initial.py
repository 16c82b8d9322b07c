"""Initial schema: papers, mentions and their metrics, source runs, guilds, digests, FTS5 index.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bot.storage.types import ISODate, JSONText, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Two external-content FTS5 indexes over papers: they store no second copy of the text (bm25
# reads it from papers by rowid = papers.id) and triggers keep them in sync.
#  - papers_fts (title, authors, abstract): full-text search, ranked by weighted bm25.
#  - papers_title_fts (title, authors) with prefix indexes: autocomplete as the user types.
# Prefix indexes on abstracts would more than double the build time and add half again to the
# database for no use (nobody autocompletes into an abstract), hence the second, small index.
# The UPDATE trigger skips rows whose indexed text did not change, so re-fetching is cheap.
_TOKENIZE = "tokenize='unicode61 remove_diacritics 2'"
FTS_DDL = (
    f"""
    CREATE VIRTUAL TABLE papers_fts USING fts5(
        title, authors, abstract,
        content='papers', content_rowid='id', {_TOKENIZE}
    )
    """,
    f"""
    CREATE VIRTUAL TABLE papers_title_fts USING fts5(
        title, authors,
        content='papers', content_rowid='id', {_TOKENIZE}, prefix='2 3 4'
    )
    """,
    """
    CREATE TRIGGER papers_fts_insert AFTER INSERT ON papers BEGIN
        INSERT INTO papers_fts(rowid, title, authors, abstract)
        VALUES (new.id, new.title, new.authors, new.abstract);
        INSERT INTO papers_title_fts(rowid, title, authors)
        VALUES (new.id, new.title, new.authors);
    END
    """,
    """
    CREATE TRIGGER papers_fts_delete AFTER DELETE ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, authors, abstract)
        VALUES ('delete', old.id, old.title, old.authors, old.abstract);
        INSERT INTO papers_title_fts(papers_title_fts, rowid, title, authors)
        VALUES ('delete', old.id, old.title, old.authors);
    END
    """,
    """
    CREATE TRIGGER papers_fts_update AFTER UPDATE OF title, authors, abstract ON papers
    WHEN old.title IS NOT new.title
      OR old.authors IS NOT new.authors
      OR old.abstract IS NOT new.abstract
    BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, authors, abstract)
        VALUES ('delete', old.id, old.title, old.authors, old.abstract);
        INSERT INTO papers_fts(rowid, title, authors, abstract)
        VALUES (new.id, new.title, new.authors, new.abstract);
        INSERT INTO papers_title_fts(papers_title_fts, rowid, title, authors)
        VALUES ('delete', old.id, old.title, old.authors);
        INSERT INTO papers_title_fts(rowid, title, authors)
        VALUES (new.id, new.title, new.authors);
    END
    """,
)
FTS_DROP = (
    "DROP TRIGGER IF EXISTS papers_fts_update",
    "DROP TRIGGER IF EXISTS papers_fts_delete",
    "DROP TRIGGER IF EXISTS papers_fts_insert",
    "DROP TABLE IF EXISTS papers_title_fts",
    "DROP TABLE IF EXISTS papers_fts",
)


def _is_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    op.create_table(
        "papers",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("abstract", sa.Text, nullable=False),
        sa.Column("authors", JSONText, nullable=False),
        sa.Column("primary_category", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("journal_ref", sa.Text),
        sa.Column("doi", sa.Text),
        sa.Column("published", UTCDateTime, nullable=False),
        sa.Column("updated", UTCDateTime, nullable=False),
        sa.Column("fetched_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_papers"),
        sa.UniqueConstraint("arxiv_id", name="uq_papers_arxiv_id"),
    )
    op.create_table(
        "paper_categories",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
        sa.ForeignKeyConstraint(
            ["arxiv_id"],
            ["papers.arxiv_id"],
            name="fk_paper_categories_arxiv_id_papers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("arxiv_id", "category", name="pk_paper_categories"),
    )
    op.create_index("ix_paper_categories_category", "paper_categories", ["category"])
    op.create_table(
        "missing_ids",
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("checked_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("arxiv_id", name="pk_missing_ids"),
    )
    op.create_table(
        "mentions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("post_id", sa.String(128), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("author_name", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("lang", sa.String(16)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mentions"),
        sa.UniqueConstraint("source", "post_id", name="uq_mentions_source_post_id"),
    )
    op.create_index("ix_mentions_created_at", "mentions", ["created_at"])
    # Windows filtered by source: without it SQLite walks every post of the source.
    op.create_index("ix_mentions_source_created_at", "mentions", ["source", "created_at"])
    op.create_table(
        "mention_papers",
        sa.Column("mention_id", sa.Integer, nullable=False),
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False, server_default=sa.text("0")),
        sa.ForeignKeyConstraint(
            ["mention_id"],
            ["mentions.id"],
            name="fk_mention_papers_mention_id_mentions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mention_id", "arxiv_id", name="pk_mention_papers"),
    )
    op.create_index("ix_mention_papers_arxiv_id", "mention_papers", ["arxiv_id"])
    op.create_table(
        "mention_metrics",
        sa.Column("mention_id", sa.Integer, nullable=False),
        sa.Column("fetched_at", UTCDateTime, nullable=False),
        sa.Column("reposts", sa.Integer),
        sa.Column("likes", sa.Integer),
        sa.Column("replies", sa.Integer),
        sa.Column("quotes", sa.Integer),
        sa.Column("points", sa.Integer),
        sa.Column("comments", sa.Integer),
        sa.Column("upvotes", sa.Integer),
        sa.ForeignKeyConstraint(
            ["mention_id"],
            ["mentions.id"],
            name="fk_mention_metrics_mention_id_mentions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mention_id", "fetched_at", name="pk_mention_metrics"),
    )
    op.create_table(
        "source_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("window_end", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=False),
        sa.Column("mentions", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("requests", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_source_runs"),
    )
    op.create_index("ix_source_runs_source_started_at", "source_runs", ["source", "started_at"])
    op.create_table(
        "guilds",
        sa.Column("guild_id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("channel_id", sa.BigInteger),
        sa.Column("post_time", sa.String(5), nullable=False, server_default="09:00"),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("top_n", sa.Integer, nullable=False, server_default=sa.text("10")),
        sa.Column("threshold", sa.Float),
        sa.Column("style", sa.String(16), nullable=False, server_default="thread"),
        sa.Column("empty_day", sa.String(16), nullable=False, server_default="message"),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("pause_reason", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("guild_id", name="pk_guilds"),
        sa.CheckConstraint("style IN ('thread', 'channel', 'compact')", name="ck_guilds_style"),
        sa.CheckConstraint("empty_day IN ('message', 'silent')", name="ck_guilds_empty_day"),
        sa.CheckConstraint("top_n >= 1", name="ck_guilds_top_n"),
    )
    op.create_table(
        "guild_categories",
        sa.Column("guild_id", sa.BigInteger, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guilds.guild_id"],
            name="fk_guild_categories_guild_id_guilds",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("guild_id", "category", name="pk_guild_categories"),
    )
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("guild_id", sa.BigInteger, nullable=False),
        sa.Column("digest_date", ISODate, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("started_at", UTCDateTime),
        sa.Column("heartbeat_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("error", sa.Text),
        sa.Column("message_ids", JSONText, nullable=False, server_default="[]"),
        sa.Column("paper_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.ForeignKeyConstraint(
            ["guild_id"],
            ["guilds.guild_id"],
            name="fk_digests_guild_id_guilds",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_digests"),
        sa.UniqueConstraint("guild_id", "digest_date", name="uq_digests_guild_id_digest_date"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'empty', 'failed')",
            name="ck_digests_status",
        ),
    )
    op.create_table(
        "digest_papers",
        sa.Column("digest_id", sa.Integer, nullable=False),
        sa.Column("guild_id", sa.BigInteger, nullable=False),
        sa.Column("arxiv_id", sa.String(32), nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("posted_at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["digest_id"],
            ["digests.id"],
            name="fk_digest_papers_digest_id_digests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("digest_id", "arxiv_id", name="pk_digest_papers"),
    )
    op.create_index(
        "ix_digest_papers_guild_id_arxiv_id_posted_at",
        "digest_papers",
        ["guild_id", "arxiv_id", "posted_at"],
    )

    if _is_sqlite():
        for statement in FTS_DDL:
            op.execute(statement)
    # On PostgreSQL the equivalent (weighted tsvector columns with GIN indexes) is added by
    # migration 0007.


def downgrade() -> None:
    if _is_sqlite():
        for statement in FTS_DROP:
            op.execute(statement)
    for table in (
        "digest_papers",
        "digests",
        "guild_categories",
        "guilds",
        "source_runs",
        "mention_metrics",
        "mention_papers",
        "mentions",
        "missing_ids",
        "paper_categories",
        "papers",
    ):
        op.drop_table(table)
