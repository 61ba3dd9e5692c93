"""SQLite decides an event group on a read snapshot, outside the write lock, and writes it
only if everything the decision read still reads the same; else it decides the group
again inside the lock. A plugin that writes while the group is being decided (through
``kernel.write()``, as another process would) makes what the group read stale."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import Api, event
from prometheus_client import REGISTRY
from sqlalchemy import text

from statusflow import hookimpl
from statusflow.plugins.chat import NAMESPACE, dialog_key
from statusflow.timestamps import utc_now

DECIDED_AGAIN = "statusflow_groups_decided_again_total"


class Meddler:
    """On the first event of type ``meddle_on``, writes ``write`` in a transaction of its
    own while the group is being decided (once)."""

    def __init__(self, meddle_on: str, write: Any) -> None:
        self.meddle_on = meddle_on
        self.write = write
        self.calls = 0

    @hookimpl
    async def inspect_event(self, event: Any, kernel: Any) -> None:
        if event.type != self.meddle_on:
            return
        self.calls += 1
        if self.calls == 1:
            async with kernel.write() as conn:
                await self.write(conn, event)


def decided_again() -> float:
    return REGISTRY.get_sample_value(DECIDED_AGAIN) or 0.0


@pytest.fixture
def sqlite_only(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite decides outside the write lock; PostgreSQL locks the orders")


async def test_an_order_moved_meanwhile_is_decided_again_on_its_new_status(
    make_client: Any, sqlite_only: None
) -> None:
    async def move_to_shipped(conn: Any, _event: Any) -> None:
        await conn.execute(
            text("UPDATE orders SET status = 'S', status_epoch = status_epoch + 1 WHERE id = 'o1'")
        )

    meddler = Meddler("payment.received", move_to_shipped)
    api = Api(await make_client(extra_plugins=[("meddler", meddler)]))
    await api.create_order("o1")
    await api.trigger_id("P", "payment.received")
    before = decided_again()
    result = await api.call("POST", "/api/events", event(order_id="o1", id="e1"))
    assert meddler.calls == 2  # decided on the snapshot, then again in the lock
    assert decided_again() == before + 1
    assert result["moves"] == []  # Paid is behind Shipped: the stale decision moved it
    assert await api.status_of("o1") == "S"
    stored = await api.get_event("e1")
    assert [entry["outcome"] for entry in stored["trace"]] == ["skipped"]


async def test_a_mark_claimed_meanwhile_is_no_longer_first(
    make_client: Any, sqlite_only: None
) -> None:
    async def claim_the_dialog(conn: Any, chat_event: Any) -> None:
        await conn.claim(NAMESPACE, dialog_key(chat_event), utc_now())

    meddler = Meddler("chat.message", claim_the_dialog)
    api = Api(await make_client(extra_plugins=[("meddler", meddler)]))
    await api.create_order("o1")
    await api.trigger_id("P", "chat.first_message")
    before = decided_again()
    body = event("chat.message", id="m1", order_id="o1", data={"dialog_id": "d1"})
    result = await api.call("POST", "/api/events", body)
    assert decided_again() == before + 1
    assert result["moves"] == []  # the dialog's first message was claimed by the meddler
    assert await api.status_of("o1") == "N"


async def test_a_group_nobody_disturbed_is_written_as_decided(
    make_client: Any, sqlite_only: None
) -> None:
    async def nothing(_conn: Any, _event: Any) -> None:
        return None

    meddler = Meddler("payment.received", nothing)
    api = Api(await make_client(extra_plugins=[("meddler", meddler)]))
    await api.create_order("o1")
    await api.trigger_id("P", "chat.first_message")
    await api.trigger_id("S", "payment.received")
    before = decided_again()
    first = await api.call(
        "POST", "/api/events", event("chat.message", id="m1", order_id="o1", data={})
    )
    paid = await api.call("POST", "/api/events", event(order_id="o1", id="e1"))
    assert decided_again() == before
    assert meddler.calls == 1
    assert [m["to"] for m in first["moves"]] == ["P"]
    assert [m["to"] for m in paid["moves"]] == ["S"]
    again = await api.call(
        "POST", "/api/events", event("chat.message", id="m2", order_id="o1", data={})
    )
    assert again["moves"] == []  # the dialog's mark was written with the first group


async def test_two_instances_racing_on_the_same_orders_move_each_once(make_client: Any) -> None:
    """Two instances on one database (two write gates, as two processes have) get the
    same orders' events at once: each order moves exactly once, whichever decided first,
    and its other event answers that it is already there."""
    import asyncio

    one = Api(await make_client())
    two = Api(await make_client())
    orders = [f"o{i}" for i in range(30)]
    await one.create_orders({o: {} for o in orders})
    trigger = await one.trigger_id("P", "payment.received")
    posts = [
        api.post_events(event(order_id=o, id=f"{o}-{n}"))
        for o in orders
        for n, api in enumerate((one, two))
    ]
    results = await asyncio.gather(*posts)
    for order_id in orders:
        moves = [m for r in results for m in r["moves"] if m["order_id"] == order_id]
        assert moves == [{"order_id": order_id, "from": "N", "to": "P", "trigger_id": trigger}]
        timeline = await one.call("GET", f"/api/orders/{order_id}/timeline")
        changes = [e for e in timeline if e["kind"] == "status_changed"]
        assert len(changes) == 1, timeline
    assert set((await one.statuses_of(orders)).values()) == {"P"}
