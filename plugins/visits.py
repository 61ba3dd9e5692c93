"""The ``visits`` plugin: an order moves when its client visits the store's site.

One event type, ``visit`` (data: the visited ``url``; the visitor in
``contact.visitor_id``), and two trigger types listening to it:

* ``visit.started``: every visit, optionally only when the visited URL starts with the
  trigger's ``url`` setting;
* ``visit.returned``: a visit whose ``visitor_id`` was seen in an earlier stored
  ``visit`` event (resolved to an order or not); never a visit without a
  ``visitor_id``.

Seen visitors are kept in the kernel's state store (namespace ``visits.visitor``), so
they survive restarts and are shared by every server process; a dry run reads them but
records nobody.
"""

from __future__ import annotations

from collections.abc import Callable

from statusflow import Event, EventType, StateStore, TriggerType, hookimpl
from statusflow.plugins._matchers import (
    MAX_URL_LENGTH,
    data_schema,
    fact_is_true,
    settings_schema,
    show,
    starts_with,
    state_key,
    string_field,
    string_setting,
)

VISIT = "visit"
VISIT_STARTED = "visit.started"
VISIT_RETURNED = "visit.returned"
RETURNED_FACT = "visit.returned"
NAMESPACE = "visits.visitor"

DATA_SCHEMA = data_schema(url=string_field("the URL of the page visited"))

STARTED_SETTINGS_SCHEMA = settings_schema(
    url=string_setting("only visits whose URL starts with this", MAX_URL_LENGTH),
)


def _not_returned(event: Event) -> str:
    visitor_id = event.contact.get("visitor_id")
    if visitor_id is None:
        return "event has no visitor_id, so it cannot be a returning visit"
    if RETURNED_FACT not in event.facts:
        return "the visit was not inspected, so it is not known to be a returning visit"
    return f"visitor_id {show(visitor_id)} is visiting for the first time"


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    register(EventType(VISIT, "Site visit", DATA_SCHEMA))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    register(
        TriggerType(
            VISIT_STARTED,
            "Visit to the site",
            (VISIT,),
            STARTED_SETTINGS_SCHEMA,
            starts_with("url"),
        )
    )
    register(
        TriggerType(
            VISIT_RETURNED,
            "Returning visitor",
            (VISIT,),
            settings_schema(),
            fact_is_true(RETURNED_FACT, _not_returned),
        )
    )


@hookimpl
async def inspect_event(event: Event, state: StateStore) -> None:
    """Note in ``facts["visit.returned"]`` whether the visitor was seen before."""
    if event.type != VISIT:
        return
    visitor_id = event.contact.get("visitor_id")
    if visitor_id is None or visitor_id == "":
        event.facts[RETURNED_FACT] = False
        return
    first = await state.claim(NAMESPACE, state_key(str(visitor_id)))
    event.facts[RETURNED_FACT] = not first
