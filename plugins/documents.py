"""The ``documents`` plugin: an order moves when a document is created or opened.

Event and trigger types ``document.created`` and ``document.opened`` (an invoice, a
contract, a quote...). The trigger's ``template_id`` setting narrows the match to
documents made from one template; it is compared with the event's ``template_id`` (a
string or an integer) as strings.
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

DOCUMENT_TYPES = (
    ("document.created", "Document created"),
    ("document.opened", "Document opened"),
)

DATA_SCHEMA = data_schema(
    template_id=id_field("the template the document was made from"),
    document_id=id_field("the document"),
)

SETTINGS_SCHEMA = settings_schema(
    template_id=string_setting(
        "only documents made from this template (compared with the event's template_id as a string)"
    ),
)


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    for code, title in DOCUMENT_TYPES:
        register(EventType(code, title, DATA_SCHEMA))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    for code, title in DOCUMENT_TYPES:
        register(TriggerType(code, title, (code,), SETTINGS_SCHEMA, equals("template_id")))
