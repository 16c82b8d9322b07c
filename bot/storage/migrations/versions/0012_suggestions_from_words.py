"""Autocomplete from the word index's lists, counted, rather than the planner's estimates.

PostgreSQL only (SQLite's FTS5 reads its prefix indexes newest first already). bot.storage.papers
has the query.

0011's ``hotpapers_suggestions`` left to 0010's banded plan most prefixes typed after a whole
word, and every prefix alone that the newest papers had three times or more: 5-8 ms at a million
papers, and bounded, so that some got fewer suggestions than there are: ``Ergra`` (3,927 papers,
three of them among the newest 300) got 5, ``homi lai`` 12, ``galaxy represent`` and ``sparse
po`` none (201 and 271 papers). It chose by the planner's estimates, and the estimate of a prefix
is a share of the commonest words' frequencies, 2 to 13 times too small for a rare one
(``laho:*``: 1,747 for 4,314 entries). Here the word index's lists are counted, index-only (about
0.1 µs an entry, up to a cap), and each way below gives exactly the newest matches, all of them
up to ``wanted``:

1. A prefix alone: the newest ``SAMPLE`` papers walked; when at most ``SPARSE_SAMPLE`` of them
   match, the words the prefix starts (a loose scan, up to ``PREFIX_WORDS``) and each one's newest
   papers (``Ergra``: 38 words).
2. Whole words then a prefix: each word's list counted (up to ``RARE_WORD``; one word alone up to
   ``COMMON_WORD``). A list of at most ``RARE_WORD`` papers is read newest first, each paper
   checked against the query (``tronnyicstra ny``: 521 papers, the 25th match after about 140).
   Several longer lists: the banded plan (their intersection may be rare in any of them).
3. One word of more papers, and a prefix that starts at most ``MERGED_WORDS`` words (``robus``:
   one, ``li``: seven) and has more than ``LOOKED_UP_PREFIX`` entries: first the word's newest
   ``WINDOW`` papers (all of them, up to twice that), those with a started word among them, by a
   hash join when the started words have few papers in that range (``HASHED``) and else by
   lookups, one B-tree descent a word; too few there, then below the window each started word's
   list merged with the word's (both newest first, no sort), a started word of few papers
   (``LOOKED_UP_LIST``) looked up instead, each merge stopping at its wanted-th match and the
   later ones reading only above the oldest match kept.
4. A prefix of at most ``LOOKED_UP_PREFIX`` entries: its papers newest first, each looked up in
   the word's list (``and laho``: ``and`` is found in 221 of them in 0.3 ms); of at most
   ``RARE_PREFIX``: its papers sorted and merged with the word's list (``continual qir``: 6,166
   and 3,385 entries). The prefix is not counted when the planner's estimate already says it is
   longer, nor, after a word of at most ``CHECKED_WORD`` papers, half that.
5. A word of at most ``CHECKED_WORD`` papers: its list newest first, each paper checked.
6. A common word and a common prefix: the word's newest papers checked (at most
   ``CHECK_LIMIT``) when the prefix's estimate says the matches should be among them, the banded
   plan below those (as in 0011, the gate at the limit itself rather than half of it); else the
   word's newest ``WIDE_WINDOW`` papers, those with one of the prefix's words (up to
   ``PREFIX_WORDS``) among them; else the banded plan.

The banded plan stays bounded: several common words and a common prefix (``layout network an``)
may still get fewer suggestions than there are, never wrong ones; a letter later the prefix is
rarer and one of the exact ways above takes it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from bot.storage.migrations.earlier import revision_module as _revision

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TITLE_WORDS = "paper_title_words"
BANDED = "hotpapers_suggestions_banded"
# The costs behind these numbers, measured at a million papers (2 cores): an entry of the word
# index read in order, about 0.1 µs; a B-tree descent (a lookup), about 1 µs; a paper checked
# against the query (its row visited), about 3 µs; a word found by the loose scan, about 8 µs.
# 1. A prefix alone.
SAMPLE = 300
SPARSE_SAMPLE = 8
PREFIX_WORDS = 200
# 2. A rare whole word, and how far one word alone is counted.
RARE_WORD = 600
COMMON_WORD = 5000
# 3. A prefix of few words after one word.
MERGED_WORDS = 8
WINDOW = 1000
HASHED = 4000
LOOKED_UP_LIST = 200
# 4. A prefix of few entries.
LOOKED_UP_PREFIX = 2000
RARE_PREFIX = 12000
# 5. A word short enough to check each of its papers.
CHECKED_WORD = 2000
# 6. A common word and a common prefix.
CHECK_LIMIT = 600
CHECKS_EXPECTED = 600
WIDE_WINDOW = 2000

# The lexemes of a tsquery of quoted words, as the word index spells them (a tsquery's text
# doubles quotes and backslashes).
_LEXEMES = "regexp_matches({0}::text, '''((?:[^'']|'''')*)''', 'g')"
_UNQUOTED = r"replace(replace(m[1], '''''', ''''), '\\', '\')"

# The words that start with a prefix (at least stem, below bound: C collation), up to `most`, found
# one B-tree descent each (a loose index scan of the word index).
STARTED_WORDS = f"""
CREATE OR REPLACE FUNCTION hotpapers_started_words(stem text, bound text, most integer)
RETURNS text[]
LANGUAGE sql STABLE
SET enable_seqscan = off
AS $fn$
    SELECT ARRAY(
        WITH RECURSIVE w(word) AS (
            SELECT min(t.word) FROM {TITLE_WORDS} AS t WHERE t.word >= stem AND t.word < bound
            UNION ALL
            SELECT (
                SELECT min(t.word) FROM {TITLE_WORDS} AS t
                WHERE t.word > w.word AND t.word < bound
            )
            FROM w WHERE w.word IS NOT NULL
        )
        SELECT w.word FROM w WHERE w.word IS NOT NULL LIMIT most
    )
$fn$
"""  # noqa: S608 - constants only

# The newest `wanted` papers from `lowest` up that have `word` and one of `started`. When the
# started words have few papers in that range (up to HASHED entries), both sides are read and
# hashed; otherwise the word's papers are read newest first, each looked up in the started words'
# lists (one B-tree descent a word), until the wanted-th.
WINDOW_MATCHES = f"""
CREATE OR REPLACE FUNCTION hotpapers_window_matches(
    word text, started text[], query tsquery, wanted integer, lowest integer
)
RETURNS integer[]
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_mergejoin = off
SET enable_hashjoin = off
SET enable_nestloop = on
AS $fn$
DECLARE
    n integer;
BEGIN
    SELECT count(*) INTO n FROM (
        SELECT 1 FROM {TITLE_WORDS} AS b
        WHERE b.word = ANY (started) AND b.paper_id >= lowest LIMIT {HASHED} + 1
    ) AS c;
    IF n <= {HASHED} THEN
        PERFORM set_config('enable_nestloop', 'off', true);
        PERFORM set_config('enable_hashjoin', 'on', true);
        RETURN ARRAY(
            SELECT DISTINCT a.paper_id
            FROM {TITLE_WORDS} AS a JOIN {TITLE_WORDS} AS b ON b.paper_id = a.paper_id
            WHERE a.word = hotpapers_window_matches.word AND a.paper_id >= lowest
              AND b.word = ANY (started) AND b.paper_id >= lowest
            ORDER BY 1 DESC LIMIT wanted
        );
    END IF;
    PERFORM set_config('enable_nestloop', 'on', true);
    PERFORM set_config('enable_hashjoin', 'off', true);
    IF cardinality(started) > {MERGED_WORDS} THEN
        -- Too many words to look up one by one: each paper checked against the query.
        RETURN ARRAY(
            SELECT a.paper_id
            FROM {TITLE_WORDS} AS a JOIN papers AS p ON p.id = a.paper_id
            WHERE a.word = hotpapers_window_matches.word AND a.paper_id >= lowest
              AND ts_match_vq(p.title_vector, query)
            ORDER BY a.paper_id DESC LIMIT wanted
        );
    END IF;
    RETURN ARRAY(
        SELECT a.paper_id FROM {TITLE_WORDS} AS a
        WHERE a.word = hotpapers_window_matches.word AND a.paper_id >= lowest
          AND (
              SELECT 1 FROM {TITLE_WORDS} AS b
              WHERE b.word = ANY (started) AND b.paper_id = a.paper_id LIMIT 1
          ) IS NOT NULL
        ORDER BY a.paper_id DESC LIMIT wanted
    );
END
$fn$
"""  # noqa: S608 - constants only

# plan_cache_mode is left to PostgreSQL (auto): a statement whose generic plan costs no more than
# its custom ones keeps it, and most here (counts of one word's list) plan the same whatever the
# word; planning each of them on every keystroke cost about 0.1 ms a call (0010 and 0011 forced
# custom plans; the banded plan and the search still do).
SUGGESTIONS = f"""
CREATE OR REPLACE FUNCTION hotpapers_suggestions(
    query tsquery, anchor tsquery, prefix tsquery, wanted integer
)
RETURNS TABLE (id integer)
LANGUAGE plpgsql VOLATILE ROWS 25
SET plan_cache_mode = auto
SET jit = off
SET max_parallel_workers_per_gather = 0
SET enable_seqscan = off
SET enable_indexscan = on
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_nestloop = on
AS $fn$
DECLARE
    newest integer;
    stem text;
    bound text;
    words text[] := '{{}}';
    started text[];
    others text[];
    listed integer[];
    term text;
    shortest text;
    fewest integer;
    n integer;
    found integer := 0;
    lowest integer;
    window_start integer;
    prefixed double precision;
BEGIN
    IF wanted <= 0 OR query IS NULL OR numnode(query) = 0 THEN
        RETURN;
    END IF;
    IF (prefix IS NULL OR numnode(prefix) = 0) AND query::text !~ ':[*]' THEN
        RETURN QUERY SELECT m.id FROM hotpapers_newest_matches(query, true, wanted) AS m;
        RETURN;
    END IF;
    -- The word index serves a prefix (one lexeme) after whole words joined by & only.
    -- (and only when the query is exactly those words and that prefix, as bot.storage.papers
    -- writes it: the ways below read the word index, not the query)
    IF numnode(prefix) = 1 AND prefix::text ~ ':[*]$' AND query::text !~ '[|!<]'
       AND (anchor IS NULL OR (numnode(anchor) > 0 AND anchor::text !~ ':'))
       AND query = (CASE WHEN anchor IS NULL THEN prefix ELSE anchor && prefix END) THEN
        stem := (SELECT {_UNQUOTED} FROM {_LEXEMES.format("prefix")} AS m);
        IF anchor IS NOT NULL THEN
            words := ARRAY(
                SELECT DISTINCT {_UNQUOTED} FROM {_LEXEMES.format("anchor")} AS m
            );
        END IF;
    END IF;
    IF stem IS NULL OR stem = '' OR (anchor IS NOT NULL AND cardinality(words) = 0) THEN
        RETURN QUERY SELECT b.id FROM {BANDED}(query, anchor, prefix, wanted) AS b;
        RETURN;
    END IF;
    -- Every word the prefix starts is at least stem and below bound (C collation: bytes).
    bound := left(stem, -1) || chr(ascii(right(stem, 1)) + 1);

    IF cardinality(words) = 0 THEN
        -- 1. A prefix alone: the newest papers; then the words it starts.
        SELECT max(p.id) INTO newest FROM papers AS p;
        listed := ARRAY(
            SELECT p.id FROM papers AS p
            WHERE p.id > newest - {SAMPLE} AND ts_match_vq(p.title_vector, query)
            ORDER BY p.id DESC LIMIT wanted
        );
        IF cardinality(listed) >= wanted OR newest IS NULL OR newest <= {SAMPLE} THEN
            RETURN QUERY SELECT unnest(listed);
            RETURN;
        END IF;
        IF cardinality(listed) > {SPARSE_SAMPLE} THEN
            -- Common enough for the banded plan's walk of the newest papers.
            RETURN QUERY SELECT b.id FROM {BANDED}(query, anchor, prefix, wanted) AS b;
            RETURN;
        END IF;
        started := hotpapers_started_words(stem, bound, {PREFIX_WORDS} + 1);
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
        RETURN QUERY SELECT b.id FROM {BANDED}(query, anchor, prefix, wanted) AS b;
        RETURN;
    END IF;

    -- 2. The whole words' lists, counted: the shortest drives when short enough.
    FOREACH term IN ARRAY words LOOP
        SELECT count(*) INTO n FROM (
            SELECT 1 FROM {TITLE_WORDS} AS t
            WHERE t.word = term
            -- One word is counted further; of several, a list longer than RARE_WORD is common
            -- enough for the banded plan.
            LIMIT CASE WHEN cardinality(words) = 1 THEN {COMMON_WORD} ELSE {RARE_WORD} END + 1
        ) AS c;
        IF fewest IS NULL OR n < fewest THEN
            shortest := term;
            fewest := n;
        END IF;
    END LOOP;
    others := array_remove(words, shortest);
    -- A rare word's list is read whole (below, after the block); the other ways first.
    <<ways>>
    BEGIN
        EXIT ways WHEN fewest <= {RARE_WORD};
        IF cardinality(others) > 0 THEN
            -- Several words of many papers each: their intersection may be rare among any list's
            -- papers or the prefix's, which the banded plan's GIN reads serve better.
            RETURN QUERY SELECT b.id FROM {BANDED}(query, anchor, prefix, wanted) AS b;
            RETURN;
        END IF;

        -- 3. One word of more papers, and the words the prefix starts, when they are few (the
        -- started words are counted up to one more, to tell).
        started := hotpapers_started_words(stem, bound, {MERGED_WORDS} + 1);
        -- The prefix's entries, counted up to the most that its papers are looked up for (not
        -- when it starts many words and the planner knows it to be common: `st`, 200,000).
        IF cardinality(started) > {MERGED_WORDS} THEN
            prefixed := hotpapers_estimate(prefix, true);
        END IF;
        IF prefixed > {RARE_PREFIX}
           OR (fewest <= {CHECKED_WORD} AND prefixed > {RARE_PREFIX} / 2) THEN
            -- (a word's list short enough to check costs less than counting a likely long prefix)
            n := {RARE_PREFIX} + 1;
        ELSE
            SELECT count(*) INTO n FROM (
                SELECT 1 FROM {TITLE_WORDS} AS t WHERE t.word >= stem AND t.word < bound
                LIMIT CASE
                    WHEN cardinality(started) <= {MERGED_WORDS} THEN {LOOKED_UP_PREFIX}
                    ELSE {RARE_PREFIX}
                END + 1
            ) AS c;
        END IF;
        IF cardinality(started) <= {MERGED_WORDS} AND n > {LOOKED_UP_PREFIX} THEN
            -- First the word's newest WINDOW papers (all of them, when twice that at most), those
            -- with a started word among them: enough when the matches are not rare.
            window_start := CASE WHEN fewest <= 2 * {WINDOW} THEN 0 ELSE (
                SELECT min(w.paper_id) FROM (
                    SELECT t.paper_id FROM {TITLE_WORDS} AS t
                    WHERE t.word = shortest ORDER BY t.paper_id DESC LIMIT {WINDOW}
                ) AS w
            ) END;
            listed := hotpapers_window_matches(shortest, started, query, wanted, window_start);
            IF cardinality(listed) >= wanted OR window_start = 0 THEN
                RETURN QUERY SELECT unnest(listed);
                RETURN;
            END IF;
            -- Below the window, the word's list merged with each started word's, both newest first
            -- (no sort), each merge stopping at its wanted-th match; a started word of few papers
            -- looked up in the word's list instead (a merge would walk the word's list down to
            -- that word's oldest paper). Once wanted are found, the next words are read only above
            -- the oldest of them: the long lists first, so that this bound rises early.
            found := cardinality(listed);
            RETURN QUERY SELECT unnest(listed);
            PERFORM set_config('enable_nestloop', 'off', true);
            PERFORM set_config('enable_mergejoin', 'on', true);
            listed := '{{}}';
            lowest := 0;
            wanted := wanted - found;
            FOR term, n IN
                SELECT s.word, (
                    SELECT count(*) FROM (
                        SELECT 1 FROM {TITLE_WORDS} AS t
                        WHERE t.word = s.word LIMIT {LOOKED_UP_LIST} + 1
                    ) AS c
                ) AS papers
                FROM unnest(started) AS s(word) ORDER BY 2 DESC
            LOOP
                IF n > {LOOKED_UP_LIST} THEN
                    listed := listed || ARRAY(
                        SELECT a.paper_id
                        FROM {TITLE_WORDS} AS a JOIN {TITLE_WORDS} AS b ON b.paper_id = a.paper_id
                        WHERE a.word = shortest AND b.word = term
                          AND a.paper_id > lowest AND b.paper_id > lowest
                          AND a.paper_id < window_start AND b.paper_id < window_start
                        ORDER BY a.paper_id DESC LIMIT wanted
                    );
                ELSE
                    listed := listed || ARRAY(
                        SELECT b.paper_id FROM {TITLE_WORDS} AS b
                        WHERE b.word = term AND b.paper_id > lowest AND b.paper_id < window_start
                          AND (
                              SELECT 1 FROM {TITLE_WORDS} AS a
                              WHERE a.word = shortest AND a.paper_id = b.paper_id
                          ) IS NOT NULL
                        ORDER BY b.paper_id DESC LIMIT wanted
                    );
                END IF;
                IF cardinality(listed) >= wanted THEN
                    listed := ARRAY(
                        SELECT DISTINCT u.id FROM unnest(listed) AS u(id) ORDER BY 1 DESC
                    );
                    IF cardinality(listed) >= wanted THEN
                        listed := listed[1:wanted];
                        lowest := listed[wanted];
                    END IF;
                END IF;
            END LOOP;
            RETURN QUERY
                SELECT DISTINCT u.id FROM unnest(listed) AS u(id) ORDER BY 1 DESC LIMIT wanted;
            RETURN;
        END IF;
        -- 4. A prefix of few entries.
        IF n <= {LOOKED_UP_PREFIX} THEN
            -- Few papers with the prefix: its papers newest first, each looked up in the word's
            -- list (one B-tree descent), until the wanted-th match.
            RETURN QUERY
                SELECT c.id
                FROM (
                    -- Sorted first, the lookups after (OFFSET 0 keeps them out of the sort's
                    -- input).
                    SELECT DISTINCT t.paper_id AS id FROM {TITLE_WORDS} AS t
                    WHERE t.word >= stem AND t.word < bound
                    ORDER BY 1 DESC OFFSET 0
                ) AS c
                WHERE EXISTS (
                    SELECT 1 FROM {TITLE_WORDS} AS x WHERE x.word = shortest AND x.paper_id = c.id
                )
                ORDER BY c.id DESC LIMIT wanted;
            RETURN;
        END IF;
        IF n <= {RARE_PREFIX} THEN
            -- A prefix of many words but not many papers: its papers sorted, merged with the
            -- word's list (which lookups would beat only for a word far more common than the
            -- prefix, and then by little).
            PERFORM set_config('enable_nestloop', 'off', true);
            PERFORM set_config('enable_mergejoin', 'on', true);
            RETURN QUERY
                SELECT a.paper_id
                FROM (
                    SELECT t.paper_id FROM {TITLE_WORDS} AS t
                    WHERE t.word = shortest ORDER BY t.paper_id DESC
                ) AS a
                JOIN (
                    SELECT DISTINCT t.paper_id FROM {TITLE_WORDS} AS t
                    WHERE t.word >= stem AND t.word < bound ORDER BY 1 DESC
                ) AS b ON b.paper_id = a.paper_id
                ORDER BY a.paper_id DESC LIMIT wanted;
            RETURN;
        END IF;
        -- 5. A common prefix of many words after a word of a few thousand papers: its list is read
        -- whole (below).
        EXIT ways WHEN fewest <= {CHECKED_WORD};

        -- 6. A common word and a common prefix: the word's newest papers, each checked, at most
        -- CHECK_LIMIT of them, the banded plan below those; or a wider window of them.
        SELECT max(p.id) INTO newest FROM papers AS p;
        prefixed := coalesce(prefixed, hotpapers_estimate(prefix, true));
        IF newest IS NOT NULL
           AND wanted::double precision * newest <= {CHECKS_EXPECTED} * prefixed THEN
            listed := ARRAY(
                SELECT t.paper_id FROM {TITLE_WORDS} AS t
                WHERE t.word = shortest ORDER BY t.paper_id DESC LIMIT {CHECK_LIMIT}
            );
            RETURN QUERY
                SELECT p.id
                FROM (
                    -- The papers listed, read again in order (the bounds keep the list's window
                    -- should a paper have been stored since).
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
        -- A common word and a common prefix of up to PREFIX_WORDS words: the word's newest papers,
        -- those with a started word among them.
        started := hotpapers_started_words(stem, bound, {PREFIX_WORDS} + 1);
        IF cardinality(started) <= {PREFIX_WORDS} THEN
            window_start := (
                SELECT min(w.paper_id) FROM (
                    SELECT t.paper_id FROM {TITLE_WORDS} AS t
                    WHERE t.word = shortest ORDER BY t.paper_id DESC LIMIT {WIDE_WINDOW}
                ) AS w
            );
            listed := hotpapers_window_matches(shortest, started, query, wanted, window_start);
            IF cardinality(listed) >= wanted THEN
                RETURN QUERY SELECT unnest(listed);
                RETURN;
            END IF;
        END IF;

        -- Else the banded plan.
        RETURN QUERY SELECT b.id FROM {BANDED}(query, anchor, prefix, wanted) AS b;
        RETURN;
    END ways;

    -- A word's list short enough to read whole (2 and 5): newest first, each paper checked
    -- against the query.
    RETURN QUERY
        SELECT c.paper_id
        FROM (
            SELECT t.paper_id FROM {TITLE_WORDS} AS t
            WHERE t.word = shortest ORDER BY t.paper_id DESC
        ) AS c
        JOIN papers AS p ON p.id = c.paper_id
        WHERE ts_match_vq(p.title_vector, query)
        ORDER BY c.paper_id DESC LIMIT wanted;
END
$fn$
"""  # noqa: S608 - constants only


def _is_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    if _is_sqlite():
        return
    op.execute(STARTED_WORDS)
    op.execute(WINDOW_MATCHES)
    op.execute(SUGGESTIONS)


def downgrade() -> None:
    if _is_sqlite():
        return
    op.execute(_revision("0011").SUGGESTIONS)
    op.execute(
        "DROP FUNCTION IF EXISTS hotpapers_window_matches(text, text[], tsquery, integer, integer)"
    )
    op.execute("DROP FUNCTION IF EXISTS hotpapers_started_words(text, text, integer)")
