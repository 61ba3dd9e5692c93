"""Contact fan-out (contract §2) for the plugin families whose events carry a contact.

Calls, emails, forms, chat messages and visits often come without an ``order_id``: the
event then goes to every order *not in a final status* whose contact or company has a
matching identifier. Phones compare in E.164 form (region US), emails ignoring case;
company ids, contact ids and visitor ids compare as strings. Each case is a subtest on
one app per database; after a case the orders go back to their starting statuses.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Api, assert_trace, event, move, stored_statuses, timeline_kinds_by_event

# one trigger per event type, all to S: each event has exactly one listening trigger
TRIGGER_TYPES = {
    "call.incoming": "call.incoming",
    "call.missed": "call.missed",
    "email.received": "email.received",
    "email.sent": "email.sent",
    "email.viewed": "email.viewed",
    "email.link_clicked": "email.link_clicked",
    "form.submitted": "form.submitted",
    "form.callback": "form.callback",
    "chat.message": "chat.message",
    "visit": "visit.started",
}
TARGET = "S"

ANN = {"id": "c1", "name": "Ann"}
ORDERS: dict[str, dict[str, Any]] = {
    "a1": {
        "status": "N",
        "contact": {**ANN, "phones": ["+1 (415) 555-0100"], "emails": ["Ann.Lee@Example.com"]},
        "visitor_ids": ["v-ann"],
    },
    "a2": {
        "status": "P",
        "contact": {**ANN, "phones": ["415-555-0100"], "emails": ["ann.lee@example.com"]},
        "visitor_ids": ["v-ann", "v-2"],
    },
    "a3": {"status": "N", "contact": {"phones": ["+14155550100"]}},
    # final statuses: never found through a contact
    "a4": {
        "status": "F",
        "contact": {**ANN, "phones": ["+14155550100"], "emails": ["ANN.LEE@EXAMPLE.COM"]},
        "visitor_ids": ["v-ann"],
    },
    "a5": {
        "status": "D",
        "contact": {**ANN, "phones": ["415-555-0100"], "emails": ["ann.lee@example.com"]},
        "visitor_ids": ["v-ann"],
    },
    "b1": {
        "status": "N",
        "contact": {"id": "bob"},
        "company": {"id": "acme", "phones": ["(212) 555-0199"], "emails": ["Sales@Acme.example"]},
    },
    "b2": {"status": "P", "company": {"id": "acme"}, "visitor_ids": [42]},
    "f1": {"status": "F", "contact": {"emails": ["gone@example.net"]}, "visitor_ids": ["v-gone"]},
    "z1": {
        "status": "N",
        "contact": {"id": "c9", "phones": ["+44 20 7946 0958"], "emails": ["zed@example.org"]},
        "visitor_ids": ["v-9"],
    },
}
ANN_OPEN = ["a1", "a2", "a3"]

# name: (event type, contact, data, the orders it resolves to)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any], list[str]]] = {
    "call-phone-formatted": ("call.incoming", {"phone": "+1 (415) 555-0100"}, {}, ANN_OPEN),
    "call-phone-national": ("call.missed", {"phone": "415-555-0100"}, {"line": 1}, ANN_OPEN),
    "call-phone-e164": ("call.incoming", {"phone": "+14155550100"}, {}, ANN_OPEN),
    "call-company-phone": ("call.incoming", {"phone": "212.555.0199"}, {}, ["b1"]),
    "call-international": ("call.missed", {"phone": "+442079460958"}, {}, ["z1"]),
    "call-nobody": ("call.incoming", {"phone": "+1 202 555 0123"}, {}, []),
    "email-received-ignoring-case": (
        "email.received",
        {"email": "ANN.LEE@example.COM"},
        {},
        ["a1", "a2"],
    ),
    "email-sent-company": ("email.sent", {"email": "sales@ACME.example"}, {}, ["b1"]),
    "email-viewed-only-final-orders": ("email.viewed", {"email": "Gone@Example.net"}, {}, []),
    "email-clicked": (
        "email.link_clicked",
        {"email": "zed@example.org"},
        {"url": "https://shop.example/"},
        ["z1"],
    ),
    "form-company-id": ("form.submitted", {"contact_id": "acme"}, {"form_id": "f"}, ["b1", "b2"]),
    "form-contact-id": ("form.callback", {"contact_id": "c1"}, {}, ["a1", "a2"]),
    "form-several-identifiers-each-order-once": (
        "form.callback",
        {"phone": "415 555 0100", "email": "ann.lee@example.com", "contact_id": "c1"},
        {},
        ANN_OPEN,
    ),
    "chat-phone": ("chat.message", {"phone": "(415) 555-0100"}, {"text": "hi"}, ANN_OPEN),
    "chat-two-contacts": (
        "chat.message",
        {"email": "Sales@Acme.Example", "contact_id": "c9"},
        {"channel_id": "web"},
        ["b1", "z1"],
    ),
    "visit-visitor": (
        "visit",
        {"visitor_id": "v-ann"},
        {"url": "https://shop.example/"},
        ["a1", "a2"],
    ),
    "visit-visitor-number": ("visit", {"visitor_id": "42"}, {}, ["b2"]),
    "visit-visitor-as-integer": ("visit", {"visitor_id": 42}, {}, ["b2"]),
    "visit-only-final-orders": ("visit", {"visitor_id": "v-gone"}, {}, []),
    "visit-nobody": ("visit", {"visitor_id": "v-nobody"}, {}, []),
}


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    """SQLite, then PostgreSQL: one database for the module, emptied before each test."""
    return reused_database_url


@pytest.fixture
async def api(make_client: Any) -> Api:
    """The API with every installed plugin, the orders above and one trigger per event type."""
    api = Api(await make_client())
    await api.create_orders(ORDERS)
    return api


async def check_case(
    api: Api,
    triggers: dict[str, int],
    event_id: str,
    case: tuple[str, dict[str, Any], dict[str, Any], list[str]],
) -> None:
    """One event by a contact: exactly the orders ``found`` get it and move, and only they."""
    type_, contact, data, found = case
    trigger = triggers[type_]
    result = await api.post_events(event(type_, id=event_id, contact=contact, data=data))
    moves = [move(o, ORDERS[o]["status"], TARGET, trigger) for o in found]
    assert result["event_id"] == event_id
    assert result["duplicate"] is False
    assert sorted(result["order_ids"]) == found
    assert sorted(result["moves"], key=lambda m: m["order_id"]) == moves

    expected = {o: (TARGET if o in found else f["status"]) for o, f in ORDERS.items()}
    assert await stored_statuses(api) == expected
    assert await timeline_kinds_by_event(api, event_id) == {
        o: ["event", "status_changed"] for o in found
    }
    for order_id in found[:1]:  # and through the API
        kinds = [e["kind"] for e in await api.timeline(order_id) if e.get("event_id") == event_id]
        assert kinds == ["event", "status_changed"], order_id

    stored = await api.get_event(event_id)  # stored even when it found no order
    assert stored["type"] == type_
    assert stored["contact"] == contact
    assert sorted(stored["order_ids"]) == found
    assert sorted(stored["moves"], key=lambda m: m["order_id"]) == moves
    assert_trace(stored["trace"], {(o, trigger): ("moved", ()) for o in found})


async def test_contact_fan_out_for_every_contact_family(api: Api, subtests: Any) -> None:
    triggers = {e: await api.trigger_id(TARGET, t) for e, t in TRIGGER_TYPES.items()}
    for name, case in CASES.items():
        with subtests.test(msg=name):
            try:
                await check_case(api, triggers, name, case)
            finally:  # back to the starting statuses, by hand
                for order_id, status in (await stored_statuses(api)).items():
                    if status != ORDERS[order_id]["status"]:
                        await api.patch_order(order_id, {"status": ORDERS[order_id]["status"]})


BAD_PHONES = ["not a phone", "12", "+1 555", "+999 123456", "abc-def"]


async def test_unparseable_phone_is_422_and_stores_nothing(api: Api, subtests: Any) -> None:
    triggers = {e: await api.trigger_id(TARGET, t) for e, t in TRIGGER_TYPES.items()}
    first_message = await api.trigger_id("P", "chat.first_message")
    returned = await api.trigger_id("P", "visit.returned")
    for index, type_ in enumerate(TRIGGER_TYPES):
        phone = BAD_PHONES[index % len(BAD_PHONES)]
        with subtests.test(msg=f"{type_} {phone!r}"):
            bad = event(type_, id=f"bad-{index}", contact={"phone": phone})
            error = await api.error("POST", "/api/events", bad, expect=422)
            assert error["code"] == "bad_contact"
            assert error["details"][0]["path"] == "/contact/phone", error
            assert repr(phone) in error["message"], error
            # in a list, the bad event rejects the whole list: the good ones store nothing
            # either, and leave no chat dialog or seen visitor behind
            batch = [
                event("call.incoming", id=f"good-{index}", contact={"phone": "+14155550100"}),
                event(
                    "chat.message",
                    id=f"chat-{index}",
                    order_id="a1",
                    data={"dialog_id": f"d-{index}"},
                ),
                event("visit", id=f"visit-{index}", contact={"visitor_id": f"v-{index}"}),
                bad,
            ]
            error = await api.error("POST", "/api/events", batch, expect=422)
            assert error["details"][0]["path"] == "/3/contact/phone", error
            assert repr(phone) in error["message"], error
            for event_id in (f"bad-{index}", f"good-{index}", f"chat-{index}", f"visit-{index}"):
                await api.get_event(event_id, expect=404)
            assert await api.stored_event_count() == 0
            assert await stored_statuses(api) == {o: f["status"] for o, f in ORDERS.items()}
    for order_id in ORDERS:
        assert await api.timeline_kinds(order_id) == ["created"], order_id

    # the dialog and the visitor of the rejected lists were not recorded: they are new now
    chat = await api.post_events(
        event("chat.message", id="chat-after", order_id="a1", data={"dialog_id": "d-0"})
    )
    assert chat["moves"] == [move("a1", "N", "P", first_message)]
    visit = await api.post_events(
        event("visit", id="visit-after", order_id="z1", contact={"visitor_id": "v-0"})
    )
    assert visit["moves"] == [move("z1", "N", TARGET, triggers["visit"])]
    assert_trace(
        (await api.get_event("visit-after"))["trace"],
        {
            ("z1", triggers["visit"]): ("moved", ()),
            ("z1", returned): ("skipped", ("visitor_id 'v-0' is visiting for the first time",)),
        },
    )
