"""The ``calls`` plugin: an order moves when its client calls, or a call is missed.

Event and trigger types ``call.incoming`` and ``call.missed``. The event's ``line`` (the
store's phone line, a string or an integer) may be narrowed by the trigger's ``line``
setting, compared as strings. The event's ``caller`` (the client's phone) names its
contact when the event sends neither ``order_id`` nor ``contact``, so a telephony system
posts the phone once, in the data.
"""

from __future__ import annotations

from collections.abc import Callable

from statusflow import EventType, TriggerType, hookimpl
from statusflow.plugins._matchers import (
    data_schema,
    equals,
    id_field,
    settings_schema,
    string_setting,
)

CALL_TYPES = (
    ("call.incoming", "Incoming call"),
    ("call.missed", "Missed call"),
)

DATA_SCHEMA = data_schema(
    line=id_field("the store's line that the call came in on"),
    # not typed here: in an event that names its order or contact it is only data, as
    # it was before it named the contact; used as the phone, it is checked as one
    caller={"description": "the client's phone; the contact's phone when none is sent"},
)

CONTACT_FROM = {"phone": "caller"}

SETTINGS_SCHEMA = settings_schema(
    line=string_setting("only calls on this line (compared with the event's line as a string)"),
)


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    for code, title in CALL_TYPES:
        register(EventType(code, title, DATA_SCHEMA, contact_from=CONTACT_FROM))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    for code, title in CALL_TYPES:
        register(TriggerType(code, title, (code,), SETTINGS_SCHEMA, equals("line")))
