"""The README's walk-through: a trigger on Paid, a payment, the order moves."""

from __future__ import annotations


async def test_payment_moves_order_to_paid(client):
    assert (await client.post("/api/orders", json={"id": "o1"})).status == 201
    trigger = await (
        await client.post("/api/triggers", json={"type": "payment.received", "status": "P"})
    ).json()
    response = await client.post(
        "/api/events",
        json={"id": "e1", "type": "payment.received", "order_id": "o1", "data": {"amount": 10}},
    )
    assert response.status == 200
    result = await response.json()
    assert result == {
        "event_id": "e1",
        "duplicate": False,
        "order_ids": ["o1"],
        "moves": [{"order_id": "o1", "from": "N", "to": "P", "trigger_id": trigger["id"]}],
    }
    order = await (await client.get("/api/orders/o1")).json()
    assert order["status"] == "P"
    kinds = [e["kind"] for e in await (await client.get("/api/orders/o1/timeline")).json()]
    assert kinds == ["created", "event", "status_changed"]
