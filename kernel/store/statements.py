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

The event path's group work lives here too, so that an event's reads and writes are in
one place: everything a group of requests needs is read up front (:func:`load_snapshot`:
stored results of the group's event ids, the orders it names or fans out to, locked on
PostgreSQL), and everything it decided is written at the end (:class:`GroupWrites`: one
statement per table, in commit order; a manual move's rows take the same way).
"""

from __future__ import annotations

import sqlite3
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

from statusflow.store import queries
from statusflow.store.admin import Params, Row
from statusflow.store.compiled import Compiled, StatementCache
from statusflow.store.errors import (
    CommitOutcomeUnknown,
    ConstraintViolated,
    StorageConflict,
)
from statusflow.store.results import Result, row_class
from statusflow.store.runs import RunsSQL
from statusflow.store.timeline import same_event
from statusflow.timestamps import format_timestamp, utc_now
from statusflow.types import Event, Move

DEFINITIONS_VERSION = "definitions_version"

OrderRow = tuple[str, str, str, int]
"""``(id, status, doc as JSON text, status_epoch)``."""

WAKE_HORIZON = 60.0
"""Seconds: runs written that fall due sooner than this wake the other instances'
schedulers (``NOTIFY`` on PostgreSQL); each scheduler looks for due runs at least this
often anyway."""


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


class StoreSQL(RunsSQL):
    """The statements of one transaction (see the module docstring)."""

    dialect: Dialect
    cache: StatementCache
    """The dialect's compiled statements: the kernel's, compiled when the class is made."""
    insert_event: str
    update_order: str
    insert_move: str
    insert_timeline: str
    insert_run: str
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
    async def statuses(self) -> list[tuple[str, int, str, str]]:
        """Every status as ``(id, sort, semantics, name)``."""

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

    async def snapshot_at_once(
        self,
        event_ids: Sequence[str],
        order_ids: Sequence[str],
        wanted: Mapping[str, Sequence[str]],
        lock: bool,
    ) -> Snapshot | None:
        """:func:`load_snapshot`'s three reads in one round trip, where the dialect can
        (``None``: it cannot, read them one by one)."""
        return None

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

    async def write_all(self, writes: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
        """:meth:`write_rows` for each ``(sql, rows)`` in turn; a dialect may send them
        together (PostgreSQL: one statement, one round trip)."""
        for sql, rows in writes:
            await self.write_rows(sql, rows)

    @abstractmethod
    async def cancel_left(
        self, rows: Sequence[tuple[str, str, str, str]]
    ) -> list[tuple[int, int, str, str, str]]:
        """Cancel the pending runs of the statuses orders left: ``(order id, status,
        reason, at)`` rows; the ``(run id, action id, order id, reason, at)`` canceled."""

    async def insert_runs(self, rows: Sequence[tuple[Any, ...]], horizon: str) -> None:
        """Insert new runs (:data:`queries.RUN_COLUMNS` order); on PostgreSQL also tell
        the other instances when one falls due before ``horizon``."""
        await self.write_rows(self.insert_run, rows)

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
    """A trigger row by column name, its JSON decoded (``engine.decide.trigger_view`` does the
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


# --- the group of an event path transaction: read up front, written at the end -----


class OrderState:
    """An order as the engine holds it during a group (its status follows the moves).

    ``doc`` is decoded from the stored JSON text the first time a condition reads it.
    """

    __slots__ = ("_doc", "epoch", "id", "status")

    def __init__(self, id: str, status: str, doc: str | Mapping[str, Any], epoch: int = 0) -> None:
        self.id = id
        self.status = status
        self._doc = doc
        self.epoch = epoch
        """The order's ``status_epoch`` as stored when the group began."""

    def stored_doc(self) -> str | Mapping[str, Any]:
        """The doc as read: JSON text until a condition decoded it."""
        return self._doc

    @property
    def doc(self) -> Mapping[str, Any]:
        doc = self._doc
        if isinstance(doc, str):
            doc = self._doc = orjson.loads(doc)
        return doc


@dataclass
class Snapshot:
    """What a group of events needs from the database, read before deciding."""

    stored_results: dict[str, dict[str, Any]]
    orders: dict[str, OrderState]
    orders_by_identifier: dict[tuple[str, str], list[str]]
    read: tuple[Any, ...] = ()
    """Everything read, as read (the orders before any move): what a decision rests on.
    Kept only when asked for (``keep_reads``)."""
    asked: tuple[list[str], list[str], dict[str, list[str]]] = field(
        default_factory=lambda: ([], [], {})
    )
    """Event ids, order ids and identifiers asked for, normalized: what
    :meth:`still_holds` reads again (kept with ``read``)."""

    async def still_holds(self, sql: StoreSQL) -> bool:
        """Whether ``sql``'s transaction reads the same as this snapshot did: no event of
        the group stored since, no order named or found by contact changed (status,
        fields, epoch), none added to a contact. Decisions made on it stand."""
        ids, named, wanted = self.asked
        fresh = await _read_snapshot(sql, ids, named, wanted, lock=False)
        return _what_was_read(fresh) == self.read


def _what_was_read(snapshot: Snapshot) -> tuple[Any, ...]:
    """:attr:`Snapshot.read` of a snapshot just loaded (its orders not yet moved)."""
    orders = tuple(
        (o.id, o.status, o.epoch, o.stored_doc()) for _, o in sorted(snapshot.orders.items())
    )
    found = tuple(sorted((k, tuple(sorted(v))) for k, v in snapshot.orders_by_identifier.items()))
    return tuple(sorted(snapshot.stored_results)), orders, found


async def load_snapshot(
    sql: StoreSQL,
    event_ids: Iterable[str],
    order_ids: Iterable[str],
    identifiers: Iterable[tuple[str, str]],
    lock: bool,
    keep_reads: bool = False,
) -> Snapshot:
    """Read the stored results of ``event_ids`` and the orders the group may touch.

    :param order_ids: orders named by ``order_id``.
    :param identifiers: ``(kind, value)`` contact identifiers to fan out by.
    :param lock: lock the orders (``FOR UPDATE``, in id order, so that concurrent groups
        on PostgreSQL never deadlock on them).
    :param keep_reads: keep what was read, so that :meth:`Snapshot.still_holds` can
        tell later (a decision written after the snapshot's transaction ended).
    """
    values_by_kind: dict[str, set[str]] = {}
    for kind, value in identifiers:
        values_by_kind.setdefault(kind, set()).add(value)
    asked = (
        sorted(set(event_ids)),
        sorted(set(order_ids)),
        {kind: sorted(values) for kind, values in sorted(values_by_kind.items())},
    )
    snapshot = await _read_snapshot(sql, *asked, lock=lock)
    if keep_reads:
        snapshot.asked, snapshot.read = asked, _what_was_read(snapshot)
    return snapshot


async def _read_snapshot(
    sql: StoreSQL,
    ids: list[str],
    named: list[str],
    wanted_values: dict[str, list[str]],
    lock: bool,
) -> Snapshot:
    """:func:`load_snapshot` of arguments already normalized."""
    together = await sql.snapshot_at_once(ids, named, wanted_values, lock)
    if together is not None:
        return together
    stored = await sql.stored_results(ids) if ids else {}

    by_identifier: dict[tuple[str, str], list[str]] = {}
    if wanted_values:
        for kind, value, order_id in await sql.identified_orders(wanted_values):
            by_identifier.setdefault((kind, value), []).append(order_id)

    wanted = set(named)
    for found in by_identifier.values():
        wanted.update(found)
    orders: dict[str, OrderState] = {}
    if wanted:
        for order_id, status, doc, epoch in await sql.orders(sorted(wanted), lock):
            orders[order_id] = OrderState(order_id, status, doc, epoch)
    return Snapshot(stored, orders, by_identifier)


class DatabaseStateStore:
    """:class:`kernel.StateStore` on the ``plugin_marks`` table, for one group.

    Claimed at once (``defer=False``), a claim is an insert-if-absent in the group's
    transaction, so of concurrent claims on PostgreSQL exactly one inserts the row (the
    others wait for its commit and then find it). Deferred (a dry run, or a group decided
    on a snapshot outside the write lock), claims are remembered for the rest of the
    group, and :meth:`settle` writes them later, in the write transaction, checking that
    what was read then still holds.
    """

    def __init__(self, sql: StoreSQL, defer: bool) -> None:
        self._sql = sql
        self._defer = defer
        self._claimed: set[tuple[str, str]] = set()
        self._read: dict[tuple[str, str], bool] = {}
        """Whether each mark read existed, as read (deferred)."""

    async def seen(self, namespace: str, key: str) -> bool:
        mark = (namespace, key)
        if mark in self._claimed:
            return True
        exists = await self._sql.mark_exists(namespace, key)
        if self._defer:
            self._read.setdefault(mark, exists)
        return exists

    async def claim(self, namespace: str, key: str) -> bool:
        if not self._defer:
            return await self._sql.claim(namespace, key, utc_now())
        first = not await self.seen(namespace, key)
        self._claimed.add((namespace, key))
        return first

    async def settle(self, sql: StoreSQL, check: bool = True) -> bool:
        """Deferred: in the write transaction ``sql``, check that every mark read still
        exists or not as it did (unless ``check`` is false: nothing was written since),
        then insert the claimed ones; ``False`` (nothing to keep) when one changed."""
        for (namespace, key), existed in self._read.items():
            if check and await sql.mark_exists(namespace, key) != existed:
                return False
        at = utc_now()
        for (namespace, key), existed in self._read.items():
            claimed = (namespace, key) in self._claimed and not existed
            if claimed and not await sql.claim(namespace, key, at):
                return False
        return True


RUN_STATE = 4
"""Where a run row (:data:`queries.RUN_COLUMNS`) holds its state, then ``next_at``,
``finished_at`` and ``reason``."""
RUN_NEXT_AT, RUN_FINISHED_AT, RUN_REASON = 8, 12, 13


def run_entry(
    run_id: int | None, action_id: int, action_type: str | None, state: str, reason: str | None
) -> dict[str, Any]:
    """The data of an ``action`` timeline entry: a run ended."""
    entry: dict[str, Any] = {"action_id": action_id, "run_id": run_id, "state": state}
    if action_type is not None:
        entry["action_type"] = action_type
    entry["reason"] = reason or ""
    return entry


@dataclass
class GroupWrites:
    """Rows a group will write: :class:`kernel.Transaction` for the sinks, too.

    Runs: new ones (:meth:`add_run`), and the cancellation of an order's pending runs of
    a status it left (:meth:`cancel_runs`): those stored before the group in one
    statement (whose canceled runs get their timeline entries), those written by the
    group itself at once, in memory."""

    events: list[dict[str, Any]] = field(default_factory=list)
    order_updates: dict[str, tuple[str, str, int, str]] = field(default_factory=dict)
    """``(status, updated_at, status_epoch, order id)`` by order id: each order's last move."""
    moves: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    plugin_rows: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    runs: list[list[Any]] = field(default_factory=list)
    """New runs, in :data:`queries.RUN_COLUMNS` order."""
    cancels: list[tuple[str, str, str, str]] = field(default_factory=list)
    """``(order id, status, reason, at)``: stored pending runs to cancel."""
    action_types: dict[int, str] = field(default_factory=dict)
    """The type of each action whose runs may be canceled here (for the timeline)."""
    earliest_run: str | None = None
    """The soonest ``next_at`` of the new runs."""
    _stored_left: set[str] = field(default_factory=set)
    _written: dict[str, list[list[Any]]] = field(default_factory=dict)
    _encoded: tuple[list[tuple[Any, ...]], ...] | None = None
    """The event, move and timeline rows :meth:`encode` made."""

    def insert(self, table: Any, row: Mapping[str, Any]) -> None:
        self.plugin_rows.setdefault(table, []).append(dict(row))

    def mark(self) -> tuple[int, list[tuple[list[dict[str, Any]], int]]]:
        """Where the rows stand now, to drop what a failing sink added (:meth:`rewind`)."""
        if not self.plugin_rows:
            return len(self.timeline), []
        return len(self.timeline), [(rows, len(rows)) for rows in self.plugin_rows.values()]

    def rewind(self, mark: tuple[int, list[tuple[list[dict[str, Any]], int]]]) -> None:
        """Drop the rows added since ``mark``."""
        timeline, tables = mark
        del self.timeline[timeline:]
        known = {id(rows) for rows, _ in tables}
        for rows, length in tables:
            del rows[length:]
        for rows in self.plugin_rows.values():
            if id(rows) not in known:  # a table first written by the failing sink
                rows.clear()

    def add_timeline(self, order_id: str, kind: str, data: Mapping[str, Any], at: str) -> None:
        self.timeline.append({"order_id": order_id, "kind": kind, "data": dict(data), "at": at})

    def _refer_to_events(self) -> None:
        """Store each ``event`` entry whose event this group writes as a reference to
        that row (:mod:`statusflow.store.timeline`): the event's data once, not once per
        order it resolved to."""
        if not self.events:
            return
        events = {row["id"]: row for row in self.events}
        for entry in self.timeline:
            data = entry["data"]
            if entry["kind"] != "event" or "type" not in data:
                continue
            event = events.get(data.get("event_id"))
            if event is not None and same_event(data, event):
                entry["data"] = {"event_id": data["event_id"], "moved": data.get("moved")}

    def add_event(self, event: Event, stored: Mapping[str, Any], at: str) -> None:
        self.events.append(
            {
                "id": event.id,
                "type": event.type,
                "order_id": event.order_id,
                "contact": dict(event.contact),
                "data": dict(event.data),
                "occurred_at": event.occurred_at,
                "received_at": at,
                "result": dict(stored),
            }
        )

    def add_moves(self, moves: Iterable[Move], epochs: Mapping[str, int]) -> None:
        """Record moves; ``epochs`` gives each moved order's new ``status_epoch``."""
        for m in moves:
            self.order_updates[m.order_id] = (m.to_status, m.at, epochs[m.order_id], m.order_id)
            self.moves.append(
                {
                    "order_id": m.order_id,
                    "from_status": m.from_status,
                    "to_status": m.to_status,
                    "trigger_id": m.trigger_id,
                    "event_id": m.event_id,
                    "event_type": m.event_type,
                    "at": m.at,
                    "action_id": m.action_id,
                }
            )

    def add_run(self, row: list[Any]) -> None:
        """A new run (a row in :data:`queries.RUN_COLUMNS` order)."""
        self.runs.append(row)
        self._written.setdefault(row[1], []).append(row)
        next_at = row[RUN_NEXT_AT]
        if next_at is not None and (self.earliest_run is None or next_at < self.earliest_run):
            self.earliest_run = next_at

    def cancel_runs(
        self, order_id: str, status: str, reason: str, at: str, types: Mapping[int, str]
    ) -> None:
        """Cancel the order's pending runs of ``status``, which it leaves."""
        self.action_types.update(types)
        for row in self._written.get(order_id, ()):
            if row[2] == status and row[RUN_STATE] == "pending":
                row[RUN_STATE], row[RUN_NEXT_AT] = "canceled", None
                row[RUN_FINISHED_AT], row[RUN_REASON] = at, reason
                entry = run_entry(None, row[0], types.get(row[0]), "canceled", reason)
                self.add_timeline(order_id, "action", entry, at)
        if order_id not in self._stored_left:  # the runs stored before: of its first status
            self._stored_left.add(order_id)
            self.cancels.append((order_id, status, reason, at))

    def encode(self) -> None:
        """Make the event, move and timeline rows recorded so far (their JSON) now, before
        the write transaction begins: on SQLite the write lock is then held for the
        writes only. Nothing but canceled runs' entries may be added after."""
        self._encoded = self._rows()

    def _rows(self) -> tuple[list[tuple[Any, ...]], ...]:
        self._refer_to_events()
        return (
            [event_row(row) for row in self.events],
            [move_row(row) for row in self.moves],
            [timeline_row(row) for row in self.timeline],
        )

    async def write_to(self, sql: StoreSQL) -> None:
        """Write everything in ``sql``'s transaction (moves in commit order): an event
        group's rows, or a manual move's, or a run's end."""
        events, moves, timeline = self._encoded if self._encoded is not None else self._rows()
        writes: list[tuple[str, Sequence[tuple[Any, ...]]]] = [
            (sql.insert_event, events),
            (sql.update_order, list(self.order_updates.values())),
            (sql.insert_move, moves),  # seq: commit order
        ]
        if self.cancels:  # their timeline entries come from the database: written after
            await sql.write_all([(statement, rows) for statement, rows in writes if rows])
            writes = []
            encoded = len(self.timeline)
            for run_id, action_id, order_id, reason, at in await sql.cancel_left(self.cancels):
                entry = run_entry(
                    run_id, action_id, self.action_types.get(action_id), "canceled", reason
                )
                self.add_timeline(order_id, "action", entry, at)
            timeline = timeline + [timeline_row(row) for row in self.timeline[encoded:]]
        writes.append((sql.insert_timeline, timeline))
        await sql.write_all([(statement, rows) for statement, rows in writes if rows])
        if self.runs:
            horizon = format_timestamp(datetime.now(UTC) + timedelta(seconds=WAKE_HORIZON))
            await sql.insert_runs([tuple(row) for row in self.runs], horizon)
        for statement, rows in _plugin_batches(sql, self.plugin_rows.items()):
            await sql.executemany(statement, rows)
        self.events, self.order_updates, self.moves, self.timeline = [], {}, [], []
        self.plugin_rows, self.runs, self.cancels = {}, [], []
        self._stored_left, self._written, self._encoded = set(), {}, None


def _plugin_batches(
    sql: StoreSQL, plugin_rows: Iterable[tuple[Any, list[dict[str, Any]]]]
) -> Iterable[tuple[str, list[tuple[Any, ...]]]]:
    """Plugin rows grouped by compiled statement, in the order they were added."""
    for table, rows in plugin_rows:
        batch: list[tuple[Any, ...]] = []
        current: Compiled | None = None
        for row in rows:
            compiled = sql.plugin_insert(table, row)
            if current is not None and compiled is not current:
                yield current.sql, batch
                batch = []
            current = compiled
            batch.append(compiled.arguments(row))
        if current is not None and batch:
            yield current.sql, batch


# A group's rows as the drivers take them, in the order of queries.EVENT_COLUMNS,
# MOVE_COLUMNS and TIMELINE_COLUMNS (the order of the statements' parameters).


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
        bool(row["result"].get("moves")),
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
        row["action_id"],
    )


def timeline_row(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row["order_id"], row["at"], row["kind"], dumps(row["data"]))
