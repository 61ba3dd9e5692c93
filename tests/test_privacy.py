"""Privacy and retention (docs/api.md): ``DELETE /api/orders/{id}``, ``POST
/api/contacts/erase`` and ``[retention] events_days``, on SQLite and PostgreSQL, each in
the audit log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update

from statusflow.http.keys import DATABASE
from statusflow.serving.retention import cutoff_for, expire_old_events
from statusflow.store import privacy
from statusflow.store.schema import (
    EventRecord,
    MoveRecord,
    Order,
    OrderIdentifier,
    PluginMark,
    TimelineEntry,
)
from tests.helpers import Api, event, until

EVENTS = EventRecord.__table__  # type: ignore[attr-defined]
TIMELINE = TimelineEntry.__table__  # type: ignore[attr-defined]
MOVES = MoveRecord.__table__  # type: ignore[attr-defined]
TABLES = (
    Order.__table__,  # type: ignore[attr-defined]
    OrderIdentifier.__table__,  # type: ignore[attr-defined]
    EVENTS,
    TIMELINE,
    PluginMark.__table__,  # type: ignore[attr-defined]
)

PHONE = "+14155550100"
WRITTEN = "(415) 555-0100"  # the same phone, as a store might write it
EMAIL = "Ada.Lovelace@Example.com"
OTHER_PHONE = "+14155550199"


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    return reused_database_url


async def dump(api: Api) -> str:
    """Every row of the tables that may hold personal data, as text."""
    rows = []
    async with api.client.app[DATABASE].read() as conn:
        for table in TABLES:
            rows.extend(tuple(row) for row in (await conn.execute(select(table))).all())
    return str(rows)


async def last_audit(api: Api) -> dict[str, Any]:
    return dict((await api.call("GET", "/api/audit", params={"limit": "1"}))["items"][0])


# --- DELETE /api/orders/{id} -------------------------------------------------------------


async def test_deleting_an_order_removes_it_its_timeline_and_its_own_events(make_client) -> None:
    api = Api(await make_client(enable=("payment",)))
    contact = {"phones": [PHONE], "emails": [EMAIL]}
    await api.create_order("o1", contact=contact, amount=10)
    await api.create_order("o2", contact={"phones": [PHONE]})
    await api.create_order("o3")
    trigger = await api.trigger_id("P")
    await api.post_events(event(id="only-o1", order_id="o1"))
    shared = await api.post_events(event(id="shared", contact={"phone": WRITTEN}))
    assert sorted(shared["order_ids"]) == ["o1", "o2"] and len(shared["moves"]) == 1
    await api.post_events(event(id="only-o3", order_id="o3"))

    await api.call("DELETE", "/api/orders/o1", expect=204)

    assert (await api.error("GET", "/api/orders/o1", expect=404))["code"] == "order_not_found"
    await api.call("GET", "/api/orders/o1/timeline", expect=404)
    await api.get_event("only-o1", expect=404)
    kept = await api.get_event("shared")
    assert kept["order_ids"] == ["o2"]
    assert [m["order_id"] for m in kept["moves"]] == ["o2"]
    assert {t["order_id"] for t in kept["trace"]} == {"o2"}
    assert kept["trace"][0]["trigger_id"] == trigger
    assert (await api.get_event("only-o3"))["order_ids"] == ["o3"]
    moves = await api.call("GET", "/api/moves", params={"after": "0"})
    assert {m["order_id"] for m in moves["moves"]} == {"o2", "o3"}
    # the order's identifiers are gone: an event by the phone reaches o2 only
    again = await api.post_events(event(contact={"phone": PHONE}))
    assert again["order_ids"] == ["o2"]
    text = await dump(api)
    assert "'o1'" not in text and EMAIL.lower() not in text.lower()

    entry = await last_audit(api)
    assert (entry["action"], entry["kind"], entry["resource_id"]) == ("delete", "order", "o1")
    assert set(entry["before"]) == {"id", "status", "created_at", "updated_at"}
    assert entry["after"] is None
    assert PHONE not in str(entry)

    await api.call("DELETE", "/api/orders/o1", expect=404)
    await api.call("DELETE", "/api/orders/nobody", expect=404)
    # the id is free again, and a deleted event's id may be sent again
    await api.create_order("o1")
    assert (await api.post_events(event(id="only-o1", order_id="o1")))["duplicate"] is False


# --- POST /api/contacts/erase ------------------------------------------------------------


async def test_erasing_a_person_removes_their_phone_and_email_everywhere(make_client) -> None:
    api = Api(await make_client(enable=("payment", "chat")))
    await api.create_order(
        "o1",
        contact={"id": "c1", "name": "Ada", "phones": [WRITTEN, OTHER_PHONE], "emails": [EMAIL]},
        fields={"note": f"call {WRITTEN} or write to {EMAIL.upper()}", "ref": "r-1"},
    )
    await api.create_order("o2", company={"emails": [EMAIL.lower()]}, visitor_ids=["v1"])
    await api.create_order("o3", contact={"phones": [OTHER_PHONE]})
    trigger = await api.trigger_id(
        "P", conditions=[{"field": "event.payer", "op": "eq", "value": "someone else"}]
    )
    await api.post_events(
        event(id="paid", contact={"phone": PHONE}, data={"payer": EMAIL, "amount": 5})
    )
    await api.post_events(
        event(
            "chat.message",
            id="chat",
            contact={"phone": WRITTEN, "visitor_id": "v1"},
            data={"text": f"it's me, {WRITTEN}, mail {EMAIL}", "channel_id": "wa"},
        )
    )
    await api.post_events(event(id="unrelated", order_id="o3", data={"payer": "Bob"}))
    before = await dump(api)
    assert WRITTEN in before and EMAIL in before
    assert any(t["reason"].count(EMAIL) for t in (await api.get_event("paid"))["trace"])

    counts = await api.call(
        "POST", "/api/contacts/erase", {"phone": "415 555 0100", "email": EMAIL}
    )

    assert counts == {
        "orders": 2,
        "identifiers": 3,  # o1's phone and email, o2's email
        "events": 2,
        "timeline_entries": counts["timeline_entries"],
        "plugin_marks": 1,  # the chat dialog keyed by the phone
    }
    assert counts["timeline_entries"] >= 2
    text = await dump(api)
    for gone in (PHONE, WRITTEN, EMAIL, EMAIL.lower(), EMAIL.upper()):
        assert gone not in text, gone
    o1 = await api.order("o1")
    assert o1["contact"] == {"id": "c1", "name": "Ada", "phones": [OTHER_PHONE], "emails": []}
    assert o1["fields"] == {"note": "call [erased] or write to [erased]", "ref": "r-1"}
    assert (await api.order("o2"))["company"] == {"emails": []}
    paid = await api.get_event("paid")
    assert paid["contact"] == {} and paid["data"] == {"payer": "[erased]", "amount": 5}
    assert paid["order_ids"] == ["o1"]  # what the trace and moves need stays
    assert [(t["order_id"], t["trigger_id"], t["outcome"]) for t in paid["trace"]] == [
        ("o1", trigger, "skipped")
    ]
    assert "[erased]" in paid["trace"][0]["reason"]
    chat = await api.get_event("chat")
    assert chat["contact"] == {"visitor_id": "v1"}
    assert chat["data"]["text"] == "it's me, [erased], mail [erased]"
    unrelated = await api.get_event("unrelated")
    assert unrelated["data"] == {"payer": "Bob"}
    timeline = await api.timeline("o1")
    assert any(e.get("data") == {"payer": "[erased]", "amount": 5} for e in timeline)
    nothing = await api.call("POST", "/api/contacts/erase", {"email": EMAIL})  # done already
    assert nothing == dict.fromkeys(counts, 0)
    # the orders are no longer found by the erased identifiers, still by the others
    assert (await api.post_events(event(contact={"phone": PHONE})))["order_ids"] == []
    assert (await api.post_events(event(contact={"email": EMAIL})))["order_ids"] == []
    found = await api.post_events(event(contact={"phone": OTHER_PHONE}))
    assert sorted(found["order_ids"]) == ["o1", "o3"]

    first, second = (await api.call("GET", "/api/audit", params={"kind": "contact"}))["items"][::-1]
    assert (first["action"], first["kind"], first["resource_id"]) == ("erase", "contact", None)
    assert first["after"] == counts and second["after"] == nothing
    entry = first
    assert "0100" not in str(entry) and "lovelace" not in str(entry).lower()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "give the phone, the email or both"),
        ({"phone": "not a phone"}, "phone is not a phone number"),
        ({"email": "nobody"}, "email is not an email address"),
        ({"email": EMAIL, "name": "Ada"}, "name"),
        ({"phone": 4155550100}, "phone"),
        ([], "JSON object"),
    ],
)
async def test_a_bad_erasure_is_a_422_and_changes_nothing(make_client, body, fragment) -> None:
    api = Api(await make_client(enable=("payment",)))
    await api.create_order("o1", contact={"phones": [PHONE], "emails": [EMAIL]})
    error = await api.error("POST", "/api/contacts/erase", body, expect=422)
    assert fragment in error["message"], error
    assert (await api.order("o1"))["contact"]["phones"] == [PHONE]
    assert (await api.call("GET", "/api/audit"))["items"] == []


def test_an_erasers_patterns_find_the_phone_however_it_is_written() -> None:
    eraser = privacy.Eraser("+33612345678", "a_b%c@x.fr", "FR")
    assert eraser.patterns() == ["%a\\_b\\%c@x.fr%", "%5678%", "%56_78%"]
    for written in ("06 12 34 56 78", "+33 6 12 34 56 78", "0612345678", "06.12.34.56.78"):
        assert eraser.is_phone(written), written
    assert not eraser.is_phone("06 12 34 56 79")
    assert eraser.scrub({"x": ["A_B%C@X.FR", 7, None]}) == {"x": ["[erased]", 7, None]}


# --- retention ---------------------------------------------------------------------------


async def age(api: Api, event_ids: list[str], received_at: str) -> None:
    """Make the events (and their timeline entries) look received at ``received_at``."""
    async with api.client.app[DATABASE].write() as conn:
        for event_id in event_ids:
            await conn.execute(
                update(EVENTS).where(EVENTS.c.id == event_id).values(received_at=received_at)
            )
        rows = (await conn.execute(select(TIMELINE.c.seq, TIMELINE.c.data))).all()
        for row in rows:
            if (row.data or {}).get("event_id") in event_ids:
                await conn.execute(
                    update(TIMELINE).where(TIMELINE.c.seq == row.seq).values(at=received_at)
                )


async def event_ids(api: Api) -> list[str]:
    async with api.client.app[DATABASE].read() as conn:
        return sorted((await conn.execute(select(EVENTS.c.id))).scalars().all())


async def test_retention_deletes_old_events_and_their_entries_in_batches(make_client) -> None:
    client = await make_client(enable=("payment",))
    api = Api(client)
    await api.create_order("o1")
    await api.create_order("o2")
    await api.trigger_id("P")
    old = [f"old-{i}" for i in range(5)]
    for event_id in old:
        await api.post_events(event(id=event_id, order_id="o1" if event_id < "old-3" else "o2"))
    await api.post_events(event(id="new", order_id="o2"))
    await age(api, old, "2020-01-01T00:00:00.000000Z")

    # one batch: the two oldest go, and the batch says more may remain
    async with client.app[DATABASE].write() as conn:
        done = await privacy.expire_events(conn, cutoff_for(30), 2)
    assert done == (2, 3, True)  # both of o1's old entries go with the first batch... of o1
    assert await event_ids(api) == ["new", "old-2", "old-3", "old-4"]

    assert await expire_old_events(client.app[DATABASE], days=30, batch=2, pause=0) == (3, 2)
    assert await event_ids(api) == ["new"]
    kinds = {o: await api.timeline_kinds(o) for o in ("o1", "o2")}
    assert kinds == {
        "o1": ["created", "status_changed"],
        "o2": ["created", "status_changed", "event"],
    }
    await api.get_event("old-4", expect=404)
    assert (await api.order("o1"))["status"] == "P"  # moves stay
    entry = await last_audit(api)
    assert (entry["action"], entry["kind"], entry["key_name"]) == ("expire", "events", None)
    assert entry["after"] == {
        "events": 3,
        "timeline_entries": 2,
        "received_before": entry["after"]["received_before"],
    }
    assert await expire_old_events(client.app[DATABASE], days=30) == (0, 0)  # nothing left
    assert (await api.call("GET", "/api/audit", params={"kind": "events"}))["items"] == [entry]


async def test_the_server_expires_old_events_in_the_background(make_client) -> None:
    first = Api(await make_client(enable=("payment",)))
    await first.create_order("o1")
    for i in range(7):
        await first.post_events(event(id=f"e{i}", order_id="o1"))
    await age(first, ["e0", "e1", "e2"], "2020-01-01T00:00:00.000000Z")

    api = Api(await make_client(enable=("payment",), events_days=30))  # same database
    kept = [f"e{i}" for i in range(3, 7)]

    async def expired() -> bool:
        return await event_ids(api) == kept

    await until(expired, "the three old events to expire")
    await api.post_events(event(id="e7", order_id="o1"))  # the event path goes on
    assert len(await api.timeline("o1")) == 1 + 5  # created, and four events and one more


async def test_events_keep_flowing_while_retention_runs(make_client) -> None:
    """A run of many small batches and a stream of events, at once: every event is
    answered and stored, and the run deletes exactly the old ones."""
    client = await make_client(enable=("payment",))
    api = Api(client)
    await api.create_order("o1")
    old = [f"old-{i:03}" for i in range(60)]
    await api.post_events([event(id=i, order_id="o1") for i in old])
    await age(api, old, "2020-01-01T00:00:00.000000Z")

    async def post_new() -> None:
        for i in range(30):
            await api.post_events(event(id=f"new-{i:03}", order_id="o1"))

    run = expire_old_events(client.app[DATABASE], days=30, batch=3, pause=0)
    expired, _ = await asyncio.gather(run, post_new())
    assert expired == (60, 60)
    assert await event_ids(api) == [f"new-{i:03}" for i in range(30)]
