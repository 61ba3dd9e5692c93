"""EasyPost's webhook Event, read: what it says about a tracker, and the events it makes.

EasyPost posts an ``Event`` object: ``id`` (``evt_...``), ``description`` (the kind,
e.g. ``tracker.updated``), ``created_at`` and ``result``, the object that changed: for
the kinds read here a ``Tracker`` with ``id`` (``trk_...``), ``tracking_code``,
``carrier`` and ``status`` (``pre_transit``, ``in_transit``, ``out_for_delivery``,
``delivered``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from statusflow import JSON, format_timestamp, parse_timestamp
from statusflow_easypost.lookup import OWN_EVENTS, TRACKING_NUMBER_ADDED
from statusflow_easypost.tables import MAX_CARRIER, MAX_TRACKING_NUMBER

CREATED = "tracker.created"
UPDATED = "tracker.updated"
KINDS = {CREATED: TRACKING_NUMBER_ADDED, UPDATED: "shipment.updated"}
"""The EasyPost event kinds read, and the statusflow event type each one posts."""
SHIPPED = "shipment.shipped"
SHIPPED_STATUS = "in_transit"
"""The tracker status whose first report also posts ``shipment.shipped``."""
SHIPPED_SUFFIX = ":shipped"

MAX_ID = 200 - len(OWN_EVENTS) - len(SHIPPED_SUFFIX)
"""Longest EasyPost id taken (statusflow's event ids hold 200 characters)."""
MAX_TEXT = 2000
"""Longest optional text copied into the event data (longer ones are left out)."""
OPTIONAL_TEXT = ("status_detail", "public_url", "est_delivery_date", "shipment_id", "mode")
"""Tracker fields copied into the event data when they are short strings."""


class MalformedEvent(ValueError):
    """The body is JSON but not an EasyPost Event this plugin can read."""


@dataclass(frozen=True, slots=True)
class TrackerEvent:
    """A ``tracker.created`` or ``tracker.updated`` Event, checked."""

    event_id: str
    """EasyPost's event id, ``evt_...``."""
    kind: str
    """``tracker.created`` or ``tracker.updated``."""
    tracker_id: str
    """The Tracker's id, ``trk_...``."""
    tracking_number: str
    """The Tracker's ``tracking_code``, as EasyPost sent it."""
    carrier: str | None
    """The Tracker's ``carrier`` (``USPS``, ``UPS``, ``FedEx``...), ``None`` if unknown."""
    status: str | None
    """The Tracker's ``status``."""
    occurred_at: str | None
    """The Event's ``created_at`` in statusflow's stored form, ``None`` if unusable."""
    extra: Mapping[str, JSON]
    """Short optional Tracker fields copied into the data (:data:`OPTIONAL_TEXT`)."""

    @property
    def ships(self) -> bool:
        """Whether this update may be the tracker's ``shipment.shipped``."""
        return self.kind == UPDATED and self.status == SHIPPED_STATUS

    def data(self) -> dict[str, JSON]:
        """The statusflow event's ``data``: the carrier doubles as ``delivery_id``, which
        the ``shipment.tracking_number_added`` trigger's setting compares."""
        data: dict[str, JSON] = {
            "tracking_number": self.tracking_number,
            "tracker_id": self.tracker_id,
            "easypost_event": self.event_id,
        }
        if self.carrier is not None:
            data["carrier"] = self.carrier
            data["delivery_id"] = self.carrier
        if self.status is not None:
            data["status"] = self.status
        data.update(self.extra)
        return data

    def body(self, order_id: str | None) -> dict[str, JSON]:
        """The statusflow event this Event posts, for ``order_id``. Without an order it
        is fanned out by a contact id that no order has (``easypost:{tracker id}``), so
        that it is stored and moves nothing."""
        body: dict[str, JSON] = {"id": f"{OWN_EVENTS}{self.event_id}", "type": KINDS[self.kind]}
        if order_id is not None:
            body["order_id"] = order_id
        else:
            body["contact"] = {"contact_id": f"{OWN_EVENTS}{self.tracker_id}"}
        if self.occurred_at is not None:
            body["occurred_at"] = self.occurred_at
        body["data"] = self.data()
        return body

    def shipped_body(self, order_id: str | None) -> dict[str, JSON]:
        """The ``shipment.shipped`` this update adds (see :attr:`ships`), for ``order_id``."""
        body = self.body(order_id)
        return {**body, "id": f"{body['id']}{SHIPPED_SUFFIX}", "type": SHIPPED}


def _text(value: Any, where: str, limit: int, *, required: bool) -> str | None:
    """A string field: non-empty, at most ``limit`` characters, no NUL; else malformed
    (or ``None`` when it is absent, ``null`` or ``""`` and not ``required``)."""
    if not required and (value is None or value == ""):
        return None
    if not isinstance(value, str) or not value.strip():
        raise MalformedEvent(f"{where} must be a non-empty string")
    if len(value) > limit or "\x00" in value:
        raise MalformedEvent(f"{where} is not a valid value (too long, or a NUL character)")
    return value


def _occurred_at(value: Any) -> str | None:
    """EasyPost's ``created_at`` in the stored form; ``None`` if it is not a time with a
    zone or lies more than a day ahead (a clock EasyPost's event cannot come from)."""
    if not isinstance(value, str):
        return None
    try:
        moment = parse_timestamp(value)
    except (ValueError, OverflowError):
        return None
    if moment > datetime.now(UTC) + timedelta(days=1):
        return None
    return format_timestamp(moment)


def read_event(body: JSON) -> TrackerEvent | str:
    """A tracker Event, or why the Event is ignored (another kind).

    :raises MalformedEvent: the body is not an EasyPost Event, or a tracker Event lacks
        what the plugin needs.
    """
    if not isinstance(body, dict):
        raise MalformedEvent("the body is not an EasyPost Event (a JSON object)")
    event_id = _text(body.get("id"), "id", MAX_ID, required=True)
    kind = _text(body.get("description"), "description", MAX_ID, required=True)
    assert event_id is not None and kind is not None
    if kind not in KINDS:
        return f"event {kind!r} is not handled"
    tracker = body.get("result")
    if not isinstance(tracker, dict):
        raise MalformedEvent(f"a {kind} Event needs its Tracker as result")
    tracker_id = _text(tracker.get("id"), "result.id", MAX_ID, required=True)
    number = _text(
        tracker.get("tracking_code"), "result.tracking_code", MAX_TRACKING_NUMBER, required=True
    )
    assert tracker_id is not None and number is not None
    extra = {
        name: value
        for name in OPTIONAL_TEXT
        if isinstance(value := tracker.get(name), str)
        and value
        and len(value) <= MAX_TEXT
        and "\x00" not in value
    }
    return TrackerEvent(
        event_id=event_id,
        kind=kind,
        tracker_id=tracker_id,
        tracking_number=number,
        carrier=_text(tracker.get("carrier"), "result.carrier", MAX_CARRIER, required=False),
        status=_text(tracker.get("status"), "result.status", MAX_ID, required=False),
        occurred_at=_occurred_at(body.get("created_at")),
        extra=extra,
    )
