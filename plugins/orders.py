"""The ``orders`` plugin: an order moves when the store reports that it was canceled.

Event type ``order.canceled`` (any data, e.g. a ``reason``) and the trigger type of the
same name, without settings: every ``order.canceled`` event matches.
"""

from __future__ import annotations

from collections.abc import Callable

from statusflow import EventType, TriggerType, hookimpl
from statusflow.plugins._matchers import data_schema, settings_schema

ORDER_CANCELED = "order.canceled"


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    register(EventType(ORDER_CANCELED, "Order canceled", data_schema()))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    register(TriggerType(ORDER_CANCELED, "Order canceled", (ORDER_CANCELED,), settings_schema()))
