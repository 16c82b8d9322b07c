"""The schema as SQLAlchemy Core tables: what the repositories query and migrations must produce.

Migrations are the source of truth for the database; these tables mirror the head revision
(``tests/storage/test_migrations.py`` compares the two) and give the repositories typed columns.
Every text column is a ``CleanText``/``CleanString`` (``types.py``): what is written loses its
NUL characters, which PostgreSQL's text cannot hold, so one post carrying one fails no write.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    UniqueConstraint,
    false,
    text,
)

from bot.core.models import DigestState, DigestStyle, EmptyDay, RankingMode
from bot.storage.types import CleanString, CleanText, ISODate, JSONText, UTCDateTime, key_string

# Named constraints let future migrations alter tables on SQLite (batch mode recreates the table
# and can only drop what it can name).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

METRIC_COLUMNS = ("reposts", "likes", "replies", "quotes", "points", "comments", "upvotes")
DIGEST_STATUSES = tuple(state.value for state in DigestState)
GUILD_STYLES = tuple(style.value for style in DigestStyle)
EMPTY_DAY_MODES = tuple(mode.value for mode in EmptyDay)
RANKING_MODES = tuple(mode.value for mode in RankingMode)

# The FTS5 tables (SQLite only) are created by migration 0001, not here: SQLAlchemy has no
# notion of virtual tables. Their columns, in this order, are what the bm25 weights refer to.
PAPERS_FTS = "papers_fts"  # title, authors, abstract: search
PAPERS_TITLE_FTS = "papers_title_fts"  # title, authors, with prefix indexes: autocomplete
# Their PostgreSQL counterparts (migration 0007): generated tsvector columns of papers, each with
# a GIN index. Not declared below, because SQLite has no such columns; repositories name them.
PAPERS_SEARCH_VECTOR = "search_vector"  # title (A), authors (B), abstract (C): search
PAPERS_TITLE_VECTOR = "title_vector"  # title (A), authors (B): title-tier search, autocomplete
# PostgreSQL only (migration 0011): each paper's distinct title and author words, (word, paper_id)
# its primary key, kept by triggers on papers; the search's title tier reads it. Derived data
# like the vectors, so not declared below either.
PAPER_TITLE_WORDS = "paper_title_words"


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


papers = Table(
    "papers",
    metadata,
    # An explicit INTEGER PRIMARY KEY is SQLite's rowid, and only such a rowid survives VACUUM
    # unchanged; the external-content FTS index is keyed by it.
    Column("id", Integer, primary_key=True),
    Column("arxiv_id", key_string(32), nullable=False, unique=True),
    Column("version", Integer),
    Column("title", CleanText, nullable=False),
    Column("abstract", CleanText, nullable=False),
    Column("authors", JSONText, nullable=False),
    Column("primary_category", CleanString(32), nullable=False),
    Column("comment", CleanText),
    Column("journal_ref", CleanText),
    Column("doi", CleanText),
    Column("published", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("fetched_at", UTCDateTime, nullable=False),
)

paper_categories = Table(
    "paper_categories",
    metadata,
    Column(
        "arxiv_id",
        key_string(32),
        ForeignKey("papers.arxiv_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("category", key_string(32), nullable=False),
    # Paper.categories is ordered (primary first, then arXiv's order), a set of rows is not.
    Column("position", SmallInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("arxiv_id", "category"),
    Index(None, "category"),
)

missing_ids = Table(
    "missing_ids",
    metadata,
    Column("arxiv_id", key_string(32), primary_key=True),
    Column("reason", CleanText, nullable=False),
    Column("checked_at", UTCDateTime, nullable=False),
)

mentions = Table(
    "mentions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", CleanString(32), nullable=False),
    Column("post_id", key_string(128), nullable=False),
    Column("url", CleanText, nullable=False),
    Column("author", CleanText, nullable=False),
    Column("author_name", CleanText),
    Column("text", CleanText, nullable=False),
    Column("lang", CleanString(16)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "post_id"),
    Index(None, "created_at"),
    Index(None, "source", "created_at"),
)

mention_papers = Table(
    "mention_papers",
    metadata,
    Column(
        "mention_id",
        Integer,
        ForeignKey("mentions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # No foreign key to papers: a post may link an id that is not resolved yet (or never will be).
    Column("arxiv_id", key_string(32), nullable=False),
    Column("position", SmallInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("mention_id", "arxiv_id"),
    Index(None, "arxiv_id"),
)

mention_metrics = Table(
    "mention_metrics",
    metadata,
    Column(
        "mention_id",
        Integer,
        ForeignKey("mentions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("fetched_at", UTCDateTime, nullable=False),
    # NULL = the source does not report this metric, which is not the same as a count of 0.
    *(Column(name, Integer) for name in METRIC_COLUMNS),
    PrimaryKeyConstraint("mention_id", "fetched_at"),
)

source_runs = Table(
    "source_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", CleanString(32), nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("mentions", Integer, nullable=False, server_default=text("0")),
    Column("requests", Integer, nullable=False, server_default=text("0")),
    Column("error", CleanText),
    # A fixed word for the class of failure (bot.core.errors.FAILURE_KINDS): what members see.
    Column("error_kind", CleanString(32)),
    Index(None, "source", "started_at"),
)

guilds = Table(
    "guilds",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("channel_id", BigInteger),
    Column("post_time", CleanString(5), nullable=False, server_default="09:00"),
    Column("timezone", CleanString(64), nullable=False, server_default="UTC"),
    Column("top_n", Integer, nullable=False, server_default=text("10")),
    Column("threshold", Float),  # NULL = the global ranking.threshold
    Column("style", CleanString(16), nullable=False, server_default="thread"),
    Column("empty_day", CleanString(16), nullable=False, server_default="message"),
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("pause_reason", CleanText),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # When the guild last became able to post (channel first set, resumed, time moved): a slot
    # before it was never owed, so the sweep doesn't post it as missed. NULL: before 0002.
    Column("active_since", UTCDateTime),
    # Where moderators are told a digest failed for good or was paused (NULL: the digest
    # channel, if the bot can still post there).
    Column("alert_channel_id", BigInteger),
    # absolute: the seed's threshold on the score; field: each category's heat (0006).
    Column("ranking", CleanString(16), nullable=False, server_default="absolute"),
    # The public archive (0009): published only while a moderator has it on; the slug of its
    # pages is made at the first opt-in and kept when it is turned off (links come back the same).
    Column("archive", Boolean, nullable=False, server_default=false()),
    Column("archive_slug", CleanString(64), unique=True),
    CheckConstraint(f"style IN ({_in(GUILD_STYLES)})", name="style"),
    CheckConstraint(f"ranking IN ({_in(RANKING_MODES)})", name="ranking"),
    CheckConstraint(f"empty_day IN ({_in(EMPTY_DAY_MODES)})", name="empty_day"),
    CheckConstraint("top_n >= 1", name="top_n"),
)

guild_categories = Table(
    "guild_categories",
    metadata,
    Column(
        "guild_id",
        BigInteger,
        ForeignKey("guilds.guild_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("category", key_string(32), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("guild_id", "category"),
)

digests = Table(
    "digests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "guild_id",
        BigInteger,
        ForeignKey("guilds.guild_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("digest_date", ISODate, nullable=False),
    Column("status", CleanString(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("started_at", UTCDateTime),
    # Last sign of life of the sender (claim or message sent): how a crashed send is told apart
    # from a slow one.
    Column("heartbeat_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("error", CleanText),
    Column("message_ids", JSONText, nullable=False, server_default="[]"),
    Column("paper_count", Integer, nullable=False, server_default=text("0")),
    # The claiming process, ``host/boot/pid/start``: a restart on the same host resumes a dead
    # owner's digest at once instead of waiting for its claim to go stale.
    Column("owner", CleanText),
    # Claims taken over from a dead owner: not failed attempts, but bounded all the same.
    Column("takeovers", Integer, nullable=False, server_default=text("0")),
    Column("alerted_at", UTCDateTime),  # when moderators were told it failed for good
    UniqueConstraint("guild_id", "digest_date"),
    CheckConstraint(f"status IN ({_in(DIGEST_STATUSES)})", name="status"),
)

digest_papers = Table(
    "digest_papers",
    metadata,
    Column(
        "digest_id",
        Integer,
        ForeignKey("digests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("guild_id", BigInteger, nullable=False),
    Column("arxiv_id", key_string(32), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("posted_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("digest_id", "arxiv_id"),
    Index(None, "guild_id", "arxiv_id", "posted_at"),
)

stream_state = Table(
    "stream_state",
    metadata,
    Column("stream", CleanString(32), primary_key=True),
    # Unix microseconds of the last event whose effects are stored (Jetstream's time cursor).
    Column("cursor_us", BigInteger, nullable=False),
    Column("instance", CleanText),
    Column("updated_at", UTCDateTime, nullable=False),
)

stream_gaps = Table(
    "stream_gaps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("stream", CleanString(32), nullable=False),
    Column("gap_start", UTCDateTime, nullable=False),
    Column("gap_end", UTCDateTime, nullable=False),
    Column("detected_at", UTCDateTime, nullable=False),
    Index(None, "stream", "detected_at"),
)
