"""The PostgreSQL store: its statements on ``asyncpg`` and its connections.

:class:`PostgresSQL`: the statements, prepared once per connection by ``asyncpg``.

:class:`PostgresConnections`: the writers' connections (event groups, the admin API,
plugins' ``kernel.write()``), kept idle between transactions, and a pool for reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import structlog
from sqlalchemy import ARRAY, JSON, Column, String, Table, and_, any_, bindparam, func
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.sql import Executable

from statusflow.store import queries as q
from statusflow.store.compiled import positional_sql
from statusflow.store.errors import CommitOutcomeUnknown, StorageConflict
from statusflow.store.statements import (
    OrderRow,
    OrderState,
    Snapshot,
    StoreSQL,
    dumps,
    trigger_row,
)

log = structlog.get_logger("statusflow.storage")

POSTGRES_READERS = 10
"""PostgreSQL read connections at most (dry runs, the admin API, plugins)."""

WRITERS_KEPT = 8
"""Idle PostgreSQL write connections kept (event groups, the admin API, plugins)."""

SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}
"""Plan each lookup for its values and the table as it is now. A generic plan, cached
after a few runs of a prepared statement, is made once: planned while ``events`` was
small it scanned the whole table for ever after (a fifth of a millisecond of planning
per statement buys index lookups whatever the statistics say)."""


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


class PostgresConnections:
    """See the module docstring."""

    def __init__(self, url: URL) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._idle_writers: list[PostgresSQL] = []
        self._readers: Any = None
        self._closed = False

    @asynccontextmanager
    async def write(self) -> AsyncIterator[StoreSQL]:
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
            statements.audit_done(True)
        finally:
            statements.audit_done(False)  # (a no-op after the commit)
            if conn.is_closed() or conn.is_in_transaction():
                conn.terminate()  # broken, or cancelled half-way: never reused
            elif self._closed or len(self._idle_writers) >= WRITERS_KEPT:
                await conn.close()  # (a write that ended after close() is not kept)
            else:
                self._idle_writers.append(statements)

    async def _begin(self) -> tuple[PostgresSQL, Any]:
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
            except BaseException:  # cancelled at BEGIN: the connection is nobody's now
                statements.conn.terminate()
                raise
            return statements, transaction
        conn = await asyncpg.connect(self.dsn, server_settings=SERVER_SETTINGS)
        try:
            statements = PostgresSQL(conn)
            transaction = conn.transaction()
            await transaction.start()
        except BaseException:
            conn.terminate()
            raise
        return statements, transaction

    @asynccontextmanager
    async def read(self) -> AsyncIterator[StoreSQL]:
        """A read transaction (one snapshot), rolled back when the block ends."""
        if self._readers is None:
            self._readers = await asyncpg.create_pool(
                self.dsn, min_size=0, max_size=POSTGRES_READERS, server_settings=SERVER_SETTINGS
            )
        for attempt in range(POSTGRES_READERS + 1):  # each idle connection may have been closed
            async with self._readers.acquire() as conn:
                transaction = conn.transaction(isolation="repeatable_read", readonly=True)
                try:
                    await transaction.start()
                except _CONNECTION_LOST:
                    if attempt == POSTGRES_READERS:
                        raise
                    conn.terminate()  # the pool connects anew in its place
                    continue
                try:
                    yield PostgresSQL(conn)
                finally:
                    await transaction.rollback()
                return

    async def close(self) -> None:
        self._closed = True
        writers, self._idle_writers = self._idle_writers, []
        for statements in writers:
            with contextlib.suppress(Exception):
                await statements.conn.close(timeout=5)
        if self._readers is not None:
            await self._readers.close()
            self._readers = None


def _set(event: asyncio.Event, *_args: Any) -> None:
    event.set()


class Listener:
    """``LISTEN`` on a channel on a connection of its own, connected again when it is
    lost; each notification's payload goes to ``callback``, and ``callback(None)`` says
    the listener (re)connected (notifications may have been missed meanwhile)."""

    def __init__(self, dsn: str, channel: str, callback: Callable[[str | None], None]) -> None:
        self._dsn = dsn
        self._channel = channel
        self._callback = callback
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.listening = asyncio.Event()
        """Set while the ``LISTEN`` holds: notifications sent meanwhile reach ``callback``."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"statusflow-listen-{self._channel}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._callback(payload)

    async def _run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(functools.partial(_set, lost))
                await conn.add_listener(self._channel, self._notified)
                delay = 0.5
                self.listening.set()
                self._callback(None)
                waits = [
                    asyncio.ensure_future(lost.wait()),
                    asyncio.ensure_future(self._stopping.wait()),
                ]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiting in waits:
                        waiting.cancel()
            except (*_CONNECTION_LOST, asyncpg.PostgresError) as exc:
                log.warning("listen.failed", channel=self._channel, error=str(exc))
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(*_CONNECTION_LOST, asyncpg.PostgresError):
                        await conn.close(timeout=5)
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, 30.0)


DIALECT = PGDialect_asyncpg(json_serializer=dumps, json_deserializer=orjson.loads)
_IDS = bindparam("ids", type_=ARRAY(String))


def _sql(statement: Executable, params: tuple[str, ...] = ()) -> str:
    return positional_sql(statement, DIALECT, params)


def _array_type(column: Column[Any]) -> str:
    """The type of an array of ``column``'s values; JSON travels as text."""
    return "TEXT" if isinstance(column.type, JSON) else column.type.compile(dialect=DIALECT)


def _unnest(table: Table, columns: tuple[str, ...], alias: str) -> str:
    """``unnest($1::TYPE[], ...) AS alias(column, ...)``: one array per column."""
    arrays = ", ".join(f"${i}::{_array_type(table.c[name])}[]" for i, name in enumerate(columns, 1))
    return f"unnest({arrays}) AS {alias}({', '.join(map(_quote, columns))})"


def _quote(name: str) -> str:
    return str(DIALECT.identifier_preparer.quote(name))


def _unnest_insert(table: Table, columns: tuple[str, ...]) -> str:
    """Insert a group's rows in one statement, from one array per column, in array order
    (so that moves get their ``seq`` in order)."""
    values = ", ".join(
        f"r.{_quote(name)}::json" if isinstance(table.c[name].type, JSON) else f"r.{_quote(name)}"
        for name in columns
    )
    names = ", ".join(map(_quote, columns))
    source = _unnest(table, columns, "r")
    return f"INSERT INTO {_quote(table.name)} ({names}) SELECT {values} FROM {source}"


def _unnest_update(table: Table, columns: tuple[str, ...], key: str) -> str:
    """Update a group's rows in one statement: arrays of ``columns`` then of ``key``."""
    sets = ", ".join(f"{_quote(name)} = u.{_quote(name)}" for name in columns)
    source = _unnest(table, (*columns, key), "u")
    return (
        f"UPDATE {_quote(table.name)} SET {sets} FROM {source} "
        f"WHERE {_quote(table.name)}.{_quote(key)} = u.{_quote(key)}"
    )


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _renumber(found: re.Match[str], offset: int) -> str:
    return f"${int(found.group(1)) + offset}"


@functools.lru_cache(maxsize=64)
def _together_sql(statements: tuple[str, ...], counts: tuple[int, ...]) -> str:
    """``WITH w1 AS (first), w2 AS (second), ... last``: each statement's ``$n``
    renumbered after the parameters of the ones before it."""
    parts: list[str] = []
    offset = 0
    for statement, count in zip(statements, counts, strict=True):
        parts.append(_PLACEHOLDER.sub(functools.partial(_renumber, offset=offset), statement))
        offset += count
    head = ", ".join(f"w{i} AS ({part})" for i, part in enumerate(parts[:-1], 1))
    return f"WITH {head} {parts[-1]}"


def _together(
    writes: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
) -> tuple[str, list[list[Any]]]:
    """The statement of :func:`_together_sql` and its arguments: one array per column."""
    arguments: list[list[Any]] = []
    counts = []
    for _sql_text, rows in writes:
        columns = [list(column) for column in zip(*rows, strict=True)]
        counts.append(len(columns))
        arguments += columns
    return _together_sql(tuple(sql for sql, _ in writes), tuple(counts)), arguments


def _snapshot_sql(lock: bool) -> str:
    """A group's reads in one statement, one row per thing found, tagged by ``part``:
    ``e`` the stored result of an event id ($1), ``i`` an order carrying one of the
    identifiers ($2 kinds, $3 values), ``o`` an order named ($4) or so found, locked in
    id order with ``lock`` (so that concurrent groups never deadlock on them). JSON comes
    back as text, as from the separate reads."""
    lock_clause = " ORDER BY o.id FOR UPDATE" if lock else ""
    return (
        "WITH found AS (SELECT i.kind, i.value, i.order_id FROM unnest($2::VARCHAR[], "
        "$3::VARCHAR[]) AS w(kind, value) JOIN order_identifiers AS i "
        "ON i.kind = w.kind AND i.value = w.value), "
        "named AS (SELECT o.id, o.status, o.doc, o.status_epoch FROM orders AS o "
        # one array of ids (an index scan; an OR with the subquery scans every order)
        "WHERE o.id = ANY($4::VARCHAR[] || ARRAY(SELECT order_id FROM found))"
        f"{lock_clause}) "
        "SELECT 'e' AS part, e.id AS a, NULL::VARCHAR AS b, NULL::VARCHAR AS c, "
        "e.result::TEXT AS doc, NULL::INTEGER AS epoch FROM events AS e "
        "WHERE e.id = ANY($1::VARCHAR[]) "
        "UNION ALL SELECT 'i', kind, value, order_id, NULL, NULL FROM found "
        "UNION ALL SELECT 'o', NULL, status, id, doc::TEXT, status_epoch FROM named"
    )


RUNS_CHANNEL = "statusflow_runs"
"""The PostgreSQL ``LISTEN``/``NOTIFY`` channel of runs written: its payload is the
earliest ``next_at`` of the runs a transaction wrote."""


def _insert_and_notify(table: Table, columns: tuple[str, ...]) -> str:
    """:func:`_unnest_insert`, then ``pg_notify`` of the smallest ``next_at`` when it is
    before the last parameter (one round trip)."""
    insert = _unnest_insert(table, columns) + f" RETURNING {_quote('next_at')}"
    horizon = f"${len(columns) + 1}::VARCHAR"
    return (
        f"WITH written AS ({insert}) SELECT pg_notify('{RUNS_CHANNEL}', min(next_at)) "
        f"FROM written HAVING min(next_at) < {horizon}"
    )


def _cancel_left_runs() -> str:
    """Cancel orders' pending runs of the statuses they left: arrays of order ids,
    statuses, reasons and times; answers ``(run id, action id, order id, reason, at)``."""
    runs = _quote(q.RUNS.name)
    names = ("order_id", "status", "reason", "at")
    arrays = ", ".join(f"${i}::VARCHAR[]" for i in range(1, len(names) + 1))
    source = f"unnest({arrays}) AS u({', '.join(names)})"
    return (
        f"UPDATE {runs} SET state = 'canceled', reason = u.reason, finished_at = u.at, "
        f"next_at = NULL FROM {source} WHERE {runs}.order_id = u.order_id "
        f"AND {runs}.status = u.status AND {runs}.state = 'pending' "
        f"RETURNING {runs}.id, {runs}.action_id, {runs}.order_id, u.reason, u.at"
    )


_WANTED = (
    func.unnest(bindparam("kinds", type_=ARRAY(String)), bindparam("values", type_=ARRAY(String)))
    .table_valued("kind", "value")
    .render_derived(name="w")
)


class PostgresSQL(StoreSQL):
    """The statements on an ``asyncpg`` connection (prepared once per connection), made
    from the tables (:mod:`statusflow.store.queries`) at import.

    The kernel's writes take one array per column: one statement for all the rows of a
    group (``executemany`` pays PostgreSQL's per-statement work for every row). JSON
    columns come back as text (no codec is set), decoded when needed."""

    dialect = DIALECT
    insert_event = _unnest_insert(q.EVENTS, q.EVENT_COLUMNS)
    update_order = _unnest_update(q.ORDERS, ("status", "updated_at", "status_epoch"), "id")
    insert_move = _unnest_insert(q.MOVES, q.MOVE_COLUMNS)
    insert_timeline = _unnest_insert(q.TIMELINE, q.TIMELINE_COLUMNS)
    insert_run = _unnest_insert(q.RUNS, q.RUN_COLUMNS)
    _insert_runs_notify = _insert_and_notify(q.RUNS, q.RUN_COLUMNS)
    _cancel_left = _cancel_left_runs()
    _setting = _sql(q.SETTING, ("key",))
    _statuses = _sql(q.PIPELINE_ROWS)
    _triggers = _sql(q.TRIGGER_ROWS)
    _stored_results = _sql(q.STORED_RESULTS.where(q.EVENTS.c.id == any_(_IDS)), ("ids",))
    _identified = _sql(
        q.IDENTIFIED_ORDERS.select_from(
            _WANTED.join(
                q.IDENTIFIERS,
                and_(
                    q.IDENTIFIERS.c.kind == _WANTED.c.kind, q.IDENTIFIERS.c.value == _WANTED.c.value
                ),
            )
        ),
        ("kinds", "values"),
    )
    _orders = _sql(q.ORDER_STATES.where(q.ORDERS.c.id == any_(_IDS)), ("ids",))
    _orders_locked = _sql(  # in id order, so that concurrent groups never deadlock on them
        q.ORDER_STATES.where(q.ORDERS.c.id == any_(_IDS)).order_by(q.ORDERS.c.id).with_for_update(),
        ("ids",),
    )
    _snapshot = _snapshot_sql(lock=False)
    _snapshot_locked = _snapshot_sql(lock=True)
    _mark = _sql(q.MARK, ("namespace", "key"))
    _claim = _sql(q.CLAIM["postgresql"], q.value_params(("namespace", "key", "created_at")))

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def _query(
        self, sql: str, arguments: tuple[Any, ...], returns_rows: bool
    ) -> tuple[list[str], Sequence[Sequence[Any]], int]:
        if returns_rows:
            records = await self.conn.fetch(sql, *arguments)
            return (list(records[0].keys()) if records else []), records, len(records)
        status = await self.conn.execute(sql, *arguments)
        count = status.rpartition(" ")[2]
        return [], [], int(count) if count.isdigit() else -1

    async def end_snapshot(self) -> None:
        await self.conn.execute("ROLLBACK")
        await self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    async def setting(self, key: str) -> str | None:
        value = await self.conn.fetchval(self._setting, key)
        return None if value is None else str(value)

    async def statuses(self) -> list[tuple[str, int, str, str]]:
        rows = await self.conn.fetch(self._statuses)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def triggers(self) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(self._triggers)
        return [trigger_row(tuple(row)) for row in rows]

    async def stored_results(self, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = await self.conn.fetch(self._stored_results, list(event_ids))
        return {row[0]: orjson.loads(row[1]) for row in rows}

    async def identified_orders(
        self, wanted: Mapping[str, Sequence[str]]
    ) -> list[tuple[str, str, str]]:
        kinds = [kind for kind, values in wanted.items() for _ in values]
        values = [value for vs in wanted.values() for value in vs]
        rows = await self.conn.fetch(self._identified, kinds, values)
        return [(r[0], r[1], r[2]) for r in rows]

    async def orders(self, order_ids: Sequence[str], lock: bool) -> list[OrderRow]:
        sql = self._orders_locked if lock else self._orders
        rows = await self.conn.fetch(sql, list(order_ids))
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def snapshot_at_once(
        self,
        event_ids: Sequence[str],
        order_ids: Sequence[str],
        wanted: Mapping[str, Sequence[str]],
        lock: bool,
    ) -> Snapshot | None:
        kinds = [kind for kind, values in wanted.items() for _ in values]
        values = [value for vs in wanted.values() for value in vs]
        sql = self._snapshot_locked if lock else self._snapshot
        stored: dict[str, dict[str, Any]] = {}
        orders: dict[str, OrderState] = {}
        by_identifier: dict[tuple[str, str], list[str]] = {}
        for part, a, b, c, doc, epoch in await self.conn.fetch(
            sql, list(event_ids), kinds, values, list(order_ids)
        ):
            if part == "e":
                stored[a] = orjson.loads(doc)
            elif part == "i":
                by_identifier.setdefault((a, b), []).append(c)
            else:
                orders[c] = OrderState(c, b, doc, epoch)
        return Snapshot(stored, orders, by_identifier)

    async def mark_exists(self, namespace: str, key: str) -> bool:
        return await self.conn.fetchval(self._mark, namespace, key) is not None

    async def claim(self, namespace: str, key: str, at: str) -> bool:
        status = await self.conn.execute(self._claim, namespace, key, at)
        return bool(status == "INSERT 0 1")

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self.conn.executemany(sql, rows)

    async def write_rows(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self.conn.execute(sql, *(list(column) for column in zip(*rows, strict=True)))

    async def write_all(self, writes: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
        """The group's writes in one statement (data-modifying ``WITH`` parts, each on
        its own arrays): one round trip instead of one per table."""
        if len(writes) < 2:
            await super().write_all(writes)
            return
        sql, arguments = _together(writes)
        await self.conn.execute(sql, *arguments)

    async def cancel_left(
        self, rows: Sequence[tuple[str, str, str, str]]
    ) -> list[tuple[int, int, str, str, str]]:
        columns = [list(column) for column in zip(*rows, strict=True)]
        found = await self.conn.fetch(self._cancel_left, *columns)
        return [(r[0], r[1], r[2], r[3], r[4]) for r in found]

    async def insert_runs(self, rows: Sequence[tuple[Any, ...]], horizon: str) -> None:
        """The runs, and a ``NOTIFY`` of the earliest one when it is due before
        ``horizon`` (other instances' schedulers wake for it), in one statement."""
        columns = [list(column) for column in zip(*rows, strict=True)]
        await self.conn.execute(self._insert_runs_notify, *columns, horizon)
