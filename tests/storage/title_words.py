"""PostgreSQL's title word index (migration 0011), as stored and as the papers say it should be."""

from __future__ import annotations

from sqlalchemy import text

from bot.storage.engine import Database
from bot.storage.tables import PAPER_TITLE_WORDS


async def title_words(db: Database, *, from_vectors: bool = False) -> list[tuple[str, int]]:
    """``(word, paper_id)`` rows of ``paper_title_words``, sorted; or, ``from_vectors``, the rows
    it should hold: every distinct lexeme of every paper's title vector."""
    sql = (
        "SELECT w.word, p.id FROM papers AS p, unnest(tsvector_to_array(p.title_vector)) AS w(word)"
        if from_vectors
        else f"SELECT word, paper_id FROM {PAPER_TITLE_WORDS}"  # noqa: S608 - a constant
    )
    async with db.read() as conn:
        rows = (await conn.execute(text(sql))).all()
    return sorted((str(word), int(paper_id)) for word, paper_id in rows)
