"""statusflow-easypost, installed, against a running statusflow.

Deliveries are EasyPost webhook Events as EasyPost documents them (an ``Event`` whose
``result`` is a ``Tracker``), signed the way EasyPost signs them: ``X-Hmac-Signature:
hmac-sha256-hex=<hex>``, HMAC-SHA256 of the raw body with the NFKD-normalised webhook
secret. Every signature made here is first checked with the ``easypost`` library's own
``validate_webhook``. The app comes from statusflow's pytest plugin (``statusflow_app``),
which finds this distribution through its entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import sqlite3
import unicodedata
from typing import Any

import asyncpg
import pytest
from easypost.errors import SignatureVerificationError
from easypost.util import validate_webhook
from sqlalchemy.dialects import postgresql, sqlite
from statusflow_easypost.lookup import fields_query, recorded_query
from structlog.testing import capture_logs

from statusflow.errors import StartupError

# "é" composed and the "ﬁ" ligature: NFKD changes both, so a signature made with the
# secret as typed (not normalised) is refused
SECRET = "s\u00e9cret-\ufb01le-2024"
PATH = "/sources/easypost"
HEADER = "X-Hmac-Signature"


def sign(body: bytes, secret: str = SECRET, *, normalise: bool = True) -> str:
    """EasyPost's signature of ``body``."""
    key = (unicodedata.normalize("NFKD", secret) if normalise else secret).encode()
    return "hmac-sha256-hex=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def tracker(
    tracking_code: str,
    *,
    tracker_id: str = "trk_6ee2d1a0b2c44f4c8c5f0a1e3d5b7c9a",
    carrier: str | None = "USPS",
    status: str = "pre_transit",
) -> dict[str, Any]:
    """A Tracker as EasyPost's API reference shows it."""
    return {
        "id": tracker_id,
        "object": "Tracker",
        "mode": "test",
        "tracking_code": tracking_code,
        "status": status,
        "status_detail": "status_update",
        "created_at": "2024-11-27T09:30:00Z",
        "updated_at": "2024-11-27T09:33:20Z",
        "signed_by": None,
        "weight": None,
        "est_delivery_date": "2024-11-30T09:33:20Z",
        "shipment_id": None,
        "carrier": carrier,
        "tracking_details": [
            {
                "object": "TrackingDetail",
                "message": "Pre-Shipment information received",
                "status": "pre_transit",
                "status_detail": "status_update",
                "datetime": "2024-10-27T09:33:20Z",
                "source": carrier,
                "carrier_code": "",
                "tracking_location": {
                    "object": "TrackingLocation",
                    "city": None,
                    "state": None,
                    "country": None,
                    "zip": None,
                },
            }
        ],
        "carrier_detail": {"object": "CarrierDetail", "service": "First-Class Package Service"},
        "finalized": False,
        "is_return": False,
        "public_url": f"https://track.easypost.com/djE6{tracker_id[4:]}",
        "fees": [],
    }


def event(event_id: str, description: str, result: dict[str, Any]) -> dict[str, Any]:
    """An EasyPost Event as it is posted to a webhook URL."""
    return {
        "id": event_id,
        "object": "Event",
        "mode": "test",
        "description": description,
        "previous_attributes": {"status": "unknown"},
        "created_at": "2024-11-27T09:33:20.000Z",
        "updated_at": "2024-11-27T09:33:20.000Z",
        "pending_urls": ["https://shop.example.com/sources/easypost"],
        "completed_urls": [],
        "user_id": "user_0a1b2c3d4e5f",
        "status": "pending",
        "result": result,
    }


def update(event_id: str, code: str, status: str, **kwargs: Any) -> dict[str, Any]:
    return event(event_id, "tracker.updated", tracker(code, status=status, **kwargs))


async def send(
    sf: Any,
    body: dict[str, Any] | bytes,
    *,
    signature: str | None = None,
    expect: int = 200,
) -> dict[str, Any]:
    """POST ``body`` as EasyPost does, signed with :data:`SECRET` unless ``signature``."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if signature is None:
        signature = sign(raw)
        # the provider's own library agrees with the signature (and then refuses a body
        # that is not JSON with a ValueError: json.loads)
        with contextlib.suppress(ValueError):
            validate_webhook(raw, {HEADER: signature}, SECRET)
    headers = {"Content-Type": "application/json"}
    if signature:
        headers[HEADER] = signature
    response = await sf.client.post(PATH, data=raw, headers=headers)
    answer = await response.json()
    assert response.status == expect, answer
    return dict(answer)


def config(**easypost: Any) -> dict[str, Any]:
    return {"plugins": {"easypost": {"webhook_secret": SECRET, **easypost}}}


async def shipping_app(statusflow_app: Any) -> Any:
    """The shipment and easypost plugins; a label moves an order to P, shipping to S,
    and a delivered update to F."""
    sf = await statusflow_app(plugins=["shipment", "easypost"], config=config())
    await sf.create_trigger("shipment.tracking_number_added", "P", settings={"delivery_id": "USPS"})
    await sf.create_trigger("shipment.shipped", "S")
    conditions = [{"field": "event.status", "op": "eq", "value": "delivered"}]
    await sf.create_trigger("shipment.updated", "F", conditions=conditions)
    return sf


def moved_to(result: dict[str, Any]) -> list[str]:
    return [move["to"] for move in result["moves"]]


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_a_tracker_moves_its_order_and_ships_once(statusflow_app):
    sf = await shipping_app(statusflow_app)
    await sf.create_order("1001", fields={"tracking_number": "EZ1000000001", "carrier": "USPS"})

    created = await send(sf, event("evt_1", "tracker.created", tracker("EZ1000000001")))
    assert created["event_id"] == "easypost:evt_1" and created["duplicate"] is False
    assert created["order_ids"] == ["1001"] and moved_to(created) == ["P"]
    assert "shipped" not in created
    stored = next(e for e in await sf.timeline("1001") if e["kind"] == "event")
    assert stored["type"] == "shipment.tracking_number_added"
    assert stored["occurred_at"] == "2024-11-27T09:33:20.000000Z"
    assert {k: stored["data"][k] for k in ("tracking_number", "carrier", "delivery_id")} == {
        "tracking_number": "EZ1000000001",
        "carrier": "USPS",
        "delivery_id": "USPS",
    }
    assert stored["data"]["tracker_id"] == "trk_6ee2d1a0b2c44f4c8c5f0a1e3d5b7c9a"

    pre = await send(sf, update("evt_2", "EZ1000000001", "pre_transit"))
    assert pre["event_id"] == "easypost:evt_2" and pre["moves"] == [] and "shipped" not in pre

    moving = await send(sf, update("evt_3", "EZ1000000001", "in_transit"))
    assert moving["event_id"] == "easypost:evt_3" and moving["moves"] == []
    assert moving["shipped"]["event_id"] == "easypost:evt_3:shipped"
    assert moving["shipped"]["order_ids"] == ["1001"] and moved_to(moving["shipped"]) == ["S"]
    assert (await sf.get_event("easypost:evt_3:shipped"))["type"] == "shipment.shipped"

    # in transit again, and again after an out-for-delivery: no second shipment.shipped
    for event_id, status in (("evt_4", "in_transit"), ("evt_5", "out_for_delivery")):
        answer = await send(sf, update(event_id, "EZ1000000001", status))
        assert answer["order_ids"] == ["1001"] and "shipped" not in answer
    again = await send(sf, update("evt_6", "EZ1000000001", "in_transit"))
    assert "shipped" not in again
    await sf.get_event("easypost:evt_6:shipped", expect=404)

    # EasyPost retries a delivery: duplicates, nothing moves twice
    retry = await send(sf, update("evt_3", "EZ1000000001", "in_transit"))
    assert retry["duplicate"] is True and retry["shipped"]["duplicate"] is True
    assert moved_to(retry["shipped"]) == ["S"]
    assert (await send(sf, event("evt_1", "tracker.created", tracker("EZ1000000001"))))[
        "duplicate"
    ] is True

    delivered = await send(sf, update("evt_7", "EZ1000000001", "delivered"))
    assert moved_to(delivered) == ["F"]
    assert await sf.status_of("1001") == "F"
    events = [e["type"] for e in await sf.timeline("1001") if e["kind"] == "event"]
    assert events == [
        "shipment.tracking_number_added",
        "shipment.updated",
        "shipment.updated",
        "shipment.shipped",
        "shipment.updated",
        "shipment.updated",
        "shipment.updated",
        "shipment.updated",
    ]
    assert await sf.event_count() == 8


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_numbers_on_record_from_stored_events(statusflow_app):
    sf = await shipping_app(statusflow_app)
    await sf.create_order("2001")
    await sf.create_order("2002", contact={"phones": ["+1 415 555 0100"]})
    await sf.create_order("2003", contact={"phones": ["+1 415 555 0100"]})
    # the store reports its label, with spaces and in lower case, and the carrier
    label = {"tracking_number": "9400 1000 0000 0000 0000 01", "carrier": "usps"}
    await sf.post_event(type="shipment.approved", order_id="2001", data=label)
    # an event fanned out by contact puts its number on record for each order it reached
    await sf.post_event(
        type="shipment.tracking_number_added",
        contact={"phone": "+14155550100"},
        data={"tracking_number": "1z999aa10123456784"},
    )
    # an event that resolved to no order records nothing
    await sf.post_event(
        type="shipment.tracking_number_added",
        contact={"email": "nobody@example.com"},
        data={"tracking_number": "LZ000000000US"},
    )

    answer = await send(sf, update("evt_1", "9400100000000000000001", "in_transit"))
    assert answer["order_ids"] == ["2001"] and moved_to(answer["shipped"]) == ["S"]
    # two orders carry 1Z999AA10123456784: the newest one is the tracker's
    answer = await send(sf, update("evt_2", "1Z999AA10123456784", "in_transit", carrier="UPS"))
    assert answer["order_ids"] == ["2003"]
    # a shipment.shipped of its own: once per tracker and order
    assert answer["shipped"]["order_ids"] == ["2003"]
    unknown = await send(sf, update("evt_3", "LZ000000000US", "pre_transit"))
    assert unknown["order_ids"] == []

    # a tracker.created found through fields puts the number on record: the tracker
    # keeps its order when the order's fields.tracking_number changes (a new label)
    await sf.create_order("2004", fields={"tracking_number": "EZ3000000003"})
    created = await send(sf, event("evt_5", "tracker.created", tracker("EZ3000000003")))
    assert created["order_ids"] == ["2004"]
    await sf.call("PATCH", "/api/orders/2004", {"fields": {"tracking_number": "EZ5"}})
    answer = await send(sf, update("evt_6", "EZ3000000003", "out_for_delivery"))
    assert answer["order_ids"] == ["2004"]

    # the record survives a restart, on the same database
    again = await statusflow_app(
        plugins=["shipment", "easypost"], config=config(), database_url=sf.database_url
    )
    answer = await send(again, update("evt_4", "9400100000000000000001", "delivered"))
    assert answer["order_ids"] == ["2001"]


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_reused_tracking_codes_go_by_carrier_then_to_the_newest_order(statusflow_app):
    sf = await shipping_app(statusflow_app)
    code = "1Z999AA10123456784"
    # three orders, oldest first, carry the same code over the years
    await sf.create_order("r1", fields={"tracking_number": code, "carrier": "UPS"})
    await sf.create_order("r2")
    await sf.post_event(
        type="shipment.tracking_number_added",
        order_id="r2",
        data={"tracking_number": code, "carrier": "UPS"},
    )
    await sf.create_order("r3", fields={"tracking_number": code.lower(), "carrier": "Fed Ex"})

    ups = await send(sf, update("evt_ups", code, "in_transit", carrier="UPS", tracker_id="trk_1"))
    assert ups["order_ids"] == ["r2"]  # r3 is FedEx's; r2 is newer than r1
    fedex = await send(
        sf, update("evt_fedex", code, "in_transit", carrier="FedEx", tracker_id="trk_2")
    )
    assert fedex["order_ids"] == ["r3"]
    unknown = await send(sf, update("evt_any", code, "pre_transit", carrier=None))
    assert unknown["order_ids"] == ["r3"]  # no carrier to tell: the newest order
    dhl = await send(sf, update("evt_dhl", code, "in_transit", carrier="DHLExpress"))
    assert dhl["order_ids"] == [] and dhl["moves"] == []
    # each (tracker, order) shipped once; the unmatched tracker's shipment.shipped is
    # stored, with no order
    assert [await sf.status_of(o) for o in ("r1", "r2", "r3")] == ["N", "S", "S"]
    assert dhl["shipped"]["order_ids"] == []


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_an_unknown_tracking_number_is_stored_and_answered_200(statusflow_app):
    sf = await shipping_app(statusflow_app)
    with capture_logs() as logs:
        answer = await send(sf, update("evt_9", "EZ4000000004", "in_transit"))
    assert answer["event_id"] == "easypost:evt_9"
    assert answer["order_ids"] == [] and answer["moves"] == []
    assert answer["shipped"]["event_id"] == "easypost:evt_9:shipped"
    assert answer["shipped"]["order_ids"] == []
    stored = await sf.get_event("easypost:evt_9")
    assert stored["type"] == "shipment.updated" and stored["order_ids"] == []
    assert any(log["event"] == "easypost.order_not_found" for log in logs)
    # retried: duplicates
    retry = await send(sf, update("evt_9", "EZ4000000004", "in_transit"))
    assert retry["duplicate"] is True and retry["shipped"]["duplicate"] is True
    assert await sf.event_count() == 2

    # the store records the number later: the next update finds the order, and its
    # first in_transit for that order is its shipment.shipped
    await sf.create_order("3001", fields={"tracking_number": "EZ4000000004"})
    later = await send(sf, update("evt_10", "EZ4000000004", "in_transit"))
    assert later["order_ids"] == ["3001"] and moved_to(later["shipped"]) == ["S"]


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_concurrent_in_transit_updates_ship_once(statusflow_app):
    sf = await shipping_app(statusflow_app)
    await sf.create_order("4001", fields={"tracking_number": "EZ2000000002"})
    answers = await asyncio.gather(
        *(send(sf, update(f"evt_c{i}", "EZ2000000002", "in_transit")) for i in range(6))
    )
    shipped = [a["shipped"] for a in answers if "shipped" in a]
    assert len(shipped) == 1 and moved_to(shipped[0]) == ["S"]
    assert all(a["order_ids"] == ["4001"] for a in answers)
    assert await sf.event_count() == 7


async def test_bad_signatures_are_403_log_and_store_nothing(statusflow_app):
    sf = await shipping_app(statusflow_app)
    await sf.create_order("1001", fields={"tracking_number": "EZ1000000001"})
    body = json.dumps(update("evt_1", "EZ1000000001", "in_transit")).encode()
    cases = {
        "no signature": "",
        "another secret": sign(body, "another secret"),
        "the secret not NFKD-normalised": sign(body, normalise=False),
        "another body": sign(body + b" "),
        "another scheme": "sha256=" + sign(body).split("=", 1)[1],
        "the hex alone": sign(body).split("=", 1)[1],
        "not ASCII": "hmac-sha256-hex=\u00e9t\u00e9",
    }
    for name, signature in cases.items():
        if signature:  # the library refuses it too (non-ASCII text: a TypeError)
            with pytest.raises((SignatureVerificationError, TypeError)):
                validate_webhook(body, {HEADER: signature}, SECRET)
        with capture_logs() as logs:
            answer = await send(sf, body, signature=signature, expect=403)
        assert answer["error"]["code"] == "bad_signature", name
        assert [log["event"] for log in logs] == ["easypost.bad_signature"], name
        assert SECRET not in json.dumps(answer) + repr(logs)
    # an unsigned body is refused before it is read: even one that is not JSON
    await send(sf, b"{not json", signature="", expect=403)
    assert await sf.event_count() == 0
    assert await sf.status_of("1001") == "N"
    # the same body, signed
    assert (await send(sf, body))["order_ids"] == ["1001"]


async def test_signed_deliveries_that_are_not_tracker_events(statusflow_app):
    sf = await shipping_app(statusflow_app)
    await sf.create_order("1001", fields={"tracking_number": "EZ1000000001"})
    for raw in (b"{not json", b"", b"\xff\xfe"):
        answer = await send(sf, raw, expect=400)
        assert answer["error"]["code"] == "malformed_json"
    no_result = update("evt_1", "EZ1000000001", "in_transit")
    del no_result["result"]
    no_code = update("evt_2", "EZ1000000001", "in_transit")
    no_code["result"]["tracking_code"] = None
    no_id = update("evt_3", "EZ1000000001", "in_transit")
    del no_id["id"]
    for body in ([no_result], no_result, no_code, no_id, {"description": 7, "id": "evt_4"}):
        answer = await send(sf, json.dumps(body).encode(), expect=400)
        assert answer["error"]["code"] == "malformed_event", body
    # kinds that post nothing: 200, so that EasyPost does not retry them
    batch = event("evt_5", "batch.created", {"id": "batch_1", "object": "Batch"})
    report = event("evt_6", "report.available", {"id": "plrep_1", "object": "PaymentLogReport"})
    for body in (batch, report):
        answer = await send(sf, body)
        assert answer["received"] is True and body["description"] in answer["ignored"]
    assert await sf.event_count() == 0


async def test_installed_listed_disabled_and_configured(statusflow_app, statusflow_cli):
    sf = await statusflow_app(config=config())
    assert (await sf.plugins())["easypost"] == {
        "name": "easypost",
        "distribution": "statusflow-easypost",
        "version": "0.1.0",
        "trigger_types": [],
        "enabled": True,
    }
    openapi = await sf.call("GET", "/api/openapi.json")
    assert "post" in openapi["paths"][PATH]
    off = await statusflow_app(config={**config(), "plugins": {"disable": ["easypost"]}})
    assert (await off.plugins())["easypost"]["enabled"] is False
    await send(off, update("evt_1", "EZ1000000001", "in_transit"), expect=404)
    assert await off.event_count() == 0
    result = statusflow_cli("plugins", "--json", config={"plugins": {"disable": ["easypost"]}})
    assert result.returncode == 0, result.stderr
    assert {p["name"]: p for p in json.loads(result.stdout)}["easypost"]["enabled"] is False

    for bad in ({"webhook_secret": ""}, {"webhook_secret": SECRET, "secret": SECRET}):
        with pytest.raises(StartupError, match=r"'easypost'") as error:
            await statusflow_app(plugins=["easypost"], config={"plugins": {"easypost": bad}})
        assert SECRET not in str(error.value)
    bare = await statusflow_app(plugins=["shipment", "easypost"])
    answer = await send(bare, update("evt_1", "EZ1000000001", "in_transit"), expect=503)
    assert "webhook_secret" in answer["error"]["message"]


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_the_lookup_reads_indexes(statusflow_app, statusflow_database):
    """Both lookups are index probes, not scans of the orders or events."""
    sf = await shipping_app(statusflow_app)
    dialect = "sqlite" if statusflow_database == "sqlite" else "postgresql"
    queries = (
        (recorded_query("EZ1"), "ix_easypost_tracking_numbers_tracking_number"),
        (fields_query(dialect, "EZ1"), "ix_easypost_orders_tracking_number"),
    )
    if statusflow_database == "sqlite":
        with sqlite3.connect(sf.database_url.removeprefix("sqlite:///")) as conn:
            for query, index in queries:
                sql = str(query.compile(dialect=sqlite.dialect()))
                plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ["EZ1"])]
                assert any(index in step for step in plan), plan
                assert not any(step.startswith("SCAN") for step in plan), plan
        return
    url = sf.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET enable_seqscan = off")
        for query, index in queries:
            sql = str(query.compile(dialect=postgresql.asyncpg.dialect()))
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", "EZ1"))
            assert index in plan, plan
    finally:
        await conn.close()
