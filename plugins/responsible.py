"""The ``responsible`` plugin: an order moves when its responsible person changes.

The event ``responsible.changed`` comes from a client, or from the kernel when
``PATCH /api/orders/{id}`` changes the order's ``responsible_id`` (see
:func:`events_from_order_change`). Its trigger type may name the new responsible
person: ``responsible_id``, compared as strings, so ``7`` and ``"7"`` are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from statusflow import JSON, EventType, TriggerType, hookimpl
from statusflow.plugins._matchers import data_schema, equals, id_field, id_setting, settings_schema

RESPONSIBLE_CHANGED = "responsible.changed"

DATA_SCHEMA = data_schema(
    responsible_id=id_field("the new responsible person; null when unassigned", nullable=True),
    previous_responsible_id=id_field("the responsible person before", nullable=True),
)

SETTINGS_SCHEMA = settings_schema(
    responsible_id=id_setting(
        "only when this person becomes responsible (string or integer, compared as strings)"
    ),
)


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    register(EventType(RESPONSIBLE_CHANGED, "Responsible person changed", DATA_SCHEMA))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    register(
        TriggerType(
            RESPONSIBLE_CHANGED,
            "Responsible person changed",
            (RESPONSIBLE_CHANGED,),
            SETTINGS_SCHEMA,
            equals("responsible_id"),
        )
    )


@hookimpl
def events_from_order_change(
    before: Mapping[str, JSON], after: Mapping[str, JSON]
) -> list[dict[str, JSON]] | None:
    """A ``responsible.changed`` event when a patch changed the order's ``responsible_id``."""
    if before.get("responsible_id") == after.get("responsible_id"):
        return None
    return [
        {
            "type": RESPONSIBLE_CHANGED,
            "data": {
                "responsible_id": after.get("responsible_id"),
                "previous_responsible_id": before.get("responsible_id"),
            },
        }
    ]
