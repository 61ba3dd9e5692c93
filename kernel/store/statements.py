"""The store's connection: every statement of the kernel, at the driver level
(``sqlite3``, ``asyncpg``), and the Core statements plugins pass to it.

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

The admin API's statements (:class:`~statusflow.store.admin.AdminSQL`) and the Core
statements of plugins (``kernel.read()`` / ``kernel.write()``) run on the same
connections, compiled once per dialect (:mod:`statusflow.store.compiled`), and answer
:class:`~statusflow.store.results.Result` rows.
"""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

from statusflow.store import queries
from statusflow.store.admin import AdminSQL, Params, Row
from statusflow.store.compiled import Compiled, StatementCache
from statusflow.store.errors import (
    CommitOutcomeUnknown,
    ConstraintViolated,
    StorageConflict,
    StorageError,
)
from statusflow.store.results import Result, row_class

CHUNK = 500
"""Values per ``IN (...)`` list on SQLite, under its limit on bound parameters."""

DEFINITIONS_VERSION = "definitions_version"

OrderRow = tuple[str, str, str]
"""``(id, status, doc as JSON text)``."""


DRIVER_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    StorageConflict,
)
"""Errors of the event path's statements: a plugin calling them must let these through."""

INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


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


class EventSQL(AdminSQL):
    """The statements of one transaction (see the module docstring)."""

    dialect: Dialect
    cache: StatementCache
    """The dialect's compiled statements: the kernel's, compiled when the class is made."""
    insert_event: str
    update_order: str
    insert_move: str
    insert_timeline: str
    _inserts: dict[tuple[Table, tuple[str, ...]], Compiled]
    """Plugins' rows' inserts, by table and columns."""

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.dialect_name = cls.dialect.name
        cls.cache = StatementCache(cls.dialect, queries.prepared(cls.dialect_name))
        cls._inserts = {}

    # any Core statement (the admin API's, and plugins') --------------------------------

    @abstractmethod
    async def _query(
        self, sql: str, arguments: tuple[Any, ...], returns_rows: bool
    ) -> tuple[list[str], Sequence[Sequence[Any]], int]:
        """Run ``sql`` once: its column names, its rows, and how many rows it changed."""

    async def execute(
        self, statement: Executable, params: Params | Sequence[Params] | None = None
    ) -> Result:
        """Run a SQLAlchemy Core statement (``select``, ``insert``, ``update``, ``delete``,
        ``text``), once, or once per parameter set of a list; its rows, all read."""
        if isinstance(params, Sequence) and not isinstance(params, Mapping):
            batches: dict[str, list[tuple[Any, ...]]] = {}
            for one in params:
                _, sql, arguments = self.cache.sql_for(statement, one)
                batches.setdefault(sql, []).append(arguments)
            for sql, rows in batches.items():
                await self.executemany(sql, rows)
            return Result((), [], -1)
        compiled, sql, arguments = self.cache.sql_for(statement, params)
        names, raw, rowcount = await self._query(sql, arguments, compiled.returns_rows)
        names = compiled.names or names
        make = row_class(tuple(names))
        return Result(names, [make(compiled.decode(row)) for row in raw], rowcount)

    async def scalar(self, statement: Executable, params: Params | None = None) -> Any:
        """The first column of the first row ``statement`` answers (``None`` without)."""
        return (await self.execute(statement, params)).scalar()

    async def rows(self, statement: Executable, params: Params | None = None) -> list[Row]:
        return list((await self.execute(statement, params)).mappings())

    async def run(self, statement: Executable, params: Params | Sequence[Params]) -> None:
        try:
            await self.execute(statement, params)
        except INTEGRITY_ERRORS as exc:
            raise ConstraintViolated(str(exc)) from exc

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

    def _compiled_insert(self, table: Table, row: Mapping[str, Any]) -> Compiled:
        keys = tuple(sorted(row))
        compiled = self._inserts.get((table, keys))
        if compiled is None:
            compiled = Compiled(table.insert().inline(), self.dialect, None, keys)
            self._inserts[(table, keys)] = compiled
        return compiled

    def _plugin_batches(
        self, plugin_rows: Iterable[tuple[Table, list[dict[str, Any]]]]
    ) -> Iterable[tuple[str, list[tuple[Any, ...]]]]:
        """Plugin rows grouped by compiled statement, in the order they were added."""
        for table, rows in plugin_rows:
            batch: list[tuple[Any, ...]] = []
            current: Compiled | None = None
            for row in rows:
                compiled = self._compiled_insert(table, row)
                if current is not None and compiled is not current:
                    yield current.sql, batch
                    batch = []
                current = compiled
                batch.append(compiled.arguments(row))
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

    dialect = SQLiteDialect_pysqlite(json_serializer=dumps, json_deserializer=orjson.loads)
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

    dialect = PGDialect_asyncpg(json_serializer=dumps, json_deserializer=orjson.loads)
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
    "ConstraintViolated",
    "EventSQL",
    "PostgresEventSQL",
    "SQLiteEventSQL",
    "StorageConflict",
    "StorageError",
    "dumps",
]
