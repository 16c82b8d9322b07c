"""Paper storage: upserts of arXiv metadata, lookups, missing ids and full-text search."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import column, delete, func, literal_column, select, text
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnClause

from bot.core.models import Paper
from bot.storage.dialect import aware, chunked, insert_for
from bot.storage.engine import Database
from bot.storage.tables import (
    PAPERS_FTS,
    PAPERS_TITLE_FTS,
    missing_ids,
    paper_categories,
    papers,
)

log = logging.getLogger(__name__)

# How much a query word found among the authors counts against one in the title: a word in the
# title says more about what a paper is than a co-author's name that happens to be the same word.
# (The title vector's B (authors) weight against A (title) on PostgreSQL.)
AUTHOR_WEIGHT = 0.4
# The title tier ranks the newest SEARCH_POOL papers whose title or authors hold every word: a
# cheap key (newest first: the index's own order) caps what is ranked. Finding the newest N
# matches means reading the query words' index lists back from the newest paper until N are
# found, so N, not the number of matches, sets the cost: with 50, two words in a few hundred
# of a million titles take about 1 ms of SQLite, where 2000 ranked by bm25 took 10-25 ms.
# Queries with fewer title matches than the pool, i.e. nearly all, are ranked exactly.
SEARCH_POOL = 50
MAX_QUERY_TERMS = 12  # bounds the work one query can ask of the index
MAX_TERM_CHARS = 64
MIN_PREFIX_CHARS = 2  # the shortest prefix index (prefix='2 3 4 5 6 7 8', migration 0008)

# What unicode61 keeps as token characters is letters and digits; everything else separates
# words. Quoting each word then makes it a plain string token whatever it contains.
_WORD = re.compile(r"[^\W_]+")
_ID_PREFIX = re.compile(
    r"^(?:arxiv:|https?://(?:www\.)?arxiv\.org/(?:abs|pdf)/)?"
    r"(?P<id>\d{2,4}(?:\.\d{0,5})?|[a-z][a-z.-]*/\d{0,7})(?:v\d*)?$",
    re.IGNORECASE,
)

# Every column of papers, then the paper's categories in order: a search is one statement.
_PAPER_COLUMNS = ", ".join(f"p.{c.name}" for c in papers.c)
# A paper's categories, in order, as one value: JSON text on SQLite, an array on PostgreSQL.
_CATEGORIES = {
    "sqlite": (
        "(SELECT json_group_array(category) FROM ("
        "SELECT category FROM paper_categories AS c "
        "WHERE c.arxiv_id = {table}.arxiv_id ORDER BY c.position))"
    ),
    "postgresql": (
        "(SELECT array_agg(c.category ORDER BY c.position) FROM paper_categories AS c "
        "WHERE c.arxiv_id = {table}.arxiv_id)"
    ),
}
_MARK = "char(1)"  # what highlight() puts before each matched word: counted, never shown


def _marks(column: str) -> str:
    return f"(length({column}) - length(replace({column}, {_MARK}, '')))"


# SQLite, in one statement (one trip through aiosqlite's thread instead of four):
#  - pool: the newest SEARCH_POOL title/authors matches. FTS5 walks its doclists newest first
#    and stops there; highlight() marks every query word it finds in each column.
#  - title_tier: ranked by matched words (title 1, authors AUTHOR_WEIGHT) over the title's
#    length in words + 5: more of the words, in a shorter title, first; the newest on ties.
#    (Not bm25: FTS5's bm25 first reads the whole doclist of every query word for its IDF,
#    2-5 ms for one common word before a single row is ranked, then about 10 µs per row; and
#    all candidates hold every word, so IDF would only weigh the words against each other.)
#  - anywhere: newest papers with every word anywhere (abstracts too), only when the title
#    tier has fewer than :limit papers. The test sits in LIMIT, because a LIMIT of 0 ends the
#    scan before FTS5 is asked anything; in WHERE, SQLite would read the whole doclist first.
_SQLITE_SEARCH = text(
    f"""
    WITH pool AS (
        SELECT rowid AS id,
               highlight({PAPERS_TITLE_FTS}, 0, {_MARK}, '') AS title,
               highlight({PAPERS_TITLE_FTS}, 1, {_MARK}, '') AS authors
        FROM {PAPERS_TITLE_FTS} WHERE {PAPERS_TITLE_FTS} MATCH :match
        ORDER BY rowid DESC LIMIT :pool
    ),
    title_tier AS (
        SELECT id, ({_marks("title")} + {AUTHOR_WEIGHT} * {_marks("authors")})
                   / (length(title) - length(replace(title, ' ', '')) + 6.0) AS score
        FROM pool ORDER BY score DESC, id DESC LIMIT :limit
    ),
    found AS (SELECT count(*) AS n FROM title_tier),
    anywhere AS (
        SELECT rowid AS id FROM {PAPERS_FTS} WHERE {PAPERS_FTS} MATCH :match
        ORDER BY rowid DESC
        LIMIT (SELECT CASE WHEN n < :limit THEN :limit + n ELSE 0 END FROM found)
    ),
    hits AS (
        SELECT id, 0 AS tier, score FROM title_tier
        UNION ALL
        SELECT id, 1, 0.0 FROM anywhere WHERE id NOT IN (SELECT id FROM title_tier)
    )
    SELECT {_PAPER_COLUMNS}, {_CATEGORIES["sqlite"].format(table="p")} AS categories
    FROM hits JOIN papers AS p ON p.id = hits.id
    ORDER BY hits.tier, hits.score DESC, hits.id DESC
    LIMIT :limit
    """  # noqa: S608 - constants only; the user's words are bound parameters
).columns(*papers.c, column("categories"))
_SQLITE_AUTOCOMPLETE = text(
    f"""
    SELECT p.arxiv_id, p.title FROM (
        SELECT rowid AS id FROM {PAPERS_TITLE_FTS} WHERE {PAPERS_TITLE_FTS} MATCH :match
        ORDER BY rowid DESC LIMIT :limit
    ) AS hits JOIN papers AS p ON p.id = hits.id
    ORDER BY hits.id DESC
    """  # noqa: S608 - constants only
).columns(papers.c.arxiv_id, papers.c.title)

# PostgreSQL (migrations 0007, 0008, 0011): the same tiers over the generated tsvector columns,
# in one statement. hotpapers_newest_matches finds the newest matches band by band (a GIN index
# alone returns every match unordered: a common word's hundred thousand papers read from the
# heap); the title tier of whole words reads the title word index (paper_title_words, each
# word's papers in order) instead. Over titles it scores each match by cover density:
# ts_rank_cd with the authors (B) weighted AUTHOR_WEIGHT against the title (A), divided by
# 1 + log(length) (normalization 1) so that a long title does not win by length alone. The
# abstract tier asks only for what the title tier left, and gets 0 (returns at once) when it
# filled the page.
_PG_SEARCH = text(
    f"""
    WITH q AS MATERIALIZED (SELECT to_tsquery('simple', :query) AS query),
    title_tier AS MATERIALIZED (
        SELECT m.id, m.score
        FROM q, hotpapers_newest_matches(q.query, true, CAST(:pool AS integer)) AS m
        ORDER BY m.score DESC, m.id DESC LIMIT :limit
    ),
    anywhere AS MATERIALIZED (
        SELECT m.id FROM q, hotpapers_newest_matches(
            q.query, false, CAST(:limit AS integer) - (SELECT count(*)::integer FROM title_tier),
            NULL::tsquery,
            (SELECT coalesce(array_agg(t.id), '{{}}'::integer[]) FROM title_tier AS t)
        ) AS m
    ),
    hits AS (
        SELECT id, 0 AS tier, score FROM title_tier
        UNION ALL
        SELECT id, 1, 0 FROM anywhere
    )
    SELECT {_PAPER_COLUMNS}, {_CATEGORIES["postgresql"].format(table="p")} AS categories
    FROM hits JOIN papers AS p ON p.id = hits.id
    ORDER BY hits.tier, hits.score DESC, hits.id DESC
    """  # noqa: S608 - constants only; the user's words are bound parameters
).columns(*papers.c, column("categories"))
# Autocomplete (migration 0010): hotpapers_suggestions walks the newest papers, then reads one
# band of the index, asked for the whole words (anchor) rather than a short prefix.
_PG_AUTOCOMPLETE = text(
    """
    SELECT p.arxiv_id, p.title
    FROM hotpapers_suggestions(
        to_tsquery('simple', :query), to_tsquery('simple', CAST(:anchor AS text)),
        to_tsquery('simple', CAST(:prefix AS text)), CAST(:limit AS integer)
    ) AS m
    JOIN papers AS p ON p.id = m.id
    ORDER BY m.id DESC
    """
).columns(papers.c.arxiv_id, papers.c.title)

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
        return tsquery_words(query_terms(user_text))
    complete, last = typed_terms(user_text)
    parts = [quote_lexeme(t) for t in complete]
    if last is not None:
        parts.append(quote_lexeme(last) + ":*")
    return " & ".join(parts) or None


def tsquery_words(words: Sequence[str]) -> str | None:
    """The ``to_tsquery('simple', …)`` text requiring every one of ``words`` (already split)."""
    return " & ".join(quote_lexeme(w) for w in words) or None


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
        categories: ColumnClause[Any] = literal_column(
            _CATEGORIES[self._db.dialect].format(table="papers")
        )
        # Each batch is one statement on its own (fetch): a paper is whole in any snapshot.
        for batch in chunked(dict.fromkeys(ids)):
            rows = await self._db.fetch(
                select(papers, categories.label("categories")).where(papers.c.arxiv_id.in_(batch))
            )
            for row in rows:
                found[row.arxiv_id] = _paper(row)
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

        1. papers whose title or authors contain every word, among the newest ``SEARCH_POOL``
           such papers: the more of the words in the title (a word among the authors counts
           ``AUTHOR_WEIGHT``), in the shorter title, the better;
        2. then papers containing every word anywhere (abstract included), newest first, only
           when the first tier has fewer than ``limit``.

        Why not one ranking over title+authors+abstract: a common word is in a third of the
        abstracts, and ranking means reading all of them; the title tier reads ten times less,
        and the abstract tier stops at the newest ``limit``. ``bench/bench_search.py`` has the
        figures. One statement on either backend: FTS5's two tables on SQLite; on PostgreSQL
        the title and full tsvector columns, tier 1 ranked by cover density (``ts_rank_cd``).
        """
        if limit <= 0:
            return []
        if self._db.is_sqlite:
            stmt, params = _SQLITE_SEARCH, {"match": match_expression(user_text)}
        else:
            stmt, params = _PG_SEARCH, {"query": tsquery_text(user_text)}
        if None in params.values():
            return []
        rows = await self._db.fetch(stmt, {**params, "pool": SEARCH_POOL, "limit": limit})
        return [_paper(row) for row in rows]

    async def autocomplete(self, user_text: str, limit: int = 25) -> list[tuple[str, str]]:
        """``(arxiv_id, title)`` suggestions for text being typed, newest papers first.

        Input that looks like an arXiv id (``2401.12``, ``arXiv:2401.1``, ``hep-th/99``)
        matches id prefixes. Otherwise every word typed must appear in the title or authors,
        the last one as a prefix (served by the prefix indexes of papers_title_fts, 2 to 8
        characters, or on PostgreSQL by the title vector's GIN index, ``'word':*``). Newest
        first rather than ranked: the index then stops after ``limit`` rows, whereas ranking
        would first read every paper matching a short prefix such as ``co*``, on each keystroke.
        """
        if limit <= 0:
            return []
        prefix = id_prefix(user_text)
        if prefix is not None:
            stmt: Any = (
                select(papers.c.arxiv_id, papers.c.title)
                .where(papers.c.arxiv_id >= prefix, papers.c.arxiv_id < _successor(prefix))
                .order_by(papers.c.arxiv_id.desc())
                .limit(limit)
            )
            params: dict[str, Any] = {}
        elif self._db.is_sqlite:
            stmt, params = _SQLITE_AUTOCOMPLETE, {"match": prefix_expression(user_text)}
            if params["match"] is None:
                return []
            params["limit"] = limit
        else:
            query = tsquery_text(user_text, prefix=True)
            if query is None:
                return []
            # The whole words alone, which the index may be asked for instead of a short prefix
            # such as co:* (the lists of thousands of words).
            complete, last = typed_terms(user_text)
            stmt, params = (
                _PG_AUTOCOMPLETE,
                {
                    "query": query,
                    "limit": limit,
                    "anchor": tsquery_words(complete) if complete and last else None,
                    "prefix": quote_lexeme(last) + ":*" if last else None,
                },
            )
        return [(row.arxiv_id, row.title) for row in await self._db.fetch(stmt, params)]


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


def _paper(row: Row[Any]) -> Paper:
    """The Paper of a papers row with its ``categories`` column (see ``_CATEGORIES``); the
    primary category alone when none are stored."""
    categories = row.categories
    if isinstance(categories, str):  # SQLite's JSON text; PostgreSQL gives a list
        categories = json.loads(categories)
    return Paper(
        arxiv_id=row.arxiv_id,
        title=row.title,
        abstract=row.abstract,
        authors=tuple(row.authors),
        primary_category=row.primary_category,
        categories=tuple(categories or (row.primary_category,)),
        published=row.published,
        updated=row.updated,
        version=row.version,
        comment=row.comment,
        journal_ref=row.journal_ref,
        doi=row.doi,
    )


__all__ = [
    "AUTHOR_WEIGHT",
    "SEARCH_POOL",
    "PaperRepository",
    "fold_diacritics",
    "id_prefix",
    "match_expression",
    "prefix_expression",
    "query_terms",
    "quote_lexeme",
    "quote_term",
    "tsquery_text",
    "tsquery_words",
    "typed_terms",
]
