"""The ``calls`` plugin: an order moves when its client calls, or a call is missed.

Event and trigger types ``call.incoming`` and ``call.missed``. The event's ``line`` (the
store's phone line, a string or an integer) may be narrowed by the trigger's ``line``
setting, compared as strings.
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

DATA_SCHEMA = data_schema(line=id_field("the store's line that the call came in on"))

SETTINGS_SCHEMA = settings_schema(
    line=string_setting("only calls on this line (compared with the event's line as a string)"),
)


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    for code, title in CALL_TYPES:
        register(EventType(code, title, DATA_SCHEMA))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    for code, title in CALL_TYPES:
        register(TriggerType(code, title, (code,), SETTINGS_SCHEMA, equals("line")))
