"""The leader lock: which one of the processes sharing a database runs ingestion and the streams.

On PostgreSQL the leader holds a session-level advisory lock (``pg_try_advisory_lock``) on a
connection of its own, opened outside the engine's pool and kept open for as long as it leads:
the lock lives exactly as long as that session, so it can never be handed back to the pool still
held, and it is released whenever the session ends, however the process ends. A SIGKILL or a
crash closes the socket, and the server releases the lock at once. A host that vanishes (power
cut, network gone) sends nothing more: the server's TCP keepalives, set on this session, notice
within ``KEEPALIVE_BOUND_SECONDS``. A leader that hangs but keeps its socket open is let go
after the session's ``idle_session_timeout`` (PostgreSQL 14 and newer), since a live leader
checks its connection every poll.

On SQLite the file lock (``storage/lock.py``) already keeps the bot to one process: that process
is always the leader, and no lock is taken here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.storage.engine import Database

log = logging.getLogger(__name__)

# "hotplead" in ASCII: a bigint key, apart from the migrations' lock (engine.MIGRATION_LOCK_KEY).
# Advisory locks are per database: bots on other databases of one server never compete.
LEADER_LOCK_KEY = 0x686F74706C656164
# Server-side TCP keepalives of the leader's session: the first probe after 10 s of silence,
# then every 5 s; three unanswered and the server drops the session (and the lock). The leader
# talks every poll, so a vanished host is noticed at most 10 + 3 x 5 s after its last word.
KEEPALIVE_IDLE_SECONDS = 10
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3
KEEPALIVE_BOUND_SECONDS = KEEPALIVE_IDLE_SECONDS + KEEPALIVE_INTERVAL_SECONDS * KEEPALIVE_COUNT
# A session idle this many polls (at least 30 s) belongs to a process that stopped checking:
# the server ends it. PostgreSQL 14 added the setting; older servers rely on the keepalives.
IDLE_POLLS = 6
MIN_IDLE_SESSION_SECONDS = 30.0
IDLE_SESSION_TIMEOUT_VERSION = 140000


class LeaderLock(Protocol):
    """What the election (``services/leader.py``) needs from the backend."""

    @property
    def elected(self) -> bool:
        """True when processes compete for the lock (PostgreSQL); False: this one always leads."""

    @property
    def error(self) -> str | None:
        """Why the last :meth:`acquire` or :meth:`holds` failed to reach the database, if so."""

    async def acquire(self) -> bool:
        """Take the lock if it is free; True if this process holds it now."""

    async def holds(self) -> bool:
        """Whether the lock is still ours (its connection alive); False drops the connection."""

    async def release(self) -> None:
        """Let the lock go (close its connection): another process can take it at once."""


class SoleProcessLock:
    """SQLite: the only process on the file leads from the start, and for good."""

    elected = False
    error: str | None = None

    async def acquire(self) -> bool:
        return True

    async def holds(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class AdvisoryLeaderLock:
    """A PostgreSQL session-level advisory lock held on a dedicated connection.

    Every call is bounded by ``timeout``: a server that does not answer in time counts as a
    lost connection (the connection is dropped, and with it the lock, as far as this process
    knows), so a leader cut off from its database steps down instead of waiting on TCP.
    """

    elected = True

    def __init__(
        self,
        db: Database,
        *,
        poll_seconds: float,
        timeout: float | None = None,
        key: int = LEADER_LOCK_KEY,
    ) -> None:
        if db.is_sqlite:
            raise ValueError("the advisory leader lock is PostgreSQL's; SQLite always leads")
        self._db = db
        self._key = key
        self._timeout = timeout if timeout is not None else max(5.0, poll_seconds)
        self._idle_ms = round(max(MIN_IDLE_SESSION_SECONDS, IDLE_POLLS * poll_seconds) * 1000)
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # asyncpg's connection under it: cut when the server is silent
        self._held = False
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"AdvisoryLeaderLock({self._db!r}, held={self._held})"

    @property
    def held(self) -> bool:
        """As far as this process knows: taken and not released or found lost since."""
        return self._held

    def _engine_once(self) -> AsyncEngine:
        if self._engine is None:
            # Not the database's pooled engine: a connection returned to a pool keeps its
            # session, and with it the lock. NullPool closes a connection when it is let go.
            self._engine = create_async_engine(
                self._db.url,
                poolclass=NullPool,
                connect_args={
                    "timeout": self._timeout,
                    "server_settings": {
                        "application_name": "hotpapers leader lock",
                        "tcp_keepalives_idle": str(KEEPALIVE_IDLE_SECONDS),
                        "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL_SECONDS),
                        "tcp_keepalives_count": str(KEEPALIVE_COUNT),
                        # Data the server sent and the host never acknowledged: same bound.
                        "tcp_user_timeout": str(KEEPALIVE_BOUND_SECONDS * 1000),
                    },
                },
            )
        return self._engine

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            # asyncpg bounds the connect itself (``timeout`` above).
            self._conn = conn = await self._engine_once().connect()
            try:
                raw = await conn.get_raw_connection()
                self._driver = raw.driver_connection
                # Autocommit: the session idles between polls, never "idle in transaction"
                # (which would pin a snapshot, and fall to idle_in_transaction_session_timeout).
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                version = await self._scalar("SELECT current_setting('server_version_num')::int")
                if int(version) >= IDLE_SESSION_TIMEOUT_VERSION:
                    await self._scalar(
                        "SELECT set_config('idle_session_timeout', :ms, false)",
                        ms=str(self._idle_ms),
                    )
            except BaseException:
                await self._drop(force=True)
                raise
        return self._conn

    async def _scalar(self, sql: str, **params: object) -> Any:
        """Run ``sql`` on the lock's connection, within the timeout. A server that does not
        answer in time gets its socket cut (rather than the statement cancelled: SQLAlchemy
        would then say goodbye to the server, and wait 2 s for an answer that never comes)."""
        assert self._conn is not None
        running = asyncio.ensure_future(self._conn.execute(text(sql), params))
        try:
            done, _ = await asyncio.wait([running], timeout=self._timeout)
        finally:
            if not running.done():
                self._cut()
                # Fails at once now that the socket is closed; its error is not the story.
                with contextlib.suppress(Exception):
                    await running
        if not done:
            raise TimeoutError
        return running.result().scalar_one()

    def _cut(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.terminate()

    async def acquire(self) -> bool:
        if self._held:
            return True
        try:
            await self._connection()
            self._held = bool(await self._scalar(f"SELECT pg_try_advisory_lock({self._key})"))
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            await self._lost(exc)
            return False
        self.error = None
        return self._held

    async def holds(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:
            # The session alive is the lock held: only its end (or an unlock we never send)
            # releases a session-level advisory lock.
            await self._scalar("SELECT 1")
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            await self._lost(exc)
            return False
        return True

    async def release(self) -> None:
        await self._drop(force=False)

    async def _drop(self, *, force: bool) -> None:
        """Close the connection for good, its session (and the lock) with it. ``force``: cut
        the socket at once (a lost connection), instead of a goodbye the server may never
        answer."""
        self._held = False
        if force:
            self._cut()
        self._driver = None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.invalidate()
                await conn.close()
            except (SQLAlchemyError, OSError) as exc:
                log.debug("leader lock: closing its connection: %s", _describe(exc))
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def _lost(self, exc: BaseException) -> None:
        self.error = _describe(exc)
        log.debug("leader lock: connection lost or unusable: %s", self.error)
        await self._drop(force=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the database did not answer in time"
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip() or type(exc).__name__


def leader_lock(db: Database, *, poll_seconds: float) -> LeaderLock:
    """The lock the processes on ``db`` compete for: an advisory lock on PostgreSQL; on SQLite
    none (the one process leads)."""
    if db.is_sqlite:
        return SoleProcessLock()
    return AdvisoryLeaderLock(db, poll_seconds=poll_seconds)
