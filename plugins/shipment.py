"""The ``shipment`` plugin: an order moves as its delivery progresses.

Event and trigger types ``shipment.approved``, ``shipment.tracking_number_added``,
``shipment.shipped`` and ``shipment.updated``. Only
``shipment.tracking_number_added`` has a setting: ``delivery_id`` narrows it to one
delivery service, compared with the event's ``delivery_id`` as strings.
"""

from __future__ import annotations

from collections.abc import Callable

from statusflow import EventType, TriggerType, hookimpl
from statusflow.plugins._matchers import (
    data_schema,
    equals,
    id_field,
    settings_schema,
    string_field,
    string_setting,
)

TRACKING_NUMBER_ADDED = "shipment.tracking_number_added"

SHIPMENT_TYPES = (
    ("shipment.approved", "Shipment approved"),
    (TRACKING_NUMBER_ADDED, "Tracking number added"),
    ("shipment.shipped", "Shipment shipped"),
    ("shipment.updated", "Shipment updated"),
)

DATA_SCHEMA = data_schema(
    delivery_id=id_field("the delivery service (or delivery) the shipment goes with"),
    tracking_number=string_field("the carrier's tracking number"),
)

TRACKING_SETTINGS_SCHEMA = settings_schema(
    delivery_id=string_setting(
        "only this delivery (compared with the event's delivery_id as a string)"
    ),
)


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    for code, title in SHIPMENT_TYPES:
        register(EventType(code, title, DATA_SCHEMA))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    for code, title in SHIPMENT_TYPES:
        if code == TRACKING_NUMBER_ADDED:
            register(
                TriggerType(code, title, (code,), TRACKING_SETTINGS_SCHEMA, equals("delivery_id"))
            )
        else:
            register(TriggerType(code, title, (code,), settings_schema()))
