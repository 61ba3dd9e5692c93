"""The ``payment`` plugin: an order moves when a payment for it is received.

Every payment counts, partial ones too; the amount, currency and method of the
payment are kept in the event's data, so they show in the order's timeline.
"""

from __future__ import annotations

from collections.abc import Callable

from statusflow import EventType, TriggerType, hookimpl

PAYMENT_DATA_SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "minLength": 1, "maxLength": 16},
        "method": {"type": "string", "maxLength": 200},
    },
}


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    register(EventType("payment.received", "Payment received", PAYMENT_DATA_SCHEMA))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    register(TriggerType("payment.received", "Payment received", ("payment.received",)))
