"""statusflow-sendgrid, installed, against a running statusflow.

Deliveries are shaped like SendGrid's documented Event Webhook posts (a JSON array of
events, custom arguments at the top level of each) and signed as SendGrid signs them:
ECDSA P-256 with SHA-256 over ``timestamp + body``, the signature base64 (DER) in
``X-Twilio-Email-Event-Webhook-Signature``, the timestamp in ``...-Timestamp``. The key
pair is made here; its public half is given to the plugin base64, as SendGrid's
dashboard shows it. The app comes from statusflow's pytest plugin (``statusflow_app``).
"""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sendgrid.helpers.eventwebhook import EventWebhook
from structlog.testing import capture_logs

from statusflow.errors import StartupError

PATH = "/sources/sendgrid"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"

PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def shown_key(private: Any) -> str:
    """The public key as SendGrid's dashboard shows it: base64 of its DER form."""
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


PUBLIC_KEY = shown_key(PRIVATE_KEY)

# One delivery as SendGrid posts it: the store sent order 1001's mail with the custom
# argument order_id, and a newsletter to Bob without one.
BATCH: list[dict[str, Any]] = [
    {
        "email": "ada@example.com",
        "timestamp": 1732700000,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "processed",
        "category": ["order"],
        "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "order_id": "1001",
    },
    {
        "email": "ada@example.com",
        "timestamp": 1732700005,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "delivered",
        "ip": "168.1.1.1",
        "category": ["order"],
        "sg_event_id": "ZGVsaXZlcmVkLTAtMzI0NDk5MTUtVVk2czZUWjR0ZEd",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "response": "250 OK",
        "tls": 1,
        "order_id": "1001",
    },
    {
        "email": "ada@example.com",
        "timestamp": 1732700060,
        "event": "open",
        "sg_machine_open": False,
        "category": ["order"],
        "sg_event_id": "b3Blbi0wLTMyNDQ5OTE1LVVZNnM2VFo0dGRHcVNnZ3A",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "useragent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "ip": "255.255.255.255",
        "order_id": "1001",
    },
    {
        "email": "Bob@Example.com",
        "timestamp": 1732700120,
        "event": "click",
        "category": ["newsletter"],
        "sg_event_id": "Y2xpY2stMC0zMjQ0OTkxNS1VWTZzNlRaNHRkR3FTZ2dw",
        "sg_message_id": "15d5e86df04.efe.75c570.filter0002.17759.6626F1C99.0",
        "useragent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
        "ip": "255.255.255.255",
        "url": "https://shop.example.com/pay/1002?utm_source=sendgrid",
        "url_offset": {"index": 0, "type": "html"},
    },
    {
        "email": "Bob@Example.com",
        "timestamp": 1732700125,
        "event": "click",
        "category": ["newsletter"],
        "sg_event_id": "Y2xpY2stMS0zMjQ0OTkxNS1VWTZzNlRaNHRkR3FTZ2dw",
        "sg_message_id": "15d5e86df04.efe.75c570.filter0002.17759.6626F1C99.0",
        "useragent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
        "ip": "255.255.255.255",
        "url": "https://blog.example.com/spring",
        "url_offset": {"index": 1, "type": "html"},
    },
]

MACHINE_OPEN: dict[str, Any] = {
    "email": "ada@example.com",
    "timestamp": 1732700200,
    "event": "open",
    "sg_machine_open": True,
    "sg_event_id": "bWFjaGluZS1vcGVuLTAtMzI0NDk5MTUtVVk2czZUWjQ",
    "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    "useragent": "Mozilla/5.0",
    "ip": "17.58.0.1",
    "order_id": "1001",
}


def sign(body: bytes, timestamp: str, key: Any = PRIVATE_KEY) -> str:
    """The signature header SendGrid sends for ``body`` at ``timestamp``."""
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def payload(events: list[dict[str, Any]] | str) -> bytes:
    # SendGrid posts compact JSON; any bytes work as long as they are the ones signed
    return (events if isinstance(events, str) else json.dumps(events)).encode()


async def deliver(
    sf: Any,
    events: list[dict[str, Any]] | str | bytes,
    *,
    headers: dict[str, str] | None = None,
    age: int = 0,
    expect: int = 200,
) -> Any:
    """POST a delivery as SendGrid does, signed with ``PRIVATE_KEY`` ``age`` seconds ago
    unless ``headers`` are given."""
    body = events if isinstance(events, bytes) else payload(events)
    if headers is None:
        timestamp = str(int(time.time()) - age)
        headers = {SIGNATURE: sign(body, timestamp), TIMESTAMP: timestamp}
    response = await sf.client.post(
        PATH, data=body, headers={"Content-Type": "application/json", **headers}
    )
    answer = await response.json()
    assert response.status == expect, answer
    return answer


def config(**sendgrid: Any) -> dict[str, Any]:
    return {"plugins": {"sendgrid": {"public_key": PUBLIC_KEY, **sendgrid}}}


async def mail_app(statusflow_app: Any, **sendgrid: Any) -> Any:
    """The email and sendgrid plugins; Ada's order 1001 and Bob's 1002; opens move to P,
    clicks on the payment page to S."""
    sf = await statusflow_app(plugins=["email", "sendgrid"], config=config(**sendgrid))
    await sf.create_order("1001", contact={"name": "Ada", "emails": ["ada@example.com"]})
    await sf.create_order("1002", contact={"name": "Bob", "emails": ["bob@example.com"]})
    await sf.create_trigger("email.viewed", "P")
    await sf.create_trigger(
        "email.link_clicked", "S", settings={"url": "https://shop.example.com/pay/"}
    )
    return sf


def test_the_tests_sign_as_sendgrid_checks():
    body, timestamp = payload(BATCH), "1732700300"
    webhook = EventWebhook(PUBLIC_KEY)
    assert webhook.verify_signature(body.decode(), sign(body, timestamp), timestamp)
    assert not webhook.verify_signature(body.decode(), sign(body, timestamp, OTHER_KEY), timestamp)


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_a_signed_batch_moves_orders_once(statusflow_app):
    sf = await mail_app(statusflow_app)
    answers = await deliver(sf, BATCH)
    assert len(answers) == len(BATCH)
    assert answers[0] == {"received": True, "ignored": "SendGrid event 'processed' is not handled"}
    delivered, opened, paid, blog = answers[1:]
    assert delivered == {
        "event_id": "sendgrid:ZGVsaXZlcmVkLTAtMzI0NDk5MTUtVVk2czZUWjR0ZEd",
        "duplicate": False,
        "order_ids": ["1001"],
        "moves": [],  # email.sent: no trigger listens
    }
    assert opened["moves"] == [{"order_id": "1001", "from": "N", "to": "P", "trigger_id": 1}]
    # Bob's click has no order_id: his open orders, by email, case-insensitively
    assert paid["order_ids"] == ["1002"]
    assert paid["moves"] == [{"order_id": "1002", "from": "N", "to": "S", "trigger_id": 2}]
    # the link trigger's url prefix applies: a click elsewhere moves nothing
    assert blog["order_ids"] == ["1002"] and blog["moves"] == []
    assert (await sf.status_of("1001"), await sf.status_of("1002")) == ("P", "S")

    events = [e for e in await sf.timeline("1001") if e["kind"] == "event"]
    assert [e["type"] for e in events] == ["email.sent", "email.viewed"]
    assert events[1]["data"] == {
        "message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "machine_open": False,
    }
    assert events[1]["occurred_at"] == "2024-11-27T09:34:20.000000Z"
    clicks = [e for e in await sf.timeline("1002") if e["kind"] == "event"]
    assert [e["data"]["url"] for e in clicks] == [
        "https://shop.example.com/pay/1002?utm_source=sendgrid",
        "https://blog.example.com/spring",
    ]
    assert [e["type"] for e in clicks] == ["email.link_clicked"] * 2
    trace = {t["trigger_id"]: t for t in (await sf.get_event(blog["event_id"]))["trace"]}
    assert trace[2]["outcome"] == "skipped" and "url" in trace[2]["reason"]

    # SendGrid retries the delivery (new timestamp, new signature): duplicates, no moves
    again = await deliver(sf, BATCH, age=30)
    assert [a.get("duplicate") for a in again] == [None, True, True, True, True]
    assert [a.get("moves") for a in again[1:]] == [a["moves"] for a in answers[1:]]
    assert await sf.event_count() == 4
    assert [e["kind"] for e in await sf.timeline("1001")].count("event") == 2


async def test_bad_signatures_are_403_and_store_nothing(statusflow_app):
    sf = await mail_app(statusflow_app)
    body = payload(BATCH)
    now = str(int(time.time()))
    good = sign(body, now)
    cases = {
        "no headers": {},
        "no timestamp": {SIGNATURE: good},
        "no signature": {TIMESTAMP: now},
        "another key": {SIGNATURE: sign(body, now, OTHER_KEY), TIMESTAMP: now},
        "another timestamp": {SIGNATURE: good, TIMESTAMP: str(int(now) - 1)},
        "another body": {SIGNATURE: sign(body + b" ", now), TIMESTAMP: now},
        "not base64": {SIGNATURE: "not a signature!", TIMESTAMP: now},
        "not a DER signature": {SIGNATURE: base64.b64encode(b"x" * 64).decode(), TIMESTAMP: now},
    }
    for name, headers in cases.items():
        with capture_logs() as logs:
            answer = await deliver(sf, body, headers=headers, expect=403)
        assert answer["error"]["code"] == "bad_signature", name
        (logged,) = [e for e in logs if e["event"] == "sendgrid.bad_signature"]
        assert logged["log_level"] == "warning" and logged["reason"] == answer["error"]["message"]
    # a body changed after signing
    tampered = payload(BATCH).replace(b"1001", b"1002")
    answer = await deliver(sf, tampered, headers={SIGNATURE: good, TIMESTAMP: now}, expect=403)
    assert "does not sign" in answer["error"]["message"]
    # bytes that are not UTF-8 cannot be what SendGrid signed
    latin = b'[{"email": "\xe9@example.com"}]'
    await deliver(sf, latin, headers={SIGNATURE: sign(latin, now), TIMESTAMP: now}, expect=403)
    assert await sf.event_count() == 0
    assert (await sf.status_of("1001"), await sf.status_of("1002")) == ("N", "N")


async def test_stale_or_future_timestamps_are_403(statusflow_app):
    sf = await mail_app(statusflow_app, max_age_seconds=60)
    stale = await deliver(sf, BATCH, age=120, expect=403)
    assert stale["error"]["code"] == "bad_signature"
    assert "max_age_seconds (60)" in stale["error"]["message"]
    ahead = await deliver(sf, BATCH, age=-120, expect=403)
    assert "in the future" in ahead["error"]["message"]
    assert await sf.event_count() == 0
    # within the window it is accepted; the default window is 600 seconds
    assert (await deliver(sf, BATCH, age=30))[2]["moves"][0]["to"] == "P"
    default = await mail_app(statusflow_app)
    await deliver(default, BATCH, age=660, expect=403)
    assert len(await deliver(default, BATCH, age=540)) == len(BATCH)


async def test_signed_bodies_that_are_not_event_arrays_are_400(statusflow_app):
    sf = await mail_app(statusflow_app)
    answer = await deliver(sf, '[{"event": "open", ', expect=400)
    assert answer["error"]["code"] == "malformed_json"
    answer = await deliver(sf, json.dumps({"events": BATCH}), expect=400)
    assert answer["error"]["code"] == "malformed_event"
    assert "JSON array" in answer["error"]["message"]
    for bad, problem in (
        ("not an event", "JSON object"),
        ({"email": "ada@example.com", "sg_event_id": "x"}, "'event'"),
        ({k: v for k, v in BATCH[3].items() if k != "url"}, "url"),
        ({**BATCH[2], "sg_event_id": None}, "sg_event_id"),
        ({**BATCH[2], "order_id": {"id": "1001"}}, "order_id"),
        ({**BATCH[3], "email": "nobody"}, "neither"),
    ):
        # the good events before the bad one are not stored either
        with capture_logs() as logs:
            answer = await deliver(sf, [*BATCH[:3], bad], expect=400)
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["sendgrid.malformed"]
        assert answer["error"]["code"] == "malformed_event", bad
        assert [d["path"] for d in answer["error"]["details"]] == ["/3"], bad
        assert problem in answer["error"]["message"], (bad, answer)
    assert await sf.event_count() == 0
    assert await sf.status_of("1001") == "N"
    # an empty delivery (SendGrid's "test your integration" may post one) is fine
    assert await deliver(sf, []) == []


async def test_machine_opens_are_ignored_unless_configured(statusflow_app):
    sf = await mail_app(statusflow_app)
    (answer,) = await deliver(sf, [MACHINE_OPEN])
    assert answer["received"] is True and "machine open" in answer["ignored"]
    assert await sf.event_count() == 0 and await sf.status_of("1001") == "N"

    counted = await mail_app(statusflow_app, ignore_machine_opens=False)
    (result,) = await deliver(counted, [MACHINE_OPEN])
    assert result["event_id"] == f"sendgrid:{MACHINE_OPEN['sg_event_id']}"
    assert [m["to"] for m in result["moves"]] == ["P"]
    entry = next(e for e in await counted.timeline("1001") if e["kind"] == "event")
    assert entry["data"]["machine_open"] is True  # conditions can still tell them apart


async def test_an_unknown_order_is_stored_with_no_moves(statusflow_app):
    sf = await mail_app(statusflow_app)
    # Ada opens the mail of an order statusflow does not know: not her other order
    unknown = copy.deepcopy(BATCH[2])
    unknown["order_id"] = "9999"
    with capture_logs() as logs:
        (result,) = await deliver(sf, [unknown])
    (logged,) = [e for e in logs if e["event"] == "sendgrid.unknown_order"]
    assert logged["order_id"] == "9999" and logged["log_level"] == "warning"
    assert result == {
        "event_id": f"sendgrid:{unknown['sg_event_id']}",
        "duplicate": False,
        "order_ids": [],
        "moves": [],
    }
    stored = await sf.get_event(result["event_id"])
    assert stored["type"] == "email.viewed" and stored["moves"] == []
    assert await sf.status_of("1001") == "N"
    assert [e["kind"] for e in await sf.timeline("1001")] == ["created"]
    (again,) = await deliver(sf, [unknown])
    assert again["duplicate"] is True
    # an order in a final status is not found by email: stored, no moves, no retries
    await sf.call("PATCH", "/api/orders/1002", {"status": "F"})
    (done,) = await deliver(sf, [BATCH[3]])
    assert done["order_ids"] == [] and done["moves"] == []
    assert await sf.event_count() == 2


async def test_installed_listed_and_disabled(statusflow_app, statusflow_cli):
    sf = await statusflow_app(config=config())
    listed = (await sf.plugins())["sendgrid"]
    assert listed == {
        "name": "sendgrid",
        "distribution": "statusflow-sendgrid",
        "version": "0.1.0",
        "trigger_types": [],
        "enabled": True,
    }
    openapi = await sf.call("GET", "/api/openapi.json")
    assert "post" in openapi["paths"][PATH]
    off = await statusflow_app(config={**config(), "plugins": {"disable": ["sendgrid"]}})
    assert (await off.plugins())["sendgrid"]["enabled"] is False
    await deliver(off, BATCH, expect=404)
    assert await off.event_count() == 0
    result = statusflow_cli("plugins", "--json", config={"plugins": {"disable": ["sendgrid"]}})
    assert result.returncode == 0, result.stderr
    assert {p["name"]: p for p in json.loads(result.stdout)}["sendgrid"]["enabled"] is False


FROM_ENV = {"plugins": {"sendgrid": {"public_key": {"$env": "SENDGRID_WEBHOOK_PUBLIC_KEY"}}}}


async def test_settings_are_checked_at_start_up(statusflow_app, monkeypatch):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p384 = ec.generate_private_key(ec.SECP384R1())
    for key, problem in (
        ("bm90IGEga2V5", "is not a public key"),
        (shown_key(rsa_key), "not an ECDSA P-256"),
        (shown_key(p384), "not an ECDSA P-256"),
    ):
        with pytest.raises(StartupError, match=r"'sendgrid'.*public_key") as caught:
            await statusflow_app(plugins=["email", "sendgrid"], config=config(public_key=key))
        assert problem in str(caught.value) and key not in str(caught.value)
    for bad in ({"max_age_seconds": 0}, {"ignore_machine_opens": "no"}, {"secret": "x"}):
        with pytest.raises(StartupError, match=r"'sendgrid'"):
            await statusflow_app(plugins=["sendgrid"], config=config(**bad))
    with pytest.raises(StartupError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        await statusflow_app(plugins=["sendgrid"], config=FROM_ENV)

    # the key from the environment, and in PEM form as well as SendGrid shows it
    pem = PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", pem.decode())
    sf = await statusflow_app(plugins=["email", "sendgrid"], config=FROM_ENV)
    await sf.create_order("1001")
    assert (await deliver(sf, BATCH[1:3]))[0]["order_ids"] == ["1001"]
    # without a key the route answers 503 (and SendGrid retries until it is set)
    bare = await statusflow_app(plugins=["email", "sendgrid"])
    answer = await deliver(bare, BATCH, expect=503)
    assert "public_key" in answer["error"]["message"]
