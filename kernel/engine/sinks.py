"""The kernel's two status sinks: the timeline writer and the structlog sink."""

from __future__ import annotations

from typing import Any

import structlog
from pluggy import HookimplMarker

from statusflow.types import KernelServices, Outcome, Transaction

hookimpl = HookimplMarker("statusflow")
log = structlog.get_logger("statusflow.moves")


@hookimpl
def prepare_moves(outcome: Outcome, tx: Transaction) -> None:
    """Write the ``event`` and ``status_changed`` entries of each order's timeline."""
    event = outcome.event
    moved = {m.order_id for m in outcome.moves}
    if event is not None:
        for order_id in outcome.order_ids:
            entry: dict[str, Any] = {
                "event_id": event.id,
                "type": event.type,
                "data": dict(event.data),
                "moved": order_id in moved,
            }
            if event.occurred_at:
                entry["occurred_at"] = event.occurred_at
            tx.add_timeline(order_id, "event", entry, outcome.at)
    for move in outcome.moves:
        entry = {
            "from": move.from_status,
            "to": move.to_status,
            "trigger_id": move.trigger_id,
            "event_id": move.event_id,
            "manual": move.trigger_id is None and move.action_id is None,
        }
        if move.action_id is not None:
            entry["action_id"] = move.action_id
        tx.add_timeline(move.order_id, "status_changed", entry, move.at)


def status_label(status_id: str, name: str | None) -> str:
    """``P Paid``: a status's id, then its name (the id alone when the name is unknown
    or the same)."""
    return f"{status_id} {name}" if name and name != status_id else status_id


@hookimpl
def moves_committed(outcome: Outcome, kernel: KernelServices) -> None:
    """Log every committed move as one structlog event (``move='N New -> P Paid'``)."""
    for move in outcome.moves:
        log.info(
            "order.moved",
            order_id=move.order_id,
            move=f"{status_label(move.from_status, kernel.status_name(move.from_status))}"
            f" -> {status_label(move.to_status, kernel.status_name(move.to_status))}",
            from_status=move.from_status,
            to_status=move.to_status,
            trigger_id=move.trigger_id,
            event_id=move.event_id,
            event_type=move.event_type,
            action_id=move.action_id,
        )
