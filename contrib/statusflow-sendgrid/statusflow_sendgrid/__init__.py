"""statusflow-sendgrid: SendGrid email events move statusflow orders.

Point SendGrid's signed Event Webhook at ``{public_url}/sources/sendgrid``. Each delivery
(a JSON array of SendGrid events) is checked with the ``sendgrid`` library's
``EventWebhook`` against ``[plugins.sendgrid] public_key`` (ECDSA P-256 over the
``X-Twilio-Email-Event-Webhook-Timestamp`` header and the raw body), and refused when
that timestamp is more than ``max_age_seconds`` old (a replay). Then each element becomes
an event of the built-in ``email`` plugin (:mod:`statusflow_sendgrid.mapping`): ``open``
-> ``email.viewed``, ``click`` -> ``email.link_clicked`` with its ``url``, ``delivered``
-> ``email.sent``, for the order in the custom argument ``order_id``, else for the
recipient's open orders (by ``email``).

Each element is its own event, with the id ``sendgrid:{sg_event_id}``: a retried
delivery is answered element by element ``"duplicate": true`` and moves nothing twice.

Answers: 403 for a missing or wrong signature or a stale timestamp, 400 for a signed
body that is not a JSON array of SendGrid events (nothing stored either way; both
logged), 503 while no key is configured, else 200 with one entry per element, in order:
the event's result, or ``{"received": true, "ignored": "..."}``. An order id statusflow
does not know is stored with no moves and answered 200, so that SendGrid does not retry
it for a day.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from statusflow import (
    JSON,
    ApiError,
    KernelServices,
    Route,
    StartupError,
    hookimpl,
    json_response,
    read_json_body,
)
from statusflow_sendgrid.mapping import Ignored, Malformed, plan_batch
from statusflow_sendgrid.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier, load_key

NAME = "sendgrid"
PATH = "/sources/sendgrid"
DEFAULT_MAX_AGE = 600
"""Seconds a signed delivery stays acceptable (the replay window)."""

log = structlog.get_logger("statusflow.sendgrid")

SETTINGS_SCHEMA: dict[str, JSON] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "public_key": {
            "type": "string",
            "minLength": 1,
            "description": "the Event Webhook's verification key, base64 as SendGrid shows it",
        },
        "ignore_machine_opens": {
            "type": "boolean",
            "description": "ignore opens by Apple Mail Privacy Protection (default true)",
        },
        "max_age_seconds": {
            "type": "integer",
            "minimum": 1,
            "maximum": 86400,
            "description": f"how old a signed delivery may be (default {DEFAULT_MAX_AGE})",
        },
    },
}

ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

OPENAPI: dict[str, JSON] = {
    "summary": "SendGrid Event Webhook deliveries",
    "description": (
        "A JSON array of SendGrid events, signed with ECDSA P-256 over the timestamp and "
        "the raw body. open, click and delivered become email.viewed, email.link_clicked "
        "and email.sent for the custom argument order_id, else the recipient's email; "
        "other kinds are answered and ignored."
    ),
    "parameters": [
        {"name": header, "in": "header", "required": True, "schema": {"type": "string"}}
        for header in (SIGNATURE_HEADER, TIMESTAMP_HEADER)
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
    },
    "responses": {
        "200": {
            "description": "one entry per SendGrid event, in order: its result, or why it "
            "was ignored",
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}
            },
        },
        "400": ERROR,
        "403": ERROR,
        "413": ERROR,
        "503": ERROR,
    },
}


def make_verifier(config: Mapping[str, Any]) -> Verifier | None:
    """The delivery checker of the plugin's settings; ``None`` without a key.

    :raises StartupError: the key is not an ECDSA P-256 public key.
    """
    key = config.get("public_key")
    if not key:
        return None
    try:
        webhook = load_key(key)
    except ValueError as exc:
        raise StartupError(f"[plugins.{NAME}] public_key {exc}") from None
    return Verifier(webhook, config.get("max_age_seconds", DEFAULT_MAX_AGE))


def make_handler(kernel: KernelServices) -> Callable[[web.Request], Any]:
    """The handler of ``POST /sources/sendgrid``, with the plugin's checked settings."""
    config = kernel.plugin_config(NAME)
    verifier = make_verifier(config)
    ignore_machine_opens: bool = config.get("ignore_machine_opens", True)
    if verifier is None:
        log.warning("sendgrid.not_configured", missing=f"[plugins.{NAME}] public_key")

    async def receive(request: web.Request) -> web.Response:
        if verifier is None:
            raise ApiError(503, "not_configured", f"[plugins.{NAME}] public_key is not configured")
        raw = await request.read()
        now = time.time()
        problem = verifier.problem(raw, request.headers, now)
        if problem is not None:
            log.warning("sendgrid.bad_signature", reason=problem, remote=request.remote)
            raise ApiError(403, "bad_signature", problem)
        # the body read again (aiohttp keeps it); only the fields the mapping copies are
        # stored, and submit_event checks them
        batch = await read_json_body(request, check_storable=False)
        try:
            planned = plan_batch(batch, ignore_machine_opens=ignore_machine_opens, now=now)
        except Malformed as exc:
            log.warning("sendgrid.malformed", reason=str(exc))
            path = "" if exc.index is None else f"/{exc.index}"
            details = [{"path": path, "message": str(exc)}]  # the kernel's one error shape
            raise ApiError(400, "malformed_event", str(exc), details) from None
        answers: list[JSON] = []
        for event in planned:
            if isinstance(event, Ignored):
                answers.append(event.answer())
                continue
            result = await kernel.submit_event(event, store_unknown_order=True)
            if "order_id" in event and not result["order_ids"] and not result["duplicate"]:
                log.warning(
                    "sendgrid.unknown_order", order_id=event["order_id"], event_id=event["id"]
                )
            answers.append(result)
        return json_response(answers)

    return receive


@hookimpl
def plugin_settings_schema() -> Mapping[str, JSON]:
    return SETTINGS_SCHEMA


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    register(Route("POST", PATH, make_handler(kernel), OPENAPI))
