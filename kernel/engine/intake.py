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

from statusflow.engine.contacts import IdentifierError, event_identifiers
from statusflow.engine.validation import (
    Problem,
    did_you_mean,
    pointer,
    schema_errors,
    storable_problem,
    summary,
)
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


NOT_A_TIME = "must be an ISO-8601 time with a time zone, such as 2026-11-27T10:00:00Z"


def normalize_occurred_at(value: str) -> str:
    """An event's ``occurred_at`` in the stored form; ``ValueError`` saying why (for
    people) when it is not an ISO-8601 time with a zone within the years 1 to 9999, or
    is more than :data:`MAX_FUTURE` ahead of now (no event happens then)."""
    try:
        stored = normalize_timestamp(value)
    except OverflowError:
        raise ValueError("must fall within the years 1 to 9999 in UTC") from None
    except ValueError:
        raise ValueError(NOT_A_TIME) from None
    if stored > _latest_allowed(int(time.time())):  # the stored form sorts as it compares
        raise ValueError(f"must not be more than {MAX_FUTURE.days} days in the future")
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
        path = pointer("data", field)
        errors = schema_errors(CONTACT_PROPERTIES[key], value, path)
        if errors:
            raise invalid(summary(f"data of {event_type.type}", errors), errors)
        try:
            event_identifiers({key: value}, region)
        except IdentifierError as exc:
            problem = {"path": path, "message": exc.message}
            message = f"data of {event_type.type}: {path}: {exc.message}"
            raise invalid(message, [problem], "bad_contact") from None
        contact[key] = value
    return contact


def _no_order_nor_contact(event_type: EventType) -> ApiError:
    named = ", ".join(f"contact.{k} from data.{f}" for k, f in event_type.contact_from.items())
    hint = f" ({event_type.type} also takes {named})" if named else ""
    problem = {"path": "/order_id", "message": "is required when the event has no contact"}
    return invalid(NO_ORDER_NOR_CONTACT + hint, [problem])


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
        raise invalid(summary("event", errors), errors)
    unstorable = storable_problem(body) if check_storable else None
    if unstorable is not None:
        raise invalid(f"event: {unstorable}")
    type_ = body["type"]
    event_type = registry.event_types.get(type_)
    if event_type is None or not (event_type.public or allow_private):
        known = sorted(t for t, et in registry.event_types.items() if et.public)
        hint = did_you_mean(type_, known)
        raise invalid(
            f"unknown event type {type_[:100]!r}{hint}; known types: {', '.join(known)}",
            [{"path": "/type", "message": f"is not a known event type{hint}"}],
            "unknown_event_type",
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
    except IdentifierError as exc:
        path = pointer(*exc.path) if "contact" in body else pointer("data")
        problem = {"path": path, "message": exc.message}
        raise invalid(f"event: {path}: {exc.message}", [problem], "bad_contact") from None
    occurred_at = body.get("occurred_at")
    if occurred_at is not None:
        try:
            occurred_at = normalize_occurred_at(occurred_at)
        except ValueError as exc:
            problem = {"path": "/occurred_at", "message": str(exc)}
            raise invalid(f"event: /occurred_at {exc}", [problem], "bad_timestamp") from None
    data = dict(body.get("data") or {})
    data_errors = schema_errors(event_type.data_schema, data, "/data")
    if data_errors:
        raise invalid(summary(f"data of {type_}", data_errors), data_errors, "bad_event_data")
    if event_type.normalize is not None:
        try:
            data = event_type.normalize(data)
        except ValueError as exc:
            problem = {"path": "/data", "message": str(exc)[:300]}
            raise invalid(f"data of {type_}: {exc}"[:400], [problem], "bad_event_data") from None
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
    listed: bool = True,
) -> list[ParsedEvent]:
    """Validate a whole list; the first bad event rejects it, its index leading each
    path of ``details`` (``/2/contact/phone``) unless the event was sent alone
    (``listed`` false)."""
    if not bodies:
        raise invalid("the list of events is empty", [{"path": "", "message": "is empty"}])
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
            raise (at_index(exc, index) if listed else exc) from None
    return parsed


def at_index(error: ApiError, index: int) -> ApiError:
    """``error`` of one event, as the error of a list in which that event is ``index``:
    the message says which, each path starts with ``/index`` (a problem of the whole
    event gets that path alone)."""
    problems: list[Problem] = [
        {"path": pointer(index) + p["path"], "message": p["message"]} for p in error.details
    ] or [{"path": pointer(index), "message": error.message}]
    return ApiError(error.status, error.code, f"event {index}: {error.message}", problems)
