"""PostgreSQL as a full backend: weighted tsvector search with GIN indexes, byte-ordered ids.

SQLite already has all of this (FTS5 since 0001, memcmp order always): there this revision
changes nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Ids and categories compare byte by byte (COLLATE "C"), as on SQLite: prefix ranges such as
# `arxiv_id >= '2503.' AND arxiv_id < '2503/'` are then exact and use the index whatever the
# database's collation (bot.storage.types.key_string says why a linguistic one breaks them).
KEY_COLUMNS = (
    ("papers", "arxiv_id", 32),
    ("paper_categories", "arxiv_id", 32),
    ("paper_categories", "category", 32),
    ("missing_ids", "arxiv_id", 32),
    ("mentions", "post_id", 128),
    ("mention_papers", "arxiv_id", 32),
    ("guild_categories", "category", 32),
    ("digest_papers", "arxiv_id", 32),
)

# The text the index sees, folded as FTS5's `unicode61 remove_diacritics 2` folds it on SQLite:
# accents come off Latin letters (é → e, ö → o; ø and ł have no decomposition and stay), ASCII
# punctuation separates words, so that "arxiv.org", "self-supervised" or "a/b" are words the
# default parser cannot glue into one host, compound or path token. Case is folded by the
# 'simple' configuration. bot.storage.papers.fold_diacritics applies the same folding to
# the words searched for. normalize() needs a UTF-8 database; elsewhere accents stay.
_FOLD_UTF8 = r"""
    SELECT regexp_replace(
        normalize(regexp_replace(normalize(value, NFD), '([A-Za-z])[\u0300-\u036f]+', '\1', 'g'),
                  NFC),
        '[[:punct:]]+', ' ', 'g')
"""
_FOLD_OTHER = r"""
    SELECT regexp_replace(value, '[[:punct:]]+', ' ', 'g')
"""
_FUNCTION = """
    CREATE FUNCTION hotpapers_search_text(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $fold${body}$fold$
"""


def _vector(column: str, weight: str) -> str:
    folded = f"hotpapers_search_text({column})"
    return f"setweight(to_tsvector('simple'::regconfig, {folded}), '{weight}')"


# Two vectors, as two FTS5 tables on SQLite. The title tier and autocomplete read the small one:
# a GIN index keeps no weights, so asking the big one for title-only matches (`'word':AB`)
# would recheck every row whose abstract has the word. The big one serves "anywhere" search.
VECTORS = {
    "title_vector": f"{_vector('title', 'A')} || {_vector('authors', 'B')}",
    "search_vector": (
        f"{_vector('title', 'A')} || {_vector('authors', 'B')} || {_vector('abstract', 'C')}"
    ),
}


def _is_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _utf8() -> bool:
    if op.get_context().as_sql:  # offline (`--sql`): no server to ask; UTF-8 is the norm
        return True
    encoding = op.get_bind().exec_driver_sql("SHOW server_encoding").scalar()
    return str(encoding).upper().replace("-", "") == "UTF8"


def upgrade() -> None:
    if not _is_postgresql():
        return
    for table, column, length in KEY_COLUMNS:
        op.alter_column(
            table,
            column,
            type_=sa.String(length, collation="C"),
            existing_type=sa.String(length),
            existing_nullable=False,
        )
    op.execute(_FUNCTION.format(body=_FOLD_UTF8 if _utf8() else _FOLD_OTHER))
    for name, expression in VECTORS.items():
        # Computed by the server on every insert and update: no trigger, nothing to keep in sync.
        op.execute(
            f"ALTER TABLE papers ADD COLUMN {name} tsvector "
            f"GENERATED ALWAYS AS ({expression}) STORED"
        )
        op.execute(f"CREATE INDEX ix_papers_{name} ON papers USING gin ({name})")


def downgrade() -> None:
    if not _is_postgresql():
        return
    for name in reversed(VECTORS):
        op.execute(f"DROP INDEX IF EXISTS ix_papers_{name}")
        op.execute(f"ALTER TABLE papers DROP COLUMN IF EXISTS {name}")
    op.execute("DROP FUNCTION IF EXISTS hotpapers_search_text(text)")
    for table, column, length in reversed(KEY_COLUMNS):
        op.alter_column(
            table,
            column,
            type_=sa.String(length),
            existing_type=sa.String(length, collation="C"),
            existing_nullable=False,
        )
