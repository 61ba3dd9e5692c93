"""Which order a tracking number belongs to, and whether a tracker already shipped.

A tracking number is *on record* for an order when a stored event that resolved to the
order carried it as ``data.tracking_number`` (the plugin's ``easypost_tracking_numbers``
table, fed by ``prepare_moves``), or when the order's ``fields.tracking_number`` holds
it. Numbers compare without spaces and ignoring ASCII case. Carriers recycle tracking
numbers, so an order whose carrier is known (``data.carrier`` of that event, or the
order's ``fields.carrier``) and differs from the tracker's is not a candidate; among the
candidates the newest order (by ``created_at``) wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from statusflow import JSON, KernelServices, Outcome, Transaction
from statusflow_easypost.tables import (
    MAX_CARRIER,
    MAX_TRACKING_NUMBER,
    ORDERS,
    SHIPPED,
    TRACKING_NUMBERS,
    carrier_column,
    carrier_key,
    tracking_key,
    tracking_number_column,
)

OWN_EVENTS = "easypost:"
"""The prefix of the ids of the events this plugin posts."""
TRACKING_NUMBER_ADDED = "shipment.tracking_number_added"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An order that has a tracking number on record."""

    order_id: str
    created_at: str
    carrier: str | None
    """The carrier on record with the number, ``None`` when unknown."""


def carrier_conflicts(recorded: str | None, reported: str | None) -> bool:
    """Whether both carriers are known and differ."""
    left = carrier_key(recorded) if isinstance(recorded, str) else ""
    right = carrier_key(reported) if isinstance(reported, str) else ""
    return bool(left and right and left != right)


def choose(candidates: Iterable[Candidate], carrier: str | None) -> str | None:
    """The newest order whose carrier does not conflict with ``carrier``, or ``None``."""
    fitting = [c for c in candidates if not carrier_conflicts(c.carrier, carrier)]
    if not fitting:
        return None
    return max(fitting, key=lambda c: (c.created_at, c.order_id)).order_id


def recorded_query(key: str) -> sa.Select[tuple[str, str, str | None]]:
    """The orders ``key`` (a number in comparison form) is on record for through stored
    events: ``(id, created_at, carrier)``."""
    numbers = TRACKING_NUMBERS.c
    return (
        sa.select(ORDERS.c.id, ORDERS.c.created_at, numbers.carrier)
        .join_from(TRACKING_NUMBERS, ORDERS, ORDERS.c.id == numbers.order_id)
        .where(numbers.tracking_number == key)
        .distinct()
    )


def fields_query(dialect: str, key: str) -> sa.Select[tuple[str, str, str | None]]:
    """The orders whose ``fields.tracking_number`` is ``key`` in comparison form:
    ``(id, created_at, fields.carrier)``."""
    return sa.select(ORDERS.c.id, ORDERS.c.created_at, carrier_column(dialect)).where(
        tracking_number_column(dialect) == key
    )


async def find_order(
    kernel: KernelServices, tracking_number: str, carrier: str | None
) -> str | None:
    """The order ``tracking_number`` (reported with ``carrier``) belongs to, or ``None``."""
    key = tracking_key(tracking_number)
    if not key:
        return None
    async with kernel.read() as conn:
        rows = [
            *(await conn.execute(recorded_query(key))).all(),
            *(await conn.execute(fields_query(kernel.dialect, key))).all(),
        ]
    candidates = (
        Candidate(row[0], row[1], row[2] if isinstance(row[2], str) else None) for row in rows
    )
    return choose(candidates, carrier)


async def claim_shipped(
    kernel: KernelServices, tracker_id: str, order_id: str, event_id: str, at: str
) -> bool:
    """Whether the EasyPost event ``event_id`` owns the ``shipment.shipped`` of this
    tracker and order (``""``: no order): the first event to claim it does, and keeps it
    when EasyPost delivers that event again. Race-free across processes."""
    row = {"tracker_id": tracker_id, "order_id": order_id, "event_id": event_id, "at": at}
    insert = (postgresql.insert if kernel.dialect == "postgresql" else sqlite.insert)(SHIPPED)
    owner = sa.select(SHIPPED.c.event_id).where(
        SHIPPED.c.tracker_id == tracker_id, SHIPPED.c.order_id == order_id
    )
    async with kernel.write() as conn:
        await conn.execute(insert.values(row).on_conflict_do_nothing())
        return bool(await conn.scalar(owner) == event_id)


def recorded_rows(outcome: Outcome) -> list[dict[str, JSON]]:
    """The ``easypost_tracking_numbers`` rows of a stored event: its
    ``data.tracking_number`` for each order it resolved to. Of this plugin's own events
    only ``shipment.tracking_number_added`` (one per tracker) counts: it keeps the
    tracker's order on record even if the order's ``fields.tracking_number`` changes
    later; its updates add nothing new. None for a number too long to be one."""
    event = outcome.event
    if event is None or not outcome.order_ids:
        return []
    if event.id.startswith(OWN_EVENTS) and event.type != TRACKING_NUMBER_ADDED:
        return []
    number = event.data.get("tracking_number")
    if not isinstance(number, str) or len(number) > MAX_TRACKING_NUMBER:
        return []
    key = tracking_key(number)
    if not key:
        return []
    carrier = _carrier(event.data)
    return [
        {
            "tracking_number": key,
            "carrier": carrier,
            "order_id": order_id,
            "event_id": event.id,
            "recorded_at": outcome.at,
        }
        for order_id in outcome.order_ids
    ]


def _carrier(data: Mapping[str, JSON]) -> str | None:
    carrier = data.get("carrier")
    if isinstance(carrier, str) and carrier_key(carrier) and len(carrier) <= MAX_CARRIER:
        return carrier
    return None


def record(outcome: Outcome, tx: Transaction) -> None:
    """Put the event's tracking number on record, in the event's transaction."""
    for row in recorded_rows(outcome):
        tx.insert(TRACKING_NUMBERS, row)
