"""An order's ``event`` timeline entries, stored as references to their events.

An ``event`` entry tells that an order saw an event: ``{"event_id", "type", "data",
"moved"}`` and ``"occurred_at"`` when the event has one. Its type, data and time are the
event's own, already in the ``events`` row, and a fan-out event has one entry per order
it resolved to; so an entry is stored as a *reference*, ``{"event_id", "moved"}``, when
its event's row gives the rest back exactly (:func:`reference`: the event path, for the
rows its group writes; migration 0006, for older ones). Every read expands the
references of the rows it read with one indexed lookup of their events by id
(:func:`expand`), so every answer is the one a whole entry gave. An entry that its event
cannot give back (one written otherwise, one whose erasure changed it apart from its
event) stays whole, and is read as stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.sql import Executable

from statusflow.store import queries as q

Row = dict[str, Any]

CHUNK = 500
"""Event ids per lookup (under SQLite's limit on bound parameters)."""

WHOLE_KEYS = frozenset({"event_id", "type", "data", "moved", "occurred_at"})
"""The keys an ``event`` entry has (``occurred_at`` only when the event has one)."""

WHOLE_ORDERS = (
    ("event_id", "type", "data", "moved"),
    ("event_id", "type", "data", "moved", "occurred_at"),
)
"""The keys of a whole entry, in the order the event path writes them."""

EVENT_VALUES = select(q.EVENTS.c.id, q.EVENTS.c.type, q.EVENTS.c.data, q.EVENTS.c.occurred_at)
EVENT_VALUES_BY_IDS = EVENT_VALUES.where(q.EVENTS.c.id.in_(bindparam("ids", expanding=True)))
"""What a reference takes from its event, for a list of event ids (the unique index)."""


class RowReader(Protocol):
    """A store connection that answers a statement with rows (``AdminSQL``, ``StoreSQL``)."""

    async def rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Row]: ...


def is_reference(kind: str, data: Any) -> bool:
    """Whether an entry's stored ``data`` is a reference to its event."""
    return kind == "event" and isinstance(data, dict) and "type" not in data and "event_id" in data


def whole(data: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """The whole entry of a reference ``data`` to ``event`` (``type``, ``data``,
    ``occurred_at``), its keys in the order the event path writes them."""
    entry = {
        "event_id": data["event_id"],
        "type": event["type"],
        "data": event["data"],
        "moved": data.get("moved"),
    }
    if event["occurred_at"]:
        entry["occurred_at"] = event["occurred_at"]
    return entry


def reference(data: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference that gives back the whole entry ``data`` from ``event``, or ``None``
    when ``event`` cannot give it back exactly (compared as JSON, key order included)."""
    if not WHOLE_KEYS.issuperset(data) or "type" not in data or "event_id" not in data:
        return None
    ref = {"event_id": data["event_id"], "moved": data.get("moved")}
    if orjson.dumps(whole(ref, event)) != orjson.dumps(dict(data)):
        return None
    return ref


def same_event(data: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """A cheap :func:`reference` test for the event path, where the entry and the row
    are made from the same event object in the same group."""
    return (
        tuple(data) in WHOLE_ORDERS
        and data["type"] == event["type"]
        and data["data"] == event["data"]
        and data.get("occurred_at") == (event["occurred_at"] or None)
    )


async def events_by_id(sql: RowReader, event_ids: Sequence[str]) -> dict[str, Row]:
    """``id -> {type, data, occurred_at}`` of the stored events among ``event_ids``."""
    found: dict[str, Row] = {}
    for start in range(0, len(event_ids), CHUNK):
        chunk = list(event_ids[start : start + CHUNK])
        for row in await sql.rows(EVENT_VALUES_BY_IDS, {"ids": chunk}):
            found[str(row["id"])] = row
    return found


async def expand(sql: RowReader, rows: list[Row]) -> list[Row]:
    """``rows`` of the timeline (with ``kind`` and ``data``), each reference replaced by
    its whole entry (a reference whose event is gone is left as it is)."""
    wanted = sorted({r["data"]["event_id"] for r in rows if is_reference(r["kind"], r["data"])})
    if not wanted:
        return rows
    events = await events_by_id(sql, wanted)
    expanded = []
    for row in rows:
        if is_reference(row["kind"], row["data"]):
            event = events.get(row["data"]["event_id"])
            if event is not None:
                row = {**row, "data": whole(row["data"], event)}
        expanded.append(row)
    return expanded
