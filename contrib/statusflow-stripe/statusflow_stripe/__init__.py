"""statusflow-stripe: Stripe payments move statusflow orders.

Point a Stripe webhook endpoint at ``{public_url}/sources/stripe``. Each delivery is
checked against the ``Stripe-Signature`` header with the official ``stripe`` library,
trying every secret of ``[plugins.stripe] signing_secrets`` (several during a rotation),
then a successful payment becomes a ``payment.received`` event of the built-in
``payment`` plugin for the order in the object's ``metadata.order_id``:

* ``payment_intent.succeeded``;
* ``checkout.session.completed`` when its ``payment_status`` is ``paid``, and
  ``checkout.session.async_payment_succeeded`` (delayed methods such as bank debits);
  a Checkout Session without ``metadata.order_id`` falls back to its
  ``client_reference_id``.

The event's id is ``stripe:{Stripe event id}``: Stripe's retries of one delivery are
answered ``"duplicate": true`` and move nothing twice. Every other Stripe event type is
answered 200 and ignored, so Stripe does not retry it.

Answers: 400 for a missing, wrong or expired signature (nothing stored); 503 while no
signing secret is configured; 200 otherwise. An order id that statusflow does not know
is answered 200 and logged (``unknown_order = "ignore"``, the default: Stripe would
otherwise retry for three days something that retrying cannot fix), or 404 so that
Stripe retries (``unknown_order = "retry"``, for stores that create orders in statusflow
after the payment may already have succeeded).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
import structlog
from aiohttp import web

from statusflow import (
    JSON,
    ApiError,
    KernelServices,
    Route,
    format_timestamp,
    hookimpl,
    json_response,
    read_json_body,
)

NAME = "stripe"
PATH = "/sources/stripe"
DEFAULT_TOLERANCE = 300
"""Seconds a signed delivery stays valid: the ``stripe`` library's default."""

log = structlog.get_logger("statusflow.stripe")

SETTINGS_SCHEMA: dict[str, JSON] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "signing_secrets": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": "^whsec_\\S+$"},
            "description": "the endpoint's signing secrets; more than one while rotating",
        },
        "tolerance_seconds": {
            "type": "integer",
            "minimum": 1,
            "maximum": 86400,
            "description": f"how old a signed delivery may be (default {DEFAULT_TOLERANCE})",
        },
        "unknown_order": {
            "enum": ["ignore", "retry"],
            "description": "answer an unknown order 200 and log it (ignore, the default), "
            "or 404 so that Stripe retries (retry)",
        },
    },
}

ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
"""Stripe's zero-decimal currencies: the amount is already in major units."""
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
"""Stripe's three-decimal currencies: the amount is in thousandths."""

PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
CHECKOUT_COMPLETED = "checkout.session.completed"
CHECKOUT_ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
HANDLED = (PAYMENT_INTENT_SUCCEEDED, CHECKOUT_COMPLETED, CHECKOUT_ASYNC_SUCCEEDED)

ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

OPENAPI: dict[str, JSON] = {
    "summary": "Stripe webhook deliveries",
    "description": (
        "A Stripe event, signed in the Stripe-Signature header. payment_intent.succeeded "
        "and paid Checkout Sessions become payment.received for metadata.order_id; other "
        "event types are answered 200 and ignored."
    ),
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "responses": {
        "200": {
            "description": "the event's result, or why it was ignored",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "400": ERROR,
        "404": ERROR,
        "413": ERROR,
        "503": ERROR,
    },
}


def major_units(amount: int, currency: str) -> int | float:
    """A Stripe amount (in the currency's minor unit) in major units, as a JSON number.

    ``major_units(1999, "usd") == 19.99``, ``major_units(500, "jpy") == 500``,
    ``major_units(12340, "kwd") == 12.34``.
    """
    currency = currency.lower()
    exponent = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    value = Decimal(amount).scaleb(-exponent)
    return int(value) if value == value.to_integral_value() else float(value)


def verify(payload: str, header: str | None, secrets: list[str], tolerance: int) -> str | None:
    """``None`` when ``header`` signs ``payload`` with one of ``secrets``, else why not."""
    problems = []
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
            return None
        except stripe.SignatureVerificationError as exc:
            problems.append(str(exc.user_message or exc))
    # a signature that matched but is too old says more than "no match"
    return next((p for p in problems if "tolerance" in p), problems[0] if problems else None)


def _ignored(reason: str) -> web.Response:
    return json_response({"received": True, "ignored": reason})


def _order_id(event_type: str, obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    order_id = metadata.get("order_id") if isinstance(metadata, Mapping) else None
    if not order_id and event_type != PAYMENT_INTENT_SUCCEEDED:
        order_id = obj.get("client_reference_id")
    return order_id if isinstance(order_id, str) and order_id else None


def _method(obj: Mapping[str, Any]) -> str:
    """The payment method type when the object names exactly one, else ``"stripe"``."""
    types = obj.get("payment_method_types")
    if isinstance(types, list) and len(types) == 1 and isinstance(types[0], str):
        return types[0]
    return "stripe"


def payment_event(stripe_event: Mapping[str, Any]) -> dict[str, JSON] | str:
    """The ``payment.received`` event body for a Stripe event, or why it is ignored."""
    event_type = stripe_event.get("type")
    if event_type not in HANDLED:
        return f"event type {event_type!r} is not handled"
    data = stripe_event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        return "the event has no data.object"
    if event_type == CHECKOUT_COMPLETED and obj.get("payment_status") != "paid":
        return f"the Checkout Session's payment_status is {obj.get('payment_status')!r}, not 'paid'"
    order_id = _order_id(str(event_type), obj)
    if order_id is None:
        return "the object has no metadata.order_id"
    key = "amount_received" if event_type == PAYMENT_INTENT_SUCCEEDED else "amount_total"
    amount = obj.get(key)
    currency = obj.get("currency")
    details: dict[str, JSON] = {"method": _method(obj), "stripe_object": obj.get("id")}
    if isinstance(currency, str) and currency:
        details["currency"] = currency.upper()
        if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0:
            details["amount"] = major_units(amount, currency)
    body: dict[str, JSON] = {
        "id": f"stripe:{stripe_event['id']}",
        "type": "payment.received",
        "order_id": order_id,
        "data": details,
    }
    created = stripe_event.get("created")
    if isinstance(created, int) and not isinstance(created, bool):
        body["occurred_at"] = format_timestamp(datetime.fromtimestamp(created, UTC))
    return body


def make_handler(kernel: KernelServices) -> Callable[[web.Request], Any]:
    """The handler of ``POST /sources/stripe``, with the plugin's checked settings."""
    config = kernel.plugin_config(NAME)
    secrets: list[str] = list(config.get("signing_secrets", []))
    tolerance: int = config.get("tolerance_seconds", DEFAULT_TOLERANCE)
    retry_unknown = config.get("unknown_order", "ignore") == "retry"
    if not secrets:
        log.warning("stripe.not_configured", missing="[plugins.stripe] signing_secrets")

    async def receive(request: web.Request) -> web.Response:
        if not secrets:
            raise ApiError(
                503, "not_configured", "[plugins.stripe] signing_secrets is not configured"
            )
        raw = await request.read()
        try:
            payload = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "bad_signature", "the body is not UTF-8 text") from None
        problem = verify(payload, request.headers.get("Stripe-Signature"), secrets, tolerance)
        if problem is not None:
            log.warning("stripe.bad_signature", reason=problem)
            raise ApiError(400, "bad_signature", f"Stripe-Signature: {problem}")
        # the body read again (aiohttp keeps it); only the fields payment_event copies
        # are stored, and submit_event checks them
        stripe_event = await read_json_body(request, check_storable=False)
        if not isinstance(stripe_event, dict) or not isinstance(stripe_event.get("id"), str):
            raise ApiError(400, "malformed_event", "the body is not a Stripe event")
        event = payment_event(stripe_event)
        if isinstance(event, str):
            return _ignored(event)
        try:
            result = await kernel.submit_event(event)
        except ApiError as exc:
            if exc.status != 404 or retry_unknown:
                raise
            log.warning(
                "stripe.unknown_order", order_id=event["order_id"], stripe_event=stripe_event["id"]
            )
            return _ignored(f"order {event['order_id']!r} not found")
        return json_response(result)

    return receive


@hookimpl
def plugin_settings_schema() -> Mapping[str, JSON]:
    return SETTINGS_SCHEMA


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    register(Route("POST", PATH, make_handler(kernel), OPENAPI))
