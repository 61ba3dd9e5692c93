"""SendGrid events to statusflow events.

A delivery of the Event Webhook is a JSON array of SendGrid events. Each element is
checked and mapped before any is processed, so that a malformed element rejects the
whole delivery (a 400) with nothing stored:

* ``open`` -> ``email.viewed`` (a machine open, ``sg_machine_open: true``, is ignored
  unless ``ignore_machine_opens`` is false; it then carries ``machine_open: true``);
* ``click`` -> ``email.link_clicked`` with the clicked ``url``;
* ``delivered`` -> ``email.sent``;
* any other kind (``processed``, ``bounce``, ``unsubscribe``, ...): ignored.

The event's id is ``sendgrid:{sg_event_id}``. It names the order in the custom argument
``order_id`` (SendGrid puts custom arguments at the top level of each event), else the
recipient's ``email`` as the contact, for the kernel's contact fan-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from statusflow import JSON, format_timestamp

EVENT_TYPES = {"open": "email.viewed", "click": "email.link_clicked", "delivered": "email.sent"}
"""The SendGrid event kinds that post an event, and the statusflow event type of each."""

ID_PREFIX = "sendgrid:"
MAX_EVENT_ID_LENGTH = 200 - len(ID_PREFIX)
MAX_ORDER_ID_LENGTH = 200
MIN_EMAIL_LENGTH, MAX_EMAIL_LENGTH = 3, 320
MAX_CLOCK_AHEAD = 86400
"""A ``timestamp`` further ahead of our clock than this (seconds) is not kept as the
event's ``occurred_at``: the event is dated when it was received instead."""


class Malformed(ValueError):
    """An element of the delivery that is not a SendGrid event this plugin can read."""

    def __init__(self, index: int | None, problem: str) -> None:
        super().__init__(problem if index is None else f"event {index}: {problem}")
        self.index = index
        """The element's position in the delivery (``None``: the delivery itself)."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """An element that posts nothing, and why."""

    reason: str

    def answer(self) -> dict[str, JSON]:
        """What the delivery's answer says for it."""
        return {"received": True, "ignored": self.reason}


def _text(value: Any, max_length: int) -> str | None:
    """``value`` when it is a non-empty string the store can keep, else ``None``."""
    if isinstance(value, str) and 0 < len(value) <= max_length and "\x00" not in value:
        return value
    return None


def _order_id(element: dict[str, Any], index: int) -> str | None:
    """The custom argument ``order_id`` (absent, null or empty: ``None``)."""
    value = element.get("order_id")
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # SendGrid sends custom arguments as strings; be lenient
    order_id = _text(value, MAX_ORDER_ID_LENGTH)
    if order_id is None:
        raise Malformed(
            index, f"the custom argument order_id must be a string of 1 to {MAX_ORDER_ID_LENGTH}"
        )
    return order_id


def _email(element: dict[str, Any]) -> str | None:
    """The recipient's address when the kernel can look a contact up by it."""
    email = _text(element.get("email"), MAX_EMAIL_LENGTH)
    if email is None or len(email) < MIN_EMAIL_LENGTH or "@" not in email:
        return None
    return email


def _occurred_at(element: dict[str, Any], now: float) -> str | None:
    timestamp = element.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        return None
    if not 0 <= timestamp <= now + MAX_CLOCK_AHEAD:
        return None
    return format_timestamp(datetime.fromtimestamp(timestamp, UTC))


def plan_element(
    element: Any, index: int, *, ignore_machine_opens: bool, now: float
) -> dict[str, JSON] | Ignored:
    """The event body for one SendGrid event, or why it is ignored.

    :raises Malformed: the element is not a SendGrid event, or lacks what its kind needs.
    """
    if not isinstance(element, dict):
        raise Malformed(index, "is not a JSON object")
    kind = element.get("event")
    if not isinstance(kind, str) or not kind:
        raise Malformed(index, "has no 'event' (the kind of SendGrid event)")
    event_type = EVENT_TYPES.get(kind)
    if event_type is None:
        return Ignored(f"SendGrid event {kind!r} is not handled")
    sg_event_id = _text(element.get("sg_event_id"), MAX_EVENT_ID_LENGTH)
    if sg_event_id is None:
        raise Malformed(
            index, f"sg_event_id must be a string of 1 to {MAX_EVENT_ID_LENGTH} characters"
        )
    machine_open = kind == "open" and element.get("sg_machine_open") is True
    if machine_open and ignore_machine_opens:
        return Ignored("a machine open (Apple Mail Privacy Protection), not the recipient")
    order_id = _order_id(element, index)
    email = _email(element)
    if order_id is None and email is None:
        raise Malformed(index, "has neither the custom argument order_id nor an email address")
    data: dict[str, JSON] = {}
    message_id = _text(element.get("sg_message_id"), 300)
    if message_id is not None:
        data["message_id"] = message_id
    if kind == "click":
        url = element.get("url")
        if not isinstance(url, str) or not url or "\x00" in url:
            raise Malformed(index, "a click needs the clicked url")
        data["url"] = url
    if kind == "open":
        data["machine_open"] = machine_open
    body: dict[str, JSON] = {"id": ID_PREFIX + sg_event_id, "type": event_type, "data": data}
    if order_id is not None:
        body["order_id"] = order_id
    if email is not None:  # with an order_id it is only data
        body["contact"] = {"email": email}
    occurred_at = _occurred_at(element, now)
    if occurred_at is not None:
        body["occurred_at"] = occurred_at
    return body


def plan_batch(
    batch: Any, *, ignore_machine_opens: bool, now: float
) -> list[dict[str, JSON] | Ignored]:
    """The event body (or :class:`Ignored`) of each element of a delivery, in order.

    :raises Malformed: the delivery is not an array, or one of its elements is malformed
        (the first one found is named).
    """
    if not isinstance(batch, list):
        raise Malformed(None, "the body must be a JSON array of SendGrid events")
    return [
        plan_element(element, index, ignore_machine_opens=ignore_machine_opens, now=now)
        for index, element in enumerate(batch)
    ]
