"""The search's title tier from a word index ordered by paper: ``paper_title_words``.

PostgreSQL only (SQLite's FTS5 reads its lists newest first already). bot.storage.papers has the
queries.

The title tier of a search wants the newest 50 papers whose title or authors hold every word.
A GIN index cannot give them in order: for two common words it decodes both lists whole and
intersects them (``network model``: 48,000 and 84,000 entries, 7.7 ms at a million papers)
before the band of papers it wants is known to hold 50.

``paper_title_words(word, paper_id)`` holds each distinct word of each paper's title vector
(title and authors, folded for search), with the primary key ``(word, paper_id)``: a word's
papers are a range of that B-tree, newest last, read without visiting a paper (an index-only
scan, about 0.1 µs an entry). ``hotpapers_newest_matches`` (the search's tiers) now serves the
title tier of whole words from it:

- the words' lists are counted, up to ``SHORT_LIST`` entries;
- when the shortest is that short (a rare word), it is read from the newest paper down and each
  paper looked up in the other words' lists (one B-tree descent each): ``deep morphtronal``
  looks up 31 papers instead of decoding the ``deep`` list;
- otherwise the two shortest lists are merged from the newest paper down, both already in that
  order, and the other words looked up for each paper in both: ``network model``'s newest 50 are
  found after 689 and 909 entries, 0.2 ms.

Either stops at the wanted-th match, and gives exactly what the GIN index gave. The abstract
tier keeps the GIN index; so does a query the planner expects few matches of, now read from it
in one go (``WHOLE_READ``), with the abstracts' statistics target raised to 1000 so that a rare
word's estimate is closer to its count.

Autocomplete (``hotpapers_suggestions``) puts faster ways in front of 0010's plan, which stays as
``hotpapers_suggestions_banded``: a prefix alone that the newest papers hardly have, from the
words it starts (a loose scan of the word index); one whole word and a common prefix, from that
word's list newest first; complete words, through the title tier (see ``SUGGESTIONS``).

Triggers on papers keep the table (a paper inserted or deleted, updated with another title or
authors, papers truncated); like the search vectors it is derived data: ``hotpapers db copy``
skips it, and on a PostgreSQL target fills it once after the load (its insert trigger off for the
copy's transaction). About 16 words a paper: 16 million rows, 1.1 GB and 45 s to build at a
million papers (2 cores). Papers are locked against writes while it is built, so that none
written meanwhile by another process is left out.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from bot.storage.migrations.earlier import revision_module as _revision

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TITLE_WORDS = "paper_title_words"
# Lists up to this long are read whole, each paper looked up in the other lists (about 3 µs a
# paper with two words); longer ones are merged instead.
SHORT_LIST = 300
# Long lists are merged when the planner expects at least this many times the matches wanted (the
# merge then stops early); otherwise the GIN index, as before.
MERGE_MATCHES = 4
# A GIN read expected to find at most this many papers reads them all at once (about 5 µs each).
WHOLE_READ = 400
# The abstracts' statistics target: the planner then keeps about 10,000 abstract words' frequencies
# instead of 1,000, and a word it keeps none for gets a smaller default share (``deep &
# morphtronal``, 138 papers: estimated 255 instead of 1,307).
SEARCH_STATISTICS = 1000

TABLE = f"""
CREATE TABLE {TITLE_WORDS} (
    word text COLLATE "C" NOT NULL,
    paper_id integer NOT NULL
)
"""
# The key built after the rows are in: one sort, not millions of insertions into a B-tree.
KEY = f"ALTER TABLE {TITLE_WORDS} ADD CONSTRAINT pk_{TITLE_WORDS} PRIMARY KEY (word, paper_id)"
FILL = f"""
INSERT INTO {TITLE_WORDS} (word, paper_id)
SELECT w.word, p.id
FROM papers AS p, unnest(tsvector_to_array(p.title_vector)) AS w(word)
ORDER BY w.word COLLATE "C", p.id
"""  # noqa: S608 - constants only
# Vacuumed after each 1% of rows inserted (at a million papers, about 10,000 papers' words) rather
# than 20%: an index-only scan reads the table too for entries on pages vacuum has not yet marked
# all-visible, and a word's newest entries, read first, are the last inserted.
AUTOVACUUM = "autovacuum_vacuum_insert_scale_factor = 0.01"
# AFTER triggers: a stored generated column is computed by then. An update that leaves the title
# vector as it was (most upserts: a paper fetched again) costs only the WHEN test.
SYNC = f"""
CREATE FUNCTION hotpapers_title_words_sync()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE {TITLE_WORDS};
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM {TITLE_WORDS} AS t
        WHERE t.word = ANY (tsvector_to_array(OLD.title_vector)) AND t.paper_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO {TITLE_WORDS} (word, paper_id)
        SELECT w.word, NEW.id FROM unnest(tsvector_to_array(NEW.title_vector)) AS w(word);
    END IF;
    RETURN NULL;
END
$fn$
"""  # noqa: S608 - constants only
TRIGGERS = {
    "papers_title_words": "AFTER INSERT OR DELETE ON papers FOR EACH ROW",
    "papers_title_words_update": (
        "AFTER UPDATE ON papers FOR EACH ROW "
        "WHEN (OLD.title_vector IS DISTINCT FROM NEW.title_vector OR OLD.id <> NEW.id)"
    ),
    "papers_title_words_truncate": "AFTER TRUNCATE ON papers FOR EACH STATEMENT",
}

# hotpapers_newest_matches: 0010's, with the title tier of whole words served first from the word
# index (see the module docstring). Only queries made of quoted words joined by & (what the
# search writes) take it: any other operator, a prefix or an anchor goes on as before.
_HEADER = (
    "SET enable_bitmapscan = on\nAS $fn$\n",
    "SET enable_bitmapscan = on\nSET enable_nestloop = on\nSET enable_hashjoin = on\n"
    "SET enable_sort = on\nSET enable_mergejoin = on\nAS $fn$\n",
)
_DECLARE = (
    "    scores real[] := '{}';\nBEGIN\n",
    "    scores real[] := '{}';\n"
    "    words text[];\n    others text[];\n    term text;\n    shortest text;\n"
    "    second text;\n    fewest integer;\n    runner_up integer;\n    n integer;\nBEGIN\n",
)
_BRANCH_AFTER = "    IF newest IS NULL THEN\n        RETURN;\n    END IF;\n"
_BRANCH = f"""    IF titles AND anchor IS NULL AND query::text !~ '[|!<:]' THEN
        -- The title tier: each word's list from the word index, newest first (0011).
        words := ARRAY(
            SELECT DISTINCT replace(m[1], '''''', '''')
            FROM regexp_matches(query::text, '''((?:[^'']|'''')*)''', 'g') AS m
        );
        FOREACH term IN ARRAY words LOOP
            SELECT count(*) INTO n FROM (
                SELECT 1 FROM {TITLE_WORDS} AS t WHERE t.word = term LIMIT {SHORT_LIST} + 1
            ) AS c;
            IF fewest IS NULL OR n < fewest THEN
                second := shortest;
                runner_up := fewest;
                shortest := term;
                fewest := n;
            ELSIF runner_up IS NULL OR n < runner_up THEN
                second := term;
                runner_up := n;
            END IF;
        END LOOP;
        IF fewest > {SHORT_LIST} AND second IS NOT NULL THEN
            -- Long lists are merged only if the matches are many, so that the merge stops
            -- early. A few matches of common words (a title's "the", "of", "data" and "with":
            -- 47 papers) would read the lists whole, which the GIN index does faster.
            estimate := hotpapers_estimate(query, titles);
        END IF;
    END IF;
    IF cardinality(words) > 0
       AND (fewest <= {SHORT_LIST} OR second IS NULL OR estimate >= {MERGE_MATCHES} * wanted) THEN
        PERFORM set_config('enable_bitmapscan', 'off', true);
        PERFORM set_config('enable_indexscan', 'on', true);
        IF fewest <= {SHORT_LIST} OR second IS NULL THEN
            -- The shortest list, each of its papers looked up in the others.
            others := array_remove(words, shortest);
            ids := ARRAY(
                SELECT s.paper_id FROM {TITLE_WORDS} AS s
                WHERE s.word = shortest
                  AND (cardinality(others) = 0
                       OR (SELECT count(*) FROM {TITLE_WORDS} AS x
                           WHERE x.word = ANY (others) AND x.paper_id = s.paper_id)
                          = cardinality(others))
                ORDER BY s.paper_id DESC LIMIT wanted
            );
        ELSE
            -- The two shortest merged from the newest paper down, the others looked up.
            others := array_remove(array_remove(words, shortest), second);
            PERFORM set_config('enable_nestloop', 'off', true);
            PERFORM set_config('enable_hashjoin', 'off', true);
            PERFORM set_config('enable_sort', 'off', true);
            ids := ARRAY(
                SELECT a.paper_id
                FROM {TITLE_WORDS} AS a JOIN {TITLE_WORDS} AS b ON b.paper_id = a.paper_id
                WHERE a.word = shortest AND b.word = second
                  AND (cardinality(others) = 0
                       OR (SELECT count(*) FROM {TITLE_WORDS} AS x
                           WHERE x.word = ANY (others) AND x.paper_id = a.paper_id
                             -- b too: a test of the merged pairs, not of each paper of a
                             AND x.paper_id = b.paper_id)
                          = cardinality(others))
                ORDER BY a.paper_id DESC LIMIT wanted
            );
        END IF;
        RETURN QUERY
            SELECT p.id, ts_rank_cd('{{0, 0, 0.4, 1}}', p.title_vector, query, 1)
            FROM papers AS p WHERE p.id = ANY (ids)
            ORDER BY p.id DESC;
        RETURN;
    END IF;
"""  # noqa: S608 - constants only


# A query the planner expects few matches of is read from the GIN index in one go, every match
# at once: a read costs the whole lists of its words whatever the band, so a band too small
# for the estimate (a rare word's estimate is a default share) meant a second read of them.
_WHOLE = (
    "        band := greatest(CASE WHEN walk THEN 2 ELSE 1.5 END * wanted / density, 1);\n",
    "        band := greatest(CASE WHEN walk THEN 2 ELSE 1.5 END * wanted / density, 1);\n"
    "        IF NOT walk AND estimate <= {WHOLE_READ} THEN\n"
    "            band := newest;  -- few matches in all (0011): every one in one read\n"
    "        END IF;\n",
)
# The estimate the branch may have made already.
_ESTIMATED = (
    "        estimate := hotpapers_estimate(query, titles);\n        -- Statistics",
    "        estimate := coalesce(estimate, hotpapers_estimate(query, titles));\n"
    "        -- Statistics",
)

# Autocomplete (hotpapers_suggestions, same arguments as 0010's): the typed words, the last one a
# prefix. 0010's banded plan stays, as hotpapers_suggestions_banded; in front of it:
# - no prefix (the last word was complete, or too short to count): the title tier's search
#   through the word index, hotpapers_newest_matches;
# - one whole word and a prefix common enough that its papers should soon have one (the
#   planner's estimate says how many papers do: `speech ti`, `image lo`): the word's list from
#   the word index, newest first, each paper checked against the query, at most CHECK_LIMIT of
#   them; the banded plan for the rest, below the last paper checked. With two whole words and
#   more, their intersection may be rare among either's papers (`vision algorithm fo`): banded.
# Its papers checked one by one (about 4 µs each), a list should give the suggestions wanted in
# at most this many papers, at the prefix's density, for this way to be taken.
CHECK_LIMIT = 600
CHECKS_EXPECTED = 300
# - a prefix alone: the newest SAMPLE papers are walked; when at most SPARSE_SAMPLE of them
#   have it (`almo`, `pedi`), the words it starts (up to PREFIX_WORDS, found one B-tree descent
#   each: a loose index scan) and the newest papers of each give the suggestions. A common
#   prefix (`co`) is for the banded plan, whose walk of the newest papers serves it at once.
SAMPLE = 300
SPARSE_SAMPLE = 2
PREFIX_WORDS = 200
BANDED = "hotpapers_suggestions_banded"
SUGGESTIONS = f"""
CREATE OR REPLACE FUNCTION hotpapers_suggestions(
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
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $fn$
DECLARE
    newest integer;
    shortest text;
    stem text;
    started text[];
    prefixed double precision;
    listed integer[];
    found integer := 0;
BEGIN
    IF wanted <= 0 OR query IS NULL OR numnode(query) = 0 THEN
        RETURN;
    END IF;
    IF (prefix IS NULL OR numnode(prefix) = 0) AND query::text !~ ':[*]' THEN
        RETURN QUERY SELECT m.id FROM hotpapers_newest_matches(query, true, wanted) AS m;
        RETURN;
    END IF;
    IF numnode(query) = 1 AND numnode(prefix) = 1 AND query::text ~ ':[*]$' THEN
        -- A prefix alone: the newest papers first; when few of them have it, the words it
        -- starts, each one's newest papers.
        SELECT max(p.id) INTO newest FROM papers AS p;
        listed := ARRAY(
            SELECT p.id FROM papers AS p
            WHERE p.id > newest - {SAMPLE} AND ts_match_vq(p.title_vector, query)
            ORDER BY p.id DESC LIMIT wanted
        );
        IF cardinality(listed) >= wanted OR newest <= {SAMPLE} THEN
            RETURN QUERY SELECT unnest(listed);
            RETURN;
        END IF;
        stem := (
            SELECT replace(m[1], '''''', '''')
            FROM regexp_matches(prefix::text, '''((?:[^'']|'''')*)''') AS m
        );
        IF stem <> '' AND cardinality(listed) <= {SPARSE_SAMPLE} THEN
            started := ARRAY(
                WITH RECURSIVE w(word) AS (
                    SELECT min(t.word) FROM {TITLE_WORDS} AS t
                    WHERE t.word >= stem
                      AND t.word < left(stem, -1) || chr(ascii(right(stem, 1)) + 1)
                    UNION ALL
                    SELECT (
                        SELECT min(t.word) FROM {TITLE_WORDS} AS t
                        WHERE t.word > w.word
                          AND t.word < left(stem, -1) || chr(ascii(right(stem, 1)) + 1)
                    )
                    FROM w WHERE w.word IS NOT NULL
                )
                SELECT w.word FROM w WHERE w.word IS NOT NULL LIMIT {PREFIX_WORDS} + 1
            );
            IF cardinality(started) <= {PREFIX_WORDS} THEN
                RETURN QUERY
                    SELECT DISTINCT x.paper_id
                    FROM unnest(started) AS s(word),
                         LATERAL (
                             SELECT t.paper_id FROM {TITLE_WORDS} AS t
                             WHERE t.word = s.word ORDER BY t.paper_id DESC LIMIT wanted
                         ) AS x
                    ORDER BY 1 DESC LIMIT wanted;
                RETURN;
            END IF;
        END IF;
    END IF;
    IF numnode(anchor) = 1 AND anchor::text !~ ':' AND query::text !~ '[|!<]' THEN
        SELECT max(p.id) INTO newest FROM papers AS p;
        prefixed := hotpapers_estimate(prefix, true);
        IF newest IS NOT NULL
           AND wanted::double precision * newest / prefixed <= {CHECKS_EXPECTED} THEN
            shortest := (
                SELECT replace(m[1], '''''', '''')
                FROM regexp_matches(anchor::text, '''((?:[^'']|'''')*)''') AS m
            );
        END IF;
        IF shortest IS NOT NULL THEN
            listed := ARRAY(
                SELECT t.paper_id FROM {TITLE_WORDS} AS t
                WHERE t.word = shortest ORDER BY t.paper_id DESC LIMIT {CHECK_LIMIT}
            );
            RETURN QUERY
                SELECT p.id
                FROM (
                    -- The papers listed, read again in order (the bounds keep the list's
                    -- window should a paper have been stored since).
                    SELECT t.paper_id FROM {TITLE_WORDS} AS t
                    WHERE t.word = shortest
                      AND t.paper_id <= listed[1] AND t.paper_id >= listed[cardinality(listed)]
                    ORDER BY t.paper_id DESC
                ) AS c
                JOIN papers AS p ON p.id = c.paper_id
                WHERE ts_match_vq(p.title_vector, query)
                ORDER BY c.paper_id DESC LIMIT wanted;
            GET DIAGNOSTICS found = ROW_COUNT;
            -- Done with the suggestions wanted, or with every paper of the list.
            IF found >= wanted OR cardinality(listed) < {CHECK_LIMIT} THEN
                RETURN;
            END IF;
            RETURN QUERY
                SELECT b.id FROM {BANDED}(query, anchor, prefix, wanted) AS b
                WHERE b.id < listed[{CHECK_LIMIT}]
                ORDER BY b.id DESC LIMIT wanted - found;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT b.id FROM {BANDED}(query, anchor, prefix, wanted) AS b;
END
$fn$
"""  # noqa: S608 - constants only


def newest_matches() -> str:
    """0011's ``hotpapers_newest_matches``: 0010's with the title tier from the word index."""
    sql: str = _revision("0010").newest_matches()
    for before, after in (
        _HEADER,
        _DECLARE,
        (_BRANCH_AFTER, _BRANCH_AFTER + _BRANCH),
        _ESTIMATED,
        (_WHOLE[0], _WHOLE[1].format(WHOLE_READ=WHOLE_READ)),
    ):
        assert sql.count(before) == 1, before
        sql = sql.replace(before, after)
    return sql


def banded() -> str:
    """0010's ``hotpapers_suggestions``, as ``hotpapers_suggestions_banded``."""
    sql: str = _revision("0010").SUGGESTIONS
    before = "CREATE FUNCTION hotpapers_suggestions("
    assert sql.count(before) == 1
    return sql.replace(before, f"CREATE FUNCTION {BANDED}(")


def _is_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    if _is_sqlite():
        return
    op.execute(TABLE)
    # The lock CREATE TRIGGER takes anyway, from before the fill: no paper written by another
    # process between the fill's snapshot and the triggers goes unindexed (reads go on).
    op.execute("LOCK TABLE papers IN SHARE ROW EXCLUSIVE MODE")
    op.execute(FILL)
    op.execute(KEY)
    op.execute(f"ALTER TABLE {TITLE_WORDS} SET ({AUTOVACUUM})")
    op.execute(SYNC)
    for name, when in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION hotpapers_title_words_sync()")
    op.execute(newest_matches())
    op.execute(banded())
    op.execute(SUGGESTIONS)
    op.execute(f"ANALYZE {TITLE_WORDS}")
    op.execute(f"ALTER TABLE papers ALTER COLUMN search_vector SET STATISTICS {SEARCH_STATISTICS}")
    op.execute("ANALYZE papers (search_vector)")


def downgrade() -> None:
    if _is_sqlite():
        return
    op.execute(_revision("0010").newest_matches())
    # 0010's function back under its name, with its body: the wrapper calls the banded copy.
    suggestions = _revision("0010").SUGGESTIONS
    op.execute(suggestions.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute(f"DROP FUNCTION IF EXISTS {BANDED}(tsquery, tsquery, tsquery, integer)")
    op.execute("ALTER TABLE papers ALTER COLUMN search_vector SET STATISTICS -1")
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON papers")
    op.execute("DROP FUNCTION IF EXISTS hotpapers_title_words_sync()")
    op.execute(f"DROP TABLE IF EXISTS {TITLE_WORDS}")
