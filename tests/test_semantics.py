"""Contract §2, the trigger semantics, through the HTTP API on SQLite and PostgreSQL.

The default pipeline is N New 100, P Paid 150, S Shipped 175, F Completed 200 (final),
D Canceled 250 (final). Most tests use the ``payment.received`` trigger type; those that
need settings or an event type of their own use the throwaway ``testkit`` plugin below.

The big tables (choosing a move, contact fan-out, conditions, bad events) run each case
as a subtest on one app per database, since a fresh app and database cost far more than
a case. Cases never share an order or an event id, and a case's triggers are deleted
after it, so each case sees only its own. The module also opts in to
``reused_database_url`` (see conftest): one PostgreSQL database, emptied before each test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import Api, assert_recent_utc, assert_trace, event, move, trace_by_key

from statusflow import MATCHED, EventType, Match, TriggerType, hookimpl

# --- the throwaway plugin and the fixtures ----------------------------------------------

TESTKIT_DATA = {
    "type": "object",
    "properties": {"channel": {"type": "string"}, "priority": {"type": "integer"}},
}
TESTKIT_SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"channel": {"type": "string", "minLength": 1}},
}


def match_channel(settings: Mapping[str, Any], ev: Any) -> Match:
    """Matches when the trigger has no ``channel`` or the event's is the same."""
    wanted = settings.get("channel")
    if wanted is None or ev.data.get("channel") == wanted:
        return MATCHED
    return Match(False, f"channel is {ev.data.get('channel')!r}, trigger wants {wanted!r}")


class TestKitPlugin:
    """Event type ``testkit.ping`` and trigger type ``testkit.ping`` (setting ``channel``)."""

    __test__ = False

    @hookimpl
    def register_event_types(self, register: Any) -> None:
        register(EventType("testkit.ping", "Test ping", TESTKIT_DATA))

    @hookimpl
    def register_trigger_types(self, register: Any) -> None:
        register(
            TriggerType(
                "testkit.ping", "Test ping", ("testkit.ping",), TESTKIT_SETTINGS, match_channel
            )
        )


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    """SQLite, then PostgreSQL: one database for the module, emptied before each test."""
    return reused_database_url


@pytest.fixture
async def api(client: Any) -> Api:
    """The API with only the ``payment`` plugin."""
    return Api(client)


@pytest.fixture
async def kit(make_client: Any) -> Api:
    """The API with the ``payment`` and ``testkit`` plugins."""
    return Api(await make_client(enable=("payment",), extra_plugins=[("testkit", TestKitPlugin())]))


def ping(**fields: Any) -> dict[str, Any]:
    """A ``testkit.ping`` event body."""
    return event("testkit.ping", **fields)


# --- choosing a move: one order, one event, a set of triggers ------------------------------

MOVED = "moved"
BACKWARDS = "backwards not allowed"
ALREADY = "already in"
LOST = "lost to trigger {winner}"
DISABLED = "disabled"


@dataclass(frozen=True)
class MoveCase:
    """An order in ``start``; triggers created in this order; the expected outcome.

    ``outcomes[i]`` is ``MOVED`` or a fragment of trigger i's ``skipped`` reason.
    """

    start: str
    triggers: tuple[dict[str, Any], ...]
    winner: int | None
    outcomes: tuple[str, ...]


def trig(status: str, **fields: Any) -> dict[str, Any]:
    return {"status": status, **fields}


BACK = {"allow_backwards": True}

MOVE_CASES: dict[str, MoveCase] = {
    "forward": MoveCase("N", (trig("P"),), 0, (MOVED,)),
    "forward-past-statuses": MoveCase("N", (trig("F"),), 0, (MOVED,)),
    "backward-refused": MoveCase("S", (trig("P"),), None, (BACKWARDS,)),
    "backward-allowed": MoveCase("S", (trig("P", **BACK),), 0, (MOVED,)),
    "already-there": MoveCase("P", (trig("P"),), None, (ALREADY,)),
    "already-there-backwards-ok": MoveCase("P", (trig("P", **BACK),), None, (ALREADY,)),
    "lowest-sort-wins": MoveCase("N", (trig("F"), trig("S"), trig("P")), 2, (LOST, LOST, MOVED)),
    "lowest-sort-wins-backwards-included": MoveCase(
        "S", (trig("F"), trig("N", **BACK), trig("P", **BACK)), 1, (LOST, MOVED, LOST)
    ),
    "refused-backward-cannot-win": MoveCase("S", (trig("N"), trig("F")), 1, (BACKWARDS, MOVED)),
    "tie-goes-to-first-created": MoveCase(
        "N", (trig("P", name="zz"), trig("P", name="aa")), 0, (MOVED, LOST)
    ),
    "tie-after-lowest-sort": MoveCase(
        "N", (trig("S"), trig("P"), trig("P")), 1, (LOST, MOVED, LOST)
    ),
    "tie-backwards": MoveCase("F", (trig("N", **BACK), trig("N", **BACK)), 0, (MOVED, LOST)),
    "final-F-to-D-is-forward": MoveCase("F", (trig("D"),), 0, (MOVED,)),
    "final-D-to-F-refused": MoveCase("D", (trig("F"),), None, (BACKWARDS,)),
    "final-D-to-F-backwards": MoveCase("D", (trig("F", **BACK),), 0, (MOVED,)),
    "disabled-trigger-is-no-candidate": MoveCase(
        "N", (trig("P", enabled=False), trig("S")), 1, (DISABLED, MOVED)
    ),
    "none-eligible": MoveCase("P", (trig("P"), trig("N")), None, (ALREADY, BACKWARDS)),
}


async def check_move_case(api: Api, name: str, case: MoveCase) -> None:
    """Dry run, then the real run, of one payment for a fresh order ``name``."""
    order_id, event_id = name, f"{name}-e"
    await api.create_order(order_id, status=case.start)
    ids = [await api.trigger_id(**spec) for spec in case.triggers]
    body = event(id=event_id, order_id=order_id, data={"amount": 10})
    moves = []
    if case.winner is not None:
        to = case.triggers[case.winner]["status"]
        moves = [move(order_id, case.start, to, ids[case.winner])]
    winner_id = None if case.winner is None else ids[case.winner]
    expected_trace = {
        (order_id, trigger_id): (
            ("moved", ()) if want == MOVED else ("skipped", (want.format(winner=winner_id),))
        )
        for trigger_id, want in zip(ids, case.outcomes, strict=True)
    }

    dry = await api.post_events(body, dry_run=True)
    assert dry["moves"] == moves
    assert dry["order_ids"] == [order_id]
    assert_trace(dry["trace"], expected_trace)
    assert await api.status_of(order_id) == case.start

    result = await api.post_events(body)
    assert result == {
        "event_id": event_id,
        "duplicate": False,
        "order_ids": [order_id],
        "moves": moves,
    }
    assert await api.status_of(order_id) == (moves[0]["to"] if moves else case.start)
    stored = await api.get_event(event_id)
    assert (stored["id"], stored["type"]) == (event_id, "payment.received")
    assert stored["order_ids"] == [order_id]
    assert stored["moves"] == moves
    assert trace_by_key(stored["trace"]) == trace_by_key(dry["trace"])


async def test_choosing_a_move(api: Api, subtests: Any) -> None:
    for name, case in MOVE_CASES.items():
        with subtests.test(msg=name):
            try:
                await check_move_case(api, name, case)
            finally:
                await api.delete_all_triggers()


async def test_tie_goes_to_the_trigger_created_first_even_when_retargeted_later(
    api: Api,
) -> None:
    await api.create_order("o1")
    first = await api.trigger_id("S")
    second = await api.trigger_id("P")
    await api.call("PATCH", f"/api/triggers/{first}", {"status": "P"})
    result = await api.post_events(event(id="e1", order_id="o1"))
    assert result["moves"] == [move("o1", "N", "P", first)]
    assert_trace(
        (await api.get_event("e1"))["trace"],
        {("o1", first): ("moved", ()), ("o1", second): ("skipped", (f"lost to trigger {first}",))},
    )


# --- resolving an event to orders ------------------------------------------------------------

ANN = "+1 (415) 555-0100"
FANOUT_ORDERS: dict[str, dict[str, Any]] = {
    "a1": {
        "status": "N",
        "contact": {"id": "c1", "phones": [ANN], "emails": ["Ann.Lee@Example.com"]},
        "visitor_ids": ["v-1"],
    },
    "a2": {"status": "P", "contact": {"id": "c1", "phones": ["415-555-0100"]}},
    "a3": {  # final: never found through its contact
        "status": "F",
        "contact": {"id": "c1", "phones": ["+14155550100"], "emails": ["ann.lee@example.com"]},
        "visitor_ids": ["v-1"],
    },
    "a4": {"status": "D", "contact": {"id": "c1", "phones": [ANN]}},
    "b1": {
        "status": "N",
        "contact": {"id": 42, "name": "Bob"},
        "company": {"id": "acme", "phones": ["(212) 555-0199"], "emails": ["Sales@Acme.example"]},
    },
    "b2": {"status": "P", "company": {"id": "acme"}},
    "f1": {"status": "D", "contact": {"emails": ["gone@example.net"]}},
    "z1": {
        "status": "N",
        "contact": {"id": "c9", "phones": ["+44 20 7946 0958"], "emails": ["zed@example.org"]},
        "visitor_ids": ["v-9"],
    },
}

FANOUT_CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "phone-formatted": ({"phone": "+1 (415) 555-0100"}, ["a1", "a2"]),
    "phone-national": ({"phone": "415-555-0100"}, ["a1", "a2"]),
    "phone-e164": ({"phone": "+14155550100"}, ["a1", "a2"]),
    "email-case-insensitive": ({"email": "ANN.LEE@example.COM"}, ["a1"]),
    "contact-id": ({"contact_id": "c1"}, ["a1", "a2"]),
    "contact-id-number": ({"contact_id": 42}, ["b1"]),
    "company-id": ({"contact_id": "acme"}, ["b1", "b2"]),
    "company-phone": ({"phone": "+1 212-555-0199"}, ["b1"]),
    "company-email": ({"email": "sales@ACME.example"}, ["b1"]),
    "visitor-id": ({"visitor_id": "v-1"}, ["a1"]),
    "several-identifiers-one-order-once": (
        {"phone": "+14155550100", "email": "ann.lee@example.com", "visitor_id": "v-1"},
        ["a1", "a2"],
    ),
    "no-order": ({"phone": "+1 202 555 0123"}, []),
    "only-final-orders": ({"email": "gone@example.net"}, []),
}


async def check_fan_out_case(
    api: Api, trigger: int, event_id: str, contact: dict[str, Any], found: list[str]
) -> None:
    """One payment by ``contact``: exactly the orders ``found`` move, and only they."""
    result = await api.post_events(event(id=event_id, contact=contact))
    moves = [move(o, FANOUT_ORDERS[o]["status"], "S", trigger) for o in found]
    assert result["event_id"] == event_id
    assert result["duplicate"] is False
    assert sorted(result["order_ids"]) == found
    assert sorted(result["moves"], key=lambda m: m["order_id"]) == moves

    expected_status = {o: ("S" if o in found else f["status"]) for o, f in FANOUT_ORDERS.items()}
    assert await api.statuses_of(FANOUT_ORDERS) == expected_status
    for order_id in FANOUT_ORDERS:
        entries = [e["kind"] for e in await api.timeline(order_id) if e.get("event_id") == event_id]
        assert entries == (["event", "status_changed"] if order_id in found else []), order_id

    stored = await api.get_event(event_id)  # stored even when it found no order
    assert sorted(stored["order_ids"]) == found
    assert sorted(stored["moves"], key=lambda m: m["order_id"]) == moves
    assert_trace(stored["trace"], {(o, trigger): ("moved", ()) for o in found})


async def test_contact_fan_out(api: Api, subtests: Any) -> None:
    await api.create_orders(FANOUT_ORDERS)
    trigger = await api.trigger_id("S")
    for name, (contact, found) in FANOUT_CASES.items():
        with subtests.test(msg=name):
            try:
                await check_fan_out_case(api, trigger, name, contact, found)
            finally:  # back to the starting statuses, by hand
                for order_id, fields in FANOUT_ORDERS.items():
                    if await api.status_of(order_id) != fields["status"]:
                        await api.patch_order(order_id, {"status": fields["status"]})


async def test_order_id_resolves_only_that_order_and_contact_is_only_data(api: Api) -> None:
    await api.create_orders(FANOUT_ORDERS)
    trigger = await api.trigger_id("D")
    contact = {"phone": "not a phone at all", "contact_id": "c1"}
    result = await api.post_events(event(id="e1", order_id="a3", contact=contact))
    assert result["order_ids"] == ["a3"]
    assert result["moves"] == [move("a3", "F", "D", trigger)]  # final statuses: no special case
    assert await api.statuses_of(["a1", "a2", "a3"]) == {"a1": "N", "a2": "P", "a3": "D"}


async def test_unknown_order_id_is_404_and_stores_nothing(api: Api) -> None:
    await api.create_order("o1")
    await api.trigger_id("P")
    error = await api.error("POST", "/api/events", event(id="e1", order_id="ghost"), expect=404)
    assert "ghost" in error["message"]
    await api.get_event("e1", expect=404)
    assert await api.stored_event_count() == 0

    # in a list, the unknown order rejects the whole list
    batch = [event(id="e2", order_id="o1"), event(id="e3", order_id="ghost")]
    await api.error("POST", "/api/events", batch, expect=404)
    assert await api.stored_event_count() == 0
    assert await api.status_of("o1") == "N"
    assert await api.timeline_kinds("o1") == ["created"]


# --- a list of events is checked whole; bad events ----------------------------------------

BAD_EVENTS: dict[str, tuple[Any, tuple[str, ...], str]] = {
    "unknown-type": (
        event("no.such.type", order_id="o1"),
        ("no.such.type", "payment.received"),
        "unknown_event_type",
    ),
    "no-order-id-no-contact": (
        event(data={"amount": 5}),
        ("order_id", "contact"),
        "validation_failed",
    ),
    "empty-contact": (event(contact={}), ("order_id", "contact"), "validation_failed"),
    "unparseable-phone": (
        event(contact={"phone": "call me maybe"}),
        ("call me maybe",),
        "bad_contact",
    ),
    "impossible-phone": (event(contact={"phone": "12"}), ("phone", "12"), "bad_contact"),
    "bad-data": (event(order_id="o1", data={"amount": "ten"}), ("amount",), "bad_event_data"),
    "bad-occurred-at": (
        event(order_id="o1", occurred_at="yesterday"),
        ("occurred_at",),
        "bad_timestamp",
    ),
    "unknown-key": (event(order_id="o1", colour="red"), ("colour",), "validation_failed"),
    "not-an-object": ("payment.received", (), "validation_failed"),
}
BAD_EVENT_ORDERS = FANOUT_ORDERS | {"o1": {"status": "N"}}


async def check_bad_event(api: Api, bad: Any, named: tuple[str, ...], code: str) -> None:
    """``bad`` alone is a 422; in a list of good events, it rejects the list whole."""
    error = await api.error("POST", "/api/events", bad, expect=422)
    assert error["code"] == code, error
    for fragment in named:
        assert fragment in error["message"], error

    batch = [
        event(id="good-1", order_id="o1"),
        event(id="good-2", contact={"phone": ANN}),
        bad,
        event(id="good-3", order_id="z1"),
    ]
    error = await api.error("POST", "/api/events", batch, expect=422)
    assert error["code"] == code, error
    assert all(p["path"].startswith("/2") for p in error["details"]), error
    assert error["message"].startswith("event 2: "), error
    for fragment in named:
        assert fragment in error["message"], error
    for event_id in ("good-1", "good-2", "good-3"):
        await api.get_event(event_id, expect=404)
    assert await api.stored_event_count() == 0
    assert await api.statuses_of(BAD_EVENT_ORDERS) == {
        o: f["status"] for o, f in BAD_EVENT_ORDERS.items()
    }


async def test_bad_events(api: Api, subtests: Any) -> None:
    await api.create_orders(BAD_EVENT_ORDERS)
    await api.trigger_id("P")
    for name, (bad, named, code) in BAD_EVENTS.items():
        with subtests.test(msg=name):
            await check_bad_event(api, bad, named, code)
    with subtests.test(msg="empty-list"):
        await api.error("POST", "/api/events", [], expect=422)
    assert await api.stored_event_count() == 0
    for order_id in BAD_EVENT_ORDERS:
        assert await api.timeline_kinds(order_id) == ["created"], order_id


# --- conditions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """An order (its fields, ``status`` included) and the data of the event it gets."""

    order: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def order(**fields: Any) -> Scenario:
    """An order with these fields, and an event without data."""
    return Scenario(order=fields)


def custom(**fields: Any) -> Scenario:
    """An order with these custom ``fields``, and an event without data."""
    return Scenario(order={"fields": fields})


def data(**data: Any) -> Scenario:
    """A bare order, and an event with this data."""
    return Scenario(data=data)


BARE = Scenario()


@dataclass(frozen=True)
class CondCase:
    """A condition, a scenario where it holds and one where it fails."""

    condition: dict[str, Any]
    holds: Scenario
    fails: Scenario


def cc(field_: str, op: str, value: Any, holds: Scenario, fails: Scenario) -> CondCase:
    return CondCase({"field": field_, "op": op, "value": value}, holds, fails)


CONDITION_CASES: dict[str, CondCase] = {
    # amount: a JSON number, compared numerically
    "amount-eq-100-is-100.0": cc("amount", "eq", 100, order(amount=100.0), order(amount=99.5)),
    "amount-eq-100.0-is-100": cc("amount", "eq", 100.0, order(amount=100), order(amount=101)),
    "amount-ne": cc("amount", "ne", 100, order(amount=50), order(amount=100.0)),
    "amount-gt-numeric": cc("amount", "gt", 9, order(amount=10), order(amount=9.0)),
    "amount-gt": cc("amount", "gt", 99.5, order(amount=100), order(amount=99.5)),
    "amount-gte": cc("amount", "gte", 100, order(amount=100.0), order(amount=99.99)),
    "amount-lt": cc("amount", "lt", 100, order(amount=99), order(amount=100.0)),
    "amount-lte": cc("amount", "lte", 100.0, order(amount=100), order(amount=100.5)),
    "amount-in": cc("amount", "in", [100, 200], order(amount=200.0), order(amount=150)),
    "amount-not-in": cc("amount", "not_in", [100], order(amount=101), order(amount=100.0)),
    "amount-missing-fails": cc("amount", "lt", 10, order(amount=0), BARE),
    "amount-exists": cc("amount", "exists", True, order(amount=0), BARE),
    # currency
    "currency-eq": cc("currency", "eq", "USD", order(currency="USD"), order(currency="usd")),
    "currency-ne-missing-fails": cc("currency", "ne", "USD", order(currency="EUR"), BARE),
    "currency-in": cc(
        "currency", "in", ["USD", "EUR"], order(currency="EUR"), order(currency="GBP")
    ),
    "currency-not-in-missing-fails": cc("currency", "not_in", ["USD"], order(currency="EUR"), BARE),
    "currency-contains": cc(
        "currency", "contains", "SD", order(currency="USD"), order(currency="EUR")
    ),
    "currency-exists-false": cc("currency", "exists", False, BARE, order(currency="EUR")),
    # status: the order's current status
    "status-eq": cc("status", "eq", "P", order(status="P"), order(status="N")),
    "status-ne": cc("status", "ne", "N", order(status="P"), order(status="N")),
    "status-in": cc("status", "in", ["N"], order(status="N"), order(status="P")),
    "status-not-in": cc("status", "not_in", ["P"], order(status="N"), order(status="P")),
    # responsible_id
    "responsible-eq": cc(
        "responsible_id", "eq", "u7", order(responsible_id="u7"), order(responsible_id="u8")
    ),
    "responsible-eq-int": cc(
        "responsible_id", "eq", 7, order(responsible_id=7), order(responsible_id="7")
    ),
    "responsible-exists": cc("responsible_id", "exists", True, order(responsible_id="u7"), BARE),
    "responsible-exists-false": cc(
        "responsible_id", "exists", False, BARE, order(responsible_id="u7")
    ),
    # fields.NAME: the order's custom fields
    "fields-contains-list": cc(
        "fields.tags", "contains", "vip", custom(tags=["b2b", "vip"]), custom(tags=["vipx"])
    ),
    "fields-contains-string": cc(
        "fields.note", "contains", "rush", custom(note="rush it"), custom(note="slow")
    ),
    "fields-gte": cc("fields.priority", "gte", 2, custom(priority=2), custom(priority=1)),
    "fields-missing-fails": cc("fields.priority", "lt", 5, custom(priority=4), custom(other=1)),
    "fields-absent-fails": cc("fields.region", "eq", "EU", custom(region="EU"), BARE),
    "fields-eq-true-is-not-1": cc("fields.vip", "eq", True, custom(vip=True), custom(vip=1)),
    "fields-in-1-is-not-true": cc("fields.n", "in", [1, 2], custom(n=1.0), custom(n=True)),
    "fields-exists-false": cc("fields.gift", "exists", False, custom(x=1), custom(gift=False)),
    "fields-null-is-missing": cc(
        "fields.gift", "exists", True, custom(gift=False), custom(gift=None)
    ),
    # event.NAME: the event's data
    "event-eq": cc("event.method", "eq", "card", data(method="card"), data(method="cash")),
    "event-ne-missing-fails": cc("event.method", "ne", "cash", data(method="card"), BARE),
    "event-gt": cc("event.amount", "gt", 50, data(amount=50.5), data(amount=50)),
    "event-lte": cc("event.amount", "lte", 50, data(amount=50.0), data(amount=51)),
    "event-in-missing-fails": cc("event.method", "in", ["card", "sepa"], data(method="sepa"), BARE),
    "event-not-in": cc(
        "event.method", "not_in", ["cash"], data(method="card"), data(method="cash")
    ),
    "event-contains-list": cc(
        "event.tags", "contains", "gift", data(tags=["gift"]), data(tags=["Gift"])
    ),
    "event-contains-string": cc(
        "event.method", "contains", "ar", data(method="card"), data(method="cash")
    ),
    "event-exists": cc("event.coupon", "exists", True, data(coupon="X"), BARE),
    "event-exists-false": cc("event.coupon", "exists", False, BARE, data(coupon="X")),
}


async def check_condition_case(api: Api, name: str, case: CondCase) -> None:
    """A payment for an order where the condition holds moves it; one where it fails not."""
    yes, no = f"{name}-yes", f"{name}-no"
    await api.create_order(yes, **case.holds.order)
    await api.create_order(no, **case.fails.order)
    yes_from = case.holds.order.get("status", "N")
    trigger = await api.trigger_id("S", conditions=[case.condition])
    results = await api.post_events(
        [
            event(id=yes, order_id=yes, data=case.holds.data),
            event(id=no, order_id=no, data=case.fails.data),
        ]
    )
    assert [r["moves"] for r in results] == [[move(yes, yes_from, "S", trigger)], []]
    assert_trace(
        (await api.get_event(no))["trace"],
        {(no, trigger): ("skipped", ("condition failed", case.condition["field"]))},
    )


async def test_conditions(api: Api, subtests: Any) -> None:
    for name, case in CONDITION_CASES.items():
        with subtests.test(msg=name):
            try:
                await check_condition_case(api, name, case)
            finally:
                await api.delete_all_triggers()


async def test_all_conditions_must_hold_and_the_trace_names_the_failed_one(api: Api) -> None:
    await api.create_order("o1", amount=120, currency="EUR")
    conditions = [
        {"field": "amount", "op": "gte", "value": 100},
        {"field": "currency", "op": "eq", "value": "USD"},
    ]
    trigger = await api.trigger_id("P", conditions=conditions)
    result = await api.post_events(event(order_id="o1"), dry_run=True)
    assert result["moves"] == []
    (entry,) = result["trace"]
    assert entry["outcome"] == "skipped"
    assert "condition failed" in entry["reason"]
    assert "currency" in entry["reason"] and "USD" in entry["reason"]
    assert "amount" not in entry["reason"]
    assert entry["trigger_id"] == trigger


INVALID_CONDITIONS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown-field": ({"field": "price", "op": "eq", "value": 1}, "price"),
    "dotted-field": ({"field": "order.amount", "op": "eq", "value": 1}, "order.amount"),
    "fields-no-name": ({"field": "fields.", "op": "eq", "value": 1}, "fields."),
    "event-no-name": ({"field": "event.", "op": "eq", "value": 1}, "event."),
    "unknown-op": ({"field": "amount", "op": "between", "value": [1, 2]}, "between"),
    "op-is-case-sensitive": ({"field": "amount", "op": "EQ", "value": 1}, "EQ"),
    "exists-needs-a-boolean": ({"field": "amount", "op": "exists", "value": "yes"}, "'exists'"),
    "in-needs-a-list": ({"field": "amount", "op": "in", "value": 100}, "'in'"),
    "gt-needs-a-scalar": ({"field": "amount", "op": "gt", "value": [1]}, "'gt'"),
    "no-value": ({"field": "amount", "op": "eq"}, "'eq'"),
    "no-field": ({"op": "eq", "value": 1}, "field"),
}


async def test_invalid_condition_is_422_at_trigger_creation(api: Api, subtests: Any) -> None:
    for name, (condition, named) in INVALID_CONDITIONS.items():
        with subtests.test(msg=name):
            body = {"type": "payment.received", "status": "P", "conditions": [condition]}
            error = await api.error("POST", "/api/triggers", body, expect=422)
            assert named in error["message"]
    assert await api.triggers() == []


# --- idempotency ---------------------------------------------------------------------------


async def test_replayed_event_id_repeats_the_first_result_and_moves_nothing(api: Api) -> None:
    await api.create_order("o1")
    await api.create_order("o2")
    trigger = await api.trigger_id("P")
    first = await api.post_events(event(id="e1", order_id="o1", data={"amount": 10}))
    assert first == {
        "event_id": "e1",
        "duplicate": False,
        "order_ids": ["o1"],
        "moves": [move("o1", "N", "P", trigger)],
    }
    # o1 goes back by hand: processing e1 again would move it again
    await api.patch_order("o1", {"status": "N"})

    replays = [
        event(id="e1", order_id="o1", data={"amount": 10}),
        event(id="e1", order_id="o2", data={"amount": 99, "currency": "EUR"}),
        event(id="e1", contact={"email": "someone@example.com"}),
        event(id="e1", order_id="ghost"),
    ]
    for replay in replays:
        assert await api.post_events(replay) == {**first, "duplicate": True}
    assert await api.post_events(replays) == [{**first, "duplicate": True}] * len(replays)

    assert await api.statuses_of(["o1", "o2"]) == {"o1": "N", "o2": "N"}
    kinds = ["created", "event", "status_changed", "status_changed"]  # e1, then by hand
    assert await api.timeline_kinds("o1") == kinds
    assert await api.timeline_kinds("o2") == ["created"]
    assert await api.stored_event_count() == 1
    stored = await api.get_event("e1")
    assert stored["data"] == {"amount": 10}
    assert stored["moves"] == first["moves"]


async def test_duplicate_ids_inside_one_list(api: Api) -> None:
    await api.create_order("o1")
    await api.create_order("o2")
    trigger = await api.trigger_id("P")
    results = await api.post_events(
        [
            event(id="e1", order_id="o1"),
            event(id="e2", order_id="o2"),
            event(id="e1", order_id="o2"),
            event(order_id="o2"),  # no id: never a duplicate
        ]
    )
    first = {
        "event_id": "e1",
        "duplicate": False,
        "order_ids": ["o1"],
        "moves": [move("o1", "N", "P", trigger)],
    }
    assert results[0] == first
    assert results[1]["moves"] == [move("o2", "N", "P", trigger)]
    assert results[2] == {**first, "duplicate": True}
    assert results[3]["duplicate"] is False
    assert results[3]["order_ids"] == ["o2"]
    assert results[3]["moves"] == []  # o2 is already in P
    assert results[3]["event_id"] not in ("e1", "e2")
    assert await api.stored_event_count() == 3
    assert await api.timeline_kinds("o2") == ["created", "event", "status_changed", "event"]


# --- dry run -------------------------------------------------------------------------------


async def test_dry_run_stores_nothing_yet_answers_moves_and_trace(api: Api) -> None:
    await api.create_orders(FANOUT_ORDERS)
    back = await api.trigger_id(
        "N", allow_backwards=True, conditions=[{"field": "status", "op": "eq", "value": "S"}]
    )
    ship = await api.trigger_id("S")
    timelines = {o: await api.timeline(o) for o in FANOUT_ORDERS}
    body = event(id="e1", contact={"contact_id": "c1"}, data={"amount": 3})

    dry = await api.post_events(body, dry_run=True)
    moves = [move("a1", "N", "S", ship), move("a2", "P", "S", ship)]
    assert dry["event_id"] == "e1"
    assert dry["duplicate"] is False
    assert sorted(dry["order_ids"]) == ["a1", "a2"]
    assert dry["moves"] == moves
    assert_trace(
        dry["trace"],
        {
            ("a1", back): ("skipped", ("condition failed", "status")),
            ("a1", ship): ("moved", ()),
            ("a2", back): ("skipped", ("condition failed", "status")),
            ("a2", ship): ("moved", ()),
        },
    )
    await api.get_event("e1", expect=404)
    assert await api.stored_event_count() == 0
    assert await api.statuses_of(FANOUT_ORDERS) == {
        o: f["status"] for o, f in FANOUT_ORDERS.items()
    }
    assert {o: await api.timeline(o) for o in FANOUT_ORDERS} == timelines

    # a dry run is no processing: the same id is processed for real afterwards
    real = await api.post_events(body)
    assert real == {
        "event_id": "e1",
        "duplicate": False,
        "order_ids": dry["order_ids"],
        "moves": moves,
    }
    assert trace_by_key((await api.get_event("e1"))["trace"]) == trace_by_key(dry["trace"])


async def test_dry_run_of_an_event_already_processed_is_a_duplicate(api: Api) -> None:
    await api.create_order("o1")
    trigger = await api.trigger_id("P")
    first = await api.post_events(event(id="e1", order_id="o1"))
    dry = await api.post_events(event(id="e1", order_id="o1"), dry_run=True)
    assert {k: dry[k] for k in first} == {**first, "duplicate": True}
    assert_trace(dry["trace"], {("o1", trigger): ("moved", ())})
    assert await api.stored_event_count() == 1


async def test_a_list_is_processed_in_order_and_a_dry_run_answers_the_same(api: Api) -> None:
    await api.create_order("o1")
    step = {"field": "event.step", "op": "eq"}
    paid = await api.trigger_id("P", conditions=[step | {"value": 1}])
    shipped = await api.trigger_id("S", conditions=[{"field": "status", "op": "eq", "value": "P"}])
    batch = [
        event(id="e1", order_id="o1", data={"step": 1}),
        event(id="e2", order_id="o1", data={"step": 2}),
    ]
    expected_moves = [[move("o1", "N", "P", paid)], [move("o1", "P", "S", shipped)]]

    dry = await api.post_events(batch, dry_run=True)
    assert [r["moves"] for r in dry] == expected_moves
    assert await api.status_of("o1") == "N"
    assert await api.stored_event_count() == 0

    real = await api.post_events(batch)
    assert [r["moves"] for r in real] == expected_moves
    assert await api.status_of("o1") == "S"
    for result, event_id in zip(dry, ("e1", "e2"), strict=True):
        stored = await api.get_event(event_id)
        assert trace_by_key(stored["trace"]) == trace_by_key(result["trace"])


# --- trace -------------------------------------------------------------------------------


async def test_trace_reasons(kit: Api) -> None:
    await kit.create_order("o1", status="P")
    await kit.trigger_id("P")  # payment.received: does not listen to testkit.ping
    wrong_channel = await kit.trigger_id("S", "testkit.ping", settings={"channel": "x"})
    low_priority = await kit.trigger_id(
        "F", "testkit.ping", conditions=[{"field": "event.priority", "op": "gte", "value": 5}]
    )
    backwards = await kit.trigger_id("N", "testkit.ping")
    already = await kit.trigger_id("P", "testkit.ping")
    loser = await kit.trigger_id("D", "testkit.ping")
    winner = await kit.trigger_id("S", "testkit.ping", settings={"channel": "y"})
    expected = {
        ("o1", wrong_channel): (
            "skipped",
            ("settings do not match", "channel is 'y', trigger wants 'x'"),
        ),
        ("o1", low_priority): ("skipped", ("condition failed", "event.priority", "gte")),
        ("o1", backwards): ("skipped", ("backwards not allowed",)),
        ("o1", already): ("skipped", ("already in",)),
        ("o1", loser): ("skipped", (f"lost to trigger {winner}",)),
        ("o1", winner): ("moved", ()),
    }
    body = ping(id="e1", order_id="o1", data={"channel": "y", "priority": 1})

    dry = await kit.post_events(body, dry_run=True)
    assert dry["moves"] == [move("o1", "P", "S", winner)]
    assert_trace(dry["trace"], expected)

    result = await kit.post_events(body)
    assert result["moves"] == [move("o1", "P", "S", winner)]
    assert_trace((await kit.get_event("e1"))["trace"], expected)


async def test_trace_is_per_resolved_order(kit: Api) -> None:
    await kit.create_orders(FANOUT_ORDERS)
    to_p = await kit.trigger_id("P", "testkit.ping")
    to_s = await kit.trigger_id("S", "testkit.ping", settings={"channel": "a"})
    await kit.post_events(ping(id="e1", contact={"phone": ANN}, data={"channel": "b"}))
    assert_trace(
        (await kit.get_event("e1"))["trace"],
        {
            ("a1", to_p): ("moved", ()),
            ("a1", to_s): ("skipped", ("settings do not match",)),
            ("a2", to_p): ("skipped", ("already in",)),
            ("a2", to_s): ("skipped", ("settings do not match",)),
        },
    )
    assert await kit.statuses_of(["a1", "a2"]) == {"a1": "P", "a2": "P"}


# --- no cascade, one move per order per event -------------------------------------------


async def test_a_move_fires_no_trigger(api: Api) -> None:
    await api.create_order("o1")
    ship = await api.trigger_id(
        "S", conditions=[{"field": "event.kind", "op": "eq", "value": "go"}]
    )
    complete = await api.trigger_id("F", conditions=[{"field": "status", "op": "eq", "value": "S"}])
    paid = await api.trigger_id(
        "P", conditions=[{"field": "event.kind", "op": "eq", "value": "pay"}]
    )
    result = await api.post_events(event(id="e1", order_id="o1", data={"kind": "go"}))
    # o1 is now in S, where `complete` would hold: it is not evaluated again
    assert result["moves"] == [move("o1", "N", "S", ship)]
    assert await api.status_of("o1") == "S"
    assert_trace(
        (await api.get_event("e1"))["trace"],
        {
            ("o1", ship): ("moved", ()),
            ("o1", complete): ("skipped", ("condition failed", "status")),
            ("o1", paid): ("skipped", ("condition failed", "event.kind")),
        },
    )
    assert await api.timeline_kinds("o1") == ["created", "event", "status_changed"]

    # the next event sees S and moves on once
    result = await api.post_events(event(id="e2", order_id="o1", data={"kind": "stop"}))
    assert result["moves"] == [move("o1", "S", "F", complete)]


async def test_at_most_one_move_per_order_per_event(api: Api) -> None:
    await api.create_order("o1", contact={"phones": [ANN], "emails": ["ann@example.com"]})
    ids = [await api.trigger_id(s) for s in ("S", "P", "F", "D")]
    result = await api.post_events(
        event(id="e1", contact={"phone": "+14155550100", "email": "ANN@example.com"})
    )
    assert result["order_ids"] == ["o1"]
    assert result["moves"] == [move("o1", "N", "P", ids[1])]
    assert await api.timeline_kinds("o1") == ["created", "event", "status_changed"]


# --- timeline ----------------------------------------------------------------------------


async def test_timeline_has_an_event_entry_per_resolved_order_and_one_per_move(api: Api) -> None:
    await api.create_orders(FANOUT_ORDERS)
    trigger = await api.trigger_id("P")
    data = {"amount": 12.5, "currency": "USD", "method": "card"}
    await api.post_events(event(id="e1", contact={"contact_id": "c1"}, data=data))

    a1 = await api.timeline("a1")  # moved N -> P
    assert [e["kind"] for e in a1] == ["created", "event", "status_changed"]
    assert a1[1]["event_id"] == "e1"
    assert a1[1]["type"] == "payment.received"
    assert a1[1]["data"] == data
    assert (a1[2]["from"], a1[2]["to"], a1[2]["trigger_id"]) == ("N", "P", trigger)
    assert a1[2]["event_id"] == "e1"

    a2 = await api.timeline("a2")  # already in P: an event entry all the same
    assert [e["kind"] for e in a2] == ["created", "event"]
    assert a2[1]["event_id"] == "e1"
    assert a2[1]["data"] == data

    for entry in a1 + a2:
        assert_recent_utc(entry["at"])
    assert a1[0]["at"] <= a1[1]["at"] <= a1[2]["at"]
    for order_id in ("a3", "a4", "b1", "z1"):  # final, or not the contact
        assert await api.timeline_kinds(order_id) == ["created"]


async def test_timeline_records_each_event_and_each_move_in_order(api: Api) -> None:
    await api.create_order("o1")
    to_p = await api.trigger_id("P", conditions=[{"field": "event.n", "op": "eq", "value": 1}])
    to_s = await api.trigger_id("S", conditions=[{"field": "event.n", "op": "eq", "value": 3}])
    for n in (1, 2, 3):
        await api.post_events(event(id=f"e{n}", order_id="o1", data={"n": n}))
    entries = await api.timeline("o1")
    assert [(e["kind"], e.get("event_id")) for e in entries] == [
        ("created", None),
        ("event", "e1"),
        ("status_changed", "e1"),
        ("event", "e2"),
        ("event", "e3"),
        ("status_changed", "e3"),
    ]
    changes = [e for e in entries if e["kind"] == "status_changed"]
    assert [(e["from"], e["to"], e["trigger_id"]) for e in changes] == [
        ("N", "P", to_p),
        ("P", "S", to_s),
    ]


# --- manual moves ---------------------------------------------------------------------------


async def test_patch_status_is_a_manual_move_recorded_without_a_trigger(api: Api) -> None:
    await api.create_order("o1")
    await api.trigger_id("S")  # listens to payments, not to manual moves
    order = await api.patch_order("o1", {"status": "F"})
    assert order["status"] == "F"
    assert await api.status_of("o1") == "F"
    back = await api.patch_order("o1", {"status": "N"})  # any status, backwards too
    assert back["status"] == "N"

    entries = await api.timeline("o1")
    assert [e["kind"] for e in entries] == ["created", "status_changed", "status_changed"]
    for entry, (from_, to) in zip(entries[1:], [("N", "F"), ("F", "N")], strict=True):
        assert (entry["from"], entry["to"]) == (from_, to)
        assert entry["trigger_id"] is None
        assert entry["manual"] is True
        assert_recent_utc(entry["at"])
    assert await api.stored_event_count() == 0


async def test_patch_without_a_status_change_records_no_move(api: Api) -> None:
    await api.create_order("o1", status="P")
    await api.patch_order("o1", {"status": "P", "amount": 5})
    await api.patch_order("o1", {"currency": "EUR"})
    order = await api.order("o1")
    assert (order["status"], order["amount"], order["currency"]) == ("P", 5, "EUR")
    assert await api.timeline_kinds("o1") == ["created"]
