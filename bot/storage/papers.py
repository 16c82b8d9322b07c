"""Paper storage: upserts of arXiv metadata, lookups, missing ids and full-text search."""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Integer, delete, func, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.core.models import Paper
from bot.storage.dialect import aware, chunked, insert_for
from bot.storage.engine import Database
from bot.storage.tables import (
    PAPERS_FTS,
    PAPERS_SEARCH_VECTOR,
    PAPERS_TITLE_FTS,
    PAPERS_TITLE_VECTOR,
    missing_ids,
    paper_categories,
    papers,
)

log = logging.getLogger(__name__)

# bm25 weights of papers_title_fts (title, authors): a word in the title says more about what
# a paper is than a co-author's name that happens to be the same word. PostgreSQL's ts_rank_cd
# takes the same ratio as the weights of the title vector's A (title) and B (authors) labels.
SEARCH_WEIGHTS = (10.0, 4.0)
# bm25 ranks the newest SEARCH_POOL title matches: FTS5 walks its index in rowid (= papers.id,
# storage) order and stops there, so a query as broad as "model" costs a few ms, not 80.
# Queries with fewer title matches than the pool, i.e. nearly all, are ranked exactly.
SEARCH_POOL = 2000
MAX_QUERY_TERMS = 12  # bounds the work one query can ask of the index
MAX_TERM_CHARS = 64
MIN_PREFIX_CHARS = 2  # the shortest prefix index (prefix='2 3 4')

# What unicode61 keeps as token characters is letters and digits; everything else separates
# words. Quoting each word then makes it a plain string token whatever it contains.
_WORD = re.compile(r"[^\W_]+")
_ID_PREFIX = re.compile(
    r"^(?:arxiv:|https?://(?:www\.)?arxiv\.org/(?:abs|pdf)/)?"
    r"(?P<id>\d{2,4}(?:\.\d{0,5})?|[a-z][a-z.-]*/\d{0,7})(?:v\d*)?$",
    re.IGNORECASE,
)

_TITLE_TIER_SQL = (
    f"SELECT id FROM (SELECT rowid AS id, bm25({PAPERS_TITLE_FTS}, "  # noqa: S608 - constants
    f"{', '.join(str(w) for w in SEARCH_WEIGHTS)}) AS score FROM {PAPERS_TITLE_FTS} "
    f"WHERE {PAPERS_TITLE_FTS} MATCH :match ORDER BY rowid DESC LIMIT :pool) "
    "ORDER BY score, id DESC LIMIT :limit"
)
_ANYWHERE_TIER_SQL = (
    f"SELECT rowid FROM {PAPERS_FTS} WHERE {PAPERS_FTS} MATCH :match "  # noqa: S608 - constants
    "ORDER BY rowid DESC LIMIT :limit"
)
_AUTOCOMPLETE_SQL = (
    f"SELECT rowid AS id FROM {PAPERS_TITLE_FTS} "  # noqa: S608 - constants
    f"WHERE {PAPERS_TITLE_FTS} MATCH :match ORDER BY rowid DESC LIMIT :limit"
)

# PostgreSQL (migration 0007): the same tiers over the generated tsvector columns and their GIN
# indexes. The query is computed once (in FROM), not once per row. Tier 1 ranks by cover
# density (ts_rank_cd: the more, and the closer together, the words, the better), divided by
# 1 + log(length) (normalization 1) so that a long title does not win by length alone, as bm25
# does; plain ts_rank saturates after one occurrence and cannot tell "a sparse attention
# paper" from a title saying it twice. Weights are {D, C, B, A}: the title vector has only A
# (title) and B (authors) lexemes.
_PG_WEIGHTS = f"{{0, 0, {SEARCH_WEIGHTS[1] / SEARCH_WEIGHTS[0]:g}, 1}}"
_PG_TITLE_TIER_SQL = (
    "SELECT id FROM (SELECT id, "  # noqa: S608 - constants
    f"ts_rank_cd('{_PG_WEIGHTS}'::real[], {PAPERS_TITLE_VECTOR}, query, 1) AS score "
    "FROM papers, to_tsquery('simple', :query) AS query "
    f"WHERE {PAPERS_TITLE_VECTOR} @@ query ORDER BY id DESC LIMIT :pool) AS pool "
    "ORDER BY score DESC, id DESC LIMIT :limit"
)
_PG_ANYWHERE_TIER_SQL = (
    "SELECT id FROM papers, to_tsquery('simple', :query) AS query "  # noqa: S608 - constants
    f"WHERE {PAPERS_SEARCH_VECTOR} @@ query ORDER BY id DESC LIMIT :limit"
)
_PG_AUTOCOMPLETE_SQL = (
    "SELECT id FROM papers, to_tsquery('simple', :query) AS query "  # noqa: S608 - constants
    f"WHERE {PAPERS_TITLE_VECTOR} @@ query ORDER BY id DESC LIMIT :limit"
)
# What migration 0007's hotpapers_search_text strips from Latin letters (after NFD).
_LATIN_MARKS = re.compile(r"([A-Za-z])[\u0300-\u036f]+")


def query_terms(user_text: str) -> list[str]:
    """The words of ``user_text`` as the FTS tokenizer would see them (bounded)."""
    normal = unicodedata.normalize("NFC", user_text)
    # A repeated word adds nothing to an AND query but would cost a second pass over its index.
    unique: dict[str, str] = {}
    for word in _WORD.findall(normal):
        unique.setdefault(word.casefold(), word[:MAX_TERM_CHARS])
    return list(unique.values())[:MAX_QUERY_TERMS]


def quote_term(word: str) -> str:
    """An FTS5 string token: double quotes around, inner quotes doubled. Never FTS syntax."""
    return '"' + word.replace('"', '""') + '"'


def match_expression(user_text: str) -> str | None:
    """An FTS5 query matching rows that contain every word of ``user_text``; None if no words."""
    terms = query_terms(user_text)
    return " ".join(quote_term(t) for t in terms) or None


def typed_terms(user_text: str) -> tuple[list[str], str | None]:
    """The words of text being typed: those complete, and the last one if it is still a prefix.

    A last word shorter than the shortest prefix index is dropped (a one-letter prefix would read
    most of the index); once the user has typed a separator after it, it counts as complete.
    """
    terms = query_terms(user_text)
    if not terms:
        return [], None
    typing_last = not user_text[-1:].isspace() and _WORD.search(user_text[-1:]) is not None
    if not typing_last:
        return terms, None
    last = terms[-1]
    return terms[:-1], (last if len(last) >= MIN_PREFIX_CHARS else None)


def prefix_expression(user_text: str) -> str | None:
    """Like :func:`match_expression`, with the last word as a prefix while it is being typed.

    ``"attention is al"`` → ``"attention" "is" "al"*`` (see :func:`typed_terms`).
    """
    complete, prefix = typed_terms(user_text)
    parts = [quote_term(t) for t in complete]
    if prefix is not None:
        parts.append(quote_term(prefix) + "*")
    return " ".join(parts) or None


def fold_diacritics(word: str) -> str:
    """``word`` without the accents of its Latin letters (``Schrödinger`` → ``Schrodinger``).

    PostgreSQL's index holds text folded this way (``hotpapers_search_text``, migration 0007),
    as FTS5's ``remove_diacritics`` does on SQLite; the words searched for must match it.
    """
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize("NFC", _LATIN_MARKS.sub(r"\1", decomposed))


def quote_lexeme(word: str) -> str:
    """A ``to_tsquery`` operand: the folded word in single quotes. Never tsquery syntax.

    Words are letters and digits only (:func:`query_terms`); escaping quotes and backslashes
    anyway keeps this safe on its own.
    """
    folded = fold_diacritics(word).replace("\\", "\\\\").replace("'", "''")
    return f"'{folded}'"


def tsquery_text(user_text: str, *, prefix: bool = False) -> str | None:
    """The ``to_tsquery('simple', …)`` text of :func:`match_expression` (``prefix=False``) or
    :func:`prefix_expression` (``prefix=True``) on PostgreSQL; None if there are no words.

    ``"attention is al"`` with ``prefix`` → ``'attention' & 'is' & 'al':*``.
    """
    if not prefix:
        parts = [quote_lexeme(t) for t in query_terms(user_text)]
    else:
        complete, last = typed_terms(user_text)
        parts = [quote_lexeme(t) for t in complete]
        if last is not None:
            parts.append(quote_lexeme(last) + ":*")
    return " & ".join(parts) or None


def id_prefix(user_text: str) -> str | None:
    """The arXiv id prefix typed (``2401.12``, ``arXiv:2401.1``, ``hep-th/99``), if it is one."""
    found = _ID_PREFIX.match(user_text.strip())
    return found.group("id").lower() if found else None


class PaperRepository:
    """Papers and their categories, ids arXiv does not know, and full-text search (FTS5 on
    SQLite, tsvector columns with GIN indexes on PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writes --------------------------------------------------------------------------------

    async def upsert(self, items: Iterable[Paper], fetched_at: dt.datetime) -> int:
        """Insert or refresh papers (last write wins) with their categories; returns the count.

        A paper that is stored is no longer "missing". Each chunk is its own short transaction.
        """
        fetched_at = aware(fetched_at, "fetched_at")
        unique = {p.arxiv_id: p for p in items}  # a batch may repeat a paper; keep the last
        for batch in chunked(unique.values()):
            rows = [_paper_row(p, fetched_at) for p in batch]
            ids = [p.arxiv_id for p in batch]
            stmt = insert_for(self._db, papers)
            stmt = stmt.on_conflict_do_update(
                index_elements=[papers.c.arxiv_id],
                # Never touch id: it is the FTS rowid (and REPLACE would delete+insert the row).
                set_={c.name: stmt.excluded[c.name] for c in papers.c if c.name != "id"},
            )
            categories = [
                {"arxiv_id": p.arxiv_id, "category": cat, "position": pos}
                for p in batch
                for pos, cat in enumerate(dict.fromkeys(p.categories or (p.primary_category,)))
            ]
            async with self._db.write() as conn:
                await conn.execute(stmt, rows)
                await conn.execute(
                    delete(paper_categories).where(paper_categories.c.arxiv_id.in_(ids))
                )
                if categories:
                    await conn.execute(paper_categories.insert(), categories)
                await conn.execute(delete(missing_ids).where(missing_ids.c.arxiv_id.in_(ids)))
        log.debug("stored %d papers", len(unique))
        return len(unique)

    async def mark_missing(self, ids: Iterable[str], reason: str, at: dt.datetime) -> None:
        """Remember ids arXiv answered it does not know, so they are not asked for again."""
        at = aware(at, "at")
        for batch in chunked(dict.fromkeys(ids)):
            stmt = insert_for(self._db, missing_ids)
            stmt = stmt.on_conflict_do_update(
                index_elements=[missing_ids.c.arxiv_id],
                set_={"reason": stmt.excluded.reason, "checked_at": stmt.excluded.checked_at},
            )
            async with self._db.write() as conn:
                await conn.execute(
                    stmt, [{"arxiv_id": i, "reason": reason, "checked_at": at} for i in batch]
                )

    # -- lookups -------------------------------------------------------------------------------

    async def get(self, arxiv_id: str) -> Paper | None:
        return (await self.get_many([arxiv_id])).get(arxiv_id)

    async def get_many(self, ids: Iterable[str]) -> dict[str, Paper]:
        """The stored papers among ``ids``, by id (unknown ids are simply absent)."""
        found: dict[str, Paper] = {}
        async with self._db.read() as conn:
            for batch in chunked(dict.fromkeys(ids)):
                result = await conn.execute(select(papers).where(papers.c.arxiv_id.in_(batch)))
                for paper in await _papers_from_rows(conn, result.all()):
                    found[paper.arxiv_id] = paper
        return found

    async def known_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are stored papers."""
        return await self._existing(papers.c.arxiv_id, ids)

    async def missing_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` arXiv has said it does not know."""
        return await self._existing(missing_ids.c.arxiv_id, ids)

    async def _existing(self, column: Any, ids: Iterable[str]) -> set[str]:
        found: set[str] = set()
        async with self._db.read() as conn:
            for batch in chunked(dict.fromkeys(ids)):
                result = await conn.execute(select(column).where(column.in_(batch)))
                found.update(result.scalars())
        return found

    async def count(self) -> int:
        async with self._db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(papers))).scalar_one())

    # -- search --------------------------------------------------------------------------------

    async def search(self, user_text: str, limit: int = 10) -> list[Paper]:
        """Papers containing every word of ``user_text``, best first; ``[]`` if it has no words.

        The text is split into words and each is quoted, so operators, column filters, quotes
        and parentheses in it are searched for as words, never interpreted. Ranking, in tiers:

        1. papers whose title or authors contain every word, by bm25 (title weighted above
           authors), among the newest ``SEARCH_POOL`` such papers;
        2. then papers containing every word anywhere (abstract included), newest first.

        Why not one bm25 over title+authors+abstract: FTS5's bm25 first scans the whole doclist
        of every query word to get its IDF, ~30 ns per matching row, so three common words over
        a million abstracts cost 20+ ms before ranking a single row; the same scan over titles
        is ten times shorter. ``bench/bench_search.py`` has the figures.

        On PostgreSQL the tiers are the same, over the title and the full tsvector columns;
        tier 1 ranks by cover density (``ts_rank_cd``, title weighted above authors, damped
        by length) instead of bm25.
        """
        if limit <= 0:
            return []
        if self._db.is_sqlite:
            query = match_expression(user_text)
            title_sql, anywhere_sql, key = _TITLE_TIER_SQL, _ANYWHERE_TIER_SQL, "match"
        else:
            query = tsquery_text(user_text)
            title_sql, anywhere_sql, key = _PG_TITLE_TIER_SQL, _PG_ANYWHERE_TIER_SQL, "query"
        if query is None:
            return []
        async with self._db.read() as conn:
            ranked = await conn.execute(
                text(title_sql), {key: query, "pool": SEARCH_POOL, "limit": limit}
            )
            ids = list(ranked.scalars())
            if len(ids) < limit:
                newest = await conn.execute(
                    text(anywhere_sql), {key: query, "limit": limit + len(ids)}
                )
                seen = set(ids)
                ids += [i for i in newest.scalars() if i not in seen][: limit - len(ids)]
            if not ids:
                return []
            rows = (await conn.execute(select(papers).where(papers.c.id.in_(ids)))).all()
            by_id = {row.id: row for row in rows}
            return await _papers_from_rows(conn, [by_id[i] for i in ids if i in by_id])

    async def autocomplete(self, user_text: str, limit: int = 25) -> list[tuple[str, str]]:
        """``(arxiv_id, title)`` suggestions for text being typed, newest papers first.

        Input that looks like an arXiv id (``2401.12``, ``arXiv:2401.1``, ``hep-th/99``)
        matches id prefixes. Otherwise every word typed must appear in the title or authors,
        the last one as a prefix (served by the prefix indexes of papers_title_fts, or on
        PostgreSQL by the GIN index of the title vector, ``'word':*``). Newest first rather
        than bm25: FTS5 then stops after ``limit`` rows, whereas bm25 would first scan the
        doclist of a short prefix such as ``co*``, most of the index, on each keystroke.
        """
        if limit <= 0:
            return []
        prefix = id_prefix(user_text)
        if prefix is not None:
            stmt = (
                select(papers.c.arxiv_id, papers.c.title)
                .where(papers.c.arxiv_id >= prefix, papers.c.arxiv_id < _successor(prefix))
                .order_by(papers.c.arxiv_id.desc())
                .limit(limit)
            )
        else:
            if self._db.is_sqlite:
                sql, params = _AUTOCOMPLETE_SQL, {"match": prefix_expression(user_text)}
            else:
                sql, params = _PG_AUTOCOMPLETE_SQL, {"query": tsquery_text(user_text, prefix=True)}
            if None in params.values():
                return []
            hits = text(sql).bindparams(**params, limit=limit).columns(id=Integer).subquery("hits")
            stmt = (
                select(papers.c.arxiv_id, papers.c.title)
                .join(hits, hits.c.id == papers.c.id)
                .order_by(papers.c.id.desc())
            )
        async with self._db.read() as conn:
            return [(arxiv_id, title) for arxiv_id, title in await conn.execute(stmt)]


def _successor(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _paper_row(paper: Paper, fetched_at: dt.datetime) -> dict[str, Any]:
    return {
        "arxiv_id": paper.arxiv_id,
        "version": paper.version,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "primary_category": paper.primary_category,
        "comment": paper.comment,
        "journal_ref": paper.journal_ref,
        "doi": paper.doi,
        "published": aware(paper.published, "Paper.published"),
        "updated": aware(paper.updated, "Paper.updated"),
        "fetched_at": fetched_at,
    }


async def _papers_from_rows(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[Paper]:
    """Turn papers rows into Papers, loading every row's categories in one query."""
    ids = [row.arxiv_id for row in rows]
    categories: dict[str, list[str]] = {}
    for batch in chunked(ids):
        result = await conn.execute(
            select(paper_categories.c.arxiv_id, paper_categories.c.category)
            .where(paper_categories.c.arxiv_id.in_(batch))
            .order_by(paper_categories.c.arxiv_id, paper_categories.c.position)
        )
        for arxiv_id, category in result:
            categories.setdefault(arxiv_id, []).append(category)
    return [
        Paper(
            arxiv_id=row.arxiv_id,
            title=row.title,
            abstract=row.abstract,
            authors=tuple(row.authors),
            primary_category=row.primary_category,
            categories=tuple(categories.get(row.arxiv_id) or (row.primary_category,)),
            published=row.published,
            updated=row.updated,
            version=row.version,
            comment=row.comment,
            journal_ref=row.journal_ref,
            doi=row.doi,
        )
        for row in rows
    ]


__all__ = [
    "SEARCH_WEIGHTS",
    "PaperRepository",
    "fold_diacritics",
    "id_prefix",
    "match_expression",
    "prefix_expression",
    "query_terms",
    "quote_lexeme",
    "quote_term",
    "tsquery_text",
    "typed_terms",
]
