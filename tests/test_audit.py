"""The audit log: every change to triggers, statuses and webhook endpoints, with the key
that made it, written in the change's transaction (a refused change leaves none),
secrets never kept; ``GET /api/audit`` pages newest first; one log line per entry."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from statusflow.http.keys import DATABASE
from statusflow.serving.api_keys import ApiKey
from statusflow.store.schema import AuditEntry
from tests.helpers import Api

AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
ADMIN = "admin-tok-5e6f7a8b9c0d"
OTHER_ADMIN = "admin-tok-0d9c8b7a6f5e"
KEYS = (
    ApiKey.from_token("ops", ADMIN, ["admin"]),
    ApiKey.from_token("alice", OTHER_ADMIN, ["admin"]),
)


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    return reused_database_url


@contextmanager
def rendered_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    old = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        yield out
    finally:
        structlog.configure(**old)


async def audit(api: Api, **params: str) -> dict[str, Any]:
    return dict(await api.call("GET", "/api/audit", params=params))


async def all_entries(api: Api) -> list[dict[str, Any]]:
    return list((await audit(api, limit="500"))["items"])


async def test_trigger_and_status_changes_are_audited_with_the_keys_name(make_client) -> None:
    client = await make_client(enable=("payment", "webhook"), keys=KEYS, tokens=("plain-tok",))
    api = Api(client)
    client.session.headers["Authorization"] = f"Bearer {ADMIN}"
    with rendered_logs() as logs:
        trigger = await api.create_trigger("P", "webhook.called", name="paid by hook")
        secret = trigger["webhook_url"].rsplit("/", 1)[-1]
        await api.call("PATCH", f"/api/triggers/{trigger['id']}", {"name": "renamed"})
        await api.call("PATCH", f"/api/triggers/{trigger['id']}", {"name": "renamed"})  # no-op
        client.session.headers["Authorization"] = f"Bearer {OTHER_ADMIN}"
        pipeline = await api.call("GET", "/api/statuses")
        extra = {"id": "R", "name": "Returned", "sort": 300, "semantics": "failure"}
        await api.call("PUT", "/api/statuses", [*pipeline, extra])
        await api.call("PUT", "/api/statuses", [*pipeline, extra])  # the same: no entry
        await api.call("DELETE", f"/api/triggers/{trigger['id']}", expect=204)
        client.session.headers["Authorization"] = "Bearer plain-tok"
        await api.trigger_id("F")
    entries = await all_entries(api)
    assert [(e["key_name"], e["action"], e["kind"]) for e in entries] == [
        ("token", "create", "trigger"),
        ("alice", "delete", "trigger"),
        ("alice", "replace", "statuses"),
        ("ops", "update", "trigger"),
        ("ops", "create", "trigger"),
    ]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    created, updated = entries[4], entries[3]
    assert created["resource_id"] == str(trigger["id"]) and created["before"] is None
    assert created["after"] == {
        "id": trigger["id"],
        "type": "webhook.called",
        "status": "P",
        "name": "paid by hook",
        "allow_backwards": False,
        "enabled": True,
        "settings": {},
        "conditions": [],
    }
    assert updated["before"]["name"] == "paid by hook" and updated["after"]["name"] == "renamed"
    assert entries[1]["before"]["name"] == "renamed" and entries[1]["after"] is None
    statuses = entries[2]
    assert statuses["resource_id"] is None
    assert statuses["before"] == pipeline and statuses["after"] == [*pipeline, extra]
    assert secret not in json.dumps(entries)  # the trigger's secret, in its webhook_url
    for entry in entries:
        assert entry["at"].endswith("Z")

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    audited = [line for line in lines if line.get("event") == "audit"]
    assert [(a["key_name"], a["action"], a["kind"]) for a in audited] == [
        (e["key_name"], e["action"], e["kind"]) for e in reversed(entries)
    ]
    assert all("before" not in a and "after" not in a for a in audited)
    assert secret not in logs.getvalue()


async def test_a_refused_change_leaves_no_entry(make_client) -> None:
    client = await make_client(enable=("payment",))
    api = Api(client)
    await api.create_order("o1")
    await api.call(
        "PUT",
        "/api/statuses",
        [{"id": "X", "name": "X", "sort": 1, "semantics": "process"}],
        expect=409,
    )
    await api.call("POST", "/api/triggers", {"type": "payment.received", "status": "Q"}, expect=422)
    await api.call("PATCH", "/api/triggers/12345", {"name": "x"}, expect=404)
    assert (await audit(api)) == {"items": [], "next": None}
    await api.trigger_id("P")
    (entry,) = (await audit(api))["items"]
    assert entry["key_name"] is None  # auth is off


async def test_webhook_endpoint_changes_are_audited_without_their_secret(make_client) -> None:
    client = await make_client(enable=("payment", "outgoing_webhooks"), keys=KEYS)
    api = Api(client)
    client.session.headers["Authorization"] = f"Bearer {ADMIN}"
    body = {"id": "ep1", "url": "https://example.com/hook", "secret": "whsec_" + "s" * 32}
    created = await api.call("POST", "/api/webhook-endpoints", body, expect=201)
    new_secret = "whsec_" + "n" * 32
    await api.call(
        "PATCH", "/api/webhook-endpoints/ep1", {"secret": new_secret, "description": "shop"}
    )
    await api.call("DELETE", "/api/webhook-endpoints/ep1", expect=204)
    entries = (await audit(api, kind="webhook_endpoint"))["items"]
    assert [(e["action"], e["resource_id"], e["key_name"]) for e in entries] == [
        ("delete", "ep1", "ops"),
        ("update", "ep1", "ops"),
        ("create", "ep1", "ops"),
    ]
    assert entries[2]["after"]["url"] == "https://example.com/hook"
    assert entries[1]["before"]["description"] == ""
    assert entries[1]["after"]["description"] == "shop"
    assert entries[1]["after"]["secret_changed"] is True
    text = json.dumps(entries)
    assert created["secret"] not in text and new_secret not in text
    async with client.app[DATABASE].read() as conn:
        stored = (await conn.execute(select(AUDIT.c.before, AUDIT.c.after))).all()
    assert created["secret"] not in str(stored) and new_secret not in str(stored)


async def test_the_audit_log_pages_newest_first_and_filters_by_kind(make_client) -> None:
    client = await make_client(enable=("payment",))
    api = Api(client)
    ids = [await api.trigger_id("P", name=f"t{i}") for i in range(5)]
    pipeline = await api.call("GET", "/api/statuses")
    await api.call("PUT", "/api/statuses", [{**s, "name": s["name"] + "!"} for s in pipeline])
    seen: list[dict[str, Any]] = []
    params = {"limit": "2"}
    pages = 0
    while True:
        page = await audit(api, **params)
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
        pages += 1
        if page["next"] is None:
            break
        params = {"limit": "2", "cursor": page["next"]}
    assert pages == 3 and len(seen) == 6
    assert [e["kind"] for e in seen] == ["statuses", *["trigger"] * 5]
    assert [int(e["resource_id"]) for e in seen[1:]] == ids[::-1]
    triggers = await audit(api, kind="trigger", limit="4")
    assert [int(e["resource_id"]) for e in triggers["items"]] == ids[:0:-1]
    rest = await audit(api, kind="trigger", cursor=triggers["next"])
    assert [int(e["resource_id"]) for e in rest["items"]] == ids[:1] and rest["next"] is None
    assert (await audit(api, kind="order"))["items"] == []

    for params in (
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "two"},
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJhdWRpdF9iZWxvdyI6LTF9"},  # a well-formed cursor of a bad id
        {"kind": "k" * 61},
    ):
        error = await api.error("GET", "/api/audit", expect=422, params=params)
        assert error["code"] == "bad_query_parameter"
        assert next(iter(params)) in error["message"]
