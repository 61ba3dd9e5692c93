"""event timeline entries as references to their events

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 20:30:00

An ``event`` timeline entry copied its event's type, data and time (once per order a
fan-out event resolved to); the event path now stores ``{"event_id", "moved"}`` and the
reads take the rest from the ``events`` row (``statusflow.store.timeline``). This turns
the stored entries that their event gives back exactly into such references, in batches
by ``seq``; an entry its event cannot give back (changed apart from it, or its event
gone) stays whole. The downgrade writes every reference whole again. No schema change.
"""

import json
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 2000
CHUNK = 500
WHOLE_ORDERS = (
    ("event_id", "type", "data", "moved"),
    ("event_id", "type", "data", "moved", "occurred_at"),
)

TIMELINE = sa.table(
    "timeline",
    sa.column("seq", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("data", sa.JSON),
)
EVENTS = sa.table(
    "events",
    sa.column("id", sa.String),
    sa.column("type", sa.String),
    sa.column("data", sa.JSON),
    sa.column("occurred_at", sa.String),
)
SET_DATA = (
    TIMELINE.update().where(TIMELINE.c.seq == sa.bindparam("s")).values(data=sa.bindparam("d"))
)


def _whole(data: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    entry = {
        "event_id": data["event_id"],
        "type": event["type"],
        "data": event["data"],
        "moved": data.get("moved"),
    }
    if event["occurred_at"]:
        entry["occurred_at"] = event["occurred_at"]
    return entry


def _entries(conn: sa.Connection) -> Iterator[list[Any]]:
    """The ``event`` entries, a batch at a time, in ``seq`` order."""
    last = 0
    while True:
        rows = conn.execute(
            sa.select(TIMELINE.c.seq, TIMELINE.c.data)
            .where(TIMELINE.c.kind == "event", TIMELINE.c.seq > last)
            .order_by(TIMELINE.c.seq)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1].seq
        yield [r for r in rows if isinstance(r.data, dict) and "event_id" in r.data]


def _events(conn: sa.Connection, ids: set[Any]) -> dict[Any, Mapping[str, Any]]:
    found: dict[Any, Mapping[str, Any]] = {}
    wanted = sorted(i for i in ids if isinstance(i, str))
    for start in range(0, len(wanted), CHUNK):
        query = sa.select(EVENTS).where(EVENTS.c.id.in_(wanted[start : start + CHUNK]))
        found.update((row.id, row._mapping) for row in conn.execute(query))
    return found


def upgrade() -> None:
    conn = op.get_bind()
    for rows in _entries(conn):
        whole = [r for r in rows if tuple(r.data) in WHOLE_ORDERS]
        events = _events(conn, {r.data["event_id"] for r in whole})
        updates = []
        for row in whole:
            event = events.get(row.data["event_id"])
            ref = {"event_id": row.data["event_id"], "moved": row.data.get("moved")}
            if event is not None and json.dumps(_whole(ref, event)) == json.dumps(row.data):
                updates.append({"s": row.seq, "d": ref})
        if updates:
            conn.execute(SET_DATA, updates)


def downgrade() -> None:
    conn = op.get_bind()
    for rows in _entries(conn):
        refs = [r for r in rows if "type" not in r.data]
        events = _events(conn, {r.data["event_id"] for r in refs})
        updates = [
            {"s": row.seq, "d": _whole(row.data, events[row.data["event_id"]])}
            for row in refs
            if row.data["event_id"] in events
        ]
        if updates:
            conn.execute(SET_DATA, updates)
