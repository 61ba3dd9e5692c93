"""How the orders pages write times, values and contacts: plain text for the templates
(which escape it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from statusflow.timestamps import parse_timestamp


def when(at: str | None) -> str:
    """``2026-12-06 20:15:03 UTC`` for a stored ISO-8601 time (as given when unparsable)."""
    if not at:
        return ""
    try:
        moment = parse_timestamp(at)
    except (TypeError, ValueError, OverflowError):
        return str(at)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def from_now(at: str | None, now: datetime | None = None) -> str:
    """``in 3 days``, ``in 2 hours``, ``now``, ``5 minutes ago``: how far ``at`` is from
    ``now`` in its largest unit, rounded (empty when unparsable)."""
    if not at:
        return ""
    try:
        moment = parse_timestamp(at)
    except (TypeError, ValueError, OverflowError):
        return ""
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    size = abs(seconds)
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if size >= length:
            count = round(size / length)
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if seconds > 0 else f"{text} ago"
    return "now"


def value_text(value: Any) -> str:
    """A field's value as text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def contact_line(order: Mapping[str, Any]) -> str:
    """The order's contact in one line: name, first phone, first email."""
    contact = order.get("contact") or {}
    parts = [str(contact.get("name") or "")]
    for key in ("phones", "emails"):
        values = contact.get(key) or []
        if values:
            parts.append(str(values[0]))
    return " · ".join(p for p in parts if p)


HELPERS = {
    "when": when,
    "from_now": from_now,
    "value_text": value_text,
    "contact_line": contact_line,
}
"""The helpers every orders template gets in its context."""
