"""Mention storage: posts linking papers, their links, a metrics snapshot per fetch, and the
retention that thins old snapshots to one a day."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from bot.core.models import Mention, Window
from bot.storage.dialect import aware, chunked, insert_for
from bot.storage.engine import Database
from bot.storage.tables import (
    METRIC_COLUMNS,
    mention_metrics,
    mention_papers,
    mentions,
    missing_ids,
    paper_categories,
    papers,
)
from bot.storage.types import without_nul

log = logging.getLogger(__name__)

# arXiv's API can lag a day behind new announcements (API-NOTES §1): an id it lacked is asked
# again after MISSING_RETRY, while some post linking it is younger than RECENT_MENTION.
MISSING_RETRY = dt.timedelta(hours=6)
RECENT_MENTION = dt.timedelta(days=3)
# The metric columns are INTEGER: 32 bits on PostgreSQL (64 on SQLite). A count past that (a
# broken or hostile source) would fail the whole batch there; it is stored as the largest one.
METRIC_MAX = 2**31 - 1
METRIC_MIN = -(2**31)
# Retention (storage.keep_snapshots_days): one write transaction removes about this many
# snapshots at most, so that thinning never holds SQLite's one write lock for long...
THIN_BATCH_ROWS = 2000
# ...and one read looks at the snapshots of at most this many consecutive post ids, so that no
# read runs for long either, even over years of already thinned snapshots.
THIN_SPAN_IDS = 20_000


@dataclass(frozen=True, slots=True)
class StoredMention:
    """A stored mention whose metrics are those of its latest snapshot, taken at ``fetched_at``."""

    mention: Mention
    fetched_at: dt.datetime


class MentionRepository:
    """Mentions keyed by (source, post_id), their paper links and their metrics over time."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, items: Iterable[Mention], fetched_at: dt.datetime) -> int:
        """Store mentions as fetched at ``fetched_at``; returns how many distinct posts.

        The post row is inserted or refreshed, its links replaced by the ones given, and a
        metrics snapshot recorded for ``fetched_at``: storing the same fetch again overwrites
        that snapshot, a later fetch adds one (so popularity can be charted over time).
        """
        fetched_at = aware(fetched_at, "fetched_at")
        unique = {_key(m): m for m in items}
        for batch in chunked(unique.values()):
            stmt = insert_for(self._db, mentions)
            stmt = stmt.on_conflict_do_update(
                index_elements=[mentions.c.source, mentions.c.post_id],
                # first_seen_at stays as first written.
                set_={
                    name: stmt.excluded[name]
                    for name in ("url", "author", "author_name", "text", "lang", "created_at")
                },
            )
            async with self._db.write() as conn:
                ids = await _written(conn, stmt, [_mention_row(m, fetched_at) for m in batch])
                await self._replace_links(conn, batch, ids)
                await self._snapshots(conn, ids, batch, fetched_at)
        log.debug("stored %d mentions fetched at %s", len(unique), fetched_at)
        return len(unique)

    async def upsert_discovered(self, items: Iterable[Mention], seen_at: dt.datetime) -> int:
        """Store posts found on a stream, before any metrics are known; returns how many.

        A replay delivers the same event again and an edit re-delivers the post: either way the
        row is refreshed (text, language, links), never doubled. What a metrics refresh learnt
        (handle, display name, link) and every snapshot stay as they are.
        """
        seen_at = aware(seen_at, "seen_at")
        unique = {_key(m): m for m in items}
        for batch in chunked(unique.values()):
            stmt = insert_for(self._db, mentions)
            stmt = stmt.on_conflict_do_update(
                index_elements=[mentions.c.source, mentions.c.post_id],
                set_={name: stmt.excluded[name] for name in ("text", "lang")},
            )
            async with self._db.write() as conn:
                ids = await _written(conn, stmt, [_mention_row(m, seen_at) for m in batch])
                await self._replace_links(conn, batch, ids)
        return len(unique)

    async def _snapshots(
        self,
        conn: Any,
        ids: Mapping[tuple[str, str], int],
        batch: Iterable[Mention],
        fetched_at: dt.datetime,
    ) -> None:
        """One metrics snapshot per post at ``fetched_at`` (the same fetch again overwrites)."""
        snapshot = insert_for(self._db, mention_metrics)
        snapshot = snapshot.on_conflict_do_update(
            index_elements=[mention_metrics.c.mention_id, mention_metrics.c.fetched_at],
            set_={name: snapshot.excluded[name] for name in METRIC_COLUMNS},
        )
        await conn.execute(snapshot, [_metrics_row(ids[_key(m)], fetched_at, m) for m in batch])

    async def _replace_links(
        self, conn: Any, batch: list[Mention], ids: Mapping[tuple[str, str], int]
    ) -> None:
        await conn.execute(
            delete(mention_papers).where(mention_papers.c.mention_id.in_(list(ids.values())))
        )
        links = [
            {"mention_id": ids[_key(m)], "arxiv_id": arxiv_id, "position": i}
            for m in batch
            for i, arxiv_id in enumerate(dict.fromkeys(m.arxiv_ids))
        ]
        if links:
            await conn.execute(mention_papers.insert(), links)

    async def record_refresh(self, items: Iterable[Mention], fetched_at: dt.datetime) -> int:
        """Store re-read counts of posts already stored: a metrics snapshot, and the link and
        names the source gave (a handle learnt). Posts no longer stored are not brought back,
        and text, language and links stay as stored (the stream's edits are newer). Returns
        how many posts were updated."""
        fetched_at = aware(fetched_at, "fetched_at")
        unique = {_key(m): m for m in items}
        updated = 0
        for batch in chunked(unique.values()):
            keys = [_key(m) for m in batch]
            async with self._db.write() as conn:
                result = await conn.execute(
                    select(mentions.c.id, mentions.c.source, mentions.c.post_id).where(
                        _keys_in(keys)
                    )
                )
                ids = {(source, post_id): id_ for id_, source, post_id in result}
                present = [m for m in batch if _key(m) in ids]
                if not present:
                    continue
                await conn.execute(
                    update(mentions)
                    .where(mentions.c.id == bindparam("row_id"))
                    .values(
                        url=bindparam("new_url"),
                        author=bindparam("new_author"),
                        author_name=bindparam("new_author_name"),
                    ),
                    [
                        {
                            "row_id": ids[_key(m)],
                            "new_url": m.url,
                            "new_author": m.author,
                            "new_author_name": m.author_name,
                        }
                        for m in present
                    ],
                )
                await self._snapshots(conn, ids, present, fetched_at)
                updated += len(present)
        return updated

    async def delete_posts(self, source: str, post_ids: Iterable[str]) -> int:
        """Forget posts (deleted at the source), with their links and metrics; returns how many."""
        removed = 0
        for batch in chunked(dict.fromkeys(post_ids)):
            async with self._db.write() as conn:
                removed += await self._delete_where(
                    conn, and_(mentions.c.source == source, mentions.c.post_id.in_(batch))
                )
        return removed

    async def delete_with_prefix(self, source: str, prefix: str) -> int:
        """Forget every post of ``source`` whose id starts with ``prefix`` (an account's posts,
        whose ids are ``at://<did>/…``); returns how many. A range over the (source, post_id)
        index, exact and case-sensitive as DIDs are."""
        prefix = without_nul(prefix)
        async with self._db.write() as conn:
            return await self._delete_where(
                conn,
                and_(
                    mentions.c.source == source,
                    mentions.c.post_id >= prefix,
                    mentions.c.post_id < _after_prefix(prefix),
                ),
            )

    async def _delete_where(self, conn: Any, condition: ColumnElement[bool]) -> int:
        # Links and snapshots go explicitly: foreign-key cascades are not relied upon.
        doomed = select(mentions.c.id).where(condition).scalar_subquery()
        await conn.execute(delete(mention_papers).where(mention_papers.c.mention_id.in_(doomed)))
        await conn.execute(delete(mention_metrics).where(mention_metrics.c.mention_id.in_(doomed)))
        result = await conn.execute(delete(mentions).where(condition))
        return int(result.rowcount or 0)

    async def thin_snapshots(
        self,
        before: dt.datetime,
        *,
        batch_rows: int = THIN_BATCH_ROWS,
        span_ids: int = THIN_SPAN_IDS,
        keep_going: Callable[[], bool] | None = None,
    ) -> int:
        """Thin the metrics snapshots of the UTC days wholly before ``before`` to one per post
        and day, the day's last reading; returns how many snapshots were removed.

        A snapshot holds a post's cumulative counts, so the day's last reading is that day's
        aggregate, and what reads snapshots keeps its answers: a score takes each post's latest
        snapshot, which is the last reading of its last day (kept); a score "as of" a UTC
        midnight takes each post's latest reading before it, the last of some earlier day
        (kept); a chart keeps one point per post and day, each day ending at its true value.
        Only the steps within a thinned day are gone.

        Works in bounded steps, safe beside the bot's own writes: a read finds the next
        ``batch_rows`` snapshots to remove among ``span_ids`` consecutive post ids, then a short
        write transaction removes those of the same posts (a later reading of the same day, the
        reason for removing one, is never removed itself, so a snapshot written meanwhile
        cannot make it wrong). ``keep_going`` is asked before each step: False stops (a
        shutdown, a lost leadership); what was removed stays removed, and the next run goes on.
        """
        if batch_rows < 1 or span_ids < 1:
            raise ValueError("batch_rows and span_ids must be at least 1")
        before = aware(before, "before")
        cutoff = dt.datetime.combine(before.date(), dt.time(), dt.UTC)
        later = mention_metrics.alias("later")
        same_day = _utc_day(self._db, later.c.fetched_at) == _utc_day(
            self._db, mention_metrics.c.fetched_at
        )
        superseded = and_(
            mention_metrics.c.fetched_at < cutoff,
            exists().where(
                later.c.mention_id == mention_metrics.c.mention_id,
                later.c.fetched_at > mention_metrics.c.fetched_at,
                later.c.fetched_at < cutoff,
                same_day,
            ),
        )
        async with self._db.read() as conn:
            # Snapshots written after this run started are recent: none is thinned.
            last = (await conn.execute(select(func.max(mention_metrics.c.mention_id)))).scalar()
        if last is None:
            return 0
        removed = 0
        after = -1
        while after < last and (keep_going is None or keep_going()):
            # Post ids may be sparse (PostgreSQL's sequence moves on at every upsert of a post
            # stored already): a span starts at the next id there is, one index probe away.
            following = select(func.min(mention_metrics.c.mention_id)).where(
                mention_metrics.c.mention_id > after
            )
            async with self._db.read() as conn:
                first = (await conn.execute(following)).scalar()
            if first is None:
                break
            after = max(after, first - 1)
            bound = min(after + span_ids, last)
            in_span = and_(
                mention_metrics.c.mention_id > after, mention_metrics.c.mention_id <= bound
            )
            step = (
                select(mention_metrics.c.mention_id)
                .where(in_span, superseded)
                .order_by(mention_metrics.c.mention_id)
                .limit(batch_rows)
            )
            async with self._db.read() as conn:
                found = list((await conn.execute(step)).scalars())
            # A full batch ends at its last post (whose every superseded snapshot goes in this
            # step); a short one found all there was up to the bound.
            upto = found[-1] if len(found) == batch_rows else bound
            if found:
                async with self._db.write() as conn:
                    result = await conn.execute(
                        delete(mention_metrics).where(
                            mention_metrics.c.mention_id > after,
                            mention_metrics.c.mention_id <= upto,
                            superseded,
                        )
                    )
                removed += int(result.rowcount or 0)
            after = upto
        log.debug("thinned %d metrics snapshots fetched before %s", removed, cutoff)
        return removed

    async def posts_to_refresh(self, source: str, window: Window) -> list[Mention]:
        """The posts of ``source`` created in ``window``, oldest first, with their links: what
        a source that re-reads its posts' counts (Bluesky) asks about at each ingestion."""
        return [s.mention for s in await self._in_window(window, [source])]

    async def by_accounts(
        self, source: str, prefixes: Iterable[str], window: Window
    ) -> list[StoredMention]:
        """The posts of ``source`` in ``window`` whose ids start with one of ``prefixes`` (an
        account's posts, ``at://<did>/``): what tells a feed bot from a person when only one
        paper's posts were loaded."""
        found: list[StoredMention] = []
        for batch in chunked(dict.fromkeys(without_nul(p) for p in prefixes), 50):
            # A range per prefix, not LIKE: it walks the (source, post_id) unique index.
            condition = or_(
                *(
                    and_(mentions.c.post_id >= p, mentions.c.post_id < _after_prefix(p))
                    for p in batch
                )
            )
            found.extend(await self._in_window(window, [source], condition))
        return found

    async def in_window(
        self,
        window: Window,
        *,
        sources: Iterable[str] | None = None,
        as_of: dt.datetime | None = None,
    ) -> list[StoredMention]:
        """Mentions created in ``window`` (optionally only from ``sources``), oldest first.

        Each carries the metrics of its latest snapshot; one query for the mentions and their
        latest metrics, one for their links. With ``as_of``, the ranking as it stood then: each
        mention carries its latest snapshot fetched at or before ``as_of``, and mentions without
        one by then are left out.
        """
        if as_of is not None:
            as_of = aware(as_of, "as_of")
        return await self._in_window(window, sources, as_of=as_of)

    async def _in_window(
        self,
        window: Window,
        sources: Iterable[str] | None,
        extra: ColumnElement[bool] | None = None,
        *,
        as_of: dt.datetime | None = None,
    ) -> list[StoredMention]:
        conditions = [
            mentions.c.created_at >= window.start,
            mentions.c.created_at < window.end,
        ]
        if sources is not None:
            conditions.append(mentions.c.source.in_(list(sources)))
        if extra is not None:
            conditions.append(extra)
        stmt = _with_latest_metrics(*conditions, as_of=as_of)
        # With as_of, the links of mentions left out are read too; _stored ignores them.
        links_stmt = (
            select(mention_papers.c.mention_id, mention_papers.c.arxiv_id)
            .join(mentions, mentions.c.id == mention_papers.c.mention_id)
            .where(*conditions)
            .order_by(mention_papers.c.mention_id, mention_papers.c.position)
        )
        async with self._db.read() as conn:
            rows = await conn.execute(stmt)
            link_rows = await conn.execute(links_stmt)

        def build() -> list[StoredMention]:
            links: dict[int, list[str]] = {}
            for mention_id, arxiv_id in link_rows:
                links.setdefault(mention_id, []).append(arxiv_id)
            return _stored(rows, links)

        # A busy day is tens of thousands of rows: turning them into objects (and parsing their
        # timestamps) off the event loop keeps interactions and heartbeats flowing meanwhile.
        return await asyncio.to_thread(build)

    async def unresolved_ids(
        self,
        *,
        now: dt.datetime | None = None,
        limit: int | None = None,
        missing_retry: dt.timedelta = MISSING_RETRY,
        recent: dt.timedelta = RECENT_MENTION,
    ) -> list[str]:
        """Linked arXiv ids that are not stored papers and are worth asking arXiv about, sorted.

        An id arXiv said it lacks is asked again once its last check is ``missing_retry`` old
        (given ``now``), but only while a mention created in the last ``recent`` links it: new
        papers lag up to a day behind in the API, and a bogus id in an old post should not cost
        a request every few hours for ever. Without ``now`` missing ids are never asked again.
        """
        linked = mention_papers.c.arxiv_id
        eligible: ColumnElement[bool] = missing_ids.c.arxiv_id.is_(None)
        if now is not None:
            now = aware(now, "now")
            eligible = or_(
                eligible,
                and_(
                    missing_ids.c.checked_at <= now - missing_retry,
                    mentions.c.created_at >= now - recent,
                ),
            )
        stmt = (
            select(linked)
            .distinct()
            .select_from(
                mention_papers.join(
                    mentions, mentions.c.id == mention_papers.c.mention_id
                ).outerjoin(missing_ids, missing_ids.c.arxiv_id == linked)
            )
            .where(~exists().where(papers.c.arxiv_id == linked), eligible)
            .order_by(linked)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        async with self._db.read() as conn:
            return list((await conn.execute(stmt)).scalars())

    async def history(self, source: str, post_id: str) -> list[tuple[dt.datetime, dict[str, int]]]:
        """Every metrics snapshot of one post, oldest first (empty if the post is unknown)."""
        stmt = (
            select(mention_metrics)
            .join(mentions, mentions.c.id == mention_metrics.c.mention_id)
            .where(mentions.c.source == source, mentions.c.post_id == post_id)
            .order_by(mention_metrics.c.fetched_at)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [(row.fetched_at, _metrics(row)) for row in rows]

    async def for_cohort(
        self,
        window: Window,
        categories: Iterable[str],
        published: tuple[dt.datetime, dt.datetime],
    ) -> list[StoredMention]:
        """Mentions created in ``window`` that link a paper listing one of ``categories`` (the
        spellings of one category; primary or cross-list) first submitted in ``published``
        ``[start, end)``, as in :meth:`in_window`: what one paper's cohort needs for its heat,
        without loading the whole window."""
        start, end = (aware(t, "published") for t in published)
        listed = (
            select(mention_papers.c.mention_id)
            .join(papers, papers.c.arxiv_id == mention_papers.c.arxiv_id)
            .join(paper_categories, paper_categories.c.arxiv_id == papers.c.arxiv_id)
            .where(
                paper_categories.c.category.in_(list(categories)),
                papers.c.published >= start,
                papers.c.published < end,
            )
        )
        return await self._in_window(window, None, mentions.c.id.in_(listed))

    async def for_paper(self, arxiv_id: str, window: Window) -> list[StoredMention]:
        """Mentions created in ``window`` that link ``arxiv_id``, oldest first, as in
        :meth:`in_window` (latest metrics, every link): all one paper's score needs, found
        through the ``mention_papers.arxiv_id`` index instead of loading the whole window."""
        linking = select(mention_papers.c.mention_id).where(mention_papers.c.arxiv_id == arxiv_id)
        stmt = _with_latest_metrics(
            mentions.c.id.in_(linking),
            mentions.c.created_at >= window.start,
            mentions.c.created_at < window.end,
        )
        links: dict[int, list[str]] = {}
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
            for batch in chunked(row.id for row in rows):
                result = await conn.execute(
                    select(mention_papers.c.mention_id, mention_papers.c.arxiv_id)
                    .where(mention_papers.c.mention_id.in_(batch))
                    .order_by(mention_papers.c.mention_id, mention_papers.c.position)
                )
                for mention_id, linked in result:
                    links.setdefault(mention_id, []).append(linked)
        return _stored(rows, links)

    async def paper_history(
        self, arxiv_id: str, window: Window
    ) -> list[tuple[Mention, dt.datetime]]:
        """Every metrics snapshot of every post created in ``window`` that links ``arxiv_id``,
        oldest first: each as the post with that snapshot's metrics, and the snapshot's time.

        What a popularity chart over time needs. Posts without a snapshot yet (seen on a stream,
        not counted) have no point to chart and are left out. Two queries whatever the number of
        posts: the snapshots joined to their posts, and the posts' links.
        """
        linking = select(mention_papers.c.mention_id).where(mention_papers.c.arxiv_id == arxiv_id)
        posts = (
            mentions.c.id.in_(linking),
            mentions.c.created_at >= window.start,
            mentions.c.created_at < window.end,
        )
        snapshots_stmt = (
            select(
                mentions,
                mention_metrics.c.fetched_at.label("snapshot_at"),
                *(mention_metrics.c[name] for name in METRIC_COLUMNS),
            )
            .join(mention_metrics, mention_metrics.c.mention_id == mentions.c.id)
            .where(*posts)
            .order_by(mention_metrics.c.fetched_at, mentions.c.created_at, mentions.c.id)
        )
        links_stmt = (
            select(mention_papers.c.mention_id, mention_papers.c.arxiv_id)
            .join(mentions, mentions.c.id == mention_papers.c.mention_id)
            .where(*posts)
            .order_by(mention_papers.c.mention_id, mention_papers.c.position)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(snapshots_stmt)).all()
            link_rows = (await conn.execute(links_stmt)).all()

        def build() -> list[tuple[Mention, dt.datetime]]:
            links: dict[int, list[str]] = {}
            for mention_id, linked in link_rows:
                links.setdefault(mention_id, []).append(linked)
            ids = {mention_id: tuple(linked) for mention_id, linked in links.items()}
            return [
                (_mention_from_row(row, ids.get(row.id, ()), _metrics(row)), row.snapshot_at)
                for row in rows
            ]

        # A much-shared paper has thousands of snapshots: built off the event loop, as a window.
        return await asyncio.to_thread(build)


async def _written(
    conn: Any, upsert: Any, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], int]:
    """Run an upsert of posts; the id of each, by key, from its ``RETURNING`` (an upsert returns
    the row it inserted or updated). Reading the ids back with a SELECT instead cost PostgreSQL
    ~50 ms a batch while a busy day's first writes outran the table's statistics."""
    returning = upsert.returning(mentions.c.id, mentions.c.source, mentions.c.post_id)
    result = await conn.execute(returning, rows)
    return {(source, post_id): id_ for id_, source, post_id in result}


def _key(mention: Mention) -> tuple[str, str]:
    """A post's key as stored: the text columns drop NUL characters (``types.without_nul``),
    so the rows read back are matched to the posts given by their keys without them."""
    return without_nul(mention.source), without_nul(mention.post_id)


def _keys_in(keys: Iterable[tuple[str, str]]) -> ColumnElement[bool]:
    """Posts whose ``(source, post_id)`` is one of ``keys``: ``post_id IN (…)`` per source.

    Not a row-value ``(source, post_id) IN ((…), …)``: PostgreSQL plans that as one OR branch
    per pair, ~0.3 ms each, so a batch of 500 cost 150+ ms before reading a row (SQLite serves
    both forms from the unique index alike)."""
    by_source: dict[str, list[str]] = {}
    for source, post_id in keys:
        by_source.setdefault(source, []).append(post_id)
    return or_(
        *(
            and_(mentions.c.source == source, mentions.c.post_id.in_(post_ids))
            for source, post_ids in by_source.items()
        )
    )


def _utc_day(db: Database, moment: Any) -> Any:
    """The UTC day of a stored time, as the dialect can compare it: SQLite stores fixed-width
    ISO text in UTC (``types.utc_text``), whose first ten characters are the day; PostgreSQL
    a ``timestamptz``, whose day depends on the session's time zone unless asked in UTC."""
    if db.is_sqlite:
        return func.substr(moment, 1, 10)
    return func.date(func.timezone(text("'UTC'"), moment))


def _after_prefix(prefix: str) -> str:
    """The least string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _with_latest_metrics(*conditions: Any, as_of: dt.datetime | None = None) -> Any:
    """Mentions matching ``conditions``, oldest first, each joined to its newest snapshot (with
    ``as_of``: its newest fetched at or before then, mentions without one being left out)."""
    # The newest snapshot per mention: a MAX over the (mention_id, fetched_at) primary key,
    # i.e. one index probe per mention, correlated inside the join.
    earlier = mention_metrics.alias("snapshots")
    newest = select(func.max(earlier.c.fetched_at)).where(earlier.c.mention_id == mentions.c.id)
    if as_of is not None:
        newest = newest.where(earlier.c.fetched_at <= as_of)
    latest = newest.correlate(mentions).scalar_subquery()
    on_latest = and_(
        mention_metrics.c.mention_id == mentions.c.id,
        mention_metrics.c.fetched_at == latest,
    )
    joined = (
        mentions.outerjoin(mention_metrics, on_latest)
        if as_of is None
        else mentions.join(mention_metrics, on_latest)
    )
    return (
        select(
            mentions,
            mention_metrics.c.fetched_at.label("metrics_at"),
            *(mention_metrics.c[name] for name in METRIC_COLUMNS),
        )
        .select_from(joined)
        .where(*conditions)
        .order_by(mentions.c.created_at, mentions.c.id)
    )


def _stored(rows: Iterable[Any], links: Mapping[int, list[str]]) -> list[StoredMention]:
    return [
        StoredMention(
            mention=_mention_from_row(row, tuple(links.get(row.id, ())), _metrics(row)),
            fetched_at=row.metrics_at or row.first_seen_at,
        )
        for row in rows
    ]


def _mention_row(mention: Mention, fetched_at: dt.datetime) -> dict[str, Any]:
    return {
        "source": mention.source,
        "post_id": mention.post_id,
        "url": mention.url,
        "author": mention.author,
        "author_name": mention.author_name,
        "text": mention.text,
        "lang": mention.lang,
        "created_at": aware(mention.created_at, "Mention.created_at"),
        "first_seen_at": fetched_at,
    }


def _metrics_row(mention_id: int, fetched_at: dt.datetime, mention: Mention) -> dict[str, Any]:
    unknown = set(mention.metrics) - set(METRIC_COLUMNS)
    if unknown:
        # A source reporting a metric the schema has no column for needs a migration, not a crash.
        log.warning("%s metrics without a column are not stored: %s", mention.source, unknown)
    row: dict[str, Any] = {"mention_id": mention_id, "fetched_at": fetched_at}
    for name in METRIC_COLUMNS:
        value = mention.metrics.get(name)
        if value is None:
            row[name] = None
            continue
        count = int(value)
        row[name] = min(max(count, METRIC_MIN), METRIC_MAX)
        if row[name] != count:
            log.warning(
                "%s post %s: %s = %d is out of range, stored as %d",
                mention.source,
                mention.post_id,
                name,
                count,
                row[name],
            )
    return row


def _metrics(row: Row[Any]) -> dict[str, int]:
    """The metrics a snapshot row reports; NULL columns are metrics the source lacks."""
    mapping = row._mapping
    return {name: int(mapping[name]) for name in METRIC_COLUMNS if mapping[name] is not None}


def _mention_from_row(
    row: Row[Any], arxiv_ids: tuple[str, ...], metrics: dict[str, int]
) -> Mention:
    return Mention(
        source=row.source,
        post_id=row.post_id,
        url=row.url,
        author=row.author,
        text=row.text,
        created_at=row.created_at,
        arxiv_ids=arxiv_ids,
        metrics=metrics,
        author_name=row.author_name,
        lang=row.lang,
    )
