"""``event`` timeline entries stored as references to their events (issue 17): the
event path writes them small, every read gives back the whole entry, migration 0006
converts stored ones (and its downgrade writes them whole again), on both databases."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from statusflow.store.database import Database, alembic_config, in_transaction, migrate
from statusflow.store.lists import timeline_page
from statusflow.store.timeline import is_reference, reference, whole

EVENT = {"type": "payment.received", "data": {"amount": 12.5, "currency": "EUR"}}


def test_a_reference_gives_back_only_what_its_event_gives_back() -> None:
    event = {"type": "call.incoming", "data": {"b": 1, "a": [2]}, "occurred_at": None}
    entry = {"event_id": "e1", "type": "call.incoming", "data": {"b": 1, "a": [2]}, "moved": True}
    ref = reference(entry, event)
    assert ref == {"event_id": "e1", "moved": True} and is_reference("event", ref)
    assert whole(ref, event) == entry and list(whole(ref, event)) == list(entry)
    timed = {**event, "occurred_at": "2026-01-01T00:00:00.000000Z"}
    assert reference(entry, timed) is None  # the event has a time the entry lacks
    assert reference({**entry, "data": {"a": [2], "b": 1}}, event) is None  # key order
    assert reference({**entry, "data": {"b": True, "a": [2]}}, event) is None  # 1 is not true
    assert reference({**entry, "extra": 1}, event) is None
    assert not is_reference("status_changed", {"event_id": "e1"})


async def _at_0005(url: str) -> None:
    from alembic import command

    await in_transaction(url, lambda sync: command.upgrade(alembic_config(sync), "0005"))


def _entry(event_id: str, moved: bool, data: dict[str, Any], occurred_at: str | None) -> str:
    entry = {"event_id": event_id, "type": EVENT["type"], "data": data, "moved": moved}
    if occurred_at:
        entry["occurred_at"] = occurred_at
    return json.dumps(entry)


async def test_migration_0006_makes_references_of_what_events_give_back(database_url) -> None:
    await _at_0005(database_url)
    at = "2026-12-01T10:00:00.000000Z"
    entries = [  # (event id, moved, data, occurred_at): as the event path wrote them
        ("e1", True, EVENT["data"], None),  # its event gives it back: a reference
        ("e2", False, EVENT["data"], "2026-11-30T09:00:00.000000Z"),  # with its time
        ("e1", False, {"amount": 1}, None),  # not its event's data: stays whole
        ("gone", False, EVENT["data"], None),  # its event expired: stays whole
    ]
    db = Database(database_url)
    try:
        async with db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO orders (id, status, doc, created_at, updated_at)"
                    " VALUES ('o1', 'N', '{}', :at, :at)"
                ),
                {"at": at},
            )
            for event_id, occurred in (("e1", None), ("e2", entries[1][3])):
                await conn.execute(
                    text(
                        "INSERT INTO events (id, type, order_id, contact, data, occurred_at,"
                        " received_at, result, moved) VALUES (:id, :type, 'o1', '{}', :data,"
                        " :occurred, :at, '{}', false)"
                    ),
                    {
                        "id": event_id,
                        "type": EVENT["type"],
                        "data": json.dumps(EVENT["data"]),
                        "occurred": occurred,
                        "at": at,
                    },
                )
            await conn.execute(
                text(
                    "INSERT INTO timeline (order_id, at, kind, data)"
                    " VALUES ('o1', :at, 'created', :data)"
                ),
                {"at": at, "data": json.dumps({"status": "N"})},
            )
            for event_id, moved, data, occurred in entries:
                await conn.execute(
                    text(
                        "INSERT INTO timeline (order_id, at, kind, data)"
                        " VALUES ('o1', :at, 'event', :data)"
                    ),
                    {"at": at, "data": _entry(event_id, moved, data, occurred)},
                )
        async with db.read() as conn:
            before = await conn.timeline("o1")
        await migrate(database_url)
        async with db.read() as conn:
            stored = [
                json.loads(r[0]) if isinstance(r[0], str) else r[0]
                for r in await conn.execute(text("SELECT data FROM timeline ORDER BY seq"))
            ]
            assert stored[1:] == [
                {"event_id": "e1", "moved": True},
                {"event_id": "e2", "moved": False},
                json.loads(_entry(*entries[2])),
                json.loads(_entry(*entries[3])),
            ]
            after = await conn.timeline("o1")
            assert json.dumps(after) == json.dumps(before)  # every key, in its order
            page = await timeline_page(conn, "o1", 2, after=None)
            assert [r["data"] for r in page] == [e["data"] for e in before[:3]]

        from alembic import command

        await in_transaction(
            database_url, lambda sync: command.downgrade(alembic_config(sync), "0005")
        )
        async with db.read() as conn:
            rows = await conn.execute(text("SELECT data FROM timeline ORDER BY seq"))
            whole_again = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]
            assert whole_again == [e["data"] for e in before]
    finally:
        await db.dispose()


async def test_the_event_path_stores_references_and_the_api_answers_whole(make_client) -> None:
    """A fan-out event's entries are stored small, one per order, and the timeline (whole
    and paged) answers each with the event's type, data and time."""
    from helpers import Api, event

    from statusflow.http.keys import DATABASE

    api = Api(await make_client())
    for order_id in ("r1", "r2"):
        await api.create_order(order_id, contact={"phones": ["+1 212 555 0100"]})
    body = event(
        "call.incoming",
        id="ev-ref",
        contact={"phone": "+1 212 555 0100"},
        data={"duration": 42},
        occurred_at="2026-11-30T09:00:00Z",
    )
    result = await api.post_events(body)
    assert sorted(result["order_ids"]) == ["r1", "r2"]
    async with api.client.app[DATABASE].read() as conn:
        rows = await conn.execute(text("SELECT order_id, data FROM timeline WHERE kind = 'event'"))
        stored = {r[0]: (json.loads(r[1]) if isinstance(r[1], str) else r[1]) for r in rows}
    assert stored == {o: {"event_id": "ev-ref", "moved": False} for o in ("r1", "r2")}
    for order_id in ("r1", "r2"):
        entries = [e for e in await api.timeline(order_id) if e["kind"] == "event"]
        assert len(entries) == 1 and list(entries[0]) == [
            "at", "kind", "event_id", "type", "data", "moved", "occurred_at"
        ]  # fmt: skip
        assert entries[0]["type"] == "call.incoming"
        assert entries[0]["data"] == {"duration": 42}
        assert entries[0]["occurred_at"].startswith("2026-11-30T09:00:00")
        page = await api.call("GET", f"/api/orders/{order_id}/timeline?limit=5")
        assert [e for e in page["items"] if e["kind"] == "event"] == entries
