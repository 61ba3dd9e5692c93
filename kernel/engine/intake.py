"""Turning an event body into a validated :class:`~kernel.Event`, or a 422.

Every check happens here, before the engine opens a transaction, so that a rejected
list of events stores nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from statusflow.engine.contacts import event_identifiers
from statusflow.engine.validation import schema_errors, storable_problem
from statusflow.errors import ApiError, invalid
from statusflow.registry import Registry
from statusflow.timestamps import format_timestamp, normalize_timestamp
from statusflow.types import JSON, Event, EventType

_ID = {"type": "string", "minLength": 1, "maxLength": 200}
_ID_OR_INT = {"type": ["string", "integer"], "minLength": 1, "maxLength": 200}
CONTACT_PROPERTIES: dict[str, dict[str, Any]] = {
    "phone": {"type": "string", "minLength": 1, "maxLength": 64},
    "email": {"type": "string", "minLength": 3, "maxLength": 320},
    "contact_id": _ID_OR_INT,
    "visitor_id": _ID_OR_INT,
}
"""The contact identifiers of an event, as sent in its ``contact`` or named from its data
(:attr:`~statusflow.EventType.contact_from`)."""

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
            "properties": CONTACT_PROPERTIES,
        },
        "occurred_at": {"type": "string", "minLength": 1, "maxLength": 64},
        "data": {"type": "object"},
    },
}


NO_ORDER_NOR_CONTACT = "an event needs an order_id or a contact with at least one identifier"

MAX_FUTURE = timedelta(days=365)
"""How far ahead of the server's clock an event's ``occurred_at`` may be."""


@lru_cache(maxsize=1)
def _latest_allowed(whole_second: int) -> str:
    """That second plus :data:`MAX_FUTURE`, in the stored form (once a second: cached)."""
    return format_timestamp(datetime.fromtimestamp(whole_second, UTC) + MAX_FUTURE)


def normalize_occurred_at(value: str) -> str:
    """An event's ``occurred_at`` in the stored form; ``ValueError`` (or ``OverflowError``)
    when it is not an ISO-8601 time with a zone, or is more than :data:`MAX_FUTURE` ahead
    of now (no event happens then)."""
    stored = normalize_timestamp(value)
    if stored > _latest_allowed(int(time.time())):  # the stored form sorts as it compares
        raise ValueError(f"time {value!r} is more than {MAX_FUTURE.days} days in the future")
    return stored


def contact_from_data(
    event_type: EventType, data: Mapping[str, JSON], region: str
) -> dict[str, JSON]:
    """The contact identifiers that ``event_type.contact_from`` names in ``data`` (those
    present and not null), for an event that sends neither ``order_id`` nor ``contact``;
    a 422 naming the data field when one is not a valid identifier."""
    contact: dict[str, JSON] = {}
    for key, field in event_type.contact_from.items():
        value = data.get(field)
        if value is None:
            continue
        where = f"data of {event_type.type}: {field}"
        errors = schema_errors(CONTACT_PROPERTIES[key], value)
        if errors:
            raise invalid(f"{where}: {errors[0]['message']}", [{**errors[0], "path": field}])
        try:
            event_identifiers({key: value}, region)
        except ValueError as exc:
            raise invalid(f"{where}: {exc}", [{"path": field, "message": str(exc)}]) from None
        contact[key] = value
    return contact


def _no_order_nor_contact(event_type: EventType) -> ApiError:
    named = ", ".join(f"contact.{k} from data.{f}" for k, f in event_type.contact_from.items())
    hint = f" ({event_type.type} also takes {named})" if named else ""
    return invalid(NO_ORDER_NOR_CONTACT + hint)


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
        if event_type.contact_from:
            contact = contact_from_data(event_type, body.get("data") or {}, region)
        if not contact:
            raise _no_order_nor_contact(event_type)
    try:
        lookup = tuple(event_identifiers(contact, region)) if order_id is None else ()
    except ValueError as exc:
        raise invalid(f"contact: {exc}") from None
    occurred_at = body.get("occurred_at")
    if occurred_at is not None:
        try:
            occurred_at = normalize_occurred_at(occurred_at)
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
