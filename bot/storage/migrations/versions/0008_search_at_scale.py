"""Search at a million papers: longer prefix indexes on SQLite; on PostgreSQL, the newest
matches found without reading every match.

SQLite: papers_title_fts gets prefix indexes for 5 to 8 characters as well (it had 2, 3, 4).
FTS5 answers a longer prefix by merging the lists of every word that starts with it, which for
``trans*`` or ``learning*`` means tens of thousands of papers on each keystroke; with an index of
that length it reads one list and stops after the newest 25. The index is rebuilt from papers.

PostgreSQL (bot.storage.papers has the queries):
 - ``hotpapers_newest_matches(query, titles, wanted, anchor, excluded)``: the ids of the newest
   ``wanted`` papers whose title vector (``titles``) or whole vector matches, found band by band
   from the newest id down. Each band is sized from the density of matches (the planner's
   estimate, or what the newest papers show), and read either by walking the primary key
   backwards and testing each paper (dense queries) or from the GIN index, restricted to the
   band by a BRIN index on id (sparse ones). A GIN index returns every match unordered, and a
   common word matches a hundred thousand papers: the plain ``ORDER BY id DESC LIMIT`` either
   read them all from the heap or walked the primary key testing each abstract's vector, which
   lives in TOAST; the planner does not count that, and chose it for rare words too.
 - ``hotpapers_estimate(query, titles)``: the planner's estimate of the papers matching.
 - a BRIN index on papers.id (a few hundred kB), for the bands;
 - the GIN indexes without a pending list (``fastupdate = off``): every search would otherwise
   scan up to 4 MB of not-yet-merged entries, and autovacuum decides when that list is merged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TOKENIZE = "tokenize='unicode61 remove_diacritics 2'"
_TITLE_FTS = """
    CREATE VIRTUAL TABLE papers_title_fts USING fts5(
        title, authors,
        content='papers', content_rowid='id', {tokenize}, prefix='{prefix}'
    )
"""
PREFIXES_BEFORE = "2 3 4"
PREFIXES = "2 3 4 5 6 7 8"

GIN_INDEXES = ("ix_papers_title_vector", "ix_papers_search_vector")
BRIN_INDEX = "ix_papers_id_brin"

# The planner's estimate of the papers a tsquery matches (from ANALYZE's most common lexemes).
# EXPLAIN runs only in a volatile function; it reads nothing but statistics.
ESTIMATE = """
CREATE FUNCTION hotpapers_estimate(query tsquery, titles boolean)
RETURNS double precision
LANGUAGE plpgsql VOLATILE
AS $fn$
DECLARE
    plan json;
BEGIN
    EXECUTE format(
        'EXPLAIN (FORMAT JSON) SELECT 1 FROM papers WHERE %I @@ %L::tsquery',
        CASE WHEN titles THEN 'title_vector' ELSE 'search_vector' END, query
    ) INTO plan;
    RETURN greatest((plan -> 0 -> 'Plan' ->> 'Plan Rows')::double precision, 1);
END
$fn$
"""

# The newest `wanted` matches of `query`, in bands from the newest id down (see the module
# docstring). `anchor`, when given, is the part of the query the GIN index may be asked for
# alone (the whole words before a prefix being typed). `excluded`: ids already shown.
# With titles, score is ts_rank_cd over the title vector (title A, authors B at 0.4, damped by
# length): the search's title tier ranks by it. Custom plans (the band's bounds are known to
# the planner), no JIT or parallel workers for a few hundred rows, and the access path chosen
# here: the walk (index scan) or the bitmap, never a sequential scan.
NEWEST_MATCHES = """
CREATE FUNCTION hotpapers_newest_matches(
    query tsquery, titles boolean, wanted integer,
    anchor tsquery DEFAULT NULL, excluded integer[] DEFAULT '{}'
)
RETURNS TABLE (id integer, score real)
LANGUAGE plpgsql VOLATILE ROWS 100
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
SET enable_seqscan = off
SET enable_indexscan = on
SET enable_bitmapscan = on
AS $fn$
DECLARE
    -- Papers a walk may test before the bitmap is cheaper: a title vector is in the row, an
    -- abstract's is in TOAST (four more pages to read and a decompression for each).
    walk_budget integer := CASE WHEN titles THEN 4000 ELSE 300 END;
    newest integer;
    estimate double precision;
    anchor_estimate double precision;
    density double precision;
    walk boolean;
    use_anchor boolean;
    band double precision;
    upper_id integer;
    lower_id integer;
    found integer := 0;
    part_ids integer[];
    part_scores real[];
    ids integer[] := '{}';
    scores real[] := '{}';
BEGIN
    IF wanted <= 0 OR query IS NULL OR numnode(query) = 0 THEN
        RETURN;
    END IF;
    SELECT max(p.id) INTO newest FROM papers AS p;
    IF newest IS NULL THEN
        RETURN;
    END IF;
    IF titles AND query::text LIKE '%'':*%' THEN
        -- A prefix: the planner counts only the common words it starts (often a fifth of
        -- the papers). Look at the newest papers first, and go by what they show.
        walk := true;
        band := 600;
    ELSE
        estimate := hotpapers_estimate(query, titles);
        -- Statistics may be stale (rows deleted since the last ANALYZE) and estimate more
        -- matches than there are papers: a density is at most one, a band at least one paper.
        density := least(estimate / newest, 1.0);
        walk := wanted / density <= walk_budget;
        band := greatest(CASE WHEN walk THEN 2 ELSE 1.5 END * wanted / density, 1);
    END IF;
    upper_id := newest;
    LOOP
        lower_id := greatest(upper_id - least(band, newest)::bigint, 0);
        -- The GIN index is asked for the whole query, or for its whole words alone when the
        -- band holds few papers with them: a short prefix (co:*) reads thousands of words'
        -- lists, and the papers with the words are cheaper to test one by one.
        use_anchor := false;
        IF NOT walk AND anchor IS NOT NULL THEN
            anchor_estimate := coalesce(anchor_estimate, hotpapers_estimate(anchor, titles));
            use_anchor := anchor_estimate * (upper_id - lower_id) / newest <= 1000;
        END IF;
        PERFORM set_config('enable_bitmapscan', CASE WHEN walk THEN 'off' ELSE 'on' END, true);
        PERFORM set_config('enable_indexscan', CASE WHEN walk THEN 'on' ELSE 'off' END, true);
        -- The band's bounds are indexable (BRIN) only when it has a lower_id: the last band, all
        -- the older papers, is better served by the GIN index alone.
        IF titles THEN
            SELECT coalesce(array_agg(b.id), '{}'), coalesce(array_agg(b.score), '{}')
            INTO part_ids, part_scores
            FROM (
                SELECT p.id, ts_rank_cd('{0, 0, 0.4, 1}', p.title_vector, query, 1) AS score
                FROM papers AS p
                WHERE p.title_vector @@ CASE WHEN use_anchor THEN anchor ELSE query END
                  AND ts_match_vq(p.title_vector, query)
                  AND CASE WHEN lower_id > 0 THEN p.id > lower_id AND p.id <= upper_id
                           ELSE p.id + 0 <= upper_id END
                ORDER BY p.id DESC LIMIT wanted - found
            ) AS b;
        ELSE
            SELECT coalesce(array_agg(b.id), '{}'), coalesce(array_agg(0::real), '{}')
            INTO part_ids, part_scores
            FROM (
                SELECT p.id FROM papers AS p
                WHERE p.search_vector @@ CASE WHEN use_anchor THEN anchor ELSE query END
                  AND ts_match_vq(p.search_vector, query)
                  AND p.id <> ALL (excluded)
                  AND CASE WHEN lower_id > 0 THEN p.id > lower_id AND p.id <= upper_id
                           ELSE p.id + 0 <= upper_id END
                ORDER BY p.id DESC LIMIT wanted - found
            ) AS b;
        END IF;
        ids := ids || part_ids;
        scores := scores || part_scores;
        found := found + cardinality(part_ids);
        EXIT WHEN found >= wanted OR lower_id = 0;
        upper_id := lower_id;
        -- The next band, from the density seen so far (none seen: less than one in all of
        -- them, or the planner's estimate if lower), at least twice the last one.
        IF found > 0 THEN
            density := found::double precision / (newest - lower_id);
        ELSE
            density := least(
                coalesce(estimate, hotpapers_estimate(query, titles)) / newest,
                1.0 / (newest - lower_id),
                1.0
            );
        END IF;
        walk := (wanted - found) / density <= walk_budget;
        band := greatest(CASE WHEN walk THEN 2 ELSE 1.5 END * (wanted - found) / density, 2 * band);
    END LOOP;
    RETURN QUERY SELECT u.id, u.score FROM unnest(ids, scores) AS u(id, score);
END
$fn$
"""


def _is_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def _title_fts(prefix: str) -> None:
    # An FTS5 table's options are fixed at creation: drop it, create it again, rebuild it from
    # papers. The triggers of 0001 name the table, so they keep working with the new one.
    op.execute("DROP TABLE IF EXISTS papers_title_fts")
    op.execute(_TITLE_FTS.format(tokenize=_TOKENIZE, prefix=prefix))
    op.execute("INSERT INTO papers_title_fts(papers_title_fts) VALUES ('rebuild')")


def upgrade() -> None:
    if _is_sqlite():
        _title_fts(PREFIXES)
        return
    op.execute(
        f"CREATE INDEX {BRIN_INDEX} ON papers USING brin (id) "
        "WITH (pages_per_range = 32, autosummarize = on)"
    )
    for index in GIN_INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        if not op.get_context().as_sql:
            # Merge what the pending list holds now; with fastupdate off it stays empty.
            op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")
    op.execute(ESTIMATE)
    op.execute(NEWEST_MATCHES)


def downgrade() -> None:
    if _is_sqlite():
        _title_fts(PREFIXES_BEFORE)
        return
    op.execute(
        "DROP FUNCTION IF EXISTS "
        "hotpapers_newest_matches(tsquery, boolean, integer, tsquery, integer[])"
    )
    op.execute("DROP FUNCTION IF EXISTS hotpapers_estimate(tsquery, boolean)")
    for index in GIN_INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
    op.execute(f"DROP INDEX IF EXISTS {BRIN_INDEX}")
