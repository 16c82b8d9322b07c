"""copy_database: a SQLite deployment copied to each backend (and PostgreSQL's copy back to a
new SQLite file), row for row, with working search and keys; refusals and rollbacks.

``[sqlite]``/``[postgresql]`` name the target's backend; the source is always a SQLite file
filled through the repositories (tests/storage/deployment.py).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.cli import main
from bot.core.errors import DatabaseInUseError, StorageError, UserFacingError
from bot.core.models import Window
from bot.storage import copy as copy_module
from bot.storage.copy import CopyReport, copy_database, parse_url
from bot.storage.digests import DigestRepository
from bot.storage.engine import Database, head_revision
from bot.storage.lock import run_lock
from bot.storage.mentions import MentionRepository
from bot.storage.papers import PaperRepository
from bot.storage.runs import RunRepository
from bot.storage.streams import StreamRepository
from bot.storage.tables import digests, mentions, metadata, papers, source_runs, stream_gaps
from tests.storage.deployment import (
    PREFIXES,
    QUERIES,
    T1,
    counts,
    dump,
    fill,
    stored_text,
)
from tests.storage.factories import T0, make_mention, make_paper
from tests.storage.title_words import title_words

BATCH = 7  # small batches: every table of the deployment takes several


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def source(tmp_path: Path) -> str:
    """A SQLite deployment with every table filled (closed: the copy opens it)."""
    url = sqlite_url(tmp_path / "source.db")
    async with Database.connect(url) as db:
        await fill(db)
    return url


@pytest.fixture
def target(database_url: str) -> str:
    """An empty database (no schema) of the backend under test."""
    return database_url


async def copy(source: str, target: str, **options: Any) -> CopyReport:
    options.setdefault("batch_rows", BATCH)
    return await copy_database(source, target, **options)


async def test_the_deployment_fills_every_table(source: str) -> None:
    async with Database.connect(source) as db:
        empty = [name for name, rows in (await counts(db)).items() if rows == 0]
    assert empty == [], "fill() must put rows in every table (a new table needs some too)"


async def test_a_copy_and_its_copy_back_hold_every_row(
    source: str, target: str, tmp_path: Path
) -> None:
    report = await copy(source, target)
    async with Database.connect(source) as db:
        expected, expected_text = await dump(db), await stored_text(db)
        expected_counts = await counts(db)
    assert report.ok
    assert {t.name: t.source_rows for t in report.tables} == expected_counts
    assert {t.name: t.target_rows for t in report.tables} == expected_counts
    assert [t.name for t in report.tables] == [t.name for t in metadata.sorted_tables]
    assert report.rows == sum(expected_counts.values())
    assert not report.replaced
    fts5 = ("papers_fts (FTS5 index)", "papers_title_fts (FTS5 index)")
    generated = (
        "papers.search_vector (generated column)",
        "papers.title_vector (generated column)",
        "paper_title_words (word index)",
    )
    to_postgres = make_url(target).get_backend_name() == "postgresql"
    assert report.source_search == fts5
    assert report.target_search == (generated if to_postgres else fts5)
    async with Database.connect(target) as db:
        assert await dump(db) == expected
        assert await db.current_revision() == head_revision()
        if to_postgres:  # the copy filled the title word index, and its triggers are back on
            assert await title_words(db) == await title_words(db, from_vectors=True)
            await PaperRepository(db).upsert([make_paper("2512.99999", title="Late words")], T0)
            assert await title_words(db) == await title_words(db, from_vectors=True)
            async with db.write() as conn:
                await conn.execute(papers.delete().where(papers.c.arxiv_id == "2512.99999"))
            assert await title_words(db) == await title_words(db, from_vectors=True)
    back = sqlite_url(tmp_path / "back.db")
    report = await copy(target, back)
    assert report.ok
    assert (report.source_search, report.target_search) == (
        (generated if to_postgres else fts5),
        fts5,
    )
    async with Database.connect(back) as db:
        assert await dump(db) == expected
        assert await stored_text(db) == expected_text  # JSON text not respelled


async def test_search_finds_the_same_papers_on_the_copy(
    source: str, target: str, tmp_path: Path
) -> None:
    await copy(source, target)
    back = sqlite_url(tmp_path / "back.db")
    await copy(target, back)

    async def answers(url: str) -> tuple[list[list[str]], list[list[str]]]:
        async with Database.connect(url) as db:
            repo = PaperRepository(db)
            found = [[p.arxiv_id for p in await repo.search(q, limit=100)] for q in QUERIES]
            typed = [[a for a, _ in await repo.autocomplete(p, limit=100)] for p in PREFIXES]
            return found, typed

    found, typed = await answers(source)
    assert all(found)
    assert all(typed)
    copied_found, copied_typed = await answers(target)
    assert copied_typed == typed  # newest first, on both backends
    if make_url(target).get_backend_name() == "sqlite":
        assert copied_found == found  # the same index, the same bm25
    else:  # PostgreSQL ranks its own way: the same papers, maybe in another order
        assert [sorted(ids) for ids in copied_found] == [sorted(ids) for ids in found]
    assert await answers(back) == (found, typed)  # back on SQLite: exactly the same again


async def test_new_rows_after_a_copy_take_new_ids(source: str, target: str) -> None:
    await copy(source, target)
    tables = (papers, mentions, digests, source_runs, stream_gaps)
    async with Database.connect(target) as db:

        async def largest() -> dict[str, int]:
            async with db.read() as conn:
                return {
                    t.name: int((await conn.execute(select(func.max(t.c.id)))).scalar_one())
                    for t in tables
                }

        before = await largest()
        later = T1.replace(year=2026)
        await PaperRepository(db).upsert([make_paper("2601.00001", title="After")], later)
        await MentionRepository(db).upsert([make_mention("new", arxiv_ids=("2601.00001",))], later)
        await DigestRepository(db).plan(1, later.date())
        await RunRepository(db).record("x", Window(T1, later), later, later, 1, 1)
        await StreamRepository(db).record_gap("bluesky", T1, later, later)
        assert await largest() == {name: value + 1 for name, value in before.items()}
        assert [p.arxiv_id for p in await PaperRepository(db).search("after")] == ["2601.00001"]


async def test_a_target_holding_data_is_refused_and_left_alone(source: str, target: str) -> None:
    async with Database.connect(target) as db:
        await fill(db, tag="other-")
        before = await dump(db)
    with pytest.raises(UserFacingError, match=r"already holds data .*--replace"):
        await copy(source, target)
    async with Database.connect(target) as db:
        assert await dump(db) == before


async def test_replace_swaps_the_targets_data_for_the_sources(source: str, target: str) -> None:
    async with Database.connect(target) as db:
        await fill(db, tag="other-")
    report = await copy(source, target, replace=True)
    assert report.ok
    assert report.replaced
    async with Database.connect(source) as db:
        expected = await dump(db)
    async with Database.connect(target) as db:
        assert await dump(db) == expected
        # The old papers left the search index with their rows.
        assert await PaperRepository(db).search("other") == []
        assert await PaperRepository(db).autocomplete("othe") == []


async def test_a_failed_replace_leaves_the_target_as_it_was(
    source: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Database.connect(target) as db:
        await fill(db, tag="other-")
        before = await dump(db)
    load = copy_module._Loader.load

    async def failing(self: Any, rows: Any) -> None:
        if self._table.name == "mention_metrics":
            raise ValueError("the disk is on fire")
        await load(self, rows)

    monkeypatch.setattr(copy_module._Loader, "load", failing)
    with pytest.raises(StorageError, match=r"copying table mention_metrics failed.*on fire"):
        await copy(source, target, replace=True)
    async with Database.connect(target) as db:
        assert await dump(db) == before
        assert await PaperRepository(db).search("other")  # still indexed


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("drop", r"mention_metrics: \d+ rows in the source but \d+ in the target"),
        ("change", r"mention_metrics: the same \d+ rows in number, but their contents differ"),
    ],
    ids=["a-row-lost", "a-value-changed"],
)
async def test_a_mismatch_rolls_the_copy_back_and_names_the_table(
    source: str, target: str, monkeypatch: pytest.MonkeyPatch, tamper: str, problem: str
) -> None:
    load = copy_module._Loader.load

    async def tampering(self: Any, rows: Any) -> None:
        if self._table.name == "mention_metrics":
            rows = list(rows)
            if tamper == "drop":
                rows = rows[:-1]
            else:
                first = list(rows[0])
                first[2] = 1_000_000  # reposts
                rows[0] = tuple(first)
        await load(self, rows)

    monkeypatch.setattr(copy_module._Loader, "load", tampering)
    report = await copy(source, target)
    assert not report.ok
    assert [t.name for t in report.tables if not t.ok] == ["mention_metrics"]
    message = report.first_problem()
    assert message is not None
    assert re.fullmatch(f"table {problem}.*", message), message
    async with Database.connect(target) as db:
        assert set((await counts(db)).values()) == {0}  # rolled back


async def test_the_copy_is_one_snapshot_of_the_source(source: str, target: str) -> None:
    """Rows written to the source while the copy runs are not half in it."""
    path = make_url(source).database
    assert path is not None
    async with Database.connect(source) as db:
        expected = await counts(db)
    wrote: list[str] = []

    def write_meanwhile(message: str) -> None:
        if "mentions:" in message and not wrote:  # mentions copied, their links not yet
            with sqlite3.connect(path) as conn:
                conn.execute(
                    "INSERT INTO mentions (source, post_id, url, author, text, created_at, "
                    "first_seen_at) VALUES ('x', 'late', 'u', 'a', 't', '2025', '2025')"
                )
                conn.execute("INSERT INTO mention_papers VALUES (last_insert_rowid(), 'x', 0)")
            wrote.append(message)

    report = await copy(source, target, progress=write_meanwhile)
    assert wrote
    assert report.ok
    assert {t.name: t.target_rows for t in report.tables} == expected


async def test_a_running_bot_stops_the_copy_and_the_copy_stops_a_bot(
    source: str, tmp_path: Path
) -> None:
    target = sqlite_url(tmp_path / "target.db")
    for running in (source, target):
        with run_lock(running), pytest.raises(StorageError, match="in use by a running hotpapers"):
            await copy(source, target)
    refused: list[BaseException] = []

    def start_a_bot(message: str) -> None:
        for url in (source, target):
            try:
                with run_lock(url):
                    pass
            except DatabaseInUseError as exc:
                refused.append(exc)

    assert (await copy(source, target, progress=start_a_bot)).ok
    assert refused
    assert {type(e) for e in refused} == {DatabaseInUseError}


async def test_the_source_must_be_at_head_and_is_never_migrated(tmp_path: Path) -> None:
    old = sqlite_url(tmp_path / "old.db")
    async with Database.connect(old, migrate=False) as db:
        await db.upgrade("0006")
    target = tmp_path / "target.db"
    with pytest.raises(UserFacingError, match=r"revision 0006 .* upgrade it first: HOTPAPERS_"):
        await copy(old, sqlite_url(target))
    async with Database.connect(old, migrate=False) as db:
        assert await db.current_revision() == "0006"
    assert not target.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "--from: there is no database file"),
        ("empty", "holds no hotpapers data"),
        ("same", "--from and --to are the same database file"),
    ],
    ids=["missing", "empty", "same"],
)
async def test_a_bad_source_is_one_clear_error(tmp_path: Path, make: str, message: str) -> None:
    path = tmp_path / "source.db"
    if make == "empty":
        path.touch()
    if make == "same":
        async with Database.connect(sqlite_url(path)):
            pass
    target = path if make == "same" else tmp_path / "target.db"
    with pytest.raises(UserFacingError, match=message):
        await copy(sqlite_url(path), sqlite_url(target))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "--to: not a database URL"),
        ("postgresql+asyncpg://u:hunter2@host:port/db", "--to: not a database URL"),
        ("mysql://u:hunter2@host/db", r"mysql://u:\*\*\*@host/db is a mysql database"),
        ("postgresql+psycopg2://u:hunter2@host/db", "through postgresql\\+asyncpg"),
        ("sqlite+aiosqlite:///:memory:", "in-memory"),
    ],
    ids=["words", "bad-port", "mysql", "psycopg2", "memory"],
)
def test_a_bad_url_is_refused_without_its_password(url: str, message: str) -> None:
    with pytest.raises(UserFacingError, match=message) as caught:
        parse_url(url, "--to")
    assert "hunter2" not in str(caught.value)


def test_urls_without_a_driver_get_the_async_one() -> None:
    assert parse_url("postgresql://u@h/db", "--to").drivername == "postgresql+asyncpg"
    assert parse_url("sqlite:////tmp/x.db", "--to").drivername == "sqlite+aiosqlite"


async def test_a_target_in_a_missing_directory_is_refused(source: str, tmp_path: Path) -> None:
    with pytest.raises(UserFacingError, match=r"--to: the directory .* does not exist"):
        await copy(source, sqlite_url(tmp_path / "nowhere" / "t.db"))


@pytest.mark.postgresql_only
async def test_postgresql_to_itself_is_refused(source: str, target: str) -> None:
    await copy(source, target)
    alias = make_url(target)
    alias = alias.set(host="localhost" if alias.host == "127.0.0.1" else alias.host)
    with pytest.raises(UserFacingError, match="the same PostgreSQL database"):
        await copy(target, alias.render_as_string(hide_password=False), replace=True)
    async with Database.connect(target) as db:
        assert sum((await counts(db)).values()) > 0


@pytest.mark.postgresql_only
async def test_a_missing_postgresql_database_is_named(source: str, target: str) -> None:
    missing = make_url(target).set(database="hp_no_such_database")
    with pytest.raises(
        UserFacingError,
        match=r"--to: the server .* has no database hp_no_such_database: create it first",
    ):
        await copy(source, missing.render_as_string(hide_password=False))


async def test_nul_characters_do_not_reach_postgresql(source: str, target: str) -> None:
    """SQLite stores NUL in text, PostgreSQL cannot: a copy there drops them, and says so."""
    path = make_url(source).database
    assert path is not None
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE mentions SET text = ? WHERE id IN (1, 2)", ("nul \x00 inside\x00",))
        conn.execute("UPDATE papers SET comment = ? WHERE id = 3", ("\x00",))
    report = await copy(source, target)
    assert report.ok
    dropped = {t.name: t.nul_dropped for t in report.tables if t.nul_dropped}
    to_postgres = make_url(target).get_backend_name() == "postgresql"
    assert dropped == ({"mentions": 2, "papers": 1} if to_postgres else {})
    async with Database.connect(target) as db, db.read() as conn:
        text = (await conn.execute(select(mentions.c.text).where(mentions.c.id == 1))).scalar()
        comment = (await conn.execute(select(papers.c.comment).where(papers.c.id == 3))).scalar()
    if to_postgres:
        assert (text, comment) == ("nul  inside", "")
    else:
        assert (text, comment) == ("nul \x00 inside\x00", "\x00")


async def test_the_command_line_copies_and_never_shows_the_password(
    source: str, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_url(target)
    if url.get_backend_name() == "postgresql" and url.password is None:
        url = url.set(password="hunter2-secret")  # the test server trusts 127.0.0.1 anyway
    secret = str(url.password) if url.password else None
    argv = ["db", "copy", "--from", source, "--to", url.render_as_string(hide_password=False)]
    code = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"^copied [\d,]+ rows in \d+ tables from .* to .*rows/s\)$", out, re.M)
    again = await asyncio.to_thread(main, argv)
    out_again, err_again = capsys.readouterr()
    assert again == 2
    assert err_again.startswith("hotpapers: error: --to: the target database already holds")
    if secret is not None:
        assert "***" in out
        assert all(secret not in text for text in (out, err, out_again, err_again))


@pytest.mark.postgresql_only
async def test_postgresql_to_another_postgresql_database(
    source: str, target: str, request: pytest.FixtureRequest
) -> None:
    await copy(source, target)
    server = request.getfixturevalue("postgres_server")
    second = server.empty_database()
    try:
        report = await copy(target, second)
        assert report.ok
        async with Database.connect(source) as db:
            expected = await dump(db)
        async with Database.connect(second) as db:
            assert await dump(db) == expected
            await PaperRepository(db).upsert([make_paper("2601.00001", title="After")], T1)
            assert [p.arxiv_id for p in await PaperRepository(db).search("after")] == ["2601.00001"]
    finally:
        server.drop(second)


async def _index_definitions(url: str) -> set[str]:
    async with Database.connect(url) as db, db.read() as conn:
        found = await conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
        return {definition for (definition,) in found}


@pytest.mark.postgresql_only
async def test_postgresql_indexes_dropped_for_the_load_are_all_built_again(
    source: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Database.connect(target) as db:
        await db.upgrade()
    migrated = await _index_definitions(target)
    assert any("USING gin" in d for d in migrated)  # the search indexes are among them
    load = copy_module._Loader.load

    async def failing(self: Any, rows: Any) -> None:
        if self._table.name == "mention_metrics":
            raise ValueError("the disk is on fire")
        await load(self, rows)

    with monkeypatch.context() as patched:
        patched.setattr(copy_module._Loader, "load", failing)
        with pytest.raises(StorageError, match="on fire"):
            await copy(source, target)
    assert await _index_definitions(target) == migrated  # rolled back with the copy

    messages: list[str] = []
    report = await copy(source, target, progress=messages.append)
    assert report.ok
    assert await _index_definitions(target) == migrated
    assert any(re.fullmatch(r"building \d+ indexes", m) for m in messages), messages
    async with Database.connect(target) as db:
        assert all([await PaperRepository(db).search(query) for query in QUERIES])
