"""The store's connection, the common base of :mod:`statusflow.store.sqlite` and
:mod:`statusflow.store.postgres`: every statement of the kernel, at the driver level
(``sqlite3``, ``asyncpg``), and the Core statements plugins pass to it.

SQLAlchemy Core costs tens of microseconds per execution (statement coercion, cache
keys, result wrapping), which on the event path was a fifth of the server's CPU. The
handful of statements an event group needs are made once per dialect and run
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
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

from statusflow.store import queries
from statusflow.store.admin import AdminSQL, Params, Row
from statusflow.store.compiled import Compiled, StatementCache
from statusflow.store.errors import (
    CommitOutcomeUnknown,
    ConstraintViolated,
    StorageConflict,
)
from statusflow.store.results import Result, row_class

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


class StoreSQL(AdminSQL):
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
        ``text``), once, or once per parameter set of a list; its rows, all read.

        :raises ConstraintViolated: (a SQLAlchemy ``IntegrityError``) a unique or foreign
            key constraint refused a row.
        """
        if isinstance(params, Sequence) and not isinstance(params, Mapping):
            batches: dict[str, list[tuple[Any, ...]]] = {}
            for one in params:
                _, sql, arguments = self.cache.sql_for(statement, one)
                batches.setdefault(sql, []).append(arguments)
            for sql, rows in batches.items():
                try:
                    await self.executemany(sql, rows)
                except INTEGRITY_ERRORS as exc:
                    raise ConstraintViolated(sql, None, exc) from exc
            return Result((), [], -1)
        compiled, sql, arguments = self.cache.sql_for(statement, params)
        try:
            names, raw, rowcount = await self._query(sql, arguments, compiled.returns_rows)
        except INTEGRITY_ERRORS as exc:
            raise ConstraintViolated(sql, None, exc) from exc
        names = compiled.names or names
        make = row_class(tuple(names))
        return Result(names, [make(compiled.decode(row)) for row in raw], rowcount)

    async def scalar(self, statement: Executable, params: Params | None = None) -> Any:
        """The first column of the first row ``statement`` answers (``None`` without)."""
        return (await self.execute(statement, params)).scalar()

    async def rows(self, statement: Executable, params: Params | None = None) -> list[Row]:
        return list((await self.execute(statement, params)).mappings())

    async def run(self, statement: Executable, params: Params | Sequence[Params]) -> None:
        await self.execute(statement, params)

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

    async def write_rows(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Run one of the kernel's writes for ``rows`` (by default once per row)."""
        await self.executemany(sql, rows)

    def plugin_insert(self, table: Table, row: Mapping[str, Any]) -> Compiled:
        """The insert of a plugin's row into ``table`` (``Transaction.insert``), compiled
        once per set of columns."""
        keys = tuple(sorted(row))
        compiled = self._inserts.get((table, keys))
        if compiled is None:
            compiled = Compiled(table.insert().inline(), self.dialect, None, keys)
            self._inserts[(table, keys)] = compiled
        return compiled


def trigger_row(row: Sequence[Any]) -> dict[str, Any]:
    """A trigger row by column name, its JSON decoded (``engine.trigger_view`` does the
    rest, as for the admin API's rows)."""
    record = dict(zip(queries.TRIGGER_COLUMNS, row, strict=True))
    for key in ("settings", "conditions"):
        record[key] = orjson.loads(record[key]) if record[key] else None
    return record


__all__ = [
    "DEFINITIONS_VERSION",
    "DRIVER_ERRORS",
    "CommitOutcomeUnknown",
    "ConstraintViolated",
    "StorageConflict",
    "StoreSQL",
    "dumps",
]
