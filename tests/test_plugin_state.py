"""The state the chat and visits plugins keep: dialogs seen, visitors seen.

``chat.first_message`` fires for the first stored message of a dialog only, and
``visit.returned`` for a visitor seen in an earlier stored visit only. Both remember in
the kernel's state store, so the memory counts events that resolved to no order and
events from before the trigger existed, ignores dry runs, survives a restart, and holds
when many events race (on one app, and on two apps sharing one database).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import Api, assert_trace, event, move

NOT_MATCHING = "settings do not match"
NOBODY = {"phone": "+1 202 555 0123"}  # no order has it


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    """SQLite, then PostgreSQL: one database for the module, emptied before each test."""
    return reused_database_url


@pytest.fixture
async def api(make_client: Any) -> Api:
    """The API with every installed plugin."""
    return Api(await make_client())


def message(event_id: str, order_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A ``chat.message`` event; ``fields`` are ``contact`` and data fields."""
    contact = fields.pop("contact", None)
    body = event("chat.message", id=event_id, data=fields)
    if order_id is not None:
        body["order_id"] = order_id
    if contact is not None:
        body["contact"] = contact
    return body


def visit(event_id: str, order_id: str | None = None, visitor: Any = None) -> dict[str, Any]:
    """A ``visit`` event of ``visitor`` (none: no ``visitor_id`` at all)."""
    body = event("visit", id=event_id, data={"url": "https://shop.example/"})
    if order_id is not None:
        body["order_id"] = order_id
    if visitor is not None:
        body["contact"] = {"visitor_id": visitor}
    return body


@dataclass(frozen=True)
class Step:
    """One event for ``order`` (in ``N`` unless an earlier step moved it).

    ``why`` is ``None`` when the event matches the trigger, else a fragment of the
    ``skipped`` reason.
    """

    order: str
    body: dict[str, Any]
    why: str | None = None


async def run_steps(api: Api, trigger: dict[str, Any], steps: Sequence[Step]) -> None:
    """Post each step's event; check its move (or none) and its trace entry."""
    for index, step in enumerate(steps):
        where = f"step {index}: {step.body}"
        status = await api.status_of(step.order)
        result = await api.post_events(step.body)
        moved = step.why is None and status != trigger["status"]
        expected = [move(step.order, status, trigger["status"], trigger["id"])] if moved else []
        assert result["moves"] == expected, where
        assert result["order_ids"] == [step.order], where
        trace = (await api.get_event(step.body["id"]))["trace"]
        if step.why is None:
            want = ("moved", ()) if moved else ("skipped", ("already in status",))
        else:
            want = ("skipped", (NOT_MATCHING, step.why))
        assert_trace(trace, {(step.order, trigger["id"]): want})


# --- chat.first_message -----------------------------------------------------------------------

NOT_FIRST_OF_CONTACT = "not the first message of this channel_id and contact"


def not_first(dialog: str) -> str:
    return f"not the first message of dialog_id '{dialog}'"


async def test_chat_first_message_is_the_first_stored_message_of_its_dialog(api: Api) -> None:
    await api.create_orders({f"q{i}": {} for i in range(20)})
    # a message from before the trigger existed, and one that resolved to no order
    assert (await api.post_events(message("old-1", "q0", dialog_id="old")))["moves"] == []
    lost = await api.post_events(message("lost-1", contact=NOBODY, dialog_id="lost"))
    assert (lost["order_ids"], lost["moves"]) == ([], [])
    trigger = await api.create_trigger("P", "chat.first_message")
    ann, bob = {"email": "ann@example.com"}, {"email": "bob@example.com"}

    await run_steps(
        api,
        trigger,
        [
            Step("q1", message("d1-1", "q1", dialog_id="d1", channel_id="web")),
            Step("q2", message("d1-2", "q2", dialog_id="d1", channel_id="web"), not_first("d1")),
            # a dialog is its dialog_id alone, whatever the channel
            Step("q3", message("d1-3", "q3", dialog_id="d1", channel_id="tg"), not_first("d1")),
            Step("q4", message("old-2", "q4", dialog_id="old"), not_first("old")),
            Step("q5", message("lost-2", "q5", dialog_id="lost"), not_first("lost")),
            # dialog ids compare as strings
            Step("q6", message("n-1", "q6", dialog_id=981)),
            Step("q7", message("n-2", "q7", dialog_id="981"), not_first("981")),
            # no dialog_id: the channel and the contact as sent make the dialog
            Step("q8", message("c-1", "q8", channel_id="web", contact=ann)),
            Step("q9", message("c-2", "q9", channel_id="web", contact=ann), NOT_FIRST_OF_CONTACT),
            Step("q10", message("c-3", "q10", channel_id="tg", contact=ann)),
            Step("q11", message("c-4", "q11", channel_id="web", contact=bob)),
            Step("q12", message("c-5", "q12", contact=ann)),
            Step("q13", message("c-6", "q13", contact=ann), NOT_FIRST_OF_CONTACT),
            # no dialog_id and no contact: the order stands in for the contact
            Step("q14", message("o-1", "q14", channel_id="web")),
            Step("q14", message("o-2", "q14", channel_id="web"), NOT_FIRST_OF_CONTACT),
            Step("q15", message("o-3", "q15", channel_id="web")),
        ],
    )


async def test_first_message_and_returning_visit_move_every_order_of_the_contact(
    api: Api,
) -> None:
    contact = {"phones": ["+14155550100"], "emails": ["ann@example.com"]}
    await api.create_orders(
        {
            "k1": {"contact": contact, "visitor_ids": ["vk"]},
            "k2": {"status": "P", "contact": contact, "visitor_ids": ["vk"]},
            "k3": {"status": "F", "contact": contact, "visitor_ids": ["vk"]},
        }
    )
    chat = await api.trigger_id("S", "chat.first_message")
    back = await api.trigger_id("S", "visit.returned")
    by_phone = {"phone": "415-555-0100"}
    first = await api.post_events(message("k-1", contact=by_phone, dialog_id="kd"))
    assert (first["order_ids"], first["moves"]) == (
        ["k1", "k2"],
        [move("k1", "N", "S", chat), move("k2", "P", "S", chat)],
    )
    second = await api.post_events(message("k-2", contact=by_phone, dialog_id="kd"))
    assert (second["order_ids"], second["moves"]) == (["k1", "k2"], [])
    await api.patch_order("k1", {"status": "N"})
    await api.patch_order("k2", {"status": "P"})
    visits = await api.post_events([visit("k-3", visitor="vk"), visit("k-4", visitor="vk")])
    assert [(r["order_ids"], r["moves"]) for r in visits] == [
        (["k1", "k2"], []),
        (["k1", "k2"], [move("k1", "N", "S", back), move("k2", "P", "S", back)]),
    ]
    assert await api.status_of("k3") == "F"


async def test_a_dry_run_records_no_chat_dialog(api: Api) -> None:
    await api.create_orders({f"r{i}": {} for i in range(4)})
    trigger = await api.trigger_id("P", "chat.first_message")
    # within one dry run, the second message of a new dialog is not the first...
    dry = await api.post_events(
        [message("dry-1", "r0", dialog_id="new"), message("dry-2", "r1", dialog_id="new")],
        dry_run=True,
    )
    assert [r["moves"] for r in dry] == [[move("r0", "N", "P", trigger)], []]
    assert_trace(dry[1]["trace"], {("r1", trigger): ("skipped", (not_first("new"),))})
    # ...but the dry run recorded nothing: the real first message is still the first
    real = await api.post_events(message("real-1", "r2", dialog_id="new"))
    assert real["moves"] == [move("r2", "N", "P", trigger)]
    dry = await api.post_events(message("dry-3", "r3", dialog_id="new"), dry_run=True)
    assert dry["moves"] == []
    assert_trace(dry["trace"], {("r3", trigger): ("skipped", (not_first("new"),))})
    assert await api.statuses_of(["r0", "r1", "r2", "r3"]) == {
        "r0": "N",
        "r1": "N",
        "r2": "P",
        "r3": "N",
    }


# --- visit.returned ---------------------------------------------------------------------------


def first_time(visitor: str) -> str:
    return f"visitor_id '{visitor}' is visiting for the first time"


async def test_visit_returned_needs_an_earlier_stored_visit(api: Api) -> None:
    await api.create_orders({f"v{i}": {} for i in range(12)})
    # a visit from before the trigger existed, and one that resolved to no order
    assert (await api.post_events(visit("old-1", "v0", "old")))["moves"] == []
    lost = await api.post_events(visit("lost-1", visitor="lost"))
    assert (lost["order_ids"], lost["moves"]) == ([], [])
    trigger = await api.create_trigger("P", "visit.returned")

    await run_steps(
        api,
        trigger,
        [
            Step("v1", visit("old-2", "v1", "old")),
            Step("v2", visit("lost-2", "v2", "lost")),
            Step("v3", visit("new-1", "v3", "new"), first_time("new")),
            Step("v4", visit("new-2", "v4", "new")),
            Step("v5", visit("new-3", "v5", "new")),
            # visitor ids compare as strings
            Step("v6", visit("num-1", "v6", 42), first_time("42")),
            Step("v7", visit("num-2", "v7", "42")),
            # never without a visitor_id
            Step("v8", visit("none-1", "v8"), "event has no visitor_id"),
            Step("v9", visit("none-2", "v9"), "event has no visitor_id"),
        ],
    )


async def test_a_dry_run_records_no_visitor(api: Api) -> None:
    await api.create_orders({f"w{i}": {} for i in range(5)})
    trigger = await api.trigger_id("P", "visit.returned")
    for event_id in ("dry-1", "dry-2"):  # a dry run remembers nobody, so twice the same
        dry = await api.post_events(visit(event_id, "w0", "dv"), dry_run=True)
        assert dry["moves"] == []
        assert_trace(dry["trace"], {("w0", trigger): ("skipped", (first_time("dv"),))})
    # within one dry run, the second visit returns
    dry = await api.post_events(
        [visit("dry-3", "w1", "dv"), visit("dry-4", "w2", "dv")], dry_run=True
    )
    assert [r["moves"] for r in dry] == [[], [move("w2", "N", "P", trigger)]]
    # the real first visit is still the first one
    real = await api.post_events(visit("real-1", "w3", "dv"))
    assert real["moves"] == []
    real = await api.post_events(visit("real-2", "w4", "dv"))
    assert real["moves"] == [move("w4", "N", "P", trigger)]
    assert await api.statuses_of([f"w{i}" for i in range(5)]) == {
        "w0": "N",
        "w1": "N",
        "w2": "N",
        "w3": "N",
        "w4": "P",
    }


# --- restart ------------------------------------------------------------------------------------


async def test_dialogs_and_visitors_survive_a_restart(make_client: Any) -> None:
    first = Api(await make_client())
    await first.create_orders({f"s{i}": {} for i in range(6)})
    chat = await first.trigger_id("P", "chat.first_message")
    back = await first.trigger_id("S", "visit.returned")
    assert (await first.post_events(message("m-1", "s0", dialog_id="kept")))["moves"] == [
        move("s0", "N", "P", chat)
    ]
    assert (await first.post_events(visit("v-1", "s1", "kept")))["moves"] == []
    await first.client.close()

    second = Api(await make_client())  # a new app on the same database
    result = await second.post_events(message("m-2", "s2", dialog_id="kept"))
    assert result["moves"] == []
    assert_trace(
        (await second.get_event("m-2"))["trace"],
        {("s2", chat): ("skipped", (not_first("kept"),))},
    )
    result = await second.post_events(visit("v-2", "s3", "kept"))
    assert result["moves"] == [move("s3", "N", "S", back)]
    # and new ones are still new
    result = await second.post_events(message("m-3", "s4", dialog_id="fresh"))
    assert result["moves"] == [move("s4", "N", "P", chat)]
    result = await second.post_events(visit("v-3", "s5", "fresh"))
    assert result["moves"] == []


# --- races --------------------------------------------------------------------------------------

RACERS = 20


async def race(apis: Sequence[Api], bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Post every body at once, each alone, spread over ``apis`` in turn."""
    posts = [apis[i % len(apis)].post_events(body) for i, body in enumerate(bodies)]
    return list(await asyncio.gather(*posts))


async def check_race(
    api: Api,
    apis: Sequence[Api],
    prefix: str,
    make: Any,
    trigger: int,
    target: str,
    movers: int,
    why: str,
) -> None:
    """``RACERS`` events at once, one order each: exactly ``movers`` of them move."""
    orders = [f"{prefix}-{i}" for i in range(RACERS)]
    await api.create_orders({o: {} for o in orders})
    bodies = [make(f"{o}-e", o) for o in orders]
    results = await race(apis, bodies)
    moved = [r["moves"][0]["order_id"] for r in results if r["moves"]]
    assert len(moved) == movers, results
    for result, order_id in zip(results, orders, strict=True):
        assert result["order_ids"] == [order_id]
        if result["moves"]:
            assert result["moves"] == [move(order_id, "N", target, trigger)]
        else:
            trace = (await api.get_event(result["event_id"]))["trace"]
            assert_trace(trace, {(order_id, trigger): ("skipped", (NOT_MATCHING, why))})
    statuses = await api.statuses_of(orders)
    assert sorted(o for o, s in statuses.items() if s == target) == sorted(moved)
    assert sorted(o for o, s in statuses.items() if s == "N") == sorted(set(orders) - set(moved))


async def test_simultaneous_events_decide_first_and_returning_exactly_once(
    make_client: Any, subtests: Any
) -> None:
    one = Api(await make_client())
    chat = await one.trigger_id("P", "chat.first_message")
    back = await one.trigger_id("S", "visit.returned")
    two = Api(await make_client())  # a second app on the same database
    for label, apis in (("one app", [one]), ("two apps", [one, two])):
        with subtests.test(msg=f"first messages, {label}"):
            dialog = f"race-{len(apis)}"
            await check_race(
                one,
                apis,
                f"c{len(apis)}",
                lambda event_id, order_id, dialog=dialog: message(
                    event_id, order_id, dialog_id=dialog
                ),
                chat,
                "P",
                1,
                not_first(dialog),
            )
        with subtests.test(msg=f"visits, {label}"):
            visitor = f"racer-{len(apis)}"
            await check_race(
                one,
                apis,
                f"v{len(apis)}",
                lambda event_id, order_id, visitor=visitor: visit(event_id, order_id, visitor),
                back,
                "S",
                RACERS - 1,
                first_time(visitor),
            )
