"""Unit tests of the built-in plugins' declarations, match functions and state hooks.

Each plugin module is loaded directly and its ``register_*`` hooks are called with a
list's ``append``: no kernel, no database. The table ``CONTRACT`` is section 3 of the
contract (trigger type -> events it listens to, optional settings); every trigger type
a plugin registers must be in it, and every one with settings has match cases below.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from aiohttp import web

from statusflow import MATCHED, ApiError, Event, EventType, Match, Route, TriggerType, TriggerView
from statusflow.plugins import _matchers

PLUGINS = (
    "calls",
    "chat",
    "documents",
    "email",
    "forms",
    "orders",
    "payment",
    "responsible",
    "shipment",
    "visits",
    "webhook",
)

# contract section 3: trigger type -> (plugin, events it listens to, optional settings)
CONTRACT: dict[str, tuple[str, tuple[str, ...], frozenset[str]]] = {
    "responsible.changed": ("responsible", ("responsible.changed",), frozenset({"responsible_id"})),
    "email.received": ("email", ("email.received",), frozenset()),
    "email.sent": ("email", ("email.sent",), frozenset()),
    "email.viewed": ("email", ("email.viewed",), frozenset()),
    "email.link_clicked": ("email", ("email.link_clicked",), frozenset({"url"})),
    "call.incoming": ("calls", ("call.incoming",), frozenset({"line"})),
    "call.missed": ("calls", ("call.missed",), frozenset({"line"})),
    "form.submitted": ("forms", ("form.submitted",), frozenset({"form_id"})),
    "form.callback": ("forms", ("form.callback",), frozenset({"form_id"})),
    "payment.received": ("payment", ("payment.received",), frozenset()),
    "shipment.approved": ("shipment", ("shipment.approved",), frozenset()),
    "shipment.tracking_number_added": (
        "shipment",
        ("shipment.tracking_number_added",),
        frozenset({"delivery_id"}),
    ),
    "shipment.shipped": ("shipment", ("shipment.shipped",), frozenset()),
    "shipment.updated": ("shipment", ("shipment.updated",), frozenset()),
    "order.canceled": ("orders", ("order.canceled",), frozenset()),
    "webhook.called": ("webhook", ("webhook.called",), frozenset()),
    "visit.started": ("visits", ("visit",), frozenset({"url"})),
    "visit.returned": ("visits", ("visit",), frozenset()),
    "chat.first_message": ("chat", ("chat.message",), frozenset({"channel_id"})),
    "chat.message": ("chat", ("chat.message",), frozenset({"channel_id", "text"})),
    "document.created": ("documents", ("document.created",), frozenset({"template_id"})),
    "document.opened": ("documents", ("document.opened",), frozenset({"template_id"})),
}


def load(name: str) -> ModuleType:
    return importlib.import_module(f"plugins.{name}")


def collect(module: ModuleType) -> tuple[list[EventType], list[TriggerType]]:
    """The event types and trigger types a plugin module registers."""
    event_types: list[EventType] = []
    trigger_types: list[TriggerType] = []
    module.register_event_types(event_types.append)
    module.register_trigger_types(trigger_types.append)
    return event_types, trigger_types


def all_event_types() -> dict[str, tuple[str, EventType]]:
    found = {}
    for name in PLUGINS:
        for event_type in collect(load(name))[0]:
            assert event_type.type not in found, f"{event_type.type} registered twice"
            found[event_type.type] = (name, event_type)
    return found


def all_trigger_types() -> dict[str, tuple[str, TriggerType]]:
    found = {}
    for name in PLUGINS:
        for trigger_type in collect(load(name))[1]:
            assert trigger_type.type not in found, f"{trigger_type.type} registered twice"
            found[trigger_type.type] = (name, trigger_type)
    return found


TRIGGER_TYPES = all_trigger_types()
EVENT_TYPES = all_event_types()


def trigger_type(code: str) -> TriggerType:
    return TRIGGER_TYPES[code][1]


def event(
    type_: str,
    data: Mapping[str, Any] | None = None,
    *,
    contact: Mapping[str, Any] | None = None,
    facts: dict[str, Any] | None = None,
    order_id: str | None = "1001",
) -> Event:
    return Event(
        id="evt-1",
        type=type_,
        order_id=order_id,
        contact=dict(contact or {}),
        occurred_at=None,
        data=dict(data or {}),
        facts=dict(facts or {}),
    )


def match(code: str, settings: Mapping[str, Any], evt: Event) -> Match:
    result = trigger_type(code).match(settings, evt)
    assert isinstance(result, Match)
    return result


# --- declarations ------------------------------------------------------------------------


def test_trigger_types_are_those_of_the_contract() -> None:
    assert set(TRIGGER_TYPES) == set(CONTRACT)
    for code, (plugin, events, _settings) in CONTRACT.items():
        owner, declared = TRIGGER_TYPES[code]
        assert owner == plugin, code
        assert declared.events == events, code
        assert declared.title, code


@pytest.mark.parametrize("code", sorted(CONTRACT))
def test_trigger_type_listens_to_events_of_its_own_plugin(code: str) -> None:
    plugin, events, _ = CONTRACT[code]
    for event_type in events:
        assert EVENT_TYPES[event_type][0] == plugin


@pytest.mark.parametrize("code", sorted(CONTRACT))
def test_settings_schema_is_valid_and_strict(code: str) -> None:
    schema = dict(trigger_type(code).settings_schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    properties = schema.get("properties", {})
    assert set(properties) == CONTRACT[code][2]
    assert validator.is_valid({})
    assert not validator.is_valid({"no_such_setting": "x"})
    assert not validator.is_valid([])
    for name, prop in properties.items():
        assert prop.get("description"), f"{code}.{name} has no description"
        assert prop.get("type"), f"{code}.{name} is not typed"
        assert validator.is_valid({name: "a"}), f"{code}.{name} refuses a string"
        assert not validator.is_valid({name: ["a"]}), f"{code}.{name} accepts a list"
        assert not validator.is_valid({name: True}), f"{code}.{name} accepts a boolean"
        assert not validator.is_valid({name: ""}), f"{code}.{name} accepts an empty string"


def test_responsible_id_setting_may_be_an_integer() -> None:
    schema = trigger_type("responsible.changed").settings_schema
    assert jsonschema.Draft202012Validator(schema).is_valid({"responsible_id": 7})


@pytest.mark.parametrize("code", sorted(EVENT_TYPES))
def test_event_data_schema_is_a_valid_open_object(code: str) -> None:
    schema = dict(EVENT_TYPES[code][1].data_schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert schema["type"] == "object"
    assert validator.is_valid({"anything": ["else", 1]}), "extra fields must be allowed"
    assert not validator.is_valid([])


@pytest.mark.parametrize(
    ("code", "good", "bad"),
    [
        ("call.missed", {"line": 1}, {"line": [1]}),
        ("call.incoming", {"line": "sales"}, {"line": 1.5}),
        ("form.submitted", {"form_id": "f1"}, {"form_id": {"id": 1}}),
        ("chat.message", {"channel_id": 3, "dialog_id": "d", "text": "hi"}, {"text": 5}),
        ("document.opened", {"template_id": 4, "document_id": "x"}, {"document_id": True}),
        ("email.link_clicked", {"url": "https://a.test/", "message_id": "m"}, {"url": 1}),
        ("email.viewed", {"message_id": "m"}, {"message_id": 1}),
        ("visit", {"url": "https://a.test/"}, {"url": None}),
        ("responsible.changed", {"responsible_id": None}, {"responsible_id": 1.5}),
        (
            "shipment.tracking_number_added",
            {"delivery_id": 9, "tracking_number": "1Z"},
            {"tracking_number": 1},
        ),
    ],
)
def test_event_data_schema_types_the_fields_read(
    code: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    validator = jsonschema.Draft202012Validator(EVENT_TYPES[code][1].data_schema)
    assert validator.is_valid(good)
    assert not validator.is_valid(bad)


def test_webhook_called_is_not_public() -> None:
    assert EVENT_TYPES["webhook.called"][1].public is False
    public = {code for code, (_, et) in EVENT_TYPES.items() if et.public}
    assert public == set(EVENT_TYPES) - {"webhook.called"}


# --- match functions ---------------------------------------------------------------------

# (trigger type, settings, event that matches, event that does not, its reason)
MATCH_CASES: list[tuple[str, dict[str, Any], Event, Event, str]] = [
    (
        "responsible.changed",
        {"responsible_id": "7"},
        event("responsible.changed", {"responsible_id": 7}),
        event("responsible.changed", {"responsible_id": "8"}),
        "responsible_id is '8', trigger wants '7'",
    ),
    (
        "responsible.changed",
        {"responsible_id": 7},
        event("responsible.changed", {"responsible_id": "7"}),
        event("responsible.changed", {"responsible_id": None}),
        "event has no responsible_id, trigger wants '7'",
    ),
    (
        "email.link_clicked",
        {"url": "https://shop.test/pay"},
        event("email.link_clicked", {"url": "https://shop.test/pay?order=1"}),
        event("email.link_clicked", {"url": "https://shop.test/blog"}),
        "url 'https://shop.test/blog' does not start with 'https://shop.test/pay'",
    ),
    (
        "email.link_clicked",
        {"url": "https://shop.test/pay"},
        event("email.link_clicked", {"url": "https://shop.test/pay"}),
        event("email.link_clicked", {}),
        "event has no url, trigger wants one starting with 'https://shop.test/pay'",
    ),
    (
        "call.incoming",
        {"line": "1"},
        event("call.incoming", {"line": 1}),
        event("call.incoming", {"line": "2"}),
        "line is '2', trigger wants '1'",
    ),
    (
        "call.missed",
        {"line": "sales"},
        event("call.missed", {"line": "sales"}),
        event("call.missed", {}),
        "event has no line, trigger wants 'sales'",
    ),
    (
        "form.submitted",
        {"form_id": "12"},
        event("form.submitted", {"form_id": 12}),
        event("form.submitted", {"form_id": 13}),
        "form_id is '13', trigger wants '12'",
    ),
    (
        "form.callback",
        {"form_id": "cb"},
        event("form.callback", {"form_id": "cb"}),
        event("form.callback", {"form_id": "CB"}),
        "form_id is 'CB', trigger wants 'cb'",
    ),
    (
        "shipment.tracking_number_added",
        {"delivery_id": "ups"},
        event("shipment.tracking_number_added", {"delivery_id": "ups", "tracking_number": "1Z"}),
        event("shipment.tracking_number_added", {"delivery_id": "dhl", "tracking_number": "1Z"}),
        "delivery_id is 'dhl', trigger wants 'ups'",
    ),
    (
        "visit.started",
        {"url": "https://shop.test/cart"},
        event("visit", {"url": "https://shop.test/cart/checkout"}),
        event("visit", {"url": "https://shop.test/"}),
        "url 'https://shop.test/' does not start with 'https://shop.test/cart'",
    ),
    (
        "visit.returned",
        {},
        event("visit", contact={"visitor_id": "v1"}, facts={"visit.returned": True}),
        event("visit", contact={"visitor_id": "v1"}, facts={"visit.returned": False}),
        "visitor_id 'v1' is visiting for the first time",
    ),
    (
        "visit.returned",
        {},
        event("visit", contact={"visitor_id": 42}, facts={"visit.returned": True}),
        event("visit", contact={"phone": "+14155550100"}, facts={"visit.returned": False}),
        "event has no visitor_id",
    ),
    (
        "chat.first_message",
        {"channel_id": "tg"},
        event("chat.message", {"channel_id": "tg"}, facts={"chat.first_message": True}),
        event("chat.message", {"channel_id": "wa"}, facts={"chat.first_message": True}),
        "channel_id is 'wa', trigger wants 'tg'",
    ),
    (
        "chat.first_message",
        {},
        event("chat.message", {"dialog_id": 5}, facts={"chat.first_message": True}),
        event("chat.message", {"dialog_id": 5}, facts={"chat.first_message": False}),
        "not the first message of dialog_id '5'",
    ),
    (
        "chat.first_message",
        {},
        event("chat.message", {"channel_id": "tg"}, facts={"chat.first_message": True}),
        event("chat.message", {"channel_id": "tg"}, facts={"chat.first_message": False}),
        "not the first message of this channel_id and contact",
    ),
    (
        "chat.message",
        {"channel_id": "3", "text": "Refund"},
        event("chat.message", {"channel_id": 3, "text": "I want a REFUND please"}),
        event("chat.message", {"channel_id": 3, "text": "thanks"}),
        "text 'thanks' does not contain 'Refund' (ignoring case)",
    ),
    (
        "chat.message",
        {"channel_id": "3"},
        event("chat.message", {"channel_id": "3", "text": "hi"}),
        event("chat.message", {"channel_id": "4", "text": "hi"}),
        "channel_id is '4', trigger wants '3'",
    ),
    (
        "chat.message",
        {"text": "refund"},
        event("chat.message", {"text": "refund"}),
        event("chat.message", {"channel_id": "4"}),
        "event has no text, trigger wants one containing 'refund'",
    ),
    (
        "document.created",
        {"template_id": "9"},
        event("document.created", {"template_id": 9, "document_id": "d1"}),
        event("document.created", {"template_id": 10, "document_id": "d1"}),
        "template_id is '10', trigger wants '9'",
    ),
    (
        "document.opened",
        {"template_id": "invoice"},
        event("document.opened", {"template_id": "invoice"}),
        event("document.opened", {"document_id": "d1"}),
        "event has no template_id, trigger wants 'invoice'",
    ),
]


def test_every_trigger_type_with_settings_or_facts_has_match_cases() -> None:
    covered = {case[0] for case in MATCH_CASES}
    narrowing = {code for code, (_, _, settings) in CONTRACT.items() if settings}
    assert narrowing | {"visit.returned"} <= covered


@pytest.mark.parametrize(
    ("code", "settings", "matching", "other", "reason"),
    MATCH_CASES,
    ids=[f"{case[0]}-{index}" for index, case in enumerate(MATCH_CASES)],
)
def test_match(
    code: str, settings: dict[str, Any], matching: Event, other: Event, reason: str
) -> None:
    jsonschema.validate(settings, trigger_type(code).settings_schema)
    assert matching.type in trigger_type(code).events
    assert other.type in trigger_type(code).events
    assert match(code, settings, matching) == MATCHED
    result = match(code, settings, other)
    assert result.matched is False
    assert reason in result.reason


@pytest.mark.parametrize("code", sorted(code for code, c in CONTRACT.items() if c[2]))
def test_without_settings_every_event_matches(code: str) -> None:
    listened = trigger_type(code).events[0]
    facts = {"chat.first_message": True}
    assert match(code, {}, event(listened, {}, facts=facts)) == MATCHED
    assert match(code, {}, event(listened, {"line": "x", "url": "y"}, facts=facts)) == MATCHED


@pytest.mark.parametrize(
    "code",
    sorted(code for code, c in CONTRACT.items() if not c[2] and code != "visit.returned"),
)
def test_trigger_types_without_settings_match_every_event(code: str) -> None:
    listened = trigger_type(code).events[0]
    assert match(code, {}, event(listened)) == MATCHED
    assert match(code, {}, event(listened, {"message_id": "m", "x": 1})) == MATCHED


def test_visit_returned_without_inspection_does_not_match() -> None:
    result = match("visit.returned", {}, event("visit", contact={"visitor_id": "v1"}))
    assert result.matched is False
    assert "not inspected" in result.reason


def test_chat_first_message_without_inspection_does_not_match() -> None:
    result = match("chat.first_message", {}, event("chat.message", {"dialog_id": "d"}))
    assert result.matched is False
    assert "not inspected" in result.reason


def test_reasons_cut_long_values_short() -> None:
    long_url = "https://shop.test/" + "x" * 1000
    result = match(
        "visit.started", {"url": "https://other.test/"}, event("visit", {"url": long_url})
    )
    assert result.matched is False
    assert len(result.reason) < 250
    assert "..." in result.reason


def test_match_functions_do_not_change_the_event() -> None:
    evt = event("chat.message", {"channel_id": "3", "text": "Hi"}, facts={"x": 1})
    before = (dict(evt.data), dict(evt.facts), dict(evt.contact))
    for code in ("chat.message", "chat.first_message"):
        match(code, {"channel_id": "3", **({"text": "hi"} if code == "chat.message" else {})}, evt)
    assert (dict(evt.data), dict(evt.facts), dict(evt.contact)) == before


# --- shared helpers ------------------------------------------------------------------------


def test_all_of_gives_the_first_failure() -> None:
    combined = _matchers.all_of(_matchers.equals("line"), _matchers.contains("text"))
    evt = event("call.missed", {"line": "2", "text": "abc"})
    assert combined({}, evt) == MATCHED
    assert combined({"line": "1", "text": "zzz"}, evt).reason == "line is '2', trigger wants '1'"
    assert "does not contain 'zzz'" in combined({"line": "2", "text": "zzz"}, evt).reason


def test_equals_reads_another_field_when_told() -> None:
    matcher = _matchers.equals("wanted_line", "line")
    assert matcher({"wanted_line": "1"}, event("call.missed", {"line": 1})) == MATCHED
    assert matcher({"wanted_line": "1"}, event("call.missed", {"line": 2})).reason == (
        "line is '2', trigger wants '1'"
    )


def test_state_key_bounds_long_keys() -> None:
    assert _matchers.state_key("d:5") == "d:5"
    long_key = "d:" + "x" * 1000
    hashed = _matchers.state_key(long_key)
    assert hashed.startswith("h:")
    assert len(hashed) <= 500
    assert hashed == _matchers.state_key(long_key)
    assert hashed != _matchers.state_key(long_key + "y")


def test_canonical_json_sorts_keys() -> None:
    assert _matchers.canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


# --- responsible: events from a PATCH ------------------------------------------------------


def test_events_from_order_change() -> None:
    responsible = load("responsible")
    assert (
        responsible.events_from_order_change({"responsible_id": "u1"}, {"responsible_id": "u1"})
        is None
    )
    assert responsible.events_from_order_change({}, {"status": "P"}) is None
    assert responsible.events_from_order_change(
        {"responsible_id": "u1"}, {"responsible_id": 7}
    ) == [
        {
            "type": "responsible.changed",
            "data": {"responsible_id": 7, "previous_responsible_id": "u1"},
        }
    ]
    assert responsible.events_from_order_change({"responsible_id": "u1"}, {}) == [
        {
            "type": "responsible.changed",
            "data": {"responsible_id": None, "previous_responsible_id": "u1"},
        }
    ]
    produced = responsible.events_from_order_change({}, {"responsible_id": "u2"})
    validator = jsonschema.Draft202012Validator(EVENT_TYPES["responsible.changed"][1].data_schema)
    assert validator.is_valid(produced[0]["data"])
    as_event = event(produced[0]["type"], produced[0]["data"])
    assert match("responsible.changed", {"responsible_id": "u2"}, as_event) == MATCHED


# --- inspect_event: visits and chat, with an in-memory state store --------------------------


class FakeStateStore:
    """:class:`kernel.StateStore` in memory: ``claim`` is first only once per key."""

    def __init__(self) -> None:
        self.claimed: set[tuple[str, str]] = set()

    async def claim(self, namespace: str, key: str) -> bool:
        assert len(key) <= 500, "the kernel stores keys of at most 500 characters"
        first = (namespace, key) not in self.claimed
        self.claimed.add((namespace, key))
        return first

    async def seen(self, namespace: str, key: str) -> bool:
        return (namespace, key) in self.claimed


async def inspect(plugin: str, evt: Event, state: FakeStateStore) -> Event:
    await load(plugin).inspect_event(event=evt, state=state)
    return evt


async def test_visits_first_visit_then_returning() -> None:
    state = FakeStateStore()
    first = await inspect("visits", event("visit", contact={"visitor_id": "v1"}), state)
    assert first.facts["visit.returned"] is False
    result = match("visit.returned", {}, first)
    assert not result.matched
    assert "first time" in result.reason
    again = await inspect("visits", event("visit", contact={"visitor_id": "v1"}), state)
    assert again.facts["visit.returned"] is True
    assert match("visit.returned", {}, again) == MATCHED
    other = await inspect("visits", event("visit", contact={"visitor_id": "v2"}), state)
    assert other.facts["visit.returned"] is False


async def test_visits_integer_and_string_visitor_ids_are_the_same_visitor() -> None:
    state = FakeStateStore()
    await inspect("visits", event("visit", contact={"visitor_id": 42}), state)
    again = await inspect("visits", event("visit", contact={"visitor_id": "42"}), state)
    assert again.facts["visit.returned"] is True


async def test_visits_without_visitor_id_never_return() -> None:
    state = FakeStateStore()
    for _ in range(2):
        evt = await inspect("visits", event("visit", contact={"phone": "+14155550100"}), state)
        assert evt.facts["visit.returned"] is False
        result = match("visit.returned", {}, evt)
        assert not result.matched
        assert "no visitor_id" in result.reason
    assert state.claimed == set()


async def test_visits_ignore_other_event_types() -> None:
    state = FakeStateStore()
    evt = await inspect("visits", event("chat.message", contact={"visitor_id": "v1"}), state)
    assert evt.facts == {}
    assert state.claimed == set()


async def test_visit_started_matches_first_and_returning_visits() -> None:
    state = FakeStateStore()
    for _ in range(2):
        evt = await inspect(
            "visits",
            event("visit", {"url": "https://a.test/x"}, contact={"visitor_id": "v"}),
            state,
        )
        assert match("visit.started", {"url": "https://a.test/"}, evt) == MATCHED


async def test_chat_first_message_of_a_dialog() -> None:
    state = FakeStateStore()
    first = await inspect("chat", event("chat.message", {"dialog_id": "d1", "text": "hi"}), state)
    assert first.facts["chat.first_message"] is True
    assert match("chat.first_message", {}, first) == MATCHED
    second = await inspect("chat", event("chat.message", {"dialog_id": "d1"}), state)
    assert second.facts["chat.first_message"] is False
    assert not match("chat.first_message", {}, second).matched
    assert match("chat.message", {}, second) == MATCHED
    other = await inspect("chat", event("chat.message", {"dialog_id": "d2"}), state)
    assert other.facts["chat.first_message"] is True


async def test_chat_dialog_ids_compare_as_strings_across_contacts_and_orders() -> None:
    state = FakeStateStore()
    await inspect("chat", event("chat.message", {"dialog_id": 7}, order_id="1"), state)
    again = await inspect(
        "chat",
        event("chat.message", {"dialog_id": "7"}, contact={"phone": "+1"}, order_id=None),
        state,
    )
    assert again.facts["chat.first_message"] is False


async def test_chat_without_dialog_id_uses_channel_and_contact() -> None:
    state = FakeStateStore()
    ada = {"phone": "+14155550100", "email": "ada@example.com"}
    ada_reordered = {"email": "ada@example.com", "phone": "+14155550100"}

    async def first(data: dict[str, Any], contact: dict[str, Any]) -> bool:
        evt = event("chat.message", data, contact=contact, order_id=None)
        return bool((await inspect("chat", evt, state)).facts["chat.first_message"])

    assert await first({"channel_id": "tg"}, ada) is True
    assert await first({"channel_id": "tg", "text": "again"}, ada_reordered) is False
    assert await first({"channel_id": "wa"}, ada) is True
    assert await first({"channel_id": "tg"}, {"phone": "+14155550100"}) is True
    assert await first({}, ada) is True
    assert await first({}, ada) is False


async def test_chat_without_dialog_or_contact_counts_per_order() -> None:
    state = FakeStateStore()
    one = await inspect("chat", event("chat.message", {"channel_id": "tg"}, order_id="1"), state)
    two = await inspect("chat", event("chat.message", {"channel_id": "tg"}, order_id="2"), state)
    again = await inspect("chat", event("chat.message", {"channel_id": "tg"}, order_id="1"), state)
    assert one.facts["chat.first_message"] is True
    assert two.facts["chat.first_message"] is True
    assert again.facts["chat.first_message"] is False


async def test_chat_keys_stay_short() -> None:
    state = FakeStateStore()
    contact = {"email": "a" * 300 + "@example.com", "contact_id": "c" * 200}
    evt = await inspect(
        "chat", event("chat.message", {"channel_id": "x" * 300}, contact=contact), state
    )
    assert evt.facts["chat.first_message"] is True
    evt = await inspect("chat", event("chat.message", {"dialog_id": "d" * 600}), state)
    assert evt.facts["chat.first_message"] is True


async def test_chat_ignores_other_event_types() -> None:
    state = FakeStateStore()
    evt = await inspect("chat", event("visit", {"dialog_id": "d"}), state)
    assert evt.facts == {}
    assert state.claimed == set()


# --- webhook and email routes, against a fake kernel ----------------------------------------


class FakeKernel:
    """The :class:`kernel.KernelServices` a plugin route needs, in memory."""

    public_url = "http://sf.test"

    def __init__(self) -> None:
        self.orders = {"1001"}
        self.submitted: list[tuple[dict[str, Any], int | None]] = []
        self.triggers: dict[str, TriggerView] = {}

    def plugin_config(self, name: str) -> Mapping[str, Any]:
        return {}

    def sign(self, payload: Mapping[str, Any]) -> str:
        import orjson

        return orjson.dumps(dict(payload), option=orjson.OPT_SORT_KEYS).hex() + ".sig"

    def unsign(self, token: str) -> dict[str, Any] | None:
        import orjson

        body, _, signature = token.partition(".")
        if signature != "sig":
            return None
        try:
            return dict(orjson.loads(bytes.fromhex(body)))
        except ValueError:
            return None

    async def submit_event(
        self, event: Mapping[str, Any], *, only_trigger_id: int | None = None
    ) -> dict[str, Any]:
        if event.get("order_id") not in self.orders:
            raise ApiError(404, "order_not_found", "order not found")
        self.submitted.append((dict(event), only_trigger_id))
        return {"event_id": "e", "duplicate": False, "order_ids": [event["order_id"]], "moves": []}

    async def order_exists(self, order_id: str) -> bool:
        return order_id in self.orders

    async def find_trigger_by_secret(self, secret: str) -> TriggerView | None:
        return self.triggers.get(secret)


def view(trigger_id: int, type_: str, secret: str) -> TriggerView:
    return TriggerView(trigger_id, type_, "P", "", False, True, {}, (), secret)


@web.middleware
async def render_api_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.as_json(), status=exc.status)


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel()


@pytest.fixture
async def client(aiohttp_client: Any, kernel: FakeKernel) -> Any:
    app = web.Application(middlewares=[render_api_errors])
    for name in ("email", "webhook"):
        routes: list[Route] = []
        load(name).register_routes(register=routes.append, kernel=kernel)
        for route in routes:
            assert route.openapi and route.openapi.get("summary") and route.openapi["responses"]
            app.router.add_route(route.method, route.path, route.handler)
    return await aiohttp_client(app)


def test_webhook_describe() -> None:
    describe = trigger_type("webhook.called").describe
    assert describe is not None
    assert describe(view(3, "webhook.called", "s3cr3t"), FakeKernel()) == {
        "webhook_url": "http://sf.test/hooks/s3cr3t"
    }


async def test_webhook_route(client: Any, kernel: FakeKernel) -> None:
    kernel.triggers = {
        "good": view(3, "webhook.called", "good"),
        "call": view(4, "call.missed", "call"),
    }
    answer = await client.post("/hooks/good", json={"order_id": "1001", "data": {"k": 1}})
    assert answer.status == 200
    assert (await answer.json())["order_ids"] == ["1001"]
    assert kernel.submitted[-1] == (
        {"type": "webhook.called", "order_id": "1001", "data": {"k": 1}},
        3,
    )
    answer = await client.post("/hooks/good?order_id=1001")
    assert answer.status == 200
    assert kernel.submitted[-1] == ({"type": "webhook.called", "order_id": "1001", "data": {}}, 3)

    async def status(path: str, **kwargs: Any) -> tuple[int, str]:
        response = await client.post(path, **kwargs)
        return response.status, (await response.json())["error"]["code"]

    assert await status("/hooks/nope", json={"order_id": "1001"}) == (404, "webhook_not_found")
    assert await status("/hooks/call", json={"order_id": "1001"}) == (404, "webhook_not_found")
    assert await status("/hooks/good", json={"order_id": "9999"}) == (404, "order_not_found")
    assert await status("/hooks/good", data=b"{not json") == (400, "malformed_json")
    assert await status("/hooks/good", json=["1001"]) == (422, "validation_failed")
    assert await status("/hooks/good", json={}) == (422, "validation_failed")
    assert await status("/hooks/good", json={"order_id": 1001}) == (422, "validation_failed")
    assert await status("/hooks/good", json={"order_id": ""}) == (422, "validation_failed")
    assert await status("/hooks/good") == (422, "validation_failed")
    assert await status("/hooks/good", json={"order_id": "1001", "data": [1]}) == (
        422,
        "validation_failed",
    )
    assert len(kernel.submitted) == 2


async def test_tracking_links_pixel_and_click(client: Any, kernel: FakeKernel) -> None:
    urls = ["https://shop.test/pay?x=1", "http://blog.test/"]
    answer = await client.post(
        "/api/tracking-links", json={"order_id": "1001", "message_id": "m1", "urls": urls}
    )
    assert answer.status == 201
    links = await answer.json()
    assert set(links["links"]) == set(urls)
    assert links["open_pixel_url"].startswith("http://sf.test/t/o/")
    prefix = "http://sf.test"

    for _ in range(2):
        pixel = await client.get(links["open_pixel_url"].removeprefix(prefix))
        assert pixel.status == 200
        assert pixel.content_type == "image/gif"
        assert pixel.headers["Cache-Control"] == "no-store"
        assert (await pixel.read()).startswith(b"GIF89a")
    assert kernel.submitted[-1] == (
        {"type": "email.viewed", "order_id": "1001", "data": {"message_id": "m1"}},
        None,
    )
    assert len(kernel.submitted) == 2

    tracked = links["links"]["https://shop.test/pay?x=1"].removeprefix(prefix)
    click = await client.get(tracked, allow_redirects=False)
    assert click.status == 302
    assert click.headers["Location"] == "https://shop.test/pay?x=1"
    assert kernel.submitted[-1] == (
        {
            "type": "email.link_clicked",
            "order_id": "1001",
            "data": {"message_id": "m1", "url": "https://shop.test/pay?x=1"},
        },
        None,
    )

    count = len(kernel.submitted)
    pixel_token = links["open_pixel_url"].rsplit("/", 1)[1]
    click_token = tracked.rsplit("/", 1)[1]
    for path in (
        "/t/o/garbage",
        f"/t/o/{pixel_token}x",
        f"/t/c/{pixel_token}",  # a pixel token is not a click token
        f"/t/o/{click_token}",
        "/t/c/" + kernel.sign({"k": "c", "o": "1001"}),  # no url
    ):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 404, path
    assert len(kernel.submitted) == count


async def test_tracking_links_without_message_id(client: Any, kernel: FakeKernel) -> None:
    answer = await client.post(
        "/api/tracking-links", json={"order_id": "1001", "urls": ["https://a.test"]}
    )
    links = await answer.json()
    await client.get(links["open_pixel_url"].removeprefix("http://sf.test"))
    assert kernel.submitted[-1][0]["data"] == {}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"urls": ["https://a.test"]}, 422, "order_id"),
        ({"order_id": "", "urls": ["https://a.test"]}, 422, "order_id"),
        ({"order_id": 1001, "urls": ["https://a.test"]}, 422, "order_id"),
        ({"order_id": "1001", "message_id": 5, "urls": ["https://a.test"]}, 422, "message_id"),
        ({"order_id": "10\x0001", "urls": ["https://a.test"]}, 422, "order_id"),
        (
            {"order_id": "1001", "message_id": "m\x00", "urls": ["https://a.test"]},
            422,
            "message_id",
        ),
        ({"order_id": "1001", "urls": ["https://a.test/\x00"]}, 422, "urls/0"),
        ({"order_id": "1001", "urls": ["https://a.test/" + "x" * 2040]}, 422, "urls/0"),
        ({"order_id": "1001", "urls": ["https://a.test/" + "é" * 400]}, 422, "urls/0"),
        ({"order_id": "1001"}, 422, "urls"),
        ({"order_id": "1001", "urls": []}, 422, "urls"),
        ({"order_id": "1001", "urls": "https://a.test"}, 422, "urls"),
        ({"order_id": "1001", "urls": ["https://a.test"] * 101}, 422, "urls"),
        ({"order_id": "1001", "urls": ["https://a.test", 5]}, 422, "urls/1"),
        ({"order_id": "1001", "urls": ["/relative"]}, 422, "urls/0"),
        ({"order_id": "1001", "urls": ["javascript:alert(1)"]}, 422, "urls/0"),
        ({"order_id": "1001", "urls": ["ftp://a.test/f"]}, 422, "urls/0"),
        ({"order_id": "1001", "urls": ["https://a.test/\r\nX: y"]}, 422, "urls/0"),
        ({"order_id": "1001", "urls": ["http://[::1"]}, 422, "urls/0"),
        ({"order_id": "1001", "urls": ["https://a.test"], "extra": 1}, 422, "extra"),
        ({"order_id": "9999", "urls": ["https://a.test"]}, 404, None),
    ],
)
async def test_tracking_links_refuses_bad_bodies(
    client: Any, body: dict[str, Any], status: int, field: str | None
) -> None:
    response = await client.post("/api/tracking-links", json=body)
    assert response.status == status
    error = (await response.json())["error"]
    if field is not None:
        assert error["code"] == "validation_failed"
        assert error["details"] == [
            {"path": f"/{field}", "message": error["details"][0]["message"]}
        ]
    else:
        assert error["code"] == "order_not_found"


async def test_tracking_links_malformed_json(client: Any) -> None:
    for raw in (b"", b"{", b"\xff"):
        response = await client.post("/api/tracking-links", data=raw)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "malformed_json"
    response = await client.post("/api/tracking-links", json=[1])
    assert response.status == 422


async def test_click_on_a_non_ascii_url_redirects_percent_encoded(
    client: Any, kernel: FakeKernel
) -> None:
    url = "https://shop.test/café?q=thé"
    answer = await client.post("/api/tracking-links", json={"order_id": "1001", "urls": [url]})
    tracked = (await answer.json())["links"][url].removeprefix("http://sf.test")
    click = await client.get(tracked, allow_redirects=False)
    assert click.status == 302
    assert click.headers["Location"] == "https://shop.test/caf%C3%A9?q=th%C3%A9"
    assert kernel.submitted[-1][0]["data"] == {"url": url}


def test_the_longest_tracked_url_fits_in_a_request_line() -> None:
    from statusflow.engine.services import Services
    from statusflow.testing import settings_for

    email = load("email")
    services = Services(settings_for("sqlite://"))
    longest = "\U0001d11e"  # 4 bytes in UTF-8
    order_id, message_id, url = longest * 200, longest * 300, "https://a.test/" + "x" * 2033
    assert email.check_tracking_request(
        {"order_id": order_id, "message_id": message_id, "urls": [url]}
    ) == (order_id, message_id, [url])
    links = email.tracking_links(services, order_id, message_id, [url])
    # aiohttp refuses request lines over 8190 bytes; leave room for the method and base URL
    assert len(f"GET {links['links'][url]} HTTP/1.1") < 7000
