"""Text for people at a terminal: aligned tables, statuses with their names
(``N New -> P Paid``), orders, moves, timeline entries and traces."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]


class Names:
    """Statuses and triggers by id, to show them as people name them."""

    def __init__(self, statuses: Iterable[Row] = (), triggers: Iterable[Row] = ()) -> None:
        self.statuses = {str(s["id"]): str(s["name"]) for s in statuses}
        self.triggers = {int(t["id"]): t for t in triggers}

    def status(self, status_id: Any) -> str:
        """``P Paid`` (the id alone when the pipeline no longer has it)."""
        if status_id is None:
            return "-"
        name = self.statuses.get(str(status_id))
        return f"{status_id} {name}" if name else str(status_id)

    def move(self, from_status: Any, to_status: Any) -> str:
        return f"{self.status(from_status)} -> {self.status(to_status)}"

    def trigger(self, trigger_id: Any) -> str:
        """``3 call.missed -> P Paid "name"`` (the id alone for a deleted trigger)."""
        if trigger_id is None:
            return "-"
        trigger = self.triggers.get(int(trigger_id))
        if trigger is None:
            return f"{trigger_id} (deleted)"
        text = f"{trigger_id} {trigger['type']} -> {self.status(trigger['status'])}"
        return f'{text} "{trigger["name"]}"' if trigger.get("name") else text


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [list(headers)] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def compact(value: Any) -> str:
    """A JSON value on one line (``-`` for nothing)."""
    if value in (None, {}, []):
        return "-"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def party(value: Row | None) -> str:
    """A contact or company: its name, id, phones and emails."""
    if not value:
        return "-"
    parts = [str(value[k]) for k in ("name", "id") if value.get(k)]
    parts += [*map(str, value.get("phones") or ()), *map(str, value.get("emails") or ())]
    return ", ".join(parts) or "-"


def order(found: Row, names: Names) -> str:
    """An order, one field a line."""
    amount = found.get("amount")
    fields = [
        ("order", found["id"]),
        ("status", names.status(found["status"])),
        ("created", found.get("created_at")),
        ("updated", found.get("updated_at")),
        ("responsible", found.get("responsible_id") or "-"),
        ("amount", "-" if amount is None else f"{amount} {found.get('currency') or ''}".strip()),
        ("contact", party(found.get("contact"))),
        ("company", party(found.get("company"))),
        ("visitors", ", ".join(found.get("visitor_ids") or ()) or "-"),
        ("fields", compact(found.get("fields"))),
    ]
    width = max(len(k) for k, _ in fields)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in fields)


def timeline_entry(entry: Row, names: Names) -> str:
    """What a timeline entry says, after its time and kind."""
    kind = entry.get("kind")
    if kind == "created":
        return names.status(entry.get("status"))
    if kind == "status_changed":
        trigger = names.trigger(entry.get("trigger_id"))
        cause = "manual" if entry.get("manual") else f"trigger {trigger}"
        if entry.get("event_id"):
            cause += f", event {entry['event_id']}"
        return f"{names.move(entry.get('from'), entry.get('to'))}  ({cause})"
    if kind == "event":
        moved = "moved it" if entry.get("moved") else "moved nothing"
        data = compact(entry.get("data"))
        return f"{entry.get('type')} {entry.get('event_id')}  {moved}  {data}"
    rest = {k: v for k, v in entry.items() if k not in ("at", "kind")}
    return compact(rest)


def timeline(entries: Iterable[Row], names: Names) -> str:
    rows = [(e.get("at"), e.get("kind"), timeline_entry(e, names)) for e in entries]
    return table(("AT", "KIND", "WHAT"), rows)


def moves(found: Iterable[Row], names: Names) -> list[str]:
    """``o1: N New -> P Paid (trigger 3 ...)`` for each move."""
    return [
        f"{m['order_id']}: {names.move(m.get('from'), m.get('to'))}"
        f"  (trigger {names.trigger(m.get('trigger_id'))})"
        for m in found
    ]


def result(answer: Row, names: Names) -> str:
    """One result of ``POST /api/events``: the event, its orders, its moves."""
    head = str(answer.get("event_id"))
    if answer.get("duplicate"):
        head += " (already processed: its first result)"
    if answer.get("dry_run"):
        head += " (dry run: nothing stored)"
    orders = ", ".join(answer.get("order_ids") or ()) or "no order found"
    lines = [head, f"  orders: {orders}"]
    made = moves(answer.get("moves") or (), names)
    lines += [f"  moved {line}" for line in made] or ["  no move"]
    if answer.get("trace") is not None:
        lines += ["", _indent(trace(answer["trace"], names))]
    return "\n".join(lines)


def trace(entries: Sequence[Row], names: Names) -> str:
    """The trace as a table: which trigger did what to which order, and why."""
    if not entries:
        return "no trigger listens to this event's type"
    rows = [
        (e.get("order_id"), names.trigger(e.get("trigger_id")), e.get("outcome"), e.get("reason"))
        for e in entries
    ]
    return table(("ORDER", "TRIGGER", "OUTCOME", "REASON"), rows)


def event(found: Row, names: Names) -> str:
    """``GET /api/events/{id}`` for ``events why``: the event, then its trace."""
    lines = [
        f"event {found['id']}  {found['type']}  received {found.get('received_at')}",
        f"  named order: {found.get('order_id') or '-'}   contact: {compact(found.get('contact'))}",
        f"  data: {compact(found.get('data'))}",
        f"  orders: {', '.join(found.get('order_ids') or ()) or 'no order found'}",
    ]
    made = moves(found.get("moves") or (), names)
    lines += [f"  moved {line}" for line in made] or ["  no move"]
    return "\n".join([*lines, "", trace(found.get("trace") or [], names)])


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())
