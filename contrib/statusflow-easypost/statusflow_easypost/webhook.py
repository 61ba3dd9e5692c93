"""``POST /sources/easypost``: verify the delivery, read it, find the order, post events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from easypost.errors import SignatureVerificationError
from easypost.util import validate_webhook

from statusflow import (
    JSON,
    ApiError,
    KernelServices,
    json_response,
    read_json_body,
    utc_now,
)
from statusflow_easypost.lookup import claim_shipped, find_order
from statusflow_easypost.payload import MalformedEvent, TrackerEvent, read_event

NAME = "easypost"
PATH = "/sources/easypost"
SIGNATURE_HEADER = "X-Hmac-Signature"

log = structlog.get_logger("statusflow.easypost")

ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

OPENAPI: dict[str, JSON] = {
    "summary": "EasyPost tracker webhooks",
    "description": (
        "An EasyPost Event, signed in X-Hmac-Signature (hmac-sha256-hex=<hex> over the "
        "raw body with the webhook secret). tracker.created becomes "
        "shipment.tracking_number_added and tracker.updated shipment.updated (with "
        "shipment.shipped the first time the tracker is in_transit), for the order the "
        "tracking number is on record for; other kinds are answered 200 and ignored."
    ),
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
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
            "description": "the event's result (with the shipment.shipped one as "
            "'shipped' when it was posted), or why the Event was ignored",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "400": ERROR,
        "403": ERROR,
        "413": ERROR,
        "503": ERROR,
    },
}


def signature_problem(raw: bytes, header: str | None, secret: str) -> str | None:
    """``None`` when ``header`` signs ``raw`` with ``secret`` (checked by the ``easypost``
    library's ``validate_webhook``), else why not. A signed body that is not JSON is
    signed: reading it is the next step's business."""
    if not header:
        return f"no {SIGNATURE_HEADER} header"
    try:
        validate_webhook(raw, {SIGNATURE_HEADER: header}, secret)
    except SignatureVerificationError:
        return f"{SIGNATURE_HEADER} does not sign this body with the webhook secret"
    except TypeError:  # hmac.compare_digest refuses text that is not ASCII
        return f"{SIGNATURE_HEADER} is not an hmac-sha256-hex signature"
    except (ValueError, RecursionError):  # signed; json.loads refused the body
        return None
    return None


async def deliver(kernel: KernelServices, event: TrackerEvent) -> dict[str, JSON]:
    """Post the Event's statusflow events; the answer to EasyPost."""
    order_id = await find_order(kernel, event.tracking_number, event.carrier)
    if order_id is None:
        log.info(
            "easypost.order_not_found",
            easypost_event=event.event_id,
            tracker=event.tracker_id,
            carrier=event.carrier,
        )
    result = await kernel.submit_event(event.body(order_id))
    if not event.ships:
        return result
    # the order the event went to when it was first processed (a retry answers that one)
    resolved = result.get("order_ids")
    first = resolved[0] if isinstance(resolved, list) and resolved else None
    owner = first if isinstance(first, str) else None
    if not await claim_shipped(kernel, event.tracker_id, owner or "", event.event_id, utc_now()):
        return result
    return {**result, "shipped": await kernel.submit_event(event.shipped_body(owner))}


def make_handler(kernel: KernelServices) -> Callable[[web.Request], Any]:
    """The handler of ``POST /sources/easypost``, with the plugin's checked settings."""
    secret = kernel.plugin_config(NAME).get("webhook_secret")
    if not secret:
        log.warning("easypost.not_configured", missing="[plugins.easypost] webhook_secret")

    async def receive(request: web.Request) -> web.Response:
        if not secret:
            raise ApiError(
                503, "not_configured", "[plugins.easypost] webhook_secret is not configured"
            )
        raw = await request.read()
        problem = signature_problem(raw, request.headers.get(SIGNATURE_HEADER), secret)
        if problem is not None:
            log.warning("easypost.bad_signature", reason=problem, remote=request.remote)
            raise ApiError(403, "bad_signature", problem)
        # read again as the kernel reads bodies (its 400 for JSON it cannot read); only
        # the fields read_event checks and copies are stored
        body = await read_json_body(request, check_storable=False)
        try:
            event = read_event(body)
        except MalformedEvent as exc:
            log.warning("easypost.malformed_event", reason=str(exc))
            raise ApiError(400, "malformed_event", f"not an EasyPost Event: {exc}") from None
        if isinstance(event, str):
            return json_response({"received": True, "ignored": event})
        return json_response(await deliver(kernel, event))

    return receive
