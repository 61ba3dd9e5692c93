"""The event path's statements, at the driver level (``sqlite3``, ``asyncpg``).

SQLAlchemy Core costs tens of microseconds per execution (statement coercion, cache
keys, result wrapping), which on the event path was a fifth of the server's CPU. The
handful of statements an event group needs are written here once per dialect and run
straight on the driver: ``sqlite3`` with its statement cache and ``executemany``, and
``asyncpg`` with its prepared statements, ``= ANY($1)`` instead of growing ``IN`` lists
and pipelined ``executemany``. The schema still comes from the sqlmodel models and the
Alembic migrations; rows plugins add through :class:`kernel.Transaction` are inserted
with their table's SQLAlchemy insert, compiled once per set of columns.

JSON columns travel as text in both directions; the engine decodes an order's ``doc``
only when a condition reads it.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

CHUNK = 500
"""Values per ``IN (...)`` list on SQLite, under its limit on bound parameters."""

DEFINITIONS_VERSION = "definitions_version"

OrderRow = tuple[str, str, str]
"""``(id, status, doc as JSON text)``."""


class StorageConflict(Exception):
    """The transaction lost a race (a concurrent duplicate event id, a deadlock): run the
    whole group again."""


class StorageError(Exception):
    """The database failed in a way that broke the transaction."""


class CommitOutcomeUnknown(Exception):
    """``COMMIT`` was sent but failed (the connection broke meanwhile): the transaction
    may or may not have committed, so the request must not be said to be safe to retry
    (events with an ``id`` are, being idempotent)."""


DRIVER_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    StorageConflict,
)
"""Errors of the event path's statements: a plugin calling them must let these through."""


def dumps(value: Any) -> str:
    """JSON text as the kernel stores it."""
    return orjson.dumps(value).decode()


def event_row(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        row["id"],
        row["type"],
        row["order_id"],
        dumps(row["contact"]),
        dumps(row["data"]),
        row["occurred_at"],
        row["received_at"],
        dumps(row["result"]),
    )


def move_row(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        row["order_id"],
        row["from_status"],
        row["to_status"],
        row["trigger_id"],
        row["event_id"],
        row["event_type"],
        row["at"],
    )


def timeline_row(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row["order_id"], row["at"], row["kind"], dumps(row["data"]))


class _CompiledInsert:
    """A table's insert for one set of columns, compiled once for a driver."""

    def __init__(self, table: Table, keys: tuple[str, ...], dialect: Dialect) -> None:
        compiled = table.insert().inline().compile(dialect=dialect, column_keys=list(keys))
        self.sql = str(compiled)
        names = compiled.positiontup or []
        self._columns: list[tuple[str, Callable[[Any], Any] | None]] = []
        for name in names:
            bind = compiled.binds[name]  # its type's processor, through the public type API
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self._columns.append((bind.key, process))
        self.keys = frozenset(keys)

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for key, process in self._columns:
            value = row.get(key)
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)


class EventSQL(ABC):
    """The statements of one event-path transaction (see the module docstring)."""

    dialect: Dialect
    insert_event: str
    update_order: str
    insert_move: str
    insert_timeline: str

    def __init__(self) -> None:
        self._inserts: dict[tuple[str, tuple[str, ...]], _CompiledInsert] = {}

    @abstractmethod
    async def setting(self, key: str) -> str | None:
        """A ``kernel_settings`` value."""

    @abstractmethod
    async def statuses(self) -> list[tuple[str, int, str]]:
        """Every status as ``(id, sort, semantics)``."""

    @abstractmethod
    async def triggers(self) -> list[dict[str, Any]]:
        """Every trigger row, oldest first, ``settings`` and ``conditions`` decoded."""

    @abstractmethod
    async def stored_results(self, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored ``result`` of each of ``event_ids`` that was processed before."""

    @abstractmethod
    async def identified_orders(
        self, wanted: Mapping[str, Sequence[str]]
    ) -> list[tuple[str, str, str]]:
        """``(kind, value, order_id)`` of the orders carrying any of ``wanted``'s
        identifiers (kind -> values)."""

    @abstractmethod
    async def orders(self, order_ids: Sequence[str], lock: bool) -> list[OrderRow]:
        """The orders of ``order_ids`` that exist; with ``lock``, locked in id order."""

    @abstractmethod
    async def mark_exists(self, namespace: str, key: str) -> bool:
        """Whether a plugin claimed ``key`` in ``namespace``."""

    @abstractmethod
    async def claim(self, namespace: str, key: str, at: str) -> bool:
        """Insert the mark unless it exists; whether this call inserted it."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run ``sql`` once per row."""

    async def write(
        self,
        events: Sequence[tuple[Any, ...]],
        order_updates: Sequence[tuple[str, str, str]],
        moves: Sequence[tuple[Any, ...]],
        timeline: Sequence[tuple[Any, ...]],
        plugin_rows: Iterable[tuple[Table, list[dict[str, Any]]]],
    ) -> None:
        """Write a group's rows: events, ``(status, updated_at, order id)`` updates, moves
        (in this order: their ``seq`` is the commit order), timeline, plugins' rows."""
        for sql, rows in (
            (self.insert_event, events),
            (self.update_order, order_updates),
            (self.insert_move, moves),
            (self.insert_timeline, timeline),
        ):
            if rows:
                await self.write_rows(sql, rows)
        for sql, rows in self._plugin_batches(plugin_rows):
            await self.executemany(sql, rows)

    async def write_rows(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run one of the kernel's writes for ``rows`` (by default once per row)."""
        await self.executemany(sql, rows)

    def _compiled_insert(self, table: Table, row: Mapping[str, Any]) -> _CompiledInsert:
        keys = tuple(sorted(row))
        cache_key = (table.fullname, keys)
        compiled = self._inserts.get(cache_key)
        if compiled is None:
            compiled = self._inserts[cache_key] = _CompiledInsert(table, keys, self.dialect)
        return compiled

    def _plugin_batches(
        self, plugin_rows: Iterable[tuple[Table, list[dict[str, Any]]]]
    ) -> Iterable[tuple[str, list[tuple[Any, ...]]]]:
        """Plugin rows grouped by compiled statement, in the order they were added."""
        for table, rows in plugin_rows:
            batch: list[tuple[Any, ...]] = []
            current: _CompiledInsert | None = None
            for row in rows:
                compiled = self._compiled_insert(table, row)
                if current is not None and compiled is not current:
                    yield current.sql, batch
                    batch = []
                current = compiled
                batch.append(compiled.parameters(row))
            if current is not None and batch:
                yield current.sql, batch


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


class SQLiteEventSQL(EventSQL):
    """The statements on a ``sqlite3`` connection (called on the event loop's thread:
    each takes microseconds, and the group's transaction holds the write lock)."""

    dialect = sqlite.dialect()
    insert_event = (
        "INSERT INTO events (id, type, order_id, contact, data, occurred_at, received_at, "
        "result) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    update_order = "UPDATE orders SET status = ?, updated_at = ? WHERE id = ?"
    insert_move = (
        "INSERT INTO moves (order_id, from_status, to_status, trigger_id, event_id, "
        "event_type, at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    insert_timeline = "INSERT INTO timeline (order_id, at, kind, data) VALUES (?, ?, ?, ?)"

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self.conn = conn

    async def setting(self, key: str) -> str | None:
        sql = "SELECT value FROM kernel_settings WHERE key = ?"
        row = self.conn.execute(sql, (key,)).fetchone()
        return None if row is None else str(row[0])

    async def statuses(self) -> list[tuple[str, int, str]]:
        return self.conn.execute("SELECT id, sort, semantics FROM statuses").fetchall()

    async def triggers(self) -> list[dict[str, Any]]:
        cursor = self.conn.execute(
            "SELECT id, type, status, name, allow_backwards, enabled, settings, conditions, "
            "secret FROM triggers ORDER BY id"
        )
        return [_trigger_row(row) for row in cursor]

    async def stored_results(self, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(event_ids):
            sql = f"SELECT id, result FROM events WHERE id IN ({_placeholders(len(chunk))})"
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
                sql = (
                    "SELECT kind, value, order_id FROM order_identifiers "
                    f"WHERE kind = ? AND value IN ({_placeholders(len(chunk))})"
                )
                found.extend(self.conn.execute(sql, (kind, *chunk)))
        return found

    async def orders(self, order_ids: Sequence[str], lock: bool) -> list[OrderRow]:
        # no row locks on SQLite: the group's transaction holds the database's write lock
        found: list[OrderRow] = []
        for chunk in _chunks(order_ids):
            sql = f"SELECT id, status, doc FROM orders WHERE id IN ({_placeholders(len(chunk))})"
            found.extend(self.conn.execute(sql, chunk))
        return found

    async def mark_exists(self, namespace: str, key: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM plugin_marks WHERE namespace = ? AND key = ? LIMIT 1", (namespace, key)
        ).fetchone()
        return row is not None

    async def claim(self, namespace: str, key: str, at: str) -> bool:
        cursor = self.conn.execute(
            "INSERT INTO plugin_marks (namespace, key, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace, key) DO NOTHING",
            (namespace, key, at),
        )
        return cursor.rowcount == 1

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)


class PostgresEventSQL(EventSQL):
    """The statements on an ``asyncpg`` connection (prepared once per connection)."""

    dialect = postgresql.dialect(paramstyle="numeric_dollar")
    # The kernel's writes take one array per column: one statement for all the rows of
    # a group (``executemany`` pays PostgreSQL's per-statement work for every row).
    # ``unnest`` yields the rows in array order, so moves get their ``seq`` in order.
    insert_event = (
        "INSERT INTO events (id, type, order_id, contact, data, occurred_at, received_at, "
        "result) SELECT id, type, order_id, contact::json, data::json, occurred_at, "
        "received_at, result::json FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], "
        "$4::text[], $5::text[], $6::varchar[], $7::varchar[], $8::text[]) "
        "AS r(id, type, order_id, contact, data, occurred_at, received_at, result)"
    )
    update_order = (
        "UPDATE orders SET status = u.status, updated_at = u.at "
        "FROM unnest($1::varchar[], $2::varchar[], $3::varchar[]) AS u(status, at, id) "
        "WHERE orders.id = u.id"
    )
    insert_move = (
        "INSERT INTO moves (order_id, from_status, to_status, trigger_id, event_id, "
        "event_type, at) SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], "
        "$4::integer[], $5::varchar[], $6::varchar[], $7::varchar[])"
    )
    insert_timeline = (
        "INSERT INTO timeline (order_id, at, kind, data) SELECT order_id, at, kind, "
        "data::json FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::text[]) "
        "AS r(order_id, at, kind, data)"
    )

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn

    async def setting(self, key: str) -> str | None:
        value = await self.conn.fetchval("SELECT value FROM kernel_settings WHERE key = $1", key)
        return None if value is None else str(value)

    async def statuses(self) -> list[tuple[str, int, str]]:
        rows = await self.conn.fetch("SELECT id, sort, semantics FROM statuses")
        return [(r[0], r[1], r[2]) for r in rows]

    async def triggers(self) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT id, type, status, name, allow_backwards, enabled, settings::text, "
            "conditions::text, secret FROM triggers ORDER BY id"
        )
        return [_trigger_row(tuple(row)) for row in rows]

    async def stored_results(self, event_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT id, result::text FROM events WHERE id = ANY($1::varchar[])", list(event_ids)
        )
        return {row[0]: orjson.loads(row[1]) for row in rows}

    async def identified_orders(
        self, wanted: Mapping[str, Sequence[str]]
    ) -> list[tuple[str, str, str]]:
        kinds = [kind for kind, values in wanted.items() for _ in values]
        values = [value for vs in wanted.values() for value in vs]
        rows = await self.conn.fetch(
            "SELECT i.kind, i.value, i.order_id "
            "FROM unnest($1::varchar[], $2::varchar[]) AS w(kind, value) "
            "JOIN order_identifiers AS i ON i.kind = w.kind AND i.value = w.value",
            kinds,
            values,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def orders(self, order_ids: Sequence[str], lock: bool) -> list[OrderRow]:
        sql = "SELECT id, status, doc::text FROM orders WHERE id = ANY($1::varchar[])"
        if lock:  # in id order, so that concurrent groups never deadlock on them
            sql += " ORDER BY id FOR UPDATE"
        rows = await self.conn.fetch(sql, list(order_ids))
        return [(r[0], r[1], r[2]) for r in rows]

    async def mark_exists(self, namespace: str, key: str) -> bool:
        found = await self.conn.fetchval(
            "SELECT 1 FROM plugin_marks WHERE namespace = $1 AND key = $2 LIMIT 1", namespace, key
        )
        return found is not None

    async def claim(self, namespace: str, key: str, at: str) -> bool:
        status = await self.conn.execute(
            "INSERT INTO plugin_marks (namespace, key, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (namespace, key) DO NOTHING",
            namespace,
            key,
            at,
        )
        return bool(status == "INSERT 0 1")

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self.conn.executemany(sql, rows)

    async def write_rows(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self.conn.execute(sql, *(list(column) for column in zip(*rows, strict=True)))


def _trigger_row(row: Sequence[Any]) -> dict[str, Any]:
    """A trigger row by column name, its JSON decoded (``engine.trigger_view`` does the
    rest, as for the admin API's rows)."""
    record = dict(zip(TRIGGER_COLUMNS, row, strict=True))
    for key in ("settings", "conditions"):
        record[key] = orjson.loads(record[key]) if record[key] else None
    return record


TRIGGER_COLUMNS = (
    "id",
    "type",
    "status",
    "name",
    "allow_backwards",
    "enabled",
    "settings",
    "conditions",
    "secret",
)


__all__ = [
    "DEFINITIONS_VERSION",
    "DRIVER_ERRORS",
    "CommitOutcomeUnknown",
    "EventSQL",
    "PostgresEventSQL",
    "SQLiteEventSQL",
    "StorageConflict",
    "StorageError",
    "dumps",
]
