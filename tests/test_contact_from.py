"""Event types that name their contact from their data (``EventType.contact_from``).

An event that sends neither ``order_id`` nor ``contact`` is fanned out by the contact
identifiers that its type names in its data (``call.missed``'s ``caller`` is the phone);
an event that sends either is unchanged, and one without the named fields is refused as
before. Through the HTTP API, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from statusflow import EventType, TriggerType, hookimpl
from statusflow.engine.intake import CONTACT_PROPERTIES, NO_ORDER_NOR_CONTACT
from statusflow.errors import StartupError
from statusflow.registry import build_registry, make_plugin_manager
from statusflow.types import CONTACT_KEYS
from tests.helpers import Api, event, move

ANN_PHONE = "+1 (415) 555-0100"


class Sms:
    """A test plugin: ``sms.received`` names the phone, the email and the contact id."""

    @hookimpl
    def register_event_types(self, register: Callable[[EventType], None]) -> None:
        register(
            EventType(
                "sms.received",
                "SMS received",
                contact_from={"phone": "from", "email": "reply_to", "contact_id": "customer"},
            )
        )

    @hookimpl
    def register_trigger_types(self, register: Callable[[TriggerType], None]) -> None:
        register(TriggerType("sms.received", "SMS received", ("sms.received",)))


async def start(make_client: Any) -> Api:
    api = Api(await make_client(enable=("payment", "calls"), extra_plugins=[("sms", Sms())]))
    await api.create_order("a1", contact={"phones": ["+14155550100"]})
    await api.create_order("a2", contact={"phones": ["415-555-0100"], "emails": ["a@x.example"]})
    await api.create_order("b1", contact={"id": "bob"})
    await api.create_order("c1", contact={"emails": ["Cy@Example.com"]})
    await api.create_order("done", status="F", contact={"phones": ["+14155550100"]})
    return api


async def test_a_call_without_contact_is_fanned_out_by_its_caller(make_client):
    api = await start(make_client)
    trigger = await api.trigger_id("P", "call.missed", settings={"line": "sales"})
    body = event("call.missed", id="c1", data={"caller": ANN_PHONE, "line": "sales"})
    dry = await api.post_events(body, dry_run=True)
    assert dry["order_ids"] == ["a1", "a2"] and dry["moves"] == [
        move("a1", "N", "P", trigger),
        move("a2", "N", "P", trigger),
    ]
    assert await api.stored_event_count() == 0
    result = await api.post_events(body)
    assert result["order_ids"] == ["a1", "a2"] and len(result["moves"]) == 2
    stored = await api.get_event("c1")
    assert stored["contact"] == {"phone": ANN_PHONE}  # shown as if sent in contact
    assert stored["data"] == {"caller": ANN_PHONE, "line": "sales"}
    assert await api.statuses_of(["a1", "a2", "b1", "done"]) == {
        "a1": "P",
        "a2": "P",
        "b1": "N",
        "done": "F",
    }


async def test_an_event_with_its_own_contact_or_order_is_unchanged(make_client):
    api = await start(make_client)
    await api.trigger_id("P", "call.incoming")
    # its contact wins: the caller is only data
    by_contact = await api.post_events(
        event("call.incoming", contact={"contact_id": "bob"}, data={"caller": ANN_PHONE})
    )
    assert by_contact["order_ids"] == ["b1"]
    # so does its order
    by_order = await api.post_events(
        event("call.incoming", order_id="c1", data={"caller": ANN_PHONE})
    )
    assert by_order["order_ids"] == ["c1"]
    # a caller that is no phone is only data there, as it was before it named the contact
    odd = await api.post_events(event("call.incoming", order_id="c1", data={"caller": 42}))
    assert odd["order_ids"] == ["c1"]
    assert await api.status_of("a1") == "N"


async def test_several_identifiers_from_the_data(make_client):
    api = await start(make_client)
    trigger = await api.trigger_id("S", "sms.received")
    result = await api.post_events(
        event(
            "sms.received",
            id="s1",
            data={"from": None, "reply_to": "CY@example.com", "customer": "bob", "text": "hi"},
        )
    )
    assert sorted(result["order_ids"]) == ["b1", "c1"]
    assert sorted(m["order_id"] for m in result["moves"]) == ["b1", "c1"]
    assert {m["trigger_id"] for m in result["moves"]} == {trigger}
    stored = await api.get_event("s1")
    assert stored["contact"] == {"email": "CY@example.com", "contact_id": "bob"}


async def test_without_order_contact_or_named_field_it_is_refused_as_before(make_client):
    api = await start(make_client)
    await api.trigger_id("P", "call.missed")
    cases = {
        "no data": event("call.missed"),
        "no caller": event("call.missed", data={"line": "sales"}),
        "null caller": event("call.missed", data={"caller": None}),
        "empty contact": event("call.missed", contact={}, data={"line": 1}),
    }
    for name, body in cases.items():
        error = await api.error("POST", "/api/events", body, expect=422)
        assert error["message"].startswith(NO_ORDER_NOR_CONTACT), (name, error)
        assert "contact.phone from data.caller" in error["message"], (name, error)
    # an event type that names no field: the message is the contract's, unchanged
    error = await api.error("POST", "/api/events", event("payment.received"), expect=422)
    assert error["message"] == NO_ORDER_NOR_CONTACT
    assert await api.stored_event_count() == 0


async def test_a_named_field_that_is_no_valid_identifier_is_a_422_naming_it(make_client):
    api = await start(make_client)
    await api.trigger_id("P", "call.missed")
    cases = {
        "not a string": ({"caller": 4155550100}, "must be a string", "validation_failed"),
        "not a phone": ({"caller": "call me"}, "is not a phone number", "bad_contact"),
        "empty": ({"caller": ""}, "must not be empty", "validation_failed"),
    }
    for name, (data, fragment, code) in cases.items():
        error = await api.error("POST", "/api/events", event("call.missed", data=data), expect=422)
        assert error["message"].startswith("data of call.missed: /data/caller"), error
        assert fragment in error["message"], (name, error)
        assert error["code"] == code, (name, error)
        assert [p["path"] for p in error["details"]] == ["/data/caller"], (name, error)
    bad_email = event("sms.received", data={"reply_to": "nobody"})
    error = await api.error("POST", "/api/events", bad_email, expect=422)
    assert error["message"] == (
        "data of sms.received: /data/reply_to: "
        "email 'nobody' is not an email address: it has no '@'"
    )
    # in a list, one bad event rejects the list, its index named
    good = event("call.missed", data={"caller": ANN_PHONE})
    error = await api.error(
        "POST", "/api/events", [good, event("call.missed", data={"caller": "x"})], expect=422
    )
    assert error["message"].startswith("event 1: data of call.missed: /data/caller")
    assert [p["path"] for p in error["details"]] == ["/1/data/caller"]
    assert await api.stored_event_count() == 0
    assert await api.status_of("a1") == "N"


def test_contact_from_names_only_known_contact_keys():
    assert tuple(CONTACT_PROPERTIES) == CONTACT_KEYS
    with pytest.raises(ValueError, match=r"unknown contact keys \['mobile'\]"):
        EventType("sms.received", "SMS", contact_from={"mobile": "from"})
    with pytest.raises(ValueError, match="non-empty strings"):
        EventType("sms.received", "SMS", contact_from={"phone": ""})

    class Misnamed:
        @hookimpl
        def register_event_types(self, register: Callable[[EventType], None]) -> None:
            register(EventType("sms.received", "SMS", contact_from={"mobile": "from"}))

    manager = make_plugin_manager(enable=(), extra_plugins=[("misnamed", Misnamed())])
    with pytest.raises(StartupError, match=r"misnamed.*contact_from"):
        build_registry(manager)
