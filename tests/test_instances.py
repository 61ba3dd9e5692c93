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


async def test_events_go_on_after_postgresql_drops_the_connections(make_client, database_url):
    """The event path's own connections (and the admin API's pool) survive a server that
    closed them: the next event is processed, not answered with a 500."""
    if not database_url.startswith("postgresql"):
        return  # SQLite has no server to drop connections
    import asyncpg

    api = Api(await make_client())
    await api.create_order("o1")
    await api.create_order("o2")
    await api.call("POST", "/api/triggers", {"type": "payment.received", "status": "P"}, expect=201)
    first = await api.call("POST", "/api/events", event(order_id="o1", id="e1"))
    assert [m["to"] for m in first["moves"]] == ["P"]
    await api.call(  # the dry runs' reader connection is idle in its pool now
        "POST", "/api/events", event(order_id="o2", id="e0"), params={"dry_run": "true"}
    )
    admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert dropped >= 1  # at least the event writer's connection
    second = await api.call("POST", "/api/events", event(order_id="o2", id="e2"))
    assert [m["to"] for m in second["moves"]] == ["P"]
    dry = await api.call(
        "POST", "/api/events", event(order_id="o1", id="e3"), params={"dry_run": "true"}
    )
    assert dry["dry_run"] is True
