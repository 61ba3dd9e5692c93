"""Contract §4: every kernel endpoint, its happy path and each documented error.

Every rejected request is followed by a re-read of what it could have changed. Plugin
routes (``/hooks``, ``/t``, ``/api/tracking-links``) are tested with their plugins.
"""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime
from typing import Any

import jsonschema
import orjson
import pytest
from openapi_spec_validator import validate as validate_openapi

from tests.helpers import BUILT_IN_PLUGINS, assert_error_shape


@pytest.fixture
def database_url(reused_database_url):
    """A fresh SQLite file, then the session's PostgreSQL database emptied (faster)."""
    return reused_database_url


DEFAULT_PIPELINE = [
    {"id": "N", "name": "New", "sort": 100, "semantics": "process"},
    {"id": "P", "name": "Paid", "sort": 150, "semantics": "process"},
    {"id": "S", "name": "Shipped", "sort": 175, "semantics": "process"},
    {"id": "F", "name": "Completed", "sort": 200, "semantics": "success"},
    {"id": "D", "name": "Canceled", "sort": 250, "semantics": "failure"},
]
PLUGIN_NAMES = BUILT_IN_PLUGINS
ORDER_KEYS = {
    "id",
    "status",
    "responsible_id",
    "amount",
    "currency",
    "contact",
    "company",
    "visitor_ids",
    "fields",
}
PAID_TRIGGER = {"type": "payment.received", "status": "P"}
EV = {"type": "payment.received", "order_id": "o1"}
# (method, path) of every kernel route of contract §4
KERNEL_ROUTES = [
    ("GET", "/healthz"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/plugins"),
    ("GET", "/api/trigger-types"),
    ("GET", "/api/statuses"),
    ("PUT", "/api/statuses"),
    ("POST", "/api/orders"),
    ("GET", "/api/orders/{id}"),
    ("PATCH", "/api/orders/{id}"),
    ("GET", "/api/orders/{id}/timeline"),
    ("POST", "/api/triggers"),
    ("GET", "/api/triggers"),
    ("GET", "/api/triggers/{id}"),
    ("PATCH", "/api/triggers/{id}"),
    ("DELETE", "/api/triggers/{id}"),
    ("POST", "/api/events"),
    ("GET", "/api/events/{id}"),
]


# --- helpers -----------------------------------------------------------------------------


async def call(
    client: Any, method: str, path: str, body: Any = ..., *, raw: Any = None, **kwargs: Any
) -> tuple[int, Any]:
    """Send a request; answer ``(status, parsed JSON body or None)``."""
    if body is not ...:
        kwargs["data"] = io.BytesIO(dumps(body))
        kwargs.setdefault("headers", {})["Content-Type"] = "application/json"
    elif raw is not None:
        kwargs["data"] = raw
    response = await client.request(method, path, **kwargs)
    text = await response.text()
    if not text:
        return response.status, None
    assert response.content_type == "application/json", (response.status, text[:200])
    return response.status, json.loads(text)


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value``, however deep (the tests send 1000 levels)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        return json.dumps(value).encode()
    finally:
        sys.setrecursionlimit(limit)


def show(body: Any) -> str:
    """A short printable form of a request body."""
    return "" if body is ... else dumps(body)[:200].decode(errors="replace")


def assert_error(status: int, body: Any, expected: int, *, where: str = "") -> dict[str, Any]:
    """The answer is the contract's JSON error with ``expected`` status."""
    assert status == expected, f"{where}: expected {expected}, got {status}: {body}"
    assert isinstance(body, dict) and set(body) == {"error"}, f"{where}: {body}"
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, f"{where}: {body}"
    assert isinstance(error["code"], str) and error["code"], f"{where}: {body}"
    assert isinstance(error["message"], str) and error["message"], f"{where}: {body}"
    assert_error_shape(body, error["code"])  # a code of the table, details a list
    return error


async def expect_error(
    client: Any, method: str, path: str, body: Any = ..., expected: int = 422, **kwargs: Any
) -> dict[str, Any]:
    status, answer = await call(client, method, path, body, **kwargs)
    return assert_error(status, answer, expected, where=f"{method} {path} {show(body)}")


async def ok(client: Any, method: str, path: str, body: Any = ..., expected: int = 200) -> Any:
    status, answer = await call(client, method, path, body)
    assert status == expected, f"{method} {path}: {status} {answer}"
    return answer


async def expect_rejections(
    client: Any,
    method: str,
    path: str,
    cases: list[tuple[Any, str | None]],
    *,
    expected: int = 422,
    orders: tuple[str, ...] = (),
    events: tuple[str, ...] = (),
) -> None:
    """Each ``(body, needle)`` gets ``expected`` naming ``needle``, and changes nothing."""
    before = await snapshot(client, orders, events)
    failures = []
    for body, needle in cases:
        status, answer = await call(client, method, path, body)
        try:
            error = assert_error(status, answer, expected, where=f"{method} {path} {show(body)}")
            if needle is not None:
                assert needle in error["message"] + json.dumps(error["details"]), needle
            assert await snapshot(client, orders, events) == before, "it changed something"
        except AssertionError as exc:
            failures.append(f"{show(body)}: {exc}"[:500])
    assert not failures, "\n".join(failures)


async def snapshot(
    client: Any, orders: tuple[str, ...] = (), events: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Everything a rejected request could have changed, as the API shows it."""
    state: dict[str, Any] = {
        "statuses": await call(client, "GET", "/api/statuses"),
        "triggers": await call(client, "GET", "/api/triggers"),
    }
    for order_id in orders:
        state[f"order {order_id}"] = await call(client, "GET", f"/api/orders/{order_id}")
        state[f"timeline {order_id}"] = await call(
            client, "GET", f"/api/orders/{order_id}/timeline"
        )
    for event_id in events:
        state[f"event {event_id}"] = await call(client, "GET", f"/api/events/{event_id}")
    return state


def is_utc_iso(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0


# --- health, errors, limits ----------------------------------------------------------------


async def test_healthz_and_json_errors_for_unknown_routes(client):
    assert await ok(client, "GET", "/healthz") == {"status": "ok"}
    # no token configured: none is needed, and one sent is ignored
    status, _ = await call(client, "GET", "/api/statuses", headers={"Authorization": "Bearer x"})
    assert status == 200
    for path in ("/api/nope", "/nope", "/api/orders/o1/x", "/api/triggers/1/x", "/api/"):
        error = await expect_error(client, "GET", path, expected=404)
        assert error["code"] == "not_found"
    await expect_error(client, "PUT", "/api/orders/o1", {"id": "o1"}, expected=405)
    await expect_error(client, "DELETE", "/api/statuses", expected=405)
    await expect_error(client, "DELETE", "/api/orders", expected=405)


BODY_ROUTES = [
    ("PUT", "/api/statuses"),
    ("POST", "/api/orders"),
    ("PATCH", "/api/orders/o1"),
    ("POST", "/api/triggers"),
    ("PATCH", "/api/triggers/{trigger}"),
    ("POST", "/api/events"),
    ("POST", "/api/events?dry_run=true"),
]


async def _with_order_and_trigger(client: Any) -> int:
    await ok(client, "POST", "/api/orders", {"id": "o1", "amount": 5}, 201)
    trigger = await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    return int(trigger["id"])


MALFORMED = [
    b"{",
    b"{'id': 'x'}",
    b"[1, 2",
    b"nul",
    b'{"id": "x",}',
    b'{"id": NaN}',
    b'{"id": "\\ud800"}',
    b"\xff\xfe",
    b"[" * 5000 + b"]" * 5000,
    b"",
    b"   ",
]


async def test_malformed_json_is_400_and_changes_nothing(client):
    trigger_id = await _with_order_and_trigger(client)
    before = await snapshot(client, orders=("o1",))
    for method, path in BODY_ROUTES:
        path = path.format(trigger=trigger_id)
        for raw in MALFORMED:
            status, body = await call(
                client, method, path, raw=raw, headers={"Content-Type": "application/json"}
            )
            error = assert_error(status, body, 400, where=f"{method} {path} {raw[:20]!r}")
            assert error["code"] == "malformed_json"
    assert await snapshot(client, orders=("o1",)) == before


async def test_body_over_max_body_bytes_is_413_and_changes_nothing(make_client):
    client = await make_client(enable=("payment",), max_body_bytes=1000)
    trigger_id = await _with_order_and_trigger(client)
    before = await snapshot(client, orders=("o1",), events=("big",))
    big = "x" * 1200
    bodies = {
        ("PUT", "/api/statuses"): [{**s, "name": big} for s in DEFAULT_PIPELINE],
        ("POST", "/api/orders"): {"id": "o2", "fields": {"note": big}},
        ("PATCH", "/api/orders/o1"): {"fields": {"note": big}},
        ("POST", "/api/triggers"): {**PAID_TRIGGER, "name": big},
        ("PATCH", f"/api/triggers/{trigger_id}"): {"name": big},
        ("POST", "/api/events"): {
            "id": "big",
            "type": "payment.received",
            "order_id": "o1",
            "data": {"method": big[:200], "x": big},
        },
    }
    for (method, path), body in bodies.items():
        error = await expect_error(client, method, path, body, expected=413)
        assert error["code"] == "body_too_large"
    # a chunked body (no Content-Length) is cut off the same way

    async def chunks():
        yield b'{"id": "o3", "fields": {"note": "'
        for _ in range(20):
            yield b"y" * 100
        yield b'"}}'

    status, body = await call(
        client, "POST", "/api/orders", raw=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(status, body, 413, where="chunked")
    assert await snapshot(client, orders=("o1",), events=("big",)) == before
    for order_id in ("o2", "o3"):
        await expect_error(client, "GET", f"/api/orders/{order_id}", expected=404)
    # under the limit is fine
    await ok(client, "POST", "/api/orders", {"id": "o2", "fields": {"note": "x" * 800}}, 201)


async def test_default_max_body_bytes_is_one_mebibyte(make_client):
    client = await make_client(enable=("payment",))
    envelope = len(json.dumps({"id": "o1", "fields": {"n": ""}}))
    too_big = {"id": "o1", "fields": {"n": "x" * (1_048_576 - envelope + 1)}}
    assert len(json.dumps(too_big)) == 1_048_577
    await expect_error(client, "POST", "/api/orders", too_big, expected=413)
    await expect_error(client, "GET", "/api/orders/o1", expected=404)
    fits = {"id": "o1", "fields": {"n": "x" * (1_048_576 - envelope)}}
    await ok(client, "POST", "/api/orders", fits, 201)


# --- auth ----------------------------------------------------------------------------------


def _auth_requests(trigger_id: int) -> list[tuple[str, str, Any, int]]:
    """(method, path, body, status with the right token) for every kernel /api route."""
    return [
        ("GET", "/api/openapi.json", ..., 200),
        ("GET", "/api/plugins", ..., 200),
        ("GET", "/api/trigger-types", ..., 200),
        ("GET", "/api/statuses", ..., 200),
        ("PUT", "/api/statuses", DEFAULT_PIPELINE, 200),
        ("POST", "/api/orders", {"id": "o2"}, 201),
        ("GET", "/api/orders/o1", ..., 200),
        ("PATCH", "/api/orders/o1", {"amount": 7}, 200),
        ("GET", "/api/orders/o1/timeline", ..., 200),
        ("POST", "/api/triggers", PAID_TRIGGER, 201),
        ("GET", "/api/triggers", ..., 200),
        ("GET", f"/api/triggers/{trigger_id}", ..., 200),
        ("PATCH", f"/api/triggers/{trigger_id}", {"name": "renamed"}, 200),
        (
            "POST",
            "/api/events?dry_run=true",
            {"id": "e2", "type": "payment.received", "order_id": "o1"},
            200,
        ),
        ("POST", "/api/events", {"id": "e1", "type": "payment.received", "order_id": "o1"}, 200),
        ("GET", "/api/events/e1", ..., 200),
        ("GET", "/api/nope", ..., 404),
        ("DELETE", f"/api/triggers/{trigger_id}", ..., 204),
    ]


async def test_auth_tokens_guard_every_api_route(make_client):
    client = await make_client(enable=("payment",), tokens=("secret", "other"))
    good = {"Authorization": "Bearer secret"}
    status, _ = await call(client, "POST", "/api/orders", {"id": "o1"}, headers=good)
    assert status == 201
    status, trigger = await call(client, "POST", "/api/triggers", PAID_TRIGGER, headers=good)
    assert status == 201
    requests = _auth_requests(trigger["id"])
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer secretx"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer"},
        {"Authorization": "secret"},
        {"Authorization": "Basic c2VjcmV0OnNlY3JldA=="},
        {"Authorization": "Token secret"},
        {"X-Api-Token": "secret"},
    ]
    for headers in bad_headers:
        for method, path, body, _ in requests:
            status, answer = await call(client, method, path, body, headers=dict(headers))
            error = assert_error(status, answer, 401, where=f"{method} {path} {headers}")
            assert error["code"] == "unauthorized"
    # /healthz never needs a token
    status, answer = await call(client, "GET", "/healthz")
    assert (status, answer) == (200, {"status": "ok"})
    # nothing the refused calls carried happened
    status, order = await call(client, "GET", "/api/orders/o1", headers=good)
    assert status == 200 and order["amount"] is None and order["status"] == "N"
    status, _ = await call(client, "GET", "/api/orders/o2", headers=good)
    assert status == 404
    status, _ = await call(client, "GET", "/api/events/e1", headers=good)
    assert status == 404
    status, triggers = await call(client, "GET", "/api/triggers", headers=good)
    assert [t["name"] for t in triggers] == [""]
    # the right token passes on every route; any configured token does
    for index, (method, path, body, expected) in enumerate(requests):
        token = "secret" if index % 2 else "other"
        status, answer = await call(
            client, method, path, body, headers={"Authorization": f"Bearer {token}"}
        )
        assert status == expected, (method, path, status, answer)


# --- meta: openapi, plugins, trigger types --------------------------------------------------


async def test_openapi_document_is_valid_and_lists_every_route(client, make_client):
    document = await ok(client, "GET", "/api/openapi.json")
    assert document["openapi"].startswith("3.")
    validate_openapi(document)
    paths = document["paths"]
    for method, path in KERNEL_ROUTES:
        assert path in paths, path
        assert method.lower() in paths[path], (method, path)
        operation = paths[path][method.lower()]
        assert operation["responses"], (method, path)
    # and every route the application serves (plugin routes included)
    for route in client.app.router.routes():
        path = route.resource.canonical
        page = path == "/" or path.startswith(("/api/docs", "/ui"))  # the docs page, the board
        if route.method in ("HEAD", "*") or page:
            continue
        assert path in paths and route.method.lower() in paths[path], (route.method, path)
    # with tokens, the document is still valid (it declares its security scheme)
    guarded = await make_client(enable=("payment",), tokens=("secret",))
    status, document = await call(
        guarded, "GET", "/api/openapi.json", headers={"Authorization": "Bearer secret"}
    )
    assert status == 200
    validate_openapi(document)


async def test_trigger_types_and_plugins(client):
    types = await ok(client, "GET", "/api/trigger-types")
    assert isinstance(types, list) and types
    for entry in types:
        assert set(entry) == {"type", "plugin", "title", "events", "settings_schema"}, entry
        assert isinstance(entry["title"], str) and entry["title"]
        assert isinstance(entry["events"], list) and entry["events"]
        jsonschema.Draft202012Validator.check_schema(entry["settings_schema"])
    by_type = {entry["type"]: entry for entry in types}
    payment = by_type["payment.received"]
    assert payment["plugin"] == "payment"
    assert payment["events"] == ["payment.received"]
    # the client loads only payment: nothing else is offered
    assert {entry["plugin"] for entry in types} == {"payment"}
    plugins = await ok(client, "GET", "/api/plugins")
    for entry in plugins:
        assert set(entry) == {"name", "distribution", "version", "trigger_types", "enabled"}
        assert isinstance(entry["enabled"], bool)
        assert isinstance(entry["trigger_types"], list)
    by_name = {entry["name"]: entry for entry in plugins}
    assert set(by_name) >= PLUGIN_NAMES
    payment = by_name["payment"]
    assert payment["enabled"] is True
    assert "payment.received" in payment["trigger_types"]
    assert payment["distribution"] == "statusflow"
    assert isinstance(payment["version"], str) and payment["version"]
    assert [name for name, entry in by_name.items() if entry["enabled"]] == ["payment"]


# --- statuses --------------------------------------------------------------------------------


async def test_default_pipeline_then_put_replaces_it(client):
    assert await ok(client, "GET", "/api/statuses") == DEFAULT_PIPELINE
    new = [
        {"id": "X", "name": "Lost", "sort": 900, "semantics": "failure"},
        {"id": "N", "name": "Fresh", "sort": 10, "semantics": "process"},
        {"id": "W", "name": "Won", "sort": 500, "semantics": "success"},
        {"id": "Q", "name": "Quoted", "sort": -5, "semantics": "process"},
    ]
    expected = sorted(new, key=lambda s: s["sort"])
    assert await ok(client, "PUT", "/api/statuses", new) == expected
    assert await ok(client, "GET", "/api/statuses") == expected
    # the new pipeline is in force: the lowest sort is the default status, P is gone
    order = await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    assert order["status"] == "Q"
    await expect_error(client, "POST", "/api/orders", {"id": "o2", "status": "P"})
    await expect_error(client, "POST", "/api/triggers", PAID_TRIGGER)
    trigger = await ok(client, "POST", "/api/triggers", {**PAID_TRIGGER, "status": "W"}, 201)
    assert trigger["status"] == "W"
    # PUT the same pipeline again is fine (nothing dropped)
    assert await ok(client, "PUT", "/api/statuses", expected) == expected


BAD_PIPELINES = [
    ([], None),
    (
        [
            {"id": "N", "name": "A", "sort": 1, "semantics": "process"},
            {"id": "N", "name": "B", "sort": 2, "semantics": "success"},
        ],
        "N",
    ),
    (
        [
            {"id": "A", "name": "A", "sort": 1, "semantics": "process"},
            {"id": "B", "name": "B", "sort": 1, "semantics": "success"},
        ],
        "1",
    ),
    ([{"id": "A", "name": "A", "sort": 1, "semantics": "won"}], "semantics"),
    ([{"id": "A", "name": "A", "sort": 1, "semantics": None}], "semantics"),
    ([{"id": "A", "name": "A", "sort": 1}], "semantics"),
    ([{"id": "A", "name": "A", "semantics": "process"}], "sort"),
    ([{"name": "A", "sort": 1, "semantics": "process"}], "id"),
    ([{"id": "A", "sort": 1, "semantics": "process"}], "name"),
    ([{"id": "A", "name": "A", "sort": 1.5, "semantics": "process"}], "sort"),
    ([{"id": "A", "name": "A", "sort": "1", "semantics": "process"}], "sort"),
    ([{"id": "A", "name": "A", "sort": True, "semantics": "process"}], "sort"),
    ([{"id": "A", "name": "A", "sort": 2**70, "semantics": "process"}], "sort"),
    ([{"id": "", "name": "A", "sort": 1, "semantics": "process"}], "id"),
    ([{"id": 1, "name": "A", "sort": 1, "semantics": "process"}], "id"),
    ([{"id": "A", "name": "A", "sort": 1, "semantics": "process", "x": 1}], "x"),
    ({"id": "A", "name": "A", "sort": 1, "semantics": "process"}, None),
    ([None], None),
    ([["A", "A", 1, "process"]], None),
]


async def test_put_statuses_422_changes_nothing(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    await expect_rejections(client, "PUT", "/api/statuses", BAD_PIPELINES, orders=("o1",))


async def test_put_statuses_409_when_dropping_a_status_in_use(client):
    await ok(client, "POST", "/api/orders", {"id": "o1", "status": "S"}, 201)
    trigger = await ok(client, "POST", "/api/triggers", {**PAID_TRIGGER, "status": "F"}, 201)
    before = await snapshot(client, orders=("o1",))
    keep = [s for s in DEFAULT_PIPELINE if s["id"] not in ("S", "F")]
    without_s = [s for s in DEFAULT_PIPELINE if s["id"] != "S"]
    without_f = [s for s in DEFAULT_PIPELINE if s["id"] != "F"]
    error = await expect_error(client, "PUT", "/api/statuses", without_s, expected=409)
    assert error["code"] == "status_in_use"
    assert "'S' is the status of orders" in error["message"]
    error = await expect_error(client, "PUT", "/api/statuses", without_f, expected=409)
    assert f"'F' is the target of trigger(s) {trigger['id']}" in error["message"]
    await expect_error(client, "PUT", "/api/statuses", keep, expected=409)
    assert await snapshot(client, orders=("o1",)) == before
    # dropping an unused status is fine; so is renaming or re-sorting one in use
    without_d = [
        {**s, "name": "Sent", "sort": 180} if s["id"] == "S" else s
        for s in DEFAULT_PIPELINE
        if s["id"] != "D"
    ]
    assert [s["id"] for s in await ok(client, "PUT", "/api/statuses", without_d)] == [
        "N",
        "P",
        "S",
        "F",
    ]
    # once nothing uses them, they may go
    await ok(client, "PATCH", "/api/orders/o1", {"status": "N"})
    await ok(client, "DELETE", f"/api/triggers/{trigger['id']}", expected=204)
    assert [s["id"] for s in await ok(client, "PUT", "/api/statuses", keep)] == ["N", "P", "D"]


# --- orders ----------------------------------------------------------------------------------


FULL_ORDER = {
    "id": "o1",
    "status": "P",
    "responsible_id": "u7",
    "amount": 59.9,
    "currency": "USD",
    "contact": {
        "id": "c1",
        "name": "Ada",
        "phones": ["+14155550100"],
        "emails": ["ada@example.com"],
    },
    "company": {"id": "acme", "name": "Acme", "phones": [], "emails": ["orders@acme.test"]},
    "visitor_ids": ["v-42"],
    "fields": {"channel": "web", "nested": {"a": 1}},
}


async def test_create_and_read_orders(client):
    created = await ok(client, "POST", "/api/orders", FULL_ORDER, 201)
    assert {k: created[k] for k in ORDER_KEYS} == FULL_ORDER
    assert is_utc_iso(created["created_at"]) and is_utc_iso(created["updated_at"])
    assert await ok(client, "GET", "/api/orders/o1") == created
    timeline = await ok(client, "GET", "/api/orders/o1/timeline")
    assert [entry["kind"] for entry in timeline] == ["created"]
    assert is_utc_iso(timeline[0]["at"])
    order = await ok(client, "POST", "/api/orders", {"id": "o2"}, 201)
    assert order["status"] == "N"
    assert order["fields"] == {} and order["visitor_ids"] == []
    assert order["amount"] is None and order["contact"] is None


async def test_duplicate_order_is_409_and_unknown_order_404(client):
    await ok(client, "POST", "/api/orders", {"id": "o1", "amount": 1}, 201)
    before = await snapshot(client, orders=("o1",))
    error = await expect_error(
        client, "POST", "/api/orders", {"id": "o1", "amount": 2, "status": "P"}, expected=409
    )
    assert error["code"] == "order_exists"
    assert error["details"] == [{"path": "/id", "message": "is the id of an order that exists"}]
    assert await snapshot(client, orders=("o1",)) == before
    for path in ("/api/orders/nope", "/api/orders/nope/timeline", "/api/orders/O1"):
        error = await expect_error(client, "GET", path, expected=404)
        assert error["code"] == "order_not_found"
    await expect_error(client, "PATCH", "/api/orders/nope", {"amount": 1}, expected=404)
    await expect_error(client, "GET", "/api/orders/nope", expected=404)


BAD_ORDERS = [
    ({}, "id"),
    ({"amount": 5}, "id"),
    ({"id": None}, "id"),
    ({"id": ""}, "id"),
    ({"id": 5}, "id"),
    ({"id": ["o9"]}, "id"),
    ({"id": "o9", "status": "ZZ"}, "ZZ"),
    ({"id": "o9", "status": ""}, "status"),
    ({"id": "o9", "status": 1}, "status"),
    ({"id": "o9", "colour": "red"}, "colour"),
    ({"id": "o9", "contact": {"nickname": "x"}}, "nickname"),
    ({"id": "o9", "company": {"phones": "+14155550100"}}, "phones"),
    ({"id": "o9", "contact": {"phones": ["not a phone"]}}, "phone"),
    ({"id": "o9", "contact": {"emails": ["no-at-sign"]}}, "email"),
    ({"id": "o9", "contact": []}, "contact"),
    ({"id": "o9", "amount": "12"}, "amount"),
    ({"id": "o9", "amount": True}, "amount"),
    ({"id": "o9", "currency": 5}, "currency"),
    ({"id": "o9", "visitor_ids": "v1"}, "visitor_ids"),
    ({"id": "o9", "visitor_ids": [None]}, "visitor_ids"),
    ({"id": "o9", "fields": []}, "fields"),
    ({"id": "o9", "fields": "x"}, "fields"),
    ({"id": "o9", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ([{"id": "o9"}], None),
    ("o9", None),
]


async def test_create_order_422_changes_nothing(client):
    await expect_rejections(client, "POST", "/api/orders", BAD_ORDERS, orders=("o9",))


async def test_patch_order_is_a_merge_patch(client):
    await ok(client, "POST", "/api/orders", FULL_ORDER, 201)
    patched = await ok(
        client,
        "PATCH",
        "/api/orders/o1",
        {
            "amount": 70,
            "currency": None,  # null removes a key
            "contact": {"name": "Ada L.", "emails": None},  # nested objects merge
            "company": None,
            "visitor_ids": ["v-1", "v-2"],  # arrays are replaced whole
            "fields": {"channel": None, "nested": {"b": 2}, "new": [1]},
        },
    )
    expected = {
        **FULL_ORDER,
        "amount": 70,
        "currency": None,
        "contact": {"id": "c1", "name": "Ada L.", "phones": ["+14155550100"]},
        "company": None,
        "visitor_ids": ["v-1", "v-2"],
        "fields": {"nested": {"a": 1, "b": 2}, "new": [1]},
    }
    assert {k: patched[k] for k in ORDER_KEYS} == expected
    assert await ok(client, "GET", "/api/orders/o1") == patched
    # an empty patch changes nothing
    again = await ok(client, "PATCH", "/api/orders/o1", {})
    assert {k: again[k] for k in ORDER_KEYS} == expected
    # the status is untouched by a patch without one, and no move was recorded
    kinds = [e["kind"] for e in await ok(client, "GET", "/api/orders/o1/timeline")]
    assert "status_changed" not in kinds


async def test_patch_order_contact_changes_how_events_find_it(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    event = {"type": "payment.received", "contact": {"email": "Ada@Example.com"}}
    assert (await ok(client, "POST", "/api/events", event))["order_ids"] == []
    await ok(client, "PATCH", "/api/orders/o1", {"contact": {"emails": ["ada@example.com"]}})
    result = await ok(client, "POST", "/api/events", event)
    assert result["order_ids"] == ["o1"]
    assert [(m["from"], m["to"]) for m in result["moves"]] == [("N", "P")]
    await ok(client, "PATCH", "/api/orders/o1", {"contact": None})
    assert (await ok(client, "POST", "/api/events", event))["order_ids"] == []


async def test_patch_order_status_is_a_recorded_manual_move(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    # a trigger on F must not be involved in a manual move
    await ok(client, "POST", "/api/triggers", {**PAID_TRIGGER, "status": "F"}, 201)
    order = await ok(client, "PATCH", "/api/orders/o1", {"status": "D"})
    assert order["status"] == "D"
    # any status, backwards too
    order = await ok(client, "PATCH", "/api/orders/o1", {"status": "P"})
    assert order["status"] == "P"
    timeline = await ok(client, "GET", "/api/orders/o1/timeline")
    moves = [e for e in timeline if e["kind"] == "status_changed"]
    assert [(m["from"], m["to"]) for m in moves] == [("N", "D"), ("D", "P")]
    assert all(m["trigger_id"] is None and m["manual"] is True for m in moves)
    assert [e["kind"] for e in timeline] == ["created", "status_changed", "status_changed"]
    assert all(is_utc_iso(e["at"]) for e in timeline)
    # the same status again is no move
    await ok(client, "PATCH", "/api/orders/o1", {"status": "P"})
    assert len(await ok(client, "GET", "/api/orders/o1/timeline")) == 3


BAD_ORDER_PATCHES = [
    ({"status": "ZZ"}, "ZZ"),
    ({"status": None}, "status"),
    ({"status": 3}, "status"),
    ({"id": "o2"}, "id"),
    ({"id": None}, "id"),
    ({"amount": "many"}, "amount"),
    ({"colour": "red"}, "colour"),
    ({"contact": {"nickname": "x"}}, "nickname"),
    ({"contact": {"phones": ["not a phone"]}}, "phone"),
    ({"contact": {"phones": "+14155550100"}}, "phones"),
    ({"fields": []}, "fields"),
    ({"visitor_ids": {"a": 1}}, "visitor_ids"),
    ([{"op": "replace", "path": "/status", "value": "P"}], None),
    ("P", None),
    (5, None),
    (None, None),
]


async def test_patch_order_422_changes_nothing(client):
    await ok(client, "POST", "/api/orders", FULL_ORDER, 201)
    await expect_rejections(
        client, "PATCH", "/api/orders/o1", BAD_ORDER_PATCHES, orders=("o1", "o2")
    )


# --- triggers --------------------------------------------------------------------------------


async def test_trigger_crud(client):
    created = await ok(
        client,
        "POST",
        "/api/triggers",
        {
            **PAID_TRIGGER,
            "name": "paid",
            "conditions": [{"field": "amount", "op": "gte", "value": 10}],
        },
        201,
    )
    assert isinstance(created["id"], int)
    assert {k: created[k] for k in ("type", "status", "name", "settings", "conditions")} == {
        "type": "payment.received",
        "status": "P",
        "name": "paid",
        "settings": {},
        "conditions": [{"field": "amount", "op": "gte", "value": 10}],
    }
    assert created["allow_backwards"] is False and created["enabled"] is True
    assert created["active"] is True and created["inactive_reason"] is None
    trigger_path = f"/api/triggers/{created['id']}"
    assert await ok(client, "GET", trigger_path) == created
    second = await ok(client, "POST", "/api/triggers", {**PAID_TRIGGER, "status": "S"}, 201)
    assert second["id"] > created["id"]
    assert [t["id"] for t in await ok(client, "GET", "/api/triggers")] == [
        created["id"],
        second["id"],
    ]
    patched = await ok(
        client,
        "PATCH",
        trigger_path,
        {"name": "renamed", "enabled": False, "allow_backwards": True, "status": "S"},
    )
    assert {k: patched[k] for k in ("name", "enabled", "allow_backwards", "status")} == {
        "name": "renamed",
        "enabled": False,
        "allow_backwards": True,
        "status": "S",
    }
    assert patched["conditions"] == created["conditions"]
    assert patched["created_at"] == created["created_at"]
    assert await ok(client, "GET", trigger_path) == patched
    # merge patch: null removes conditions (back to none), lists are replaced
    patched = await ok(client, "PATCH", trigger_path, {"conditions": None, "name": None})
    assert patched["conditions"] == [] and patched["name"] == ""
    patched = await ok(
        client,
        "PATCH",
        trigger_path,
        {"conditions": [{"field": "currency", "op": "eq", "value": "USD"}]},
    )
    assert patched["conditions"] == [{"field": "currency", "op": "eq", "value": "USD"}]
    status, body = await call(client, "DELETE", trigger_path)
    assert status == 204 and body is None
    await expect_error(client, "GET", trigger_path, expected=404)
    await expect_error(client, "DELETE", trigger_path, expected=404)
    await expect_error(client, "PATCH", trigger_path, {"name": "x"}, expected=404)
    assert [t["id"] for t in await ok(client, "GET", "/api/triggers")] == [second["id"]]
    # ids that are not a stored trigger's
    before = await snapshot(client)
    unknown = ["999", "0", "-1", "abc", "1.0", "01x", "%201", "2147483648", "9" * 30, "9" * 5000]
    for trigger_id in unknown:
        path = f"/api/triggers/{trigger_id}"
        await expect_error(client, "GET", path, expected=404)
        await expect_error(client, "PATCH", path, {"name": "x"}, expected=404)
        await expect_error(client, "DELETE", path, expected=404)
    assert await snapshot(client) == before


async def test_deleted_and_disabled_triggers_do_not_act(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    await ok(client, "POST", "/api/orders", {"id": "o2"}, 201)
    trigger = await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    await ok(client, "PATCH", f"/api/triggers/{trigger['id']}", {"enabled": False})
    result = await ok(client, "POST", "/api/events", {"type": "payment.received", "order_id": "o1"})
    assert result["moves"] == []
    await ok(client, "DELETE", f"/api/triggers/{trigger['id']}", expected=204)
    result = await ok(client, "POST", "/api/events", {"type": "payment.received", "order_id": "o2"})
    assert result["moves"] == []


async def test_conditions_that_hold_across_types_are_kept(client):
    """``ne`` and ``not_in`` with a value of another type hold whenever the field is set
    (``currency ne null``: currency is set), and ``in`` with one value of the right type
    can hold: none of them is refused as never holding."""
    await ok(client, "POST", "/api/orders", {"id": "o1", "currency": "USD", "amount": 5}, 201)
    conditions = [
        {"field": "currency", "op": "ne", "value": None},
        {"field": "status", "op": "not_in", "value": ["P", 5]},
        {"field": "amount", "op": "in", "value": [5, "5"]},
    ]
    trigger = await ok(
        client, "POST", "/api/triggers", {**PAID_TRIGGER, "conditions": conditions}, 201
    )
    result = await ok(client, "POST", "/api/events", {"type": "payment.received", "order_id": "o1"})
    assert [m["trigger_id"] for m in result["moves"]] == [trigger["id"]]


async def test_a_deleted_triggers_id_is_never_given_to_a_new_one(client):
    """Event results, moves and timelines keep trigger ids: a new trigger never takes
    the id of a deleted one, not even of the last one created."""
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    first = await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    last = await ok(client, "POST", "/api/triggers", {**PAID_TRIGGER, "status": "S"}, 201)
    result = await ok(client, "POST", "/api/events", {"type": "payment.received", "order_id": "o1"})
    assert [m["trigger_id"] for m in result["moves"]] == [first["id"]]
    await ok(client, "DELETE", f"/api/triggers/{last['id']}", expected=204)
    await ok(client, "DELETE", f"/api/triggers/{first['id']}", expected=204)
    new = await ok(client, "POST", "/api/triggers", {**PAID_TRIGGER, "name": "new"}, 201)
    assert new["id"] > last["id"]
    stored = await ok(client, "GET", f"/api/events/{result['event_id']}")
    assert stored["moves"][0]["trigger_id"] == first["id"] != new["id"]


BAD_TRIGGERS = [
    ({"type": "nope.type", "status": "P"}, "payment.received"),
    ({"type": "", "status": "P"}, "type"),
    ({"type": "payment.received", "status": "ZZ"}, "ZZ"),
    ({"type": "payment.received"}, "status"),
    ({"status": "P"}, "type"),
    ({**PAID_TRIGGER, "settings": {"bogus": 1}}, "bogus"),
    ({**PAID_TRIGGER, "settings": []}, "settings"),
    ({**PAID_TRIGGER, "settings": "x"}, "settings"),
    ({**PAID_TRIGGER, "conditions": {}}, "conditions"),
    ({**PAID_TRIGGER, "conditions": "amount > 5"}, "conditions"),
    ({**PAID_TRIGGER, "conditions": [1]}, "conditions"),
    ({**PAID_TRIGGER, "conditions": [{"field": "color", "op": "eq", "value": 1}]}, "color"),
    ({**PAID_TRIGGER, "conditions": [{"field": "fields.", "op": "eq", "value": 1}]}, "fields."),
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "like", "value": 1}]}, "like"),
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "gt"}]}, "value"),
    ({**PAID_TRIGGER, "conditions": [{"op": "eq", "value": 1}]}, "field"),
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "value": 1}]}, "op"),
    (
        {**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "exists", "value": "yes"}]},
        "exists",
    ),
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "in", "value": 5}]}, "in"),
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "gt", "value": [1]}]}, "gt"),
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "eq", "value": 1, "x": 2}]}, "x"),
    # amount is a JSON number, currency and status strings: a value of another type
    # could never match, so the trigger is refused
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "gt", "value": "50"}]}, "number"),
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "eq", "value": "100"}]}, "number"),
    ({**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "eq", "value": True}]}, "number"),
    (
        {**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "in", "value": ["1", "2"]}]},
        "number",
    ),
    (
        {**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "contains", "value": 1}]},
        "contains",
    ),
    ({**PAID_TRIGGER, "conditions": [{"field": "currency", "op": "eq", "value": 978}]}, "string"),
    ({**PAID_TRIGGER, "conditions": [{"field": "status", "op": "lt", "value": 5}]}, "string"),
    ({**PAID_TRIGGER, "conditions": [{"field": 5, "op": "eq", "value": 1}]}, "field"),
    ({**PAID_TRIGGER, "allow_backwards": "yes"}, "allow_backwards"),
    ({**PAID_TRIGGER, "enabled": 1}, "enabled"),
    ({**PAID_TRIGGER, "name": 5}, "name"),
    ({**PAID_TRIGGER, "colour": "red"}, "colour"),
    ({**PAID_TRIGGER, "id": 5}, "id"),
    ([PAID_TRIGGER], None),
    (None, None),
]


async def test_create_trigger_422_changes_nothing(client):
    await expect_rejections(client, "POST", "/api/triggers", BAD_TRIGGERS)
    assert await ok(client, "GET", "/api/triggers") == []


BAD_TRIGGER_PATCHES = [
    ({"type": "nope.type"}, "payment.received"),
    ({"type": None}, "type"),
    ({"status": "ZZ"}, "ZZ"),
    ({"status": None}, "status"),
    ({"settings": {"bogus": 1}}, "bogus"),
    ({"settings": 5}, "settings"),
    ({"conditions": [{"field": "color", "op": "eq", "value": 1}]}, "color"),
    ({"conditions": [{"field": "amount", "op": "like", "value": 1}]}, "like"),
    ({"conditions": {"field": "amount"}}, "conditions"),
    ({"enabled": "no"}, "enabled"),
    ({"allow_backwards": None, "enabled": 0}, "enabled"),
    ({"name": ["x"]}, "name"),
    ({"id": 12345}, "id"),
    ([{"op": "replace", "path": "/name", "value": "x"}], None),
    ("x", None),
    (None, None),
]


async def test_patch_trigger_422_changes_nothing(client):
    trigger = await ok(
        client,
        "POST",
        "/api/triggers",
        {**PAID_TRIGGER, "conditions": [{"field": "amount", "op": "gt", "value": 1}]},
        201,
    )
    path = f"/api/triggers/{trigger['id']}"
    await expect_rejections(client, "PATCH", path, BAD_TRIGGER_PATCHES)


# --- events ----------------------------------------------------------------------------------


async def test_post_one_event_and_read_it_back(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    trigger = await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    result = await ok(
        client,
        "POST",
        "/api/events",
        {
            "id": "e1",
            "type": "payment.received",
            "order_id": "o1",
            "occurred_at": "2026-11-27T10:00:00+02:00",
            "data": {"amount": 12.5, "currency": "EUR", "method": "card"},
        },
    )
    move = {"order_id": "o1", "from": "N", "to": "P", "trigger_id": trigger["id"]}
    assert result == {"event_id": "e1", "duplicate": False, "order_ids": ["o1"], "moves": [move]}
    stored = await ok(client, "GET", "/api/events/e1")
    assert {k: stored[k] for k in ("id", "type", "order_ids", "moves")} == {
        "id": "e1",
        "type": "payment.received",
        "order_ids": ["o1"],
        "moves": [move],
    }
    assert stored["trace"] == [
        {"order_id": "o1", "trigger_id": trigger["id"], "outcome": "moved", "reason": ANY_TEXT}
    ]
    timeline = await ok(client, "GET", "/api/orders/o1/timeline")
    event_entry = next(e for e in timeline if e["kind"] == "event")
    assert event_entry["data"] == {"amount": 12.5, "currency": "EUR", "method": "card"}
    # an unknown type is a 422 naming the known ones
    error = await expect_error(
        client, "POST", "/api/events", {"type": "telepathy", "order_id": "o1"}
    )
    assert "telepathy" in error["message"]
    assert "payment.received" in error["message"]
    # dry_run takes a boolean
    error = await expect_error(
        client, "POST", "/api/events?dry_run=maybe", {"id": "e2", **EV}, expected=422
    )
    assert "dry_run" in error["message"]
    await expect_error(client, "GET", "/api/events/e2", expected=404)


class _AnyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<any non-empty text>"


ANY_TEXT = _AnyText()


async def test_post_a_list_of_events_answers_a_list_in_order(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    await ok(
        client, "POST", "/api/orders", {"id": "o2", "contact": {"phones": ["+14155550100"]}}, 201
    )
    trigger = await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    results = await ok(
        client,
        "POST",
        "/api/events",
        [
            {"id": "a", "type": "payment.received", "order_id": "o1"},
            {"id": "b", "type": "payment.received", "contact": {"phone": "+1 415 555 0100"}},
            {"type": "payment.received", "contact": {"email": "nobody@example.com"}},
        ],
    )
    assert [r["event_id"] for r in results[:2]] == ["a", "b"]
    assert [r["order_ids"] for r in results] == [["o1"], ["o2"], []]
    assert [r["moves"] for r in results[:2]] == [
        [{"order_id": "o1", "from": "N", "to": "P", "trigger_id": trigger["id"]}],
        [{"order_id": "o2", "from": "N", "to": "P", "trigger_id": trigger["id"]}],
    ]
    # an event without an id gets one, and is stored even though it found no order
    generated = results[2]["event_id"]
    assert isinstance(generated, str) and generated
    stored = await ok(client, "GET", f"/api/events/{generated}")
    assert stored["order_ids"] == [] and stored["moves"] == [] and stored["trace"] == []


async def test_dry_run_stores_nothing(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    trigger = await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    before = await snapshot(client, orders=("o1",), events=("d1", "d2"))
    result = await ok(
        client,
        "POST",
        "/api/events?dry_run=true",
        {"id": "d1", "type": "payment.received", "order_id": "o1"},
    )
    assert result["moves"] == [
        {"order_id": "o1", "from": "N", "to": "P", "trigger_id": trigger["id"]}
    ]
    assert result["trace"] == [
        {"order_id": "o1", "trigger_id": trigger["id"], "outcome": "moved", "reason": ANY_TEXT}
    ]
    results = await ok(
        client,
        "POST",
        "/api/events?dry_run=true",
        [
            {"id": "d1", "type": "payment.received", "order_id": "o1"},
            {"id": "d2", "type": "payment.received", "order_id": "o1"},
        ],
    )
    assert [r["event_id"] for r in results] == ["d1", "d2"]
    assert all("trace" in r for r in results)
    assert await snapshot(client, orders=("o1",), events=("d1", "d2")) == before
    # dry_run=false is a real run
    await ok(
        client,
        "POST",
        "/api/events?dry_run=false",
        {"id": "d1", "type": "payment.received", "order_id": "o1"},
    )
    assert (await ok(client, "GET", "/api/orders/o1"))["status"] == "P"


async def test_unknown_event_or_order_is_404_and_stores_nothing(client):
    error = await expect_error(client, "GET", "/api/events/nope", expected=404)
    assert error["code"] == "event_not_found"
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    before = await snapshot(client, orders=("o1",), events=("e1", "e2"))
    error = await expect_error(
        client,
        "POST",
        "/api/events",
        {"id": "e1", "type": "payment.received", "order_id": "ghost"},
        expected=404,
    )
    assert error["code"] == "order_not_found"
    assert error["details"] == [{"path": "/order_id", "message": "is not a known order"}]
    # in a list, the good event before it is not stored either
    error = await expect_error(
        client,
        "POST",
        "/api/events",
        [
            {"id": "e1", "type": "payment.received", "order_id": "o1"},
            {"id": "e2", "type": "payment.received", "order_id": "ghost"},
        ],
        expected=404,
    )
    assert error["details"] == [{"path": "/1/order_id", "message": "is not a known order"}]
    assert await snapshot(client, orders=("o1",), events=("e1", "e2")) == before


BAD_EVENTS = [
    ({"type": "payment.received"}, "order_id"),
    ({"type": "payment.received", "contact": {}}, "order_id"),
    ({"order_id": "o1"}, "type"),
    ({"type": None, "order_id": "o1"}, "type"),
    ({"type": 5, "order_id": "o1"}, "type"),
    ({**EV, "order_id": 1}, "order_id"),
    ({**EV, "order_id": ""}, "order_id"),
    ({**EV, "id": 5}, "id"),
    ({**EV, "id": ""}, "id"),
    ({**EV, "colour": "red"}, "colour"),
    ({**EV, "data": []}, "data"),
    ({**EV, "data": "x"}, "data"),
    ({**EV, "data": {"amount": "ten"}}, "amount"),
    ({**EV, "occurred_at": "yesterday"}, "occurred_at"),
    ({**EV, "occurred_at": "2026-11-27T10:00:00"}, "occurred_at"),
    ({**EV, "occurred_at": 1700000000}, "occurred_at"),
    ({"type": "payment.received", "contact": {"phone": "call me"}}, "phone"),
    ({"type": "payment.received", "contact": {"phone": 5}}, "phone"),
    ({"type": "payment.received", "contact": {"email": "nope"}}, "email"),
    ({"type": "payment.received", "contact": {"twitter": "@x"}}, "twitter"),
    ({"type": "payment.received", "contact": "+14155550100"}, "contact"),
    ([], None),
    ([None], None),
    ([EV, 5], None),
    (5, None),
    ("payment.received", None),
    (None, None),
]


async def test_bad_events_are_422_and_store_nothing(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    for path in ("/api/events", "/api/events?dry_run=true"):
        await expect_rejections(client, "POST", path, BAD_EVENTS, orders=("o1",))
    # one bad event rejects the whole list, its index in details
    before = await snapshot(client, orders=("o1",), events=("a", "b", "c"))
    error = await expect_error(
        client,
        "POST",
        "/api/events",
        [
            {"id": "a", "type": "payment.received", "order_id": "o1"},
            {"id": "b", "type": "payment.received", "order_id": "o1"},
            {"id": "c", "type": "telepathy", "order_id": "o1"},
        ],
    )
    assert error["code"] == "unknown_event_type"
    assert [p["path"] for p in error["details"]] == ["/2/type"]
    error = await expect_error(
        client,
        "POST",
        "/api/events",
        [{"id": "a", "type": "payment.received", "order_id": "o1"}, {"id": "b"}],
    )
    assert error["details"] == [{"path": "/1/type", "message": "is required"}]
    assert await snapshot(client, orders=("o1",), events=("a", "b", "c")) == before


# --- never a 500 --------------------------------------------------------------------------


JUNK: list[Any] = [
    None,
    False,
    -1,
    1e308,
    2**63,
    "",
    "\u0000",
    "é" * 300,
    [None],
    [{}],
    {"": None},
    {"a": {"b": [1, {"c": None}]}},
]

# bodies that are wrong for every endpoint that takes one
ODD_BODIES: list[Any] = [
    None,
    True,
    0,
    -7,
    3.25,
    "",
    "{}",
    "text",
    [[]],
    [None],
    [1, "a", None],
    [[{"id": "N"}]],
    {"": ""},
    {"id": {"id": {"id": None}}},
    {"type": ["payment.received"], "status": {"id": "P"}, "order_id": [1]},
    {"\u0000": "\u0000"},
    {"a": {"b": {"c": {"d": {"e": [[[[[]]]]]}}}}},
]


def nested(depth: int) -> Any:
    """``{"a": {"a": ... {"a": 1}}}``, ``depth`` objects deep."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


# bodies that are wrong for one endpoint in a specific way
SPECIFIC_ODD_BODIES: dict[str, list[Any]] = {
    "statuses": [
        [{"id": "N", "name": "New", "sort": 100, "semantics": "process"}, None],
        [{"id": "\u0000", "name": "x", "sort": 1, "semantics": "process"}],
        [{"id": "A", "name": "x", "sort": 1, "semantics": "process"}] * 2,
        [{"id": ["A"], "name": {"x": 1}, "sort": [1], "semantics": ["process"]}],
        [{"id": "A", "name": "x", "sort": 2**63, "semantics": "process"}],
        [{"id": "A" * 1000, "name": "x", "sort": 1, "semantics": "process"}],
    ],
    "order": [
        {"id": "a\u0000b"},
        {"id": "o9", "status": "\u0000"},
        {"id": "o9", "contact": {"phones": [None]}},
        {"id": "o9", "contact": {"phones": [""]}},
        {"id": "o9", "contact": {"emails": [5]}},
        {"id": "o9", "contact": {"phones": ["+1" + "5" * 60]}},
        {"id": "o9", "contact": {"id": {"x": 1}}},
        {"id": "o9", "company": "acme"},
        {"id": "o9", "visitor_ids": [{"v": 1}]},
        {"id": "o9", "amount": [1]},
        {"id": "x" * 5000},
        {"id": "o9", "fields": nested(300)},
        {"id": "o9", "fields": nested(1000)},
        {"id": "o9", "contact": nested(300)},
    ],
    "order_patch": [
        {"status": "\u0000"},
        {"id": "a\u0000b"},
        {"contact": {"phones": [None]}},
        {"contact": {"phones": ["\u0000"]}},
        {"contact": "x"},
        {"fields": "x"},
        {"amount": {"a": 1}},
        {"visitor_ids": [[]]},
        {"created_at": "2020-01-01T00:00:00Z", "bogus": 1},
        {"fields": nested(300)},
        {"fields": {"deep": nested(1000)}},
        nested(1000),
    ],
    "trigger": [
        {"type": "\u0000", "status": "P"},
        {"type": "payment.received", "status": "\u0000"},
        {"type": "payment.received", "status": "P", "conditions": [None]},
        {"type": "payment.received", "status": "P", "conditions": [[]]},
        {"type": "payment.received", "status": "P", "conditions": [{"field": None, "op": None}]},
        {
            "type": "payment.received",
            "status": "P",
            "conditions": [{"field": "amount", "op": "in", "value": [[1]]}],
        },
        {
            "type": "payment.received",
            "status": "P",
            "conditions": [{"field": "amount", "op": "exists", "value": None}],
        },
        {"type": "payment.received", "status": "P", "settings": None},
        {"type": "payment.received", "status": "P", "enabled": None},
        {"type": {"payment": "received"}, "status": "P"},
        {"type": "payment.received", "status": "P", "settings": nested(300)},
        {
            "type": "payment.received",
            "status": "P",
            "conditions": [{"field": "amount", "op": "eq", "value": nested(300)}],
        },
    ],
    "trigger_patch": [
        {"type": "\u0000"},
        {"status": "\u0000"},
        {"conditions": [None]},
        {"conditions": "x"},
        {"settings": [1]},
        {"type": {"a": 1}},
        {"enabled": None, "allow_backwards": "x"},
        {"settings": nested(300)},
        nested(1000),
    ],
    "event": [
        {"id": "a\u0000b", "type": "payment.received", "order_id": "o1"},
        {"type": "payment.received", "order_id": "a\u0000b"},
        {"type": "\u0000", "order_id": "o1"},
        {"type": "payment.received", "contact": {"phone": "\u0000"}},
        {"type": "payment.received", "contact": {"email": "a\u0000@b.c"}, "order_id": None},
        {"type": "payment.received", "contact": {"contact_id": None}},
        {"type": "payment.received", "contact": {"visitor_id": []}},
        {"type": "payment.received", "order_id": "o1", "occurred_at": "9999-12-31T23:59:59-23:59"},
        {"type": "payment.received", "order_id": "o1", "occurred_at": "0001-01-01T00:00:00+23:59"},
        {"type": "payment.received", "order_id": "o1", "occurred_at": ""},
        {"type": "payment.received", "order_id": "o1", "data": {"amount": -1}},
        {"type": "payment.received", "order_id": "o1", "data": {"amount": [1]}},
        {"type": "payment.received", "order_id": "o1", "data": None},
        [{"type": "payment.received", "order_id": "o1"}, [], {}],
        [{"type": "payment.received", "order_id": "o1"}] * 2 + [None],
        {"type": "payment.received", "order_id": "o1", "data": nested(300)},
        {"type": "payment.received", "order_id": "o1", "data": {"method": "x", "d": nested(1000)}},
    ],
}


def _odd_requests(trigger_id: int) -> list[tuple[str, str, Any]]:
    endpoints = {
        "statuses": [("PUT", "/api/statuses")],
        "order": [("POST", "/api/orders")],
        "order_patch": [("PATCH", "/api/orders/o1")],
        "trigger": [("POST", "/api/triggers")],
        "trigger_patch": [("PATCH", f"/api/triggers/{trigger_id}")],
        "event": [("POST", "/api/events"), ("POST", "/api/events?dry_run=true")],
    }
    requests = []
    for kind, routes in endpoints.items():
        for method, path in routes:
            for body in ODD_BODIES + SPECIFIC_ODD_BODIES[kind]:
                requests.append((method, path, body))
    return requests


async def test_odd_bodies_get_a_4xx_and_change_nothing(client):
    await ok(client, "POST", "/api/orders", FULL_ORDER, 201)
    trigger = await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    before = await snapshot(client, orders=("o1", "o9"), events=("a\u0000b",))
    failures = []
    for method, path, body in _odd_requests(trigger["id"]):
        status, answer = await call(client, method, path, body)
        try:
            error = assert_error(status, answer, status, where=f"{method} {path} {show(body)}")
            assert 400 <= status < 500 and error["code"] != "internal"
        except AssertionError:
            failures.append(f"{method} {path} {show(body)}: {status} {answer}"[:400])
    assert not failures, "\n".join(failures)
    assert await snapshot(client, orders=("o1", "o9"), events=("a\u0000b",)) == before


async def test_odd_paths_get_a_4xx(client):
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    for path in (
        "/api/orders/a%00b",
        "/api/orders/a%00b/timeline",
        "/api/events/a%00b",
        "/api/triggers/%00",
        "/api/orders/%FF%FE",
        "/api/events/" + "x" * 3000,
        "/api/triggers/1e3",
        "/api/triggers/" + "9" * 400,
    ):
        for method in ("GET", "PATCH", "DELETE"):
            body = {"amount": 1} if method == "PATCH" else ...
            status, answer = await call(client, method, path, body)
            assert 400 <= status < 500, (method, path, status, answer)
            assert_error(status, answer, status, where=f"{method} {path}")
    assert (await ok(client, "GET", "/api/orders/o1"))["amount"] is None


def _mutations(base: dict[str, Any]) -> list[dict[str, Any]]:
    """``base`` with each key replaced by each junk value, and each key dropped."""
    variants = []
    for key in base:
        variants.append({k: v for k, v in base.items() if k != key})
        for junk in JUNK:
            variants.append({**base, key: junk})
    return variants


async def test_junk_in_every_field_is_never_a_500(client):
    """Some of these bodies are valid; none may crash the service or break the shape."""
    await ok(client, "POST", "/api/orders", {"id": "o1"}, 201)
    trigger = await ok(client, "POST", "/api/triggers", PAID_TRIGGER, 201)
    requests: list[tuple[str, str, Any]] = []
    for index, body in enumerate(_mutations({**FULL_ORDER, "id": "m"})):
        if "id" in body and body["id"] == "m":
            body["id"] = f"m{index}"
        requests.append(("POST", "/api/orders", body))
    for body in _mutations({k: v for k, v in FULL_ORDER.items() if k != "id"}):
        requests.append(("PATCH", "/api/orders/o1", body))
    trigger_base = {
        **PAID_TRIGGER,
        "name": "t",
        "allow_backwards": False,
        "enabled": True,
        "settings": {},
        "conditions": [{"field": "amount", "op": "gt", "value": 1}],
    }
    for body in _mutations(trigger_base):
        requests.append(("POST", "/api/triggers", body))
        requests.append(("PATCH", f"/api/triggers/{trigger['id']}", body))
    condition = {"field": "fields.x", "op": "eq", "value": 1}
    for variant in _mutations(condition):
        requests.append(("POST", "/api/triggers", {**PAID_TRIGGER, "conditions": [variant]}))
    event_base = {
        "type": "payment.received",
        "order_id": "o1",
        "contact": {"phone": "+14155550100"},
        "occurred_at": "2026-11-27T10:00:00Z",
        "data": {"amount": 1, "currency": "USD"},
    }
    for body in _mutations(event_base):
        requests.append(("POST", "/api/events?dry_run=true", body))
    for body in _mutations({k: v for k, v in event_base.items() if k != "order_id"}):
        requests.append(("POST", "/api/events", body))
    for body in _mutations({"phone": "+14155550100", "email": "a@b.c", "visitor_id": "v"}):
        requests.append(("POST", "/api/events", {"type": "payment.received", "contact": body}))
    for body in _mutations({"id": "Z", "name": "Z", "sort": 999, "semantics": "process"}):
        requests.append(("PUT", "/api/statuses", [*DEFAULT_PIPELINE, body]))
    failures = []
    for method, path, body in requests:
        status, answer = await call(client, method, path, body)
        if status >= 500 or (status >= 400 and not _is_error_shape(answer)):
            failures.append(f"{method} {path} {show(body)}: {status} {answer}"[:400])
    assert not failures, "\n".join(failures)


def _is_error_shape(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and isinstance(body["error"], dict)
        and set(body["error"]) == {"code", "message", "details"}
    )


@pytest.mark.parametrize(
    ("raw", "sure"),
    [
        (b'{"type": "payment.received", "data": {"amount": 5}}', True),
        (b'{"type": "x", "data": {"note": "\\u0000"}}', False),
        (b'{"\\u0000": 1}', False),
        (orjson.dumps(nested(99)), True),
        (orjson.dumps(nested(101)), False),
        (orjson.dumps([[]] * 120), False),  # many brackets: checked the slow way, to be sure
    ],
)
def test_bodies_are_known_storable_from_their_bytes_or_checked(raw: bytes, sure: bool) -> None:
    from statusflow.engine.validation import storable_problem, surely_storable

    assert surely_storable(raw) is sure
    if sure:
        assert storable_problem(orjson.loads(raw)) is None
