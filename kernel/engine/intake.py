"""Turning an event body into a validated :class:`~kernel.Event`, or a 422.

Every check happens here, before the engine opens a transaction, so that a rejected
list of events stores nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from statusflow.engine.contacts import event_identifiers
from statusflow.engine.validation import parse_timestamp, schema_errors, storable_problem
from statusflow.errors import ApiError, invalid
from statusflow.registry import Registry
from statusflow.types import Event

_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_ID_OR_INT = {"type": ["string", "integer"], "minLength": 1, "maxLength": 200}

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "id": _ID,
        "type": {"type": "string", "minLength": 1, "maxLength": 100},
        "order_id": _ID,
        "contact": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "phone": {"type": "string", "minLength": 1, "maxLength": 64},
                "email": {"type": "string", "minLength": 3, "maxLength": 320},
                "contact_id": _ID_OR_INT,
                "visitor_id": _ID_OR_INT,
            },
        },
        "occurred_at": {"type": "string", "minLength": 1, "maxLength": 64},
        "data": {"type": "object"},
    },
}


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """An event ready for the engine: the event and its contact lookup pairs."""

    event: Event
    lookup: tuple[tuple[str, str], ...]
    client_id: bool


def parse_event(
    body: Any,
    registry: Registry,
    region: str,
    *,
    allow_private: bool = False,
    check_storable: bool = True,
) -> ParsedEvent:
    """Validate one event body; raise a 422 :class:`ApiError` saying what is wrong.

    :param allow_private: accept event types that are not ``public`` (plugin routes).
    :param check_storable: look for NUL characters and too deep nesting (``False`` when
        the caller knows from the raw body that there are none).
    """
    errors = schema_errors(EVENT_SCHEMA, body)
    if errors:
        first = errors[0]
        raise invalid(f"event: {first['path']}: {first['message']}", errors[:20])
    problem = storable_problem(body) if check_storable else None
    if problem is not None:
        raise invalid(f"event: {problem}")
    type_ = body["type"]
    event_type = registry.event_types.get(type_)
    if event_type is None or not (event_type.public or allow_private):
        known = sorted(t for t, et in registry.event_types.items() if et.public)
        raise invalid(
            f"unknown event type {type_!r}; known types: {', '.join(known)}",
            {"known_types": known},
        )
    contact = {k: v for k, v in (body.get("contact") or {}).items() if v is not None}
    order_id = body.get("order_id")
    if order_id is None and not contact:
        raise invalid("an event needs an order_id or a contact with at least one identifier")
    try:
        lookup = tuple(event_identifiers(contact, region)) if order_id is None else ()
    except ValueError as exc:
        raise invalid(f"contact: {exc}") from None
    occurred_at = body.get("occurred_at")
    if occurred_at is not None:
        try:
            occurred_at = parse_timestamp(occurred_at)
        except (ValueError, OverflowError) as exc:
            raise invalid(f"occurred_at: {exc}") from None
    data = dict(body.get("data") or {})
    data_errors = schema_errors(event_type.data_schema, data)
    if data_errors:
        first_error = data_errors[0]
        raise invalid(
            f"data of {type_}: {first_error['path']}: {first_error['message'][:300]}",
            data_errors[:20],
        )
    if event_type.normalize is not None:
        try:
            data = event_type.normalize(data)
        except ValueError as exc:
            raise invalid(f"data of {type_}: {exc}") from None
    event_id = body.get("id")
    event = Event(
        id=event_id if event_id is not None else str(uuid.uuid4()),
        type=type_,
        order_id=order_id,
        contact=contact,
        occurred_at=occurred_at,
        data=data,
        facts={},
    )
    return ParsedEvent(event, lookup, event_id is not None)


def parse_events(
    bodies: list[Any],
    registry: Registry,
    region: str,
    *,
    allow_private: bool = False,
    check_storable: bool = True,
) -> list[ParsedEvent]:
    """Validate a whole list; the first bad event rejects it, its index in ``details``."""
    if not bodies:
        raise invalid("the list of events is empty")
    parsed = []
    for index, body in enumerate(bodies):
        try:
            parsed.append(
                parse_event(
                    body,
                    registry,
                    region,
                    allow_private=allow_private,
                    check_storable=check_storable,
                )
            )
        except ApiError as exc:
            raise ApiError(
                exc.status,
                exc.code,
                f"event {index}: {exc.message}",
                {"index": index, "errors": exc.details},
            ) from None
    return parsed
