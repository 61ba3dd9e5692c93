"""Outgoing webhooks (issue 6): a durable outbox, signed deliveries, the change feed.

Every delivery goes to a real aiohttp server on a loopback port (``Receiver``), which
checks each request's signature as a store would. Retry delays, timeouts and leases are
made short through ``[plugins.outgoing_webhooks]`` so that the tests stay fast.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from openapi_spec_validator import validate as validate_openapi
from standardwebhooks import Webhook, WebhookVerificationError

import statusflow.http.moves as feed
from statusflow import format_timestamp, parse_timestamp, utc_now
from statusflow.errors import StartupError
from statusflow.http import init_app
from statusflow.http.keys import PLUGIN_MANAGER
from statusflow.plugins import outgoing_webhooks
from statusflow.plugins.outgoing_webhooks import outbox
from statusflow.plugins.outgoing_webhooks.signing import new_secret, secret_problem, sign
from statusflow.plugins.outgoing_webhooks.tables import DELIVERIES, MOVES, metadata
from statusflow.plugins.outgoing_webhooks.worker import backoff_delay, retry_after_seconds
from statusflow.store.database import Database, in_transaction, migrate
from statusflow.store.schema import MoveRecord
from statusflow.testing import settings_for
from tests.helpers import Api, event, until

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins" / "outgoing_webhooks.md"
KERNEL_MOVES = MoveRecord.__table__  # type: ignore[attr-defined]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks specification's example
OTHER_SECRET = "whsec_" + base64.b64encode(b"another secret of 24 bytes").decode()
FAST = {
    "poll_interval": 0.05,
    "request_timeout": 2.0,
    "lease": 5.0,
    "retry_initial_delay": 0.05,
    "retry_max_delay": 0.2,
    "give_up_after": 60.0,
}
PLUGINS = ("payment", "outgoing_webhooks")


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    """A fresh SQLite file, then the session's PostgreSQL database emptied (faster)."""
    return reused_database_url


# --- a receiving store ----------------------------------------------------------------------


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any]
    valid: bool
    at: float
    status: int = 0


@dataclass
class Receiver:
    """A store's webhook endpoint: records every request, answers as ``respond`` says."""

    url: str = ""
    secret: str = SECRET
    received: list[Received] = field(default_factory=list)
    respond: Callable[[Received], web.Response] = lambda item: web.Response(status=204)
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        item = Received(
            headers=dict(request.headers),
            body=body,
            payload=json.loads(body),
            valid=verified(self.secret, body, dict(request.headers)),
            at=time.monotonic(),
        )
        self.received.append(item)
        if self.delay:
            await asyncio.sleep(self.delay)
        response = self.respond(item)
        item.status = response.status
        return response

    def delivered(self) -> list[dict[str, Any]]:
        """The payloads answered with a 2xx, in the order they arrived."""
        return [r.payload for r in self.received if 200 <= r.status < 300]

    def moves_by_order(self) -> dict[str, list[tuple[str, str]]]:
        """``{order_id: [(from, to), ...]}`` of the delivered payloads, in arrival order."""
        found: dict[str, list[tuple[str, str]]] = {}
        for p in self.delivered():
            found.setdefault(p["order_id"], []).append((p["from"], p["to"]))
        return found


def verified(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """What a receiver does: the Standard Webhooks library's own check (signature, and a
    timestamp within 5 minutes)."""
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    store = Receiver()
    app = web.Application()
    app.router.add_post("/hook", store.handle)
    server = await aiohttp_server(app)
    store.url = str(server.make_url("/hook"))
    return store


async def start(
    make_client: Any,
    receiver: Receiver | None,
    *,
    tokens: tuple[str, ...] = (),
    **settings: Any,
) -> Api:
    """An app with ``payment`` and ``outgoing_webhooks``; the receiver as endpoint ``store``."""
    table: dict[str, Any] = {**FAST, **settings}
    if receiver is not None:
        table["endpoints"] = [{"id": "store", "url": receiver.url, "secret": SECRET}]
    client = await make_client(
        enable=PLUGINS, plugin_tables={"outgoing_webhooks": table}, tokens=tokens
    )
    return Api(client)


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 60.0) -> None:
    """Wait until ``check()`` is true; fail after ``timeout`` seconds. A guard against a
    hang, not a speed figure: it returns as soon as the check holds, and the timeout is
    generous enough for a busy machine."""

    async def holds() -> bool:
        result = check()
        return result if isinstance(result, bool) else await result

    await until(holds, "the check", timeout)


async def deliveries(api: Api, **params: str) -> list[dict[str, Any]]:
    """Every delivery (``GET /api/deliveries``, all pages)."""
    found: list[dict[str, Any]] = []
    after = "0"
    while True:
        page = await api.call("GET", "/api/deliveries", params={**params, "after": after})
        found.extend(page["deliveries"])
        if not page["deliveries"]:
            return found
        after = page["next"]


async def all_delivered(api: Api) -> None:
    """Wait until every delivery is recorded as delivered (a result is recorded just
    after the receiver answered, so the receiver may know before the API does)."""

    async def recorded() -> bool:
        return {d["state"] for d in await deliveries(api)} == {"delivered"}

    await eventually(recorded)


async def feed_moves(api: Api, after: str = "0", limit: int = 1000) -> tuple[list[dict], str]:
    page = await api.call("GET", "/api/moves", params={"after": after, "limit": str(limit)})
    return page["moves"], page["next"]


async def three_moves(api: Api, order_ids: list[str], tag: str = "") -> None:
    """Each order moves N -> P (payment event), P -> S, S -> F (manual), interleaved."""
    for order_id in order_ids:
        await api.create_order(order_id)
    for order_id in order_ids:
        await api.post_events(event(order_id=order_id, id=f"pay-{order_id}{tag}"))
    for status in ("S", "F"):
        for order_id in order_ids:
            await api.patch_order(order_id, {"status": status})


THREE = [("N", "P"), ("P", "S"), ("S", "F")]


# --- delivery -------------------------------------------------------------------------------


async def test_deliveries_arrive_signed_and_in_order(make_client, receiver):
    api = await start(make_client, receiver)
    trigger_id = await api.trigger_id("P")
    await three_moves(api, ["o1", "o2"])
    await eventually(lambda: len(receiver.delivered()) == 6)

    await all_delivered(api)
    assert receiver.moves_by_order() == {"o1": THREE, "o2": THREE}
    now = time.time()
    for item in receiver.received:
        assert item.valid, item.headers
        headers = item.headers
        assert headers["Content-Type"] == "application/json"
        assert abs(int(headers["webhook-timestamp"]) - now) < 60
        assert headers["webhook-id"] == item.payload["delivery_id"]
        assert headers["webhook-signature"].startswith("v1,")
        assert headers["Statusflow-Attempt"] == "1"
        assert Webhook(SECRET).verify(item.body, headers) == item.payload
        assert not verified(OTHER_SECRET, item.body, headers)
        assert not verified(SECRET, item.body + b" ", headers)
        assert not verified(SECRET, item.body, {**headers, "webhook-id": "another"})
        assert not {"Statusflow-Signature", "Statusflow-Timestamp"} & set(headers)
    paid = next(p for p in receiver.delivered() if p["order_id"] == "o1" and p["to"] == "P")
    assert paid == {
        "type": "order.moved",
        "delivery_id": paid["delivery_id"],
        "endpoint_id": "store",
        "order_id": "o1",
        "from": "N",
        "to": "P",
        "trigger_id": trigger_id,
        "event_id": "pay-o1",
        "event_type": "payment.received",
        "action_id": None,
        "manual": False,
        "at": paid["at"],
    }
    manual = next(p for p in receiver.delivered() if p["order_id"] == "o1" and p["to"] == "S")
    assert (manual["manual"], manual["trigger_id"], manual["event_id"]) == (True, None, None)

    # the deliveries API, and the feed, tell the same story
    listed = await deliveries(api)
    assert {d["id"] for d in listed} == {p["delivery_id"] for p in receiver.delivered()}
    assert {(d["state"], d["attempts"], d["last_status"]) for d in listed} == {
        ("delivered", 1, 204)
    }
    one = await api.call("GET", f"/api/deliveries/{paid['delivery_id']}")
    assert one["payload"] == paid and one["next_attempt_at"] is None
    moves, _ = await feed_moves(api)
    assert [(m["order_id"], m["from"], m["to"], m["at"]) for m in moves] == [
        (p["order_id"], p["from"], p["to"], p["at"])
        for p in sorted(receiver.delivered(), key=lambda p: (p["at"], p["order_id"]))
    ]


async def test_a_failing_receiver_gets_everything_once_it_recovers(make_client, receiver):
    answers = iter([500] * 6 + [503])

    def respond(item: Received) -> web.Response:
        status = next(answers, 200)
        headers = {"Retry-After": "1"} if status == 503 else {}
        return web.Response(status=status, headers=headers, text="busy")

    receiver.respond = respond
    api = await start(make_client, receiver)
    await api.trigger_id("P")
    await three_moves(api, ["o1", "o2", "o3"])
    await eventually(lambda: len(receiver.delivered()) == 9)

    assert receiver.moves_by_order() == {"o1": THREE, "o2": THREE, "o3": THREE}
    assert all(item.valid for item in receiver.received)
    ids = [p["delivery_id"] for p in receiver.delivered()]
    assert len(set(ids)) == 9  # every move delivered, none twice
    # Retry-After: 1 held the next attempt of that delivery back by a second
    told = next(r for r in receiver.received if r.status == 503)
    later = [r for r in receiver.received if r.payload == told.payload and r.at > told.at]
    assert later and later[0].at - told.at >= 0.9
    assert int(later[0].headers["Statusflow-Attempt"]) > int(told.headers["Statusflow-Attempt"])
    # a retry is the same message (its id is the receiver's idempotency key), signed afresh
    message_ids = {later[0].headers["webhook-id"], told.headers["webhook-id"]}
    assert message_ids == {told.payload["delivery_id"]}
    attempts = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert set(attempts) == set(ids) and max(attempts.values()) > 1
    await all_delivered(api)
    assert [d for d in await deliveries(api) if d["attempts"] > 1]


async def test_a_restart_mid_backlog_loses_nothing(make_client, receiver, database_url):
    receiver.respond = lambda item: web.Response(status=503)  # the store is down
    first = await start(make_client, receiver)
    await first.trigger_id("P")
    await three_moves(first, ["o1", "o2", "o3"])
    await eventually(lambda: len(receiver.received) >= 3)  # attempts are failing
    await first.client.close()

    # As a process killed mid-delivery leaves things: a delivery under a lease that
    # nobody will finish, and a committed move not yet fanned out into deliveries.
    db = Database(database_url)
    try:
        async with db.write() as conn:
            seq = await conn.scalar(
                sa.select(sa.func.min(DELIVERIES.c.seq)).where(DELIVERIES.c.state == "pending")
            )
            await conn.execute(
                sa.update(DELIVERIES)
                .where(DELIVERIES.c.seq == seq)
                .values(
                    lease_token="killed",
                    lease_until=format_timestamp(outbox.now() + timedelta(seconds=0.5)),
                )
            )
            await conn.execute(
                MOVES.insert().values(order_id="o9", from_status="N", to_status="D", at=utc_now())
            )
    finally:
        await db.dispose()

    receiver.respond = lambda item: web.Response(status=200)  # the store is back
    second = await start(make_client, receiver)
    await eventually(lambda: len(receiver.delivered()) == 10)
    assert receiver.moves_by_order() == {"o1": THREE, "o2": THREE, "o3": THREE, "o9": [("N", "D")]}
    # nothing was delivered before the restart, so nothing is delivered twice
    assert Counter(p["delivery_id"] for p in receiver.delivered()).most_common(1)[0][1] == 1
    await all_delivered(second)


async def test_dead_letter_after_the_configured_time_and_manual_retry(make_client, receiver):
    receiver.respond = lambda item: web.Response(status=500, text="broken")
    api = await start(make_client, None, give_up_after=0.4)
    endpoint = await api.call(
        "POST", "/api/webhook-endpoints", {"url": receiver.url, "secret": SECRET}, expect=201
    )
    await api.trigger_id("P")
    await api.create_order("o1")
    await api.post_events(event(order_id="o1", id="e1"))
    await api.patch_order("o1", {"status": "S"})

    async def dead() -> bool:
        return len(await deliveries(api, state="failed")) == 2

    await eventually(dead)
    failed = await deliveries(api, state="failed")
    assert [(d["payload"]["from"], d["payload"]["to"]) for d in failed] == [("N", "P"), ("P", "S")]
    for d in failed:
        assert d["endpoint_id"] == endpoint["id"] and d["order_id"] == "o1"
        assert d["last_status"] == 500 and "HTTP 500" in d["last_error"]
        assert d["attempts"] >= 1 and d["failed_at"] and d["next_attempt_at"] is None
    assert await deliveries(api, state="pending") == []
    assert receiver.delivered() == []

    # retried while the endpoint is paused: pending, and a second retry is a conflict
    path = f"/api/webhook-endpoints/{endpoint['id']}"
    await api.call("PATCH", path, {"enabled": False})
    retried = await api.call("POST", f"/api/deliveries/{failed[0]['id']}/retry")
    assert retried["state"] == "pending" and retried["attempts"] == 0
    error = await api.error("POST", f"/api/deliveries/{failed[0]['id']}/retry", expect=409)
    assert error["code"] == "delivery_pending"
    error = await api.error("POST", "/api/deliveries/nope/retry", expect=404)
    assert error["code"] == "delivery_not_found"

    receiver.respond = lambda item: web.Response(status=200)
    await api.call("POST", f"/api/deliveries/{failed[1]['id']}/retry")
    await api.call("PATCH", path, {"enabled": True})
    await eventually(lambda: len(receiver.delivered()) == 2)
    assert receiver.moves_by_order() == {"o1": [("N", "P"), ("P", "S")]}  # in order again
    await all_delivered(api)
    # a delivered one may be sent again too, with the same delivery id
    again = await api.call("POST", f"/api/deliveries/{failed[0]['id']}/retry")
    assert again["state"] == "pending"
    await eventually(lambda: len(receiver.delivered()) == 3)
    assert receiver.delivered()[-1]["delivery_id"] == failed[0]["id"]


async def test_two_instances_drain_one_outbox_each_row_once(make_client, receiver):
    receiver.delay = 0.02
    a = await start(make_client, receiver, concurrency=1)
    b = await start(make_client, receiver, concurrency=1)
    await a.trigger_id("P")
    orders = [f"o{i}" for i in range(12)]
    for order_id in orders:
        await a.create_order(order_id)
    posts = [
        (a if i % 2 else b).post_events(event(order_id=order_id, id=f"e-{order_id}"))
        for i, order_id in enumerate(orders)
    ]
    await asyncio.gather(*posts)
    for order_id in orders[:6]:
        await b.patch_order(order_id, {"status": "S"})
    await eventually(lambda: len(receiver.delivered()) == 18)
    await asyncio.sleep(0.2)  # anything sent twice would show up now

    counts = Counter(p["delivery_id"] for p in receiver.delivered())
    assert len(counts) == 18 and set(counts.values()) == {1}
    assert len(receiver.received) == 18  # not a single extra attempt
    expected = {o: [("N", "P"), ("P", "S")] if o in orders[:6] else [("N", "P")] for o in orders}
    assert receiver.moves_by_order() == expected
    plugins = [api.client.app[PLUGIN_MANAGER].get_plugin("outgoing_webhooks") for api in (a, b)]
    assert plugins[0] is not plugins[1], "one plugin object per app"
    workers = [plugin.worker for plugin in plugins]
    assert all(w is not None and w.sent > 0 for w in workers), "both instances delivered"


# --- endpoints ------------------------------------------------------------------------------


async def test_endpoints_api_and_configured_endpoints(
    make_client, receiver, aiohttp_server, database_url
):
    other = Receiver()
    other_app = web.Application()
    other_app.router.add_post("/hook", other.handle)
    other.url = str((await aiohttp_server(other_app)).make_url("/hook"))
    api = await start(make_client, receiver)

    listed = await api.call("GET", "/api/webhook-endpoints")
    assert [(e["id"], e["source"], e["enabled"]) for e in listed] == [("store", "config", True)]
    assert "secret" not in listed[0]
    for method, body in (("PATCH", {"enabled": False}), ("DELETE", None)):
        error = await api.error(method, "/api/webhook-endpoints/store", body, expect=409)
        assert "configuration" in error["message"]

    created = await api.call(
        "POST", "/api/webhook-endpoints", {"url": other.url, "description": "crm"}, expect=201
    )
    assert created["id"].startswith("ep_") and created["source"] == "api"
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    assert secret_problem(created["secret"]) is None
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"), validate=True)) == 32
    other.secret = created["secret"]
    shown = await api.call("GET", f"/api/webhook-endpoints/{created['id']}")
    assert "secret" not in shown and shown["description"] == "crm"

    named = await api.call(
        "POST",
        "/api/webhook-endpoints",
        {"id": "paused", "url": other.url, "secret": SECRET, "enabled": False},
        expect=201,
    )
    assert named["secret"] == SECRET
    await api.error(
        "POST", "/api/webhook-endpoints", {"id": "paused", "url": other.url}, expect=409
    )
    for bad in (
        {},
        {"url": "ftp://x"},
        # the right shape, but no attempt could ever be delivered
        {"url": "http://[::1/x"},
        {"url": "http://127.0.0.1:99999/x"},
        {"url": "http://127.0.0.1:0/x"},
        {"url": "http:///x"},
        {"url": "https://?"},
        {"url": other.url, "secret": "short"},
        {"url": other.url, "secret": "test-secret-0123456789abcdef"},  # not whsec_
        {"url": other.url, "secret": "whsec_c2hvcnQ="},  # 5 bytes: too short a key
        {"url": other.url, "secret": "whsec_not-base64-at-all-but-long-enough!!"},
        {"url": other.url, "extra": 1},
        {"url": other.url, "id": "bad id"},
        {"url": other.url, "description": "nul\x00"},
        [],
    ):
        await api.error("POST", "/api/webhook-endpoints", bad, expect=422)
    await api.error("PATCH", "/api/webhook-endpoints/paused", {"url": "nope"}, expect=422)
    refused = await api.error(
        "PATCH", "/api/webhook-endpoints/paused", {"secret": "hunter2-hunter2-hunter2"}, expect=422
    )
    assert "whsec_" in refused["message"] and "hunter2" not in str(refused)
    await api.error(
        "PATCH", "/api/webhook-endpoints/paused", {"url": "http://h:70000/"}, expect=422
    )
    shouted = other.url.replace("http://", "HTTP://")  # schemes are case-insensitive
    upper = await api.call(
        "POST", "/api/webhook-endpoints", {"id": "upper", "url": shouted}, expect=201
    )
    assert upper["url"] == shouted
    await api.call("DELETE", "/api/webhook-endpoints/upper", expect=204)
    await api.error("GET", "/api/webhook-endpoints/missing", expect=404)
    response = await api.client.post("/api/webhook-endpoints", data=b"{not json")
    assert response.status == 400

    await api.trigger_id("P")
    await api.create_order("o1")
    await api.post_events(event(order_id="o1", id="e1"))
    await eventually(lambda: len(receiver.delivered()) == 1 and len(other.delivered()) == 1)
    assert other.received[0].valid  # signed with the endpoint's own secret
    assert {d["endpoint_id"] for d in await deliveries(api)} == {"store", created["id"]}

    patched = await api.call(
        "PATCH", f"/api/webhook-endpoints/{created['id']}", {"secret": OTHER_SECRET}
    )
    assert patched["secret"] == OTHER_SECRET
    await api.call("DELETE", f"/api/webhook-endpoints/{created['id']}", expect=204)
    await api.error("GET", f"/api/webhook-endpoints/{created['id']}", expect=404)
    assert {d["endpoint_id"] for d in await deliveries(api)} == {"store"}

    # an id of the file may not take over an endpoint of the API
    clash = {"endpoints": [{"id": "paused", "url": other.url, "secret": SECRET}]}
    settings = settings_for(
        database_url, enable=PLUGINS, plugin_tables={"outgoing_webhooks": clash}
    )
    refused = TestClient(TestServer(init_app(settings)))
    try:
        with pytest.raises(StartupError, match=r"paused.*created through the API"):
            await refused.start_server()
    finally:
        await refused.close()


async def test_auth_applies_to_the_new_api_routes(make_client, receiver):
    api = await start(make_client, receiver, tokens=("sesame",))
    routes = [
        ("GET", "/api/moves"),
        ("GET", "/api/webhook-endpoints"),
        ("POST", "/api/webhook-endpoints"),
        ("GET", "/api/webhook-endpoints/store"),
        ("PATCH", "/api/webhook-endpoints/store"),
        ("DELETE", "/api/webhook-endpoints/store"),
        ("GET", "/api/deliveries"),
        ("GET", "/api/deliveries/x"),
        ("POST", "/api/deliveries/x/retry"),
    ]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = await api.client.request(method, path, json={}, headers=headers)
            assert response.status == 401, (method, path, headers)
    good = {"Authorization": "Bearer sesame"}
    for path in ("/api/moves", "/api/webhook-endpoints", "/api/deliveries"):
        assert (await api.client.get(path, headers=good)).status == 200
    document = await (await api.client.get("/api/openapi.json", headers=good)).json()
    for path in ("/api/moves", "/api/webhook-endpoints", "/api/deliveries/{id}/retry"):
        assert path in document["paths"]
    validate_openapi(document)


# --- the change feed ------------------------------------------------------------------------


async def test_the_feed_resumes_from_a_cursor_with_nothing_skipped(make_client):
    api = Api(await make_client(enable=("payment",)))
    await api.trigger_id("P")
    await three_moves(api, ["o1", "o2"])

    seen: list[dict[str, Any]] = []
    cursor = "0"
    while True:
        page, cursor = await feed_moves(api, cursor, limit=4)
        if not page:
            break
        seen.extend(page)
    assert [(m["order_id"], m["from"], m["to"]) for m in seen] == [
        ("o1", "N", "P"), ("o2", "N", "P"), ("o1", "P", "S"),
        ("o2", "P", "S"), ("o1", "S", "F"), ("o2", "S", "F"),
    ]  # fmt: skip
    assert [m["cursor"] for m in seen] == sorted({m["cursor"] for m in seen}, key=int)
    assert cursor == seen[-1]["cursor"]
    assert seen[0]["event_id"] == "pay-o1" and seen[0]["manual"] is False
    assert seen[2]["manual"] is True and seen[2]["trigger_id"] is None

    end = (await api.call("GET", "/api/moves", params={"after": "end"}))["next"]
    assert end == cursor
    await three_moves(api, ["o3"])
    page, after = await feed_moves(api, cursor)
    assert [(m["order_id"], m["to"]) for m in page] == [("o3", "P"), ("o3", "S"), ("o3", "F")]
    assert await feed_moves(api, after) == ([], after)
    for params in ({"after": "x"}, {"after": "-1"}, {"limit": "0"}, {"limit": "1001"}):
        await api.error("GET", "/api/moves", params=params, expect=422)


async def test_the_feed_under_concurrent_commits_misses_nothing(make_client):
    a = Api(await make_client(enable=("payment",)))
    b = Api(await make_client(enable=("payment",)))
    await a.trigger_id("P")
    orders = [f"o{i}" for i in range(24)]
    for order_id in orders:
        await a.create_order(order_id)
    seen: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def follow() -> None:
        cursor = "0"
        while True:
            finished = done.is_set()
            page, cursor = await feed_moves(a, cursor, limit=7)
            seen.extend(page)
            if finished and not page:
                return

    async def post(api: Api, order_ids: list[str]) -> None:
        for order_id in order_ids:
            await api.post_events(event(order_id=order_id, id=f"e-{order_id}"))
            await api.patch_order(order_id, {"status": "S"})

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(post((a, b)[i % 2], orders[i::4]) for i in range(4)))
    done.set()
    await follower
    assert len(seen) == 48 and len({m["cursor"] for m in seen}) == 48
    for order_id in orders:
        assert [m["to"] for m in seen if m["order_id"] == order_id] == ["P", "S"]


async def test_the_feed_waits_for_a_move_still_in_flight(make_client, database_url, monkeypatch):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer: seq order is commit order")
    monkeypatch.setattr(feed, "SETTLE_TIMEOUT", 0.3)
    api = Api(await make_client(enable=("payment",)))
    await api.trigger_id("P")
    await api.create_order("o1")
    await api.create_order("o2")
    db = Database(database_url)
    try:
        async with db.write() as held:
            at = utc_now()
            row = {"order_id": "o1", "from_status": "N", "to_status": "D", "at": at}
            await held.execute(KERNEL_MOVES.insert().values(**row))  # takes seq 1, uncommitted
            await api.post_events(event(order_id="o2", id="e2"))  # seq 2 commits first
            started = time.monotonic()
            assert await feed_moves(api, "0") == ([], "0")  # not past seq 1, still open
            assert time.monotonic() - started >= 0.25
        page, cursor = await feed_moves(api, "0")  # committed at the end of the block
        assert [(m["cursor"], m["order_id"]) for m in page] == [("1", "o1"), ("2", "o2")]

        class RolledBack(Exception):
            pass

        with pytest.raises(RolledBack):
            async with db.write() as rolled_back:
                await rolled_back.execute(KERNEL_MOVES.insert().values(**row))  # seq 3, dropped
                await api.patch_order("o1", {"status": "F"})  # seq 4
                raise RolledBack
        page, cursor = await feed_moves(api, cursor)
        assert [(m["cursor"], m["to"]) for m in page] == [("4", "F")]  # the gap is for good
    finally:
        await db.dispose()


async def test_statusflow_tail_prints_the_feed(aiohttp_client, sqlite_url):
    """The command reads the same feed on either database: SQLite alone is enough."""
    settings = settings_for(sqlite_url, enable=("payment",), tokens=("sesame",))
    api = Api(await aiohttp_client(init_app(settings)))
    api.client.session.headers["Authorization"] = "Bearer sesame"
    await api.trigger_id("P")
    await three_moves(api, ["o1"])
    base = str(api.client.make_url("")).rstrip("/")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "statusflow.cli", "tail", "--url", base, "--token", "sesame",
        "--after", "1", "--once",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "STATUSFLOW_TOKEN": ""},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 2, lines
    # each status with its name (GET /api/statuses)
    assert re.match(r"^2  \S+Z  o1  P Paid -> S Shipped  manual$", lines[0]), lines
    assert lines[1].startswith("3  ") and lines[1].endswith("o1  S Shipped -> F Completed  manual")

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "statusflow.cli", "tail", "--url", base, "--after", "0", "--once",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "STATUSFLOW_TOKEN": ""},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1 and "401" in err.decode()


# --- pieces ---------------------------------------------------------------------------------


def test_backoff_is_exponential_with_jitter_and_capped():
    assert [backoff_delay(n, 1, 30, rand=lambda: 0.0) for n in (1, 2, 3, 4, 5, 6)] == [
        0.5, 1, 2, 4, 8, 15
    ]  # fmt: skip
    assert [backoff_delay(n, 1, 30, rand=lambda: 1.0) for n in (1, 2, 3, 6, 1000)] == [
        1, 2, 4, 30, 30
    ]  # fmt: skip
    delays = {backoff_delay(4, 1, 30) for _ in range(50)}
    assert len(delays) > 1 and all(4 <= d <= 8 for d in delays)


def test_retry_after_in_seconds_or_as_a_date():
    moment = parse_timestamp("2026-11-27T10:00:00.000000Z")
    assert retry_after_seconds("120", moment) == 120
    assert retry_after_seconds("Fri, 27 Nov 2026 10:01:30 GMT", moment) == 90
    assert retry_after_seconds("Fri, 27 Nov 2026 09:00:00 GMT", moment) == 0
    for junk in (None, "", "soon", "-5"):
        assert retry_after_seconds(junk, moment) is None


def _doc_block(language: str) -> str:
    text = DOCS.read_text()
    match = re.search(rf"```{language}\n(.*?)```", text, re.S)
    assert match, f"no {language} block in {DOCS}"
    return match.group(1)


def test_signing_is_standard_webhooks_and_the_documented_verifiers_agree():
    body = b'{"type":"order.moved","order_id":"1001","from":"N","to":"P"}'
    now = int(time.time())
    headers = sign(SECRET, "msg_1", now, body)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == str(now)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))  # the key is the decoded bytes
    digest = hmac.new(key, f"msg_1.{now}.".encode() + body, "sha256").digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert sign(SECRET, "msg_1", datetime.fromtimestamp(now, UTC), body.decode()) == headers
    with pytest.raises(ValueError, match="whsec_") as refused:
        sign("plain-text-secret-0123456789", "msg_1", now, body)
    assert "plain-text" not in str(refused.value)
    assert secret_problem(new_secret()) is None and new_secret() != new_secret()
    old = now - 3600
    cases = [
        (SECRET, body, headers, True),
        (OTHER_SECRET, body, headers, False),
        (SECRET, body + b" ", headers, False),
        (SECRET, body, {**headers, "webhook-id": "msg_2"}, False),
        (SECRET, body, {**headers, "webhook-timestamp": str(now + 1)}, False),
        (SECRET, body, sign(SECRET, "msg_1", old, body), False),  # a replay, too old
        (SECRET, body, {k: v for k, v in headers.items() if k != "webhook-id"}, False),
    ]
    namespace: dict[str, Any] = {}
    exec(_doc_block("python"), namespace)
    for secret, data, sent, expected in cases:
        assert verified(secret, data, sent) is expected
        assert (namespace["verify_statusflow"](secret, data, sent) is not None) is expected

    node = subprocess.run(["which", "node"], capture_output=True, text=True).stdout.strip()
    if not node:
        pytest.skip("Node.js is not installed")
    script = _doc_block("js") + (
        "\nconst cases = JSON.parse(process.env.CASES);\n"
        "console.log(JSON.stringify(cases.map(([secret, body, headers]) =>"
        " verifyStatusflow(secret, Buffer.from(body, 'base64'), headers))));\n"
    )
    result = subprocess.run(
        [node, "-e", script],
        env={
            "CASES": json.dumps(
                [[secret, base64.b64encode(data).decode(), sent] for secret, data, sent, _ in cases]
            ),
            "PATH": os.environ.get("PATH", ""),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [expected for *_, expected in cases]


async def test_bad_settings_stop_start_up(make_client, monkeypatch):
    monkeypatch.delenv("STORE_SECRET", raising=False)
    endpoint = {"id": "store", "url": "http://127.0.0.1:9/hook", "secret": SECRET}
    for table, fragment in (
        ({"endpoints": [{**endpoint, "secret": "short"}]}, "secret"),
        ({"endpoints": [{**endpoint, "secret": "test-secret-0123456789abcdef"}]}, "whsec_"),
        ({"endpoints": [{**endpoint, "url": "mailto:x"}]}, "url"),
        ({"endpoints": [{**endpoint, "url": "http://127.0.0.1:99999/x"}]}, "Port out of range"),
        ({"endpoints": [endpoint, endpoint]}, "unique"),
        ({"lease": 5, "request_timeout": 10}, "lease"),
        ({"retries": 3}, "retries"),
        ({"endpoints": [{**endpoint, "secret": {"$env": "STORE_SECRET"}}]}, "STORE_SECRET"),
    ):
        with pytest.raises(StartupError, match=fragment):
            await make_client(enable=PLUGINS, plugin_tables={"outgoing_webhooks": table})
    # a URL's credentials and query may be secrets: the message shows neither
    leaky = "http://bob:hunter2-pass@127.0.0.1:99999/x?token=hunter2-token"
    with pytest.raises(StartupError, match="Port out of range") as refused:
        await make_client(
            enable=PLUGINS,
            plugin_tables={"outgoing_webhooks": {"endpoints": [{**endpoint, "url": leaky}]}},
        )
    assert "hunter2" not in str(refused.value)
    assert "http://127.0.0.1:99999/x" in str(refused.value)
    monkeypatch.setenv("STORE_SECRET", SECRET)
    api = Api(
        await make_client(
            enable=PLUGINS,
            plugin_tables={
                "outgoing_webhooks": {
                    "endpoints": [{**endpoint, "secret": {"$env": "STORE_SECRET"}}]
                }
            },
        )
    )
    assert [e["id"] for e in await api.call("GET", "/api/webhook-endpoints")] == ["store"]


async def test_migrations_match_the_tables_and_a_disabled_plugin_never_stops_start_up(
    make_client, database_url
):
    await make_client(enable=PLUGINS)
    await make_client(enable=("payment",))  # its migrations stay known while it is disabled
    await migrate(database_url, [str(outgoing_webhooks.MIGRATIONS)])

    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(
            sync_conn,
            opts={
                "include_name": lambda name, kind, parent: (
                    kind != "table" or str(name).startswith("outgoing_webhooks")
                )
            },
        )
        return list(compare_metadata(context, metadata))

    assert await in_transaction(database_url, diff) == []


async def test_non_ascii_digits_in_feed_and_deliveries_queries_are_422(make_client):
    client = await make_client()
    for path in (
        "/api/moves?after=%C2%B3",
        "/api/moves?limit=%C2%B2",
        "/api/deliveries?limit=%C2%B2",
    ):
        response = await client.get(path)
        assert response.status == 422, path
        assert set((await response.json())["error"]) == {"code", "message", "details"}


async def test_delivered_deliveries_are_deleted_after_keep_delivered(make_client, receiver):
    api = await start(make_client, receiver, keep_delivered=0.3)
    await api.trigger_id("P")
    await api.create_order("o1")
    await api.post_events(event(order_id="o1", id="e1"))
    await eventually(lambda: len(receiver.delivered()) == 1)

    async def pruned() -> bool:
        return await deliveries(api) == []

    await eventually(pruned)
    # a failing endpoint's deliveries are kept, whatever keep_delivered says
    receiver.respond = lambda item: web.Response(status=500)
    await api.patch_order("o1", {"status": "S"})
    await eventually(lambda: any(r.status == 500 for r in receiver.received))
    await asyncio.sleep(1.0)  # several clean-ups later
    kept = await deliveries(api)
    assert [d["state"] for d in kept] == ["pending"]
    assert kept[0]["payload"]["to"] == "S"
