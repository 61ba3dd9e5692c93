"""The ``forms`` plugin: an order moves when its client fills in a form on the site.

Event and trigger types ``form.submitted`` and ``form.callback`` (a "call me back"
form). The trigger's ``form_id`` setting narrows the match to one form; it is compared
with the event's ``form_id`` (a string or an integer) as strings.
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

FORM_TYPES = (
    ("form.submitted", "Form submitted"),
    ("form.callback", "Callback requested"),
)

DATA_SCHEMA = data_schema(form_id=id_field("the form that was filled in"))

SETTINGS_SCHEMA = settings_schema(
    form_id=string_setting("only this form (compared with the event's form_id as a string)"),
)


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    for code, title in FORM_TYPES:
        register(EventType(code, title, DATA_SCHEMA))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    for code, title in FORM_TYPES:
        register(TriggerType(code, title, (code,), SETTINGS_SCHEMA, equals("form_id")))
