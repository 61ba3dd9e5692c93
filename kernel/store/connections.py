"""The event path's own database connections, on the bare drivers.

:class:`SQLiteEventConnections`: one ``sqlite3`` connection for the group writer, whose
statements run on the event loop's thread (each takes microseconds; a thread hop per
statement cost far more), and ``COMMIT`` (the fsync) on a database thread; a few more
connections for dry runs, which only read. Every writer of the file, in this process or
another, the admin API's included, holds the one :class:`SQLiteWriteGate` (an asyncio
lock and an ``flock``) from ``BEGIN IMMEDIATE`` to ``COMMIT``; holding it, the writer
runs ``BEGIN IMMEDIATE`` at once on the loop's thread, and only when a connection that is
not statusflow's holds SQLite's write lock does the database thread wait for it.
The writer never checkpoints the WAL inside its ``COMMIT`` (where a checkpoint of a
thousand pages would stall every request of the group): a background thread runs
passive checkpoints, which never block the writer, every :data:`CHECKPOINT_EVERY`
seconds.

:class:`PostgresEventConnections`: ``asyncpg`` connections of the group writers (their
statements prepared once per connection) and a small pool for dry runs.

Both yield an :class:`~statusflow.store.statements.EventSQL` inside a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import structlog
from sqlalchemy.engine import URL

from statusflow.store.statements import (
    CommitOutcomeUnknown,
    EventSQL,
    PostgresEventSQL,
    SQLiteEventSQL,
    StorageConflict,
)

log = structlog.get_logger("statusflow.storage")

T = TypeVar("T")

READERS = 4
"""Idle dry-run connections kept."""

CHECKPOINT_EVERY = 0.25
"""Seconds between two passive WAL checkpoints of the checkpointer thread."""

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)


def sqlite_pragmas(conn: Any) -> None:
    """The kernel's SQLite settings, on any DB-API connection: WAL, fsync on commit, wait
    up to 10 s for a lock, foreign keys on."""
    cursor = conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


BUSY_WAIT = 10.0
"""Seconds the event writer waits for SQLite's write lock held by another connection
(an admin API write of another process) before its group fails."""


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, retried every millisecond while SQLite's write lock is busy,
    for up to :data:`BUSY_WAIT` seconds."""
    deadline = time.monotonic() + BUSY_WAIT
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.001)


def sqlite_code(exc: BaseException) -> int | None:
    """The primary SQLite result code of ``exc`` (``sqlite3.SQLITE_BUSY``, ...), or
    ``None`` when it is no SQLite error (the extended code's low byte)."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    return code & 0xFF if code is not None else None


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused because another connection holds a lock it needs."""
    return sqlite_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SQLiteWriteGate:
    """The one discipline of every SQLite writer, the event path's and the admin API's.

    A write transaction holds the gate from its ``BEGIN IMMEDIATE`` to its ``COMMIT``:
    an asyncio lock orders the writers of one process, and an ``flock`` of
    ``DATABASE-statusflow.lock`` orders the processes sharing the file, so that a writer
    waits in a queue instead of polling SQLite's busy handler. The ``flock`` is tried at
    once on the event loop; when another process holds it, the wait happens on the
    database thread. SQLite's own busy wait then only covers connections that are not
    statusflow's (a backup, the ``sqlite3`` shell).
    """

    def __init__(self, path: str, on_thread: Callable[..., Any]) -> None:
        self.path = f"{path}-statusflow.lock"
        self._on_thread = on_thread
        self._lock = asyncio.Lock()
        self._file: int | None = None

    def _fd(self) -> int:
        if self._file is None:
            self._file = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._file

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Be the only writer of the file until the block ends."""
        async with self._lock:
            fd = self._fd()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process writes: wait off the loop
                await self._on_thread(
                    lambda: fcntl.flock(fd, fcntl.LOCK_EX),
                    undo=lambda _: fcntl.flock(fd, fcntl.LOCK_UN),
                )
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None


class SQLiteEventConnections:
    """See the module docstring."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="statusflow-sqlite")
        self._writer: sqlite3.Connection | None = None
        self._writer_sql: SQLiteEventSQL | None = None
        self._readers: list[SQLiteEventSQL] = []
        self._checkpointer: Checkpointer | None = None
        self.gate = SQLiteWriteGate(path, self._on_thread)
        """Held by every write transaction on this file (see :class:`SQLiteWriteGate`)."""

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=512
        )
        sqlite_pragmas(conn)
        return conn

    def _begin_at_once(self) -> sqlite3.Connection | None:
        """On the event loop: the write transaction, if SQLite's write lock is free right
        now (no thread hop); else ``None``, and nothing is begun."""
        if self._writer is None:
            return None  # the first connection is made on the database thread
        try:
            self._writer.execute("BEGIN IMMEDIATE")  # busy_timeout=0: never waits
        except sqlite3.OperationalError as exc:
            if is_busy(exc):  # a connection that is not statusflow's: wait on the thread
                return None
            raise
        return self._writer

    def _begin(self) -> sqlite3.Connection:
        """On the database thread: connect if needed, then wait for SQLite's write lock."""
        if self._writer is None:
            self._writer = self._connect()
            self._writer.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
            # BEGIN never waits inside SQLite: on the loop it must not, and here
            # _begin_immediate waits in steps that show what it waits for
            self._writer.execute("PRAGMA busy_timeout=0")
            if self._checkpointer is None:
                self._checkpointer = Checkpointer(self._connect)
        _begin_immediate(self._writer)
        return self._writer

    def _end(self, conn: sqlite3.Connection, commit: bool) -> None:
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            # the connection's state is unknown: the next group starts on a new one
            self._writer = self._writer_sql = None
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[EventSQL]:
        """A write transaction, committed (fsync included) when the block ends."""
        async with self.gate.hold():
            conn = self._begin_at_once()
            if conn is None:
                conn = await self._on_thread(self._begin, undo=lambda c: self._end(c, False))
            if self._writer_sql is None or self._writer_sql.conn is not conn:
                self._writer_sql = SQLiteEventSQL(conn)
            try:
                yield self._writer_sql
            except BaseException:
                await self._on_thread(lambda: self._end(conn, False))
                raise
            try:
                await self._on_thread(lambda: self._end(conn, True))
            except sqlite3.Error as exc:
                raise CommitOutcomeUnknown(f"COMMIT failed: {exc}") from exc

    async def _on_thread(
        self,
        work: Callable[[], T],
        undo: Callable[[T], object] | None = None,
    ) -> T:
        """``work()`` on the database thread. A caller cancelled meanwhile still waits
        for it to finish (the writer connection is never used by two at once), and
        ``undo`` its result (a transaction begun for nobody is rolled back, a lock taken
        for nobody released) before the cancellation goes on."""
        job = asyncio.get_running_loop().run_in_executor(self._thread, work)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            await asyncio.wait([job])
            if undo is not None and not job.cancelled() and job.exception() is None:
                undone = asyncio.get_running_loop().run_in_executor(
                    self._thread, undo, job.result()
                )
                await asyncio.wait([undone])
            raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[EventSQL]:
        """A read-only transaction (one snapshot), rolled back when the block ends."""
        statements = self._readers.pop() if self._readers else SQLiteEventSQL(self._connect())
        statements.conn.execute("BEGIN")
        try:
            yield statements
        finally:
            statements.conn.execute("ROLLBACK")
            if len(self._readers) < READERS:
                self._readers.append(statements)
            else:
                statements.conn.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._checkpointer is not None:
            await loop.run_in_executor(None, self._checkpointer.stop)
            self._checkpointer = None
        if self._writer is not None:
            await loop.run_in_executor(self._thread, self._writer.close)
            self._writer = self._writer_sql = None
        for reader in self._readers:
            reader.conn.close()
        self._readers = []
        self._thread.shutdown(wait=True)
        self.gate.close()


SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}
"""Plan each lookup for its values and the table as it is now. A generic plan, cached
after a few runs of a prepared statement, is made once: planned while ``events`` was
small it scanned the whole table for ever after (a fifth of a millisecond of planning
per statement buys index lookups whatever the statistics say)."""


class Checkpointer:
    """A daemon thread running ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection.

    A passive checkpoint copies what it can of the WAL into the database file without
    waiting for, or blocking, readers and writers; the WAL is then reused from its start.
    A failed attempt is logged and tried again at the next round.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="statusflow-sqlite-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stopping.wait(CHECKPOINT_EVERY):
            try:
                if conn is None:
                    conn = self._connect()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                log.warning("sqlite.checkpoint_failed", error=str(exc))
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                conn.close()

    def stop(self) -> None:
        """Run a last checkpoint and stop the thread."""
        self._stopping.set()
        self._thread.join(timeout=10)


_RETRYABLE = (
    asyncpg.UniqueViolationError,  # a concurrent duplicate event id
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


_GONE = (asyncpg.PostgresConnectionError, ConnectionError)
"""The connection itself broke (not a statement): what happened in it is rolled back."""

_CONNECTION_LOST = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    # A connection whose server sent its farewell (a FATAL error) but whose socket is not
    # closed yet refuses the next query with "another operation is in progress".
    asyncpg.InternalClientError,
    OSError,
)


async def _rollback(conn: Any, transaction: Any) -> None:
    """Roll back unless the connection is gone (the server dropped the transaction)."""
    if not conn.is_closed():
        with contextlib.suppress(*_CONNECTION_LOST):
            await transaction.rollback()


class PostgresEventConnections:
    """See the module docstring."""

    def __init__(self, url: URL) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._idle_writers: list[PostgresEventSQL] = []
        self._readers: Any = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[EventSQL]:
        """A write transaction, committed when the block ends (on a connection of the
        writers' own, each with its prepared statements).

        :raises StorageConflict: the transaction lost a race and rolled back whole.
        """
        statements, transaction = await self._begin()
        conn = statements.conn
        try:
            yield statements
        except BaseException as exc:
            await _rollback(conn, transaction)
            if isinstance(exc, _RETRYABLE):
                raise StorageConflict(f"{type(exc).__name__}: {exc}") from exc
            if conn.is_closed() or isinstance(exc, _GONE):
                # Lost before COMMIT was sent: the server rolled the transaction back,
                # so the group can be tried again on another connection.
                raise StorageConflict(f"connection lost: {type(exc).__name__}: {exc}") from exc
            raise
        else:
            try:
                await transaction.commit()
            except Exception as exc:
                raise CommitOutcomeUnknown(f"COMMIT failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if conn.is_closed() or conn.is_in_transaction():
                conn.terminate()  # broken, or cancelled half-way: never reused
            else:
                self._idle_writers.append(statements)

    async def _begin(self) -> tuple[PostgresEventSQL, Any]:
        """An idle writer connection (or a new one) inside a started transaction.

        An idle connection that the server closed meanwhile (a restart, an idle
        timeout) fails at ``BEGIN``, before anything was sent: it is dropped and a new
        one takes its place.
        """
        while self._idle_writers:
            statements = self._idle_writers.pop()
            try:
                transaction = statements.conn.transaction()
                await transaction.start()
            except _CONNECTION_LOST:
                statements.conn.terminate()
                continue
            return statements, transaction
        conn = await asyncpg.connect(self.dsn, server_settings=SERVER_SETTINGS)
        statements = PostgresEventSQL(conn)
        transaction = conn.transaction()
        await transaction.start()
        return statements, transaction

    @asynccontextmanager
    async def read(self) -> AsyncIterator[EventSQL]:
        """A read transaction (one snapshot), rolled back when the block ends."""
        if self._readers is None:
            self._readers = await asyncpg.create_pool(
                self.dsn, min_size=0, max_size=READERS, server_settings=SERVER_SETTINGS
            )
        for attempt in range(READERS + 1):  # each idle connection may have been closed
            async with self._readers.acquire() as conn:
                transaction = conn.transaction(isolation="repeatable_read", readonly=True)
                try:
                    await transaction.start()
                except _CONNECTION_LOST:
                    if attempt == READERS:
                        raise
                    conn.terminate()  # the pool connects anew in its place
                    continue
                try:
                    yield PostgresEventSQL(conn)
                finally:
                    await transaction.rollback()
                return

    async def close(self) -> None:
        writers, self._idle_writers = self._idle_writers, []
        for statements in writers:
            with contextlib.suppress(Exception):
                await statements.conn.close(timeout=5)
        if self._readers is not None:
            await self._readers.close()
            self._readers = None


__all__ = [
    "PostgresEventConnections",
    "SQLiteEventConnections",
    "is_busy",
    "sqlite_code",
    "sqlite_pragmas",
]
