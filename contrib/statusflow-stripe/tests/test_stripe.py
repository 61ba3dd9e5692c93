"""statusflow-stripe, installed, against a running statusflow.

Deliveries are shaped like Stripe's documented events and signed the way Stripe signs
them: ``Stripe-Signature: t=TIMESTAMP,v1=HEX(HMAC_SHA256(secret, f"{t}.{payload}"))``.
The app comes from statusflow's pytest plugin (``statusflow_app``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from statusflow_stripe import major_units

from statusflow.errors import StartupError

SECRET = "whsec_5c2b0e1d9a7f4c3e8b6a1d2f0e9c8b7a"
OLD_SECRET = "whsec_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
PATH = "/sources/stripe"

# A payment_intent.succeeded event as Stripe delivers it (API version 2024-06-20).
PAYMENT_INTENT_SUCCEEDED: dict[str, Any] = {
    "id": "evt_3PqRsTLkdIwHu7ix1aBcDeFg",
    "object": "event",
    "api_version": "2024-06-20",
    "created": 1732700000,
    "data": {
        "object": {
            "id": "pi_3PqRsTLkdIwHu7ix0XyZaBcD",
            "object": "payment_intent",
            "amount": 5990,
            "amount_capturable": 0,
            "amount_received": 5990,
            "application": None,
            "capture_method": "automatic_async",
            "client_secret": "pi_3PqRsTLkdIwHu7ix0XyZaBcD_secret_tHiSiSnOtReAl",
            "confirmation_method": "automatic",
            "created": 1732699990,
            "currency": "usd",
            "customer": "cus_R2d2C3p0",
            "description": "Order 1001",
            "last_payment_error": None,
            "latest_charge": "ch_3PqRsTLkdIwHu7ix0ChArGe1",
            "livemode": False,
            "metadata": {"order_id": "1001"},
            "next_action": None,
            "payment_method": "pm_1PqRsSLkdIwHu7ixCaRd4242",
            "payment_method_types": ["card"],
            "receipt_email": "ada@example.com",
            "status": "succeeded",
        }
    },
    "livemode": False,
    "pending_webhooks": 1,
    "request": {"id": "req_8dJ3kLmN0pQrSt", "idempotency_key": "3f1c0e2a-7a43-4d0e-9b7d"},
    "type": "payment_intent.succeeded",
}

# A checkout.session.completed event (payment mode, paid).
CHECKOUT_SESSION_COMPLETED: dict[str, Any] = {
    "id": "evt_1PqRtULkdIwHu7ixCheCkOuT",
    "object": "event",
    "api_version": "2024-06-20",
    "created": 1732700100,
    "data": {
        "object": {
            "id": "cs_test_a1B2c3D4e5F6g7H8i9J0",
            "object": "checkout.session",
            "amount_subtotal": 12000,
            "amount_total": 12000,
            "client_reference_id": None,
            "currency": "jpy",
            "customer_details": {"email": "ada@example.com", "name": "Ada", "phone": None},
            "livemode": False,
            "metadata": {"order_id": "1002"},
            "mode": "payment",
            "payment_intent": "pi_3PqRtULkdIwHu7ix1PaYmEnT",
            "payment_method_types": ["card"],
            "payment_status": "paid",
            "status": "complete",
            "url": None,
        }
    },
    "livemode": False,
    "pending_webhooks": 1,
    "request": {"id": None, "idempotency_key": None},
    "type": "checkout.session.completed",
}


def signature(payload: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends for ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    v1 = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def stripe_event(base: dict[str, Any], event_id: str | None = None, **obj: Any) -> dict[str, Any]:
    """A copy of ``base`` with another id and some fields of ``data.object`` changed."""
    event = copy.deepcopy(base)
    if event_id is not None:
        event["id"] = event_id
    event["data"]["object"].update(obj)
    return event


async def deliver(
    sf: Any, event: dict[str, Any] | str, header: str | None = None, expect: int = 200
) -> dict[str, Any]:
    """POST a delivery as Stripe does; signed with ``SECRET`` unless ``header`` is given."""
    payload = event if isinstance(event, str) else json.dumps(event, indent=2)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    sig = signature(payload) if header is None else header
    if sig:
        headers["Stripe-Signature"] = sig
    response = await sf.client.post(PATH, data=payload.encode(), headers=headers)
    body = await response.json()
    assert response.status == expect, body
    return dict(body)


def config(**stripe: Any) -> dict[str, Any]:
    return {"plugins": {"stripe": {"signing_secrets": [SECRET], **stripe}}}


async def paid_app(statusflow_app: Any, **stripe: Any) -> Any:
    """An app with the payment and stripe plugins, orders 1001 and 1002, and a trigger to P."""
    sf = await statusflow_app(plugins=["payment", "stripe"], config=config(**stripe))
    await sf.create_order("1001", amount=59.9, currency="USD")
    await sf.create_order("1002")
    await sf.create_trigger("payment.received", "P")
    return sf


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_a_signed_payment_moves_the_order_once(statusflow_app):
    sf = await paid_app(statusflow_app)
    result = await deliver(sf, PAYMENT_INTENT_SUCCEEDED)
    assert result["event_id"] == "stripe:evt_3PqRsTLkdIwHu7ix1aBcDeFg"
    assert result["duplicate"] is False
    assert result["moves"] == [{"order_id": "1001", "from": "N", "to": "P", "trigger_id": 1}]
    assert await sf.status_of("1001") == "P"
    entry = next(e for e in await sf.timeline("1001") if e["kind"] == "event")
    assert entry["type"] == "payment.received"
    assert entry["data"]["amount"] == 59.9
    assert entry["data"]["currency"] == "USD"
    assert entry["data"]["method"] == "card"
    assert entry["occurred_at"] == "2024-11-27T09:33:20.000000Z"
    stored = await sf.get_event("stripe:evt_3PqRsTLkdIwHu7ix1aBcDeFg")
    assert stored["order_ids"] == ["1001"]

    # Stripe retries the same event (a new signature, a new timestamp): nothing again
    retry = await deliver(sf, PAYMENT_INTENT_SUCCEEDED)
    assert retry["duplicate"] is True and retry["moves"] == result["moves"]
    assert await sf.event_count() == 1
    assert [e["kind"] for e in await sf.timeline("1001")].count("event") == 1


async def test_checkout_sessions_zero_decimal_currencies_and_references(statusflow_app):
    sf = await paid_app(statusflow_app)
    result = await deliver(sf, CHECKOUT_SESSION_COMPLETED)
    assert [m["to"] for m in result["moves"]] == ["P"]
    entry = next(e for e in await sf.timeline("1002") if e["kind"] == "event")
    assert entry["data"]["amount"] == 12000  # JPY has no minor unit
    assert entry["data"]["currency"] == "JPY"

    # a session paid by a delayed method completes unpaid: not a payment yet...
    await sf.create_order("1003")
    unpaid = stripe_event(
        CHECKOUT_SESSION_COMPLETED,
        "evt_unpaid",
        metadata={},
        client_reference_id="1003",
        payment_status="unpaid",
        currency="eur",
        amount_total=2550,
        payment_method_types=["sepa_debit"],
    )
    answer = await deliver(sf, unpaid)
    assert answer["received"] is True and "unpaid" in answer["ignored"]
    assert await sf.status_of("1003") == "N"
    # ...until the payment succeeds; client_reference_id names the order
    succeeded = {**unpaid, "id": "evt_async", "type": "checkout.session.async_payment_succeeded"}
    result = await deliver(sf, succeeded)
    assert result["order_ids"] == ["1003"] and [m["to"] for m in result["moves"]] == ["P"]
    entry = next(e for e in await sf.timeline("1003") if e["kind"] == "event")
    assert entry["data"] | {"stripe_object": None} == {
        "amount": 25.5,
        "currency": "EUR",
        "method": "sepa_debit",
        "stripe_object": None,
    }


async def test_bad_or_expired_signatures_store_nothing(statusflow_app):
    sf = await paid_app(statusflow_app, tolerance_seconds=60)
    payload = json.dumps(PAYMENT_INTENT_SUCCEEDED)
    now = int(time.time())
    cases = {
        "no header": "",
        "another secret": signature(payload, "whsec_00000000000000000000000000000000"),
        "another body": signature(payload.replace("5990", "1")),
        "too old for tolerance_seconds": signature(payload, timestamp=now - 120),
        "no v1": f"t={now},v0=abc",
        "garbage": "nonsense",
    }
    for name, header in cases.items():
        answer = await deliver(sf, payload, header=header, expect=400)
        assert answer["error"]["code"] == "bad_signature", name
    assert (
        "tolerance"
        in (await deliver(sf, payload, header=cases["too old for tolerance_seconds"], expect=400))[
            "error"
        ]["message"]
    )
    assert await sf.event_count() == 0
    assert await sf.status_of("1001") == "N"
    # within the tolerance it is accepted
    result = await deliver(sf, payload, header=signature(payload, timestamp=now - 30))
    assert [m["to"] for m in result["moves"]] == ["P"]


async def test_rotating_secrets(statusflow_app):
    sf = await statusflow_app(
        plugins=["payment", "stripe"],
        config={"plugins": {"stripe": {"signing_secrets": [SECRET, OLD_SECRET]}}},
    )
    for order_id in ("1001", "1002", "1003"):
        await sf.create_order(order_id)
    await sf.create_trigger("payment.received", "P")

    def for_order(order_id: str) -> str:
        event = stripe_event(PAYMENT_INTENT_SUCCEEDED, f"evt_{order_id}", metadata={})
        event["data"]["object"]["metadata"]["order_id"] = order_id
        return json.dumps(event)

    old = for_order("1001")
    assert (await deliver(sf, old, header=signature(old, OLD_SECRET)))["order_ids"] == ["1001"]
    new = for_order("1002")
    assert (await deliver(sf, new, header=signature(new, SECRET)))["order_ids"] == ["1002"]
    # while Stripe rolls the endpoint's secret it signs with both: two v1 entries
    both = for_order("1003")
    t = int(time.time())
    header = signature(both, "whsec_ffffffffffffffffffffffffffffffff", t)
    header += "," + signature(both, OLD_SECRET, t).split(",")[1]
    assert (await deliver(sf, both, header=header))["order_ids"] == ["1003"]
    for order_id in ("1001", "1002", "1003"):
        assert await sf.status_of(order_id) == "P"


async def test_other_events_and_unknown_orders_are_answered_200(statusflow_app):
    sf = await paid_app(statusflow_app)
    refunded = stripe_event(PAYMENT_INTENT_SUCCEEDED, "evt_refund")
    refunded["type"] = "charge.refunded"
    answer = await deliver(sf, refunded)
    assert answer == {"received": True, "ignored": "event type 'charge.refunded' is not handled"}
    no_order = stripe_event(PAYMENT_INTENT_SUCCEEDED, "evt_no_order", metadata={})
    assert "metadata.order_id" in (await deliver(sf, no_order))["ignored"]
    unknown = stripe_event(PAYMENT_INTENT_SUCCEEDED, "evt_unknown", metadata={"order_id": "nope"})
    assert (await deliver(sf, unknown))["ignored"] == "order 'nope' not found"
    assert await sf.event_count() == 0

    retrying = await statusflow_app(
        plugins=["payment", "stripe"], config=config(unknown_order="retry")
    )
    answer = await deliver(retrying, unknown, expect=404)
    assert answer["error"]["code"] == "order_not_found"
    assert await retrying.event_count() == 0


async def test_installed_listed_and_disabled(statusflow_app, statusflow_cli):
    sf = await statusflow_app(config=config())
    listed = (await sf.plugins())["stripe"]
    assert listed == {
        "name": "stripe",
        "distribution": "statusflow-stripe",
        "version": "0.1.0",
        "trigger_types": [],
        "enabled": True,
    }
    off = await statusflow_app(config={**config(), "plugins": {"disable": ["stripe"]}})
    assert (await off.plugins())["stripe"]["enabled"] is False
    await deliver(off, PAYMENT_INTENT_SUCCEEDED, expect=404)
    assert await off.event_count() == 0

    on, disabled = (
        statusflow_cli("plugins", "--json"),
        statusflow_cli("plugins", "--json", config={"plugins": {"disable": ["stripe"]}}),
    )
    assert on.returncode == 0 and disabled.returncode == 0, (on.stderr, disabled.stderr)
    assert {p["name"]: p for p in json.loads(on.stdout)}["stripe"] == listed
    assert {p["name"]: p for p in json.loads(disabled.stdout)}["stripe"]["enabled"] is False


FROM_ENV = {"plugins": {"stripe": {"signing_secrets": [{"$env": "STRIPE_WEBHOOK_SECRET"}]}}}


async def test_settings_are_checked_at_start_up(statusflow_app, monkeypatch):
    with pytest.raises(StartupError, match=r"'stripe'.*signing_secrets\.0") as caught:
        await statusflow_app(
            plugins=["stripe"],
            config={"plugins": {"stripe": {"signing_secrets": ["sk_live_not_a_webhook_secret"]}}},
        )
    # a secret in the wrong place is named by its key and the rule, never shown
    assert "sk_live_not_a_webhook_secret" not in str(caught.value)
    assert str(caught.value).endswith(r"does not match the pattern '^whsec_\S+$'")
    with pytest.raises(StartupError, match=r"'stripe'.*tolerance_seconds"):
        await statusflow_app(plugins=["stripe"], config=config(tolerance_seconds="5"))
    with pytest.raises(StartupError, match="STRIPE_WEBHOOK_SECRET"):
        await statusflow_app(plugins=["stripe"], config=FROM_ENV)
    # the secret from the environment
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", SECRET)
    sf = await statusflow_app(plugins=["payment", "stripe"], config=FROM_ENV)
    await sf.create_order("1001")
    assert (await deliver(sf, PAYMENT_INTENT_SUCCEEDED))["order_ids"] == ["1001"]
    # without a secret the route answers 503 (and Stripe retries until it is set)
    bare = await statusflow_app(plugins=["payment", "stripe"])
    answer = await deliver(bare, PAYMENT_INTENT_SUCCEEDED, expect=503)
    assert "signing_secrets" in answer["error"]["message"]


def test_major_units():
    assert major_units(5990, "usd") == 59.9
    assert major_units(5900, "EUR") == 59 and isinstance(major_units(5900, "EUR"), int)
    assert major_units(1, "gbp") == 0.01
    assert major_units(500, "jpy") == 500
    assert major_units(123450, "kwd") == 123.45
    assert major_units(0, "usd") == 0
