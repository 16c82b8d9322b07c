"""Autocomplete on PostgreSQL in bounded work; the abstract tier without a second test of each
abstract's vector.

PostgreSQL only (SQLite's FTS5 reads its prefix indexes newest first and stops after 25: it has
neither problem). bot.storage.papers has the queries.

``hotpapers_suggestions(query, anchor, prefix, wanted)``: the newest ``wanted`` papers whose
title vector matches ``query``, the words typed with the last as a prefix (``prefix`` alone,
``anchor`` the whole words before it). 0008's banded search served it at a p99 of 10-15 ms, up
to 50: a GIN index merges the lists of every word a short prefix starts (``po:*``: 30,000
entries, 23 ms), a common whole word is a long list whatever the band (``learning``: 70,000,
20 ms), and bands sized from the planner's estimates read the index again for each band. Here
each step is priced from the planner's estimates of the query, the prefix and the whole words
(µs constants below, measured at a million papers), within a budget of work:

1. a rare query of whole words (no prefix): the GIN index, when it fits the budget (exact); a
   prefix the planner keeps no frequency for gets one small default estimate, so a query with
   a prefix goes on to 2 and lets the sample say;
2. else the newest ``SAMPLE`` papers, one by one: enough for a common query (exact);
3. else the band below them that should hold the rest at the density the sample showed, read
   the cheapest way: walked, or through the GIN and BRIN indexes for the query or its whole
   words, then the older papers if the band held fewer and that fits the budget (exact); when
   each costs more than the budget, only ``WALK_LIMIT`` more papers are walked, and the
   suggestions are the newest matches among those.

So autocomplete does a bounded amount of work on each keystroke: a query that is rare among
the newest papers yet made of common words and a short prefix (``learning flo``) may get fewer
than ``wanted`` suggestions, always the newest matches, and a table of up to ``SAMPLE +
WALK_LIMIT`` papers always gets all. A letter or a space later the query is narrower and takes
step 1. ``/paper`` itself (the search) is never bounded this way.

The title vector's statistics target goes to 300 (``TITLE_STATISTICS`` says why not more).

``hotpapers_newest_matches`` (the search's tiers) tested each match's vector twice: once as the
index condition, once more through ``ts_match_vq``, needed only when the index was asked for
the anchor rather than the query. For abstracts that second test unpacked each vector from
TOAST (2.5 kB); it is now made only when it decides something. And when a band read from the
GIN index holds no match, the next read is the rest of the table, not a band twice the size:
the index reads its whole lists for any band (``generative & bahosynba`` read the abstracts'
``generative`` list three times, 4 ms each).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

from bot.storage.migrations.earlier import revision_module as _revision

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

SUGGESTIONS_SIGNATURE = "hotpapers_suggestions(tsquery, tsquery, tsquery, integer)"
# Costs in µs, from bench/bench_search.py at a million papers (2 cores): a paper tested while
# walking the primary key backwards; a paper the GIN index found (a heap visit, rows of 1.3 kB);
# an entry of the lists the index merges for a prefix, or of a whole word's list.
WALK_COST = 0.8
HEAP_COST = 5.0
MERGE_COST = 1.0
LIST_COST = 0.1
BUDGET = 3000  # µs of work; beyond, a bounded walk
SAMPLE = 500  # the newest papers, walked first: about 0.5 ms
WALK_LIMIT = 2500  # papers walked after the sample, at most: about 2 ms
# The title vector's statistics target: the planner then keeps the frequencies of 3,000 title
# words, not 1,000, and estimates a prefix such as lomo:* at 3,828 papers (10,342), where it
# said 750 for every prefix it did not know. At 1000 the estimates were closer (7,034) but an
# EXPLAIN of a short prefix compares it with every word kept: 2 ms for an:*, against 0.4.
TITLE_STATISTICS = 300

SUGGESTIONS = f"""
CREATE FUNCTION hotpapers_suggestions(
    query tsquery, anchor tsquery, prefix tsquery, wanted integer
)
RETURNS TABLE (id integer)
LANGUAGE plpgsql VOLATILE ROWS 25
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
SET enable_seqscan = off
SET enable_indexscan = on
SET enable_bitmapscan = off
AS $fn$
DECLARE
    newest integer;
    walked integer;
    found integer;
    density double precision;
    band double precision;
    matches double precision;
    prefixed double precision := 0;
    anchored double precision := 'Infinity';
    cost_query double precision;
    cost_anchor double precision;
    cost_walk double precision;
    more integer;
    words integer;
    lists double precision := 'Infinity';
    upper_id integer;
    lower_id integer;
    ids integer[];
BEGIN
    IF wanted <= 0 OR query IS NULL OR numnode(query) = 0 THEN
        RETURN;
    END IF;
    SELECT max(p.id) INTO newest FROM papers AS p;
    IF newest IS NULL THEN
        RETURN;
    END IF;
    -- The planner's estimates (each an EXPLAIN: 0.1-0.4 ms). The query's is the product of
    -- its parts' frequencies, as the planner would compute it, when both were asked for.
    IF prefix IS NOT NULL AND numnode(prefix) > 0 THEN
        prefixed := hotpapers_estimate(prefix, true);
    END IF;
    IF anchor IS NOT NULL AND numnode(anchor) > 0 THEN
        anchored := hotpapers_estimate(anchor, true);
        -- The whole words' lists, which the index reads whatever the band: k words whose
        -- papers together are `anchored` have lists of about (anchored / newest) ^ (1 / k)
        -- of the papers each (is & data: 6,282 papers, lists of 79,000 each).
        words := (numnode(anchor) + 1) / 2;
        lists := words * newest * power(least(anchored / newest, 1.0), 1.0 / words);
    END IF;
    matches := CASE
        WHEN prefixed > 0 AND anchored < 'Infinity' THEN anchored * prefixed / newest
        WHEN prefixed > 0 THEN prefixed
        ELSE hotpapers_estimate(query, true)
    END;
    -- 1. A rare query of whole words: the GIN index, every match. Not with a prefix: the
    -- planner gives a prefix of words it keeps no frequency for one small default (239 papers
    -- for brex:*, which starts 3,000), and merging its lists may cost much more; the sample
    -- then decides.
    cost_query := {MERGE_COST} * prefixed + {HEAP_COST} * matches;
    IF prefixed = 0 AND cost_query <= {BUDGET} THEN
        PERFORM set_config('enable_indexscan', 'off', true);
        PERFORM set_config('enable_bitmapscan', 'on', true);
        RETURN QUERY
            SELECT p.id FROM papers AS p
            WHERE p.title_vector @@ query
            ORDER BY p.id DESC LIMIT wanted;
        RETURN;
    END IF;
    -- 2. The newest papers, one by one (the primary key backwards): a common query is done.
    walked := least({SAMPLE}, newest);
    SELECT coalesce(array_agg(w.id), '{{}}') INTO ids FROM (
        SELECT p.id FROM papers AS p
        WHERE p.id > newest - walked AND ts_match_vq(p.title_vector, query)
        ORDER BY p.id DESC LIMIT wanted
    ) AS w;
    found := cardinality(ids);
    RETURN QUERY SELECT unnest(ids);
    IF found >= wanted OR walked >= newest THEN
        RETURN;
    END IF;
    -- 3. The band below that holds the rest, by the density the sample showed (or, with none
    -- in it, the planner's estimate if lower), read the cheapest way: walked, or through the
    -- GIN index for the whole query or its whole words (with the BRIN index on id; a rare
    -- query's band is the whole table). When each would cost more than the budget, the walk
    -- goes on for WALK_LIMIT papers only.
    upper_id := newest - walked;
    density := CASE WHEN found > 0 THEN found::double precision / walked
                    ELSE least(matches / newest, 1.0 / walked) END;
    -- Every match has a word of the prefix: its papers are at least as dense as the matches.
    prefixed := greatest(prefixed, CASE WHEN prefixed > 0 THEN density * newest ELSE 0 END);
    band := least(1.5 * (wanted - found) / density, upper_id);
    lower_id := greatest(upper_id - band::bigint, 0);
    cost_walk := {WALK_COST} * band;
    cost_query := {MERGE_COST} * prefixed + {HEAP_COST} * 1.5 * (wanted - found);
    cost_anchor := {LIST_COST} * lists + {HEAP_COST} * anchored * band / newest;
    IF least(cost_query, cost_anchor) < least(cost_walk, {BUDGET}) THEN
        PERFORM set_config('enable_indexscan', 'off', true);
        PERFORM set_config('enable_bitmapscan', 'on', true);
        -- Down to the oldest paper the id is no condition for an index: the BRIN index
        -- would add every page of the table to read.
        RETURN QUERY
            SELECT p.id FROM papers AS p
            WHERE CASE WHEN cost_query <= cost_anchor THEN p.title_vector @@ query
                       ELSE p.title_vector @@ anchor AND ts_match_vq(p.title_vector, query) END
              AND p.id + 0 <= upper_id
              AND CASE WHEN lower_id > 0 THEN p.id > lower_id ELSE true END
            ORDER BY p.id DESC LIMIT wanted - found;
        GET DIAGNOSTICS more = ROW_COUNT;
        found := found + more;
        IF found >= wanted OR lower_id = 0 THEN
            RETURN;
        END IF;
        -- The band held fewer than estimated: the older papers too, if that stays within the
        -- budget (from the index), or if they are few (walked).
        cost_query := {MERGE_COST} * prefixed + {HEAP_COST} * matches * lower_id / newest;
        cost_anchor := {LIST_COST} * lists + {HEAP_COST} * anchored * lower_id / newest;
        IF lower_id <= {WALK_LIMIT} THEN
            PERFORM set_config('enable_indexscan', 'on', true);
            PERFORM set_config('enable_bitmapscan', 'off', true);
            RETURN QUERY
                SELECT p.id FROM papers AS p
                WHERE p.id <= lower_id AND ts_match_vq(p.title_vector, query)
                ORDER BY p.id DESC LIMIT wanted - found;
        ELSIF least(cost_query, cost_anchor) <= {BUDGET} THEN
            RETURN QUERY
                SELECT p.id FROM papers AS p
                WHERE CASE WHEN cost_query <= cost_anchor THEN p.title_vector @@ query
                           ELSE p.title_vector @@ anchor
                                AND ts_match_vq(p.title_vector, query) END
                  AND p.id + 0 <= lower_id
                ORDER BY p.id DESC LIMIT wanted - found;
        END IF;
    ELSE
        -- The walk stops at the last suggestion wanted, or after WALK_LIMIT papers.
        RETURN QUERY
            SELECT p.id FROM papers AS p
            WHERE p.id > upper_id - {WALK_LIMIT} AND p.id <= upper_id
              AND ts_match_vq(p.title_vector, query)
            ORDER BY p.id DESC LIMIT wanted - found;
    END IF;
END
$fn$
"""  # noqa: S608 - constants only

# 0008's function with two changes. The second test of each vector only with an anchor (a
# constant in the custom plan: the planner drops the OR when there is none). And after a band
# read from the GIN index held no match, the rest of the table in one more read: the index
# reads its whole lists whatever the band (`generative` is in 30% of abstracts), and a band
# with none means the estimate was high (a word the planner keeps no frequency for is given
# 0.5% of the papers), so doubling the band read those lists three times and more.
_CHANGES = {
    "title": (
        "                  AND ts_match_vq(p.title_vector, query)\n",
        "                  AND (NOT use_anchor OR ts_match_vq(p.title_vector, query))\n",
    ),
    "search": (
        "                  AND ts_match_vq(p.search_vector, query)\n",
        "                  AND (NOT use_anchor OR ts_match_vq(p.search_vector, query))\n",
    ),
    "rest": (
        "            density := found::double precision / (newest - lower_id);\n        ELSE\n",
        "            density := found::double precision / (newest - lower_id);\n"
        "        ELSIF NOT walk THEN\n"
        "            density := 1.0 / newest;  -- a band of at least all the papers\n"
        "        ELSE\n",
    ),
}
NEWEST_MATCHES_SIGNATURE = "hotpapers_newest_matches(tsquery, boolean, integer, tsquery, integer[])"


def newest_matches() -> str:
    """0010's ``hotpapers_newest_matches``: 0008's with the changes of ``_CHANGES``."""
    sql: str = _revision("0008").NEWEST_MATCHES
    for before, after in _CHANGES.values():
        assert sql.count(before) == 1, before
        sql = sql.replace(before, after)
    return sql.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _is_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    if _is_sqlite():
        return
    op.execute(newest_matches())
    op.execute(SUGGESTIONS)
    op.execute(f"ALTER TABLE papers ALTER COLUMN title_vector SET STATISTICS {TITLE_STATISTICS}")
    op.execute("ANALYZE papers (title_vector)")


def downgrade() -> None:
    if _is_sqlite():
        return
    op.execute(f"DROP FUNCTION IF EXISTS {SUGGESTIONS_SIGNATURE}")
    op.execute("ALTER TABLE papers ALTER COLUMN title_vector SET STATISTICS -1")
    op.execute(
        _revision("0008").NEWEST_MATCHES.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    )
