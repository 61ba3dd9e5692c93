"""The SQLite store: its statements on ``sqlite3`` and its connections.

:class:`SQLiteSQL`: the statements, called on the event loop's thread (each takes
microseconds; a thread hop per statement cost far more).

:class:`SQLiteConnections`: one ``sqlite3`` connection for the writer (event groups, the
admin API, plugins' ``kernel.write()``), whose statements run on the event loop's
thread, and ``COMMIT`` (the fsync) on a database thread; a few more connections for
reads. Every writer of the file, in this process or another, holds the one
:class:`SQLiteWriteGate` (an asyncio lock and an ``flock``) from ``BEGIN IMMEDIATE`` to
``COMMIT``; holding it, the writer runs ``BEGIN IMMEDIATE`` at once on the loop's
thread, and only when a connection that is not statusflow's holds SQLite's write lock
does the database thread wait for it. The event path decides its groups on a read
snapshot before it takes the gate, and writes them in a short transaction that knows
whether anything was written since its last one (:meth:`SQLiteConnections.write_checked`).

The writer never checkpoints the WAL inside its ``COMMIT`` (where a checkpoint of a
thousand pages would stall every request of the group): a background thread runs
passive checkpoints, which never block the writer, every :data:`CHECKPOINT_EVERY`
seconds. Under sustained load a passive checkpoint never
catches up with the writer, so the WAL would only grow: once it passes
:data:`WAL_TRUNCATE_AT` the checkpointer takes the write gate's ``flock`` for the short
time of a ``wal_checkpoint(TRUNCATE)`` (the passive rounds have copied most of it
already), and ``journal_size_limit`` caps what a reset WAL keeps on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
import structlog
from sqlalchemy import ColumnElement, bindparam
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.sql import Executable

from statusflow.store import queries as q
from statusflow.store.compiled import positional_sql
from statusflow.store.errors import CommitOutcomeUnknown
from statusflow.store.statements import OrderRow, StoreSQL, dumps, trigger_row

log = structlog.get_logger("statusflow.storage")

T = TypeVar("T")

CHUNK = 500
"""Values per ``IN (...)`` list, under SQLite's limit on bound parameters."""

READERS = 4
"""Idle SQLite read connections kept (dry runs, the admin API, plugins)."""

CHECKPOINT_EVERY = 0.25
"""Seconds between two passive WAL checkpoints of the checkpointer thread."""

WAL_LIMIT = 64 * 1024 * 1024
"""Bytes a reset WAL file keeps at most (``PRAGMA journal_size_limit``)."""

WAL_TRUNCATE_AT = 16 * 1024 * 1024
"""WAL bytes past which the checkpointer truncates it, holding the write gate."""

TRUNCATE_BUSY_MS = 200
"""Milliseconds a truncating checkpoint waits for readers of an older snapshot."""

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA journal_size_limit={WAL_LIMIT}",
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


class SQLiteConnections:
    """See the module docstring."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="statusflow-sqlite")
        self._writer: sqlite3.Connection | None = None
        self._writer_sql: SQLiteSQL | None = None
        self._readers: list[SQLiteSQL] = []
        self._checkpointer: Checkpointer | None = None
        self._commits = 0
        """Transactions this process committed on the writer connection."""
        self._after_own_write: tuple[int, int] | None = None
        """``(data_version, commits)`` as :meth:`write_checked` last committed."""
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
                self._checkpointer = Checkpointer(self._connect, self.path, self.gate.path)
        _begin_immediate(self._writer)
        return self._writer

    def _end(self, conn: sqlite3.Connection, commit: bool) -> None:
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
            self._commits += commit
        except BaseException:
            # the connection's state is unknown: the next group starts on a new one
            self._writer = self._writer_sql = None
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SQLiteSQL]:
        """A write transaction, committed (fsync included) when the block ends."""
        async with self.gate.hold():
            conn = self._begin_at_once()
            if conn is None:
                conn = await self._on_thread(self._begin, undo=lambda c: self._end(c, False))
            if self._writer_sql is None or self._writer_sql.conn is not conn:
                self._writer_sql = SQLiteSQL(conn)
            statements = self._writer_sql
            committed = False
            try:
                try:
                    yield statements
                except BaseException:
                    await self._on_thread(lambda: self._end(conn, False))
                    raise
                try:
                    await self._on_thread(lambda: self._end(conn, True))
                except sqlite3.Error as exc:
                    raise CommitOutcomeUnknown(f"COMMIT failed: {exc}") from exc
                committed = True
            finally:
                statements.audit_done(committed)

    @asynccontextmanager
    async def write_checked(self) -> AsyncIterator[tuple[StoreSQL, bool]]:
        """:meth:`write`, also saying whether the file is as the last transaction this
        method committed left it (``alone``): nothing was written since, by this process
        or another (SQLite's ``data_version``, and a count of this process's commits)."""
        async with self.write() as statements:
            changes = statements.conn.execute("PRAGMA data_version").fetchone()[0]
            yield statements, (changes, self._commits) == self._after_own_write
        self._after_own_write = (changes, self._commits)

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
    async def read(self) -> AsyncIterator[StoreSQL]:
        """A read-only transaction (one snapshot), rolled back when the block ends."""
        statements = self._readers.pop() if self._readers else SQLiteSQL(self._connect())
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


class Checkpointer:
    """A daemon thread running ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection.

    A passive checkpoint copies what it can of the WAL into the database file without
    waiting for, or blocking, readers and writers; the WAL is then reused from its start,
    but only when a checkpoint caught up with the last commit, which never happens while
    the writer commits without pause. So when the WAL file of ``path`` passes
    :data:`WAL_TRUNCATE_AT`, the thread holds the write gate (an ``flock`` of
    ``gate_path`` on a file description of its own, so that it excludes this process's
    writer too) for one ``wal_checkpoint(TRUNCATE)``, which empties the WAL file.
    A failed attempt is logged and tried again at the next round.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        path: str | None = None,
        gate_path: str | None = None,
    ) -> None:
        self._connect = connect
        self._wal = f"{path}-wal" if path is not None else None
        self._gate_path = gate_path
        self._stopping = threading.Event()
        self.truncations = 0
        """Truncating checkpoints run (for tests and logs)."""
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
                if self._wal_size() > WAL_TRUNCATE_AT:
                    self._truncate(conn)
            except (sqlite3.Error, OSError) as exc:
                log.warning("sqlite.checkpoint_failed", error=str(exc))
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                conn.close()

    def _wal_size(self) -> int:
        if self._wal is None:
            return 0
        try:
            return os.stat(self._wal).st_size
        except OSError:
            return 0

    def _truncate(self, conn: sqlite3.Connection) -> None:
        """``wal_checkpoint(TRUNCATE)`` while holding the write gate, waiting at most
        :data:`TRUNCATE_BUSY_MS` for older readers (busy: tried again next round)."""
        size = self._wal_size()
        started = time.monotonic()
        fd = os.open(self._gate_path, os.O_RDWR | os.O_CREAT, 0o600) if self._gate_path else None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            waited = time.monotonic() - started
            conn.execute(f"PRAGMA busy_timeout={TRUNCATE_BUSY_MS}")
            try:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute("PRAGMA busy_timeout=10000")
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        self.truncations += not busy
        log.debug(
            "sqlite.wal_truncated",
            wal_bytes=size,
            busy=bool(busy),
            waited_ms=round(waited * 1000, 1),
            held_ms=round((time.monotonic() - started - waited) * 1000, 1),
        )

    def stop(self) -> None:
        """Run a last checkpoint and stop the thread."""
        self._stopping.set()
        self._thread.join(timeout=10)


def _placeholders(count: int) -> str:
    """``?,?,?)``: a chunk's placeholders, closing the ``IN (`` list."""
    return ",".join("?" * count) + ")"


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


DIALECT = SQLiteDialect_pysqlite(json_serializer=dumps, json_deserializer=orjson.loads)


def _sql(statement: Executable, params: tuple[str, ...] = ()) -> str:
    return positional_sql(statement, DIALECT, params)


def _in(column: ColumnElement[Any]) -> str:
    """`` COLUMN IN (``, to be followed by a chunk's placeholders."""
    return f" {column.compile(dialect=DIALECT)} IN ("


class SQLiteSQL(StoreSQL):
    """The statements on a ``sqlite3`` connection (called on the event loop's thread:
    each takes microseconds, and the group's transaction holds the write lock), made
    from the tables' Core statements (:mod:`statusflow.store.queries`) at import."""

    dialect = DIALECT
    insert_event = _sql(q.INSERT_EVENT, q.value_params(q.EVENT_COLUMNS))
    update_order = _sql(q.MOVE_ORDER, ("v_status", "v_updated_at", "v_status_epoch", "w_id"))
    insert_move = _sql(q.INSERT_MOVE, q.value_params(q.MOVE_COLUMNS))
    insert_timeline = _sql(q.INSERT_TIMELINE, q.value_params(q.TIMELINE_COLUMNS))
    insert_run = _sql(q.INSERT_RUN, q.value_params(q.RUN_COLUMNS))
    _cancel_left = _sql(
        q.CANCEL_LEFT,
        ("v_state", "v_finished_at", "v_reason", "w_order_id", "w_status", "w_state"),
    )
    _setting = _sql(q.SETTING, ("key",))
    _statuses = _sql(q.PIPELINE_ROWS)
    _triggers = _sql(q.TRIGGER_ROWS)
    _stored_results = _sql(q.STORED_RESULTS) + " WHERE" + _in(q.EVENTS.c.id)
    _identified = (
        _sql(q.IDENTIFIED_ORDERS.where(q.IDENTIFIERS.c.kind == bindparam("kind")), ("kind",))
        + " AND"
        + _in(q.IDENTIFIERS.c.value)
    )
    _orders = _sql(q.ORDER_STATES) + " WHERE" + _in(q.ORDERS.c.id)
    _mark = _sql(q.MARK, ("namespace", "key"))
    _claim = _sql(q.CLAIM["sqlite"], q.value_params(("namespace", "key", "created_at")))

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def _query(
        self, sql: str, arguments: tuple[Any, ...], returns_rows: bool
    ) -> tuple[list[str], Sequence[Sequence[Any]], int]:
        cursor = self.conn.execute(sql, arguments)
        description = cursor.description
        if not description:
            return [], [], cursor.rowcount
        return [d[0] for d in description], cursor.fetchall(), cursor.rowcount

    async def end_snapshot(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.execute("BEGIN")

    async def setting(self, key: str) -> str | None:
        row = self.conn.execute(self._setting, (key,)).fetchone()
        return None if row is None else str(row[0])

    async def statuses(self) -> list[tuple[str, int, str, str]]:
        return self.conn.execute(self._statuses).fetchall()

    async def triggers(self) -> list[dict[str, Any]]:
        return [trigger_row(row) for row in self.conn.execute(self._triggers)]

    async def stored_results(self, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(event_ids):
            sql = self._stored_results + _placeholders(len(chunk))
            for event_id, result in self.conn.execute(sql, chunk):
                found[event_id] = orjson.loads(result)
        return found

    async def identified_orders(
        self, wanted: Mapping[str, Sequence[str]]
    ) -> list[tuple[str, str, str]]:
        # One indexed lookup per kind: a row-value IN over (kind, value) is a full scan.
        found: list[tuple[str, str, str]] = []
        for kind, values in wanted.items():
            for chunk in _chunks(values):
                sql = self._identified + _placeholders(len(chunk))
                found.extend(self.conn.execute(sql, (kind, *chunk)))
        return found

    async def orders(self, order_ids: Sequence[str], lock: bool) -> list[OrderRow]:
        # no row locks on SQLite: the group's transaction holds the database's write lock
        found: list[OrderRow] = []
        for chunk in _chunks(order_ids):
            sql = self._orders + _placeholders(len(chunk))
            found.extend(self.conn.execute(sql, chunk))
        return found

    async def mark_exists(self, namespace: str, key: str) -> bool:
        return self.conn.execute(self._mark, (namespace, key)).fetchone() is not None

    async def claim(self, namespace: str, key: str, at: str) -> bool:
        return self.conn.execute(self._claim, (namespace, key, at)).rowcount == 1

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)

    async def cancel_left(
        self, rows: Sequence[tuple[str, str, str, str]]
    ) -> list[tuple[int, int, str, str, str]]:
        canceled: list[tuple[int, int, str, str, str]] = []
        for order_id, status, reason, at in rows:
            arguments = ("canceled", at, reason, order_id, status, "pending")
            for run_id, action_id, _ in self.conn.execute(self._cancel_left, arguments):
                canceled.append((run_id, action_id, order_id, reason, at))
        return canceled
