"""Several app instances on one database see each other's trigger and status changes."""

from __future__ import annotations

from tests.helpers import Api, event


async def test_a_trigger_created_on_one_instance_acts_on_another(make_client):
    a = Api(await make_client())
    b = Api(await make_client())
    await a.create_order("o1")
    await a.create_order("o2")
    first = await b.call("POST", "/api/events", event(order_id="o1", id="e0"))
    assert first["moves"] == []  # b has now cached "no triggers"
    trigger = await a.call(
        "POST", "/api/triggers", {"type": "payment.received", "status": "P"}, expect=201
    )
    second = await b.call("POST", "/api/events", event(order_id="o2", id="e1"))
    assert second["moves"] == [
        {"order_id": "o2", "from": "N", "to": "P", "trigger_id": trigger["id"]}
    ]
    await a.call("PATCH", f"/api/triggers/{trigger['id']}", {"status": "S"})
    await a.create_order("o3")
    third = await b.call("POST", "/api/events", event(order_id="o3", id="e2"))
    assert [m["to"] for m in third["moves"]] == ["S"]
    await a.call("DELETE", f"/api/triggers/{trigger['id']}", expect=204)
    await a.create_order("o4")
    fourth = await b.call("POST", "/api/events", event(order_id="o4", id="e3"))
    assert fourth["moves"] == []


async def test_a_pipeline_change_on_one_instance_acts_on_another(make_client):
    a = Api(await make_client())
    b = Api(await make_client())
    await a.create_order("o1")
    await a.call("POST", "/api/triggers", {"type": "payment.received", "status": "P"}, expect=201)
    await b.call("POST", "/api/events", event(order_id="o1", id="e0", type="payment.received"))
    statuses = await a.call("GET", "/api/statuses")
    for status in statuses:
        if status["id"] == "N":
            status["sort"] = 160  # New now comes after Paid
    await a.call("PUT", "/api/statuses", statuses)
    await a.create_order("o2", status="N")
    result = await b.call("POST", "/api/events", event(order_id="o2", id="e1"))
    assert result["moves"] == []  # P is now backwards from N
