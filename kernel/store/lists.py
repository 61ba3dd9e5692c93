"""Keyset pages of orders, events and an order's timeline (``GET /api/orders``,
``GET /api/events``, ``GET /api/orders/{id}/timeline?limit=``).

A page is the rows after a position in the list's order, ``limit + 1`` of them (the
extra row says whether there is a next page); the position is the last row's key, so a
page never repeats or skips a row because rows were inserted or deleted meanwhile.
Each filter has an index that yields its rows in the list's order (migration 0003):

- orders, newest first: ``(created_at, id)``, or ``(status, created_at, id)``; a search
  (``q``) finds its few candidates by primary key and ``order_identifiers``;
- events, newest first: ``seq``, or ``(type, seq)``, ``(moved, seq)``,
  ``(type, moved, seq)``; by order, the order's ``event`` timeline entries
  (``(order_id, seq)``), each joined to its event by id;
- an order's timeline, oldest first (newest first on the board's order page):
  ``(order_id, seq)``.

Statements are built per call from the tables; the store compiles each shape once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, bindparam, literal, select, tuple_, union
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import BindParameter

from statusflow.store import queries as q
from statusflow.store.admin import AdminSQL, Row
from statusflow.store.timeline import expand

_IDS: BindParameter[Any] = bindparam("ids", expanding=True)

OrderKey = tuple[str, str]
"""An order's position in the list: ``(created_at, id)``."""


@dataclass(frozen=True)
class OrderSearch:
    """What ``q`` may be: an order id, and the contact identifiers it normalises to."""

    order_id: str
    identifiers: Sequence[tuple[str, str]] = ()
    """``(kind, value)`` pairs of ``order_identifiers`` (``phone`` in E.164, ``email``)."""


async def orders_page(
    sql: AdminSQL,
    limit: int,
    after: OrderKey | None = None,
    status: str | None = None,
    search: OrderSearch | None = None,
) -> list[Row]:
    """Up to ``limit + 1`` orders after ``after``, newest first (``created_at``, then
    ``id``, both descending)."""
    return await sql.rows(orders_statement(limit, after, status, search))


def orders_statement(
    limit: int,
    after: OrderKey | None = None,
    status: str | None = None,
    search: OrderSearch | None = None,
) -> Select[Any]:
    """The statement of :func:`orders_page`."""
    orders = q.ORDERS
    where: list[ColumnElement[bool]] = []
    status_column, created_at = orders.c.status, orders.c.created_at
    if search is not None:
        # A search's candidates are few and come by primary key: the filters and the
        # keyset are written as expressions no index serves, so that no planner walks a
        # list index (a whole status) to find them.
        status_column, created_at = status_column.concat(""), created_at.concat("")
    if status is not None:
        where.append(status_column == status)
    if search is not None:
        by_identifier = [
            select(q.IDENTIFIERS.c.order_id).where(
                q.IDENTIFIERS.c.kind == kind, q.IDENTIFIERS.c.value == value
            )
            for kind, value in search.identifiers
        ]
        candidates = union(select(literal(search.order_id, String)), *by_identifier)
        where.append(orders.c.id.in_(candidates))
    if after is not None:
        where.append(tuple_(created_at, orders.c.id) < tuple_(*after))
    return (
        select(orders)
        .where(*where)
        .order_by(orders.c.created_at.desc(), orders.c.id.desc())
        .limit(limit + 1)
    )


def order_key(row: Row) -> OrderKey:
    return (str(row["created_at"]), str(row["id"]))


async def events_page(
    sql: AdminSQL,
    limit: int,
    after: int | None = None,
    event_type: str | None = None,
    moved: bool | None = None,
    order_id: str | None = None,
) -> list[Row]:
    """Up to ``limit + 1`` events after ``after``, newest first, each with its
    ``position`` in the list: its ``seq``, or, by order, its timeline entry's ``seq``."""
    return await sql.rows(events_statement(limit, after, event_type, moved, order_id))


def events_statement(
    limit: int,
    after: int | None = None,
    event_type: str | None = None,
    moved: bool | None = None,
    order_id: str | None = None,
) -> Select[Any]:
    """The statement of :func:`events_page`."""
    events = q.EVENTS
    where: list[ColumnElement[bool]] = []
    if event_type is not None:
        where.append(events.c.type == event_type)
    if moved is not None:
        where.append(events.c.moved == moved)
    if order_id is None:
        position = events.c.seq
        source = events
    else:
        timeline = q.TIMELINE
        position = timeline.c.seq
        source = timeline.join(events, events.c.id == timeline.c.data["event_id"].as_string())
        where += [timeline.c.order_id == order_id, timeline.c.kind == "event"]
    if after is not None:
        where.append(position < after)
    return (
        select(*events.c, position.label("position"))
        .select_from(source)
        .where(*where)
        .order_by(position.desc())
        .limit(limit + 1)
    )


async def event_type_stored(sql: AdminSQL, event_type: str) -> bool:
    """Whether an event of ``event_type`` is stored (a type no plugin registers now)."""
    found = await sql.rows(select(q.EVENTS.c.seq).where(q.EVENTS.c.type == event_type).limit(1))
    return bool(found)


async def timeline_page(
    sql: AdminSQL,
    order_id: str,
    limit: int,
    after: int | None = None,
    newest_first: bool = False,
) -> list[Row]:
    """Up to ``limit + 1`` of an order's timeline entries (``seq``, ``at``, ``kind``,
    ``data``) after ``after``, oldest first (``newest_first``: newest first, ``after``
    then being the last ``seq`` shown, the page holding older ones); ``event`` entries
    stored as references come back whole."""
    rows = await sql.rows(timeline_statement(order_id, limit, after, newest_first))
    return await expand(sql, rows)


def timeline_statement(
    order_id: str, limit: int, after: int | None = None, newest_first: bool = False
) -> Select[Any]:
    """The statement of :func:`timeline_page`."""
    timeline = q.TIMELINE
    where = [timeline.c.order_id == order_id]
    if after is not None:
        where.append(timeline.c.seq < after if newest_first else timeline.c.seq > after)
    return (
        select(timeline.c.seq, timeline.c.at, timeline.c.kind, timeline.c.data)
        .where(*where)
        .order_by(timeline.c.seq.desc() if newest_first else timeline.c.seq)
        .limit(limit + 1)
    )


async def event_results(sql: AdminSQL, event_ids: Sequence[str]) -> dict[str, Any]:
    """The stored ``result`` (orders, moves, trace) of each of ``event_ids`` found."""
    if not event_ids:
        return {}
    events = q.EVENTS
    statement = select(events.c.id, events.c.result).where(events.c.id.in_(_IDS))
    rows = await sql.rows(statement, {"ids": list(event_ids)})
    return {row["id"]: row["result"] for row in rows}


async def trigger_labels(sql: AdminSQL, trigger_ids: Sequence[int]) -> list[Row]:
    """The ``id``, ``type`` and ``name`` of each of ``trigger_ids`` that exists."""
    if not trigger_ids:
        return []
    triggers = q.TRIGGERS
    statement = select(triggers.c.id, triggers.c.type, triggers.c.name)
    return await sql.rows(statement.where(triggers.c.id.in_(_IDS)), {"ids": list(trigger_ids)})
