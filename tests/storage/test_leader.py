"""The leader lock on a real server: one holder at a time, released with its session however
that ends (closed, killed by the server, idle too long), and a silent server is a lost lock."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from bot.storage import leader as leader_module
from bot.storage.engine import Database
from bot.storage.leader import (
    KEEPALIVE_BOUND_SECONDS,
    LEADER_LOCK_KEY,
    AdvisoryLeaderLock,
    SoleProcessLock,
    leader_lock,
)

POLL_S = 0.2


@pytest.fixture
async def plain_db(database_url: str) -> AsyncIterator[Database]:
    """The database the processes share (no schema needed: the lock is no table)."""
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.close()


async def holder_pid(db: Database) -> int | None:
    """The backend holding the leader lock in ``db``'s database, as ``pg_locks`` shows it (a
    bigint key is split there: classid is its high 32 bits, objid its low ones)."""
    async with db.read() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :high AND objid = :low AND objsubid = 1 "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                ),
                {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFFFFFF},
            )
        ).scalar_one_or_none()


async def terminate(db: Database, pid: int) -> None:
    async with db.write() as conn:
        assert (
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        ).scalar()


@pytest.mark.sqlite_only
async def test_on_sqlite_the_one_process_always_leads(plain_db: Database) -> None:
    lock = leader_lock(plain_db, poll_seconds=POLL_S)
    assert isinstance(lock, SoleProcessLock)
    assert not lock.elected
    assert await lock.acquire()
    assert await lock.holds()
    await lock.release()
    assert await lock.holds()  # nothing to lose: the file lock keeps the bot to one process
    with pytest.raises(ValueError, match="SQLite"):
        AdvisoryLeaderLock(plain_db, poll_seconds=POLL_S)


@pytest.mark.postgresql_only
async def test_one_holder_at_a_time_and_released_on_close(plain_db: Database) -> None:
    first, second = (leader_lock(plain_db, poll_seconds=POLL_S) for _ in range(2))
    assert isinstance(first, AdvisoryLeaderLock)
    assert first.elected
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert second.error is None  # refused, not failed
        assert await first.holds()
        assert await first.acquire()  # still ours: no second take of the (reentrant) lock
        assert not await second.holds()
        pid = await holder_pid(plain_db)
        assert pid is not None

        # Released (the connection closed): the other takes it on its next try.
        await first.release()
        assert not first.held
        assert not await first.holds()
        assert await holder_pid(plain_db) is None
        assert await second.acquire()
        assert await holder_pid(plain_db) not in (None, pid)
        assert not await first.acquire()
    finally:
        await first.release()
        await second.release()


@pytest.mark.postgresql_only
async def test_the_lock_is_on_a_session_of_its_own_with_keepalives(plain_db: Database) -> None:
    lock = AdvisoryLeaderLock(plain_db, poll_seconds=10.0)
    try:
        assert await lock.acquire()
        async with plain_db.read() as conn:
            # Not one of the pool's connections: the database's own sessions hold no lock.
            assert (
                await holder_pid(plain_db)
                != (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            )
        conn = lock._conn
        assert conn is not None
        settings = {
            name: (await conn.execute(text(f"SHOW {name}"))).scalar_one()
            for name in (
                "tcp_keepalives_idle",
                "tcp_keepalives_interval",
                "tcp_keepalives_count",
                "tcp_user_timeout",
                "idle_session_timeout",
                "application_name",
            )
        }
        # Over TCP (the test server listens on 127.0.0.1): a vanished host is let go in 25 s.
        assert settings == {
            "tcp_keepalives_idle": "10",
            "tcp_keepalives_interval": "5",
            "tcp_keepalives_count": "3",
            "tcp_user_timeout": "25000",  # ms
            "idle_session_timeout": "1min",  # six polls of 10 s
            "application_name": "hotpapers leader lock",
        }
        assert KEEPALIVE_BOUND_SECONDS == 25
        # Autocommit: idle between polls, never idle in a transaction.
        async with plain_db.read() as reader:
            state = (
                await reader.execute(
                    text(
                        "SELECT state FROM pg_stat_activity "
                        "WHERE application_name = 'hotpapers leader lock'"
                    )
                )
            ).scalar_one()
        assert state == "idle"
    finally:
        await lock.release()


@pytest.mark.postgresql_only
async def test_a_leader_whose_session_is_killed_loses_the_lock_to_the_other(
    plain_db: Database,
) -> None:
    first, second = (AdvisoryLeaderLock(plain_db, poll_seconds=POLL_S) for _ in range(2))
    try:
        assert await first.acquire()
        assert not await second.acquire()
        pid = await holder_pid(plain_db)
        assert pid is not None
        await terminate(plain_db, pid)
        # The server let the lock go with the session; the old holder learns it at its check.
        assert await second.acquire()
        assert not await first.holds()
        assert first.error
        assert not first.held
        # It stands again as a follower, on a new connection: refused, not failed.
        assert not await first.acquire()
        assert first.error is None
    finally:
        await first.release()
        await second.release()


@pytest.mark.postgresql_only
async def test_a_leader_that_stops_checking_is_let_go_by_the_server(
    plain_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hung process keeps its socket open (no keepalive notices): idle_session_timeout does.
    monkeypatch.setattr(leader_module, "MIN_IDLE_SESSION_SECONDS", 0.5)
    hung = AdvisoryLeaderLock(plain_db, poll_seconds=0.1)  # idle for 0.6 s: let go
    other = AdvisoryLeaderLock(plain_db, poll_seconds=0.1)
    try:
        assert await hung.acquire()
        async with asyncio.timeout(10):
            while not await other.acquire():  # noqa: ASYNC110 - polling, as a follower does
                await asyncio.sleep(0.1)
        assert not await hung.holds()
    finally:
        await hung.release()
        await other.release()


class Blackhole:
    """A TCP proxy to the database that can stop forwarding, both ways, keeping its sockets
    open: a server that no longer answers (a network cut the leader's kernel can't see yet)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.silent = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Blackhole:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                if self.silent.is_set():
                    continue  # swallowed
                sink.write(data)
                await sink.drain()

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.mark.postgresql_only
async def test_a_leader_whose_database_goes_silent_steps_down_within_its_timeout(
    plain_db: Database,
) -> None:
    url = plain_db.url
    async with Blackhole(url.host or "127.0.0.1", url.port or 5432) as hole:
        through = Database(url.set(host="127.0.0.1", port=hole.port))
        lock = AdvisoryLeaderLock(through, poll_seconds=POLL_S, timeout=0.5)
        try:
            assert await lock.acquire()
            assert await lock.holds()
            hole.silent.set()
            started = time.monotonic()
            assert not await lock.holds()  # not stuck waiting on TCP
            assert time.monotonic() - started < 1.5
            assert lock.error == "the database did not answer in time"
            assert not lock.held
        finally:
            await lock.release()
            await through.close()
