"""How the orders pages write times, values and contacts: plain text for the templates
(which escape it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from statusflow.timestamps import parse_timestamp


def when(at: str | None) -> str:
    """``2026-12-06 20:15:03 UTC`` for a stored ISO-8601 time (as given when unparsable)."""
    if not at:
        return ""
    try:
        moment = parse_timestamp(at)
    except (TypeError, ValueError):
        return str(at)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


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


HELPERS = {"when": when, "value_text": value_text, "contact_line": contact_line}
"""The helpers every orders template gets in its context."""
