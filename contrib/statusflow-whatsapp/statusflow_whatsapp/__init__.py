"""statusflow-whatsapp: WhatsApp messages (Cloud API webhooks) move statusflow orders.

Set ``{public_url}/sources/whatsapp`` as the Callback URL of a Meta app's WhatsApp
webhook, with ``[plugins.whatsapp] verify_token`` as its Verify token, and subscribe it to
the ``messages`` field.

* ``GET /sources/whatsapp`` answers Meta's verification request: with the configured
  ``hub.verify_token`` (and ``hub.mode=subscribe``, or no ``hub.mode``) it echoes
  ``hub.challenge`` as ``text/plain``; anything else is a 403.
* ``POST /sources/whatsapp``: each delivery is checked against its
  ``X-Hub-Signature-256`` header (HMAC-SHA256 of the raw body with ``[plugins.whatsapp]
  app_secret``; :mod:`statusflow_whatsapp.signature`) before anything is read; then each
  message becomes a ``chat.message`` event of the built-in ``chat`` plugin
  (:mod:`statusflow_whatsapp.payload`): the sender's phone ``+<wa_id>`` is the contact,
  so it reaches every open order of that client; the ``wa_id`` is the ``dialog_id`` (one
  dialog per client and business number, so ``chat.first_message`` fires once); the
  business number's ``phone_number_id`` is the ``channel_id``; the text body, or
  ``[type] caption`` for media, is the ``text``. Status updates are answered 200 and
  ignored.

The event's id is ``whatsapp:{message id}``: a delivery Meta retries is answered with
``"duplicate": true`` results and moves nothing twice.

Answers: 403 for a missing or wrong signature, 400 for a signed body that is not JSON or
not shaped as a Cloud API delivery (nothing stored), 503 while no app secret is
configured, 200 otherwise: ``{"received": true, "results": [event results, in order]}``
with ``"ignored": [...]`` saying what posted nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from statusflow import (
    JSON,
    ApiError,
    KernelServices,
    Route,
    hookimpl,
    json_response,
    read_json_body,
)
from statusflow_whatsapp import signature
from statusflow_whatsapp.payload import DELIVERY_SCHEMA, Malformed, delivery_events

NAME = "whatsapp"
PATH = "/sources/whatsapp"

log = structlog.get_logger("statusflow.whatsapp")

SETTINGS_SCHEMA: dict[str, JSON] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "app_secret": {
            "type": "string",
            "minLength": 1,
            "pattern": "^\\S+$",
            "description": "the Meta app's App Secret (App settings, Basic), which signs "
            "each delivery in X-Hub-Signature-256",
        },
        "verify_token": {
            "type": "string",
            "minLength": 1,
            "description": "the Verify token typed in the app's webhook configuration; "
            "Meta's verification request must carry it",
        },
    },
}

ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

HANDSHAKE_OPENAPI: dict[str, JSON] = {
    "summary": "WhatsApp webhook verification",
    "description": (
        "Meta's verification request: with hub.mode=subscribe and the configured "
        "hub.verify_token, hub.challenge is echoed as text/plain."
    ),
    "parameters": [
        {"name": name, "in": "query", "required": name != "hub.mode", "schema": {"type": "string"}}
        for name in ("hub.mode", "hub.verify_token", "hub.challenge")
    ],
    "responses": {
        "200": {
            "description": "hub.challenge, echoed",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        "400": ERROR,
        "403": ERROR,
    },
}

RECEIVE_OPENAPI: dict[str, JSON] = {
    "summary": "WhatsApp Cloud API webhook deliveries",
    "description": (
        "A delivery signed in X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the "
        "app secret). Each message becomes chat.message for the sender's phone; status "
        "updates and other fields are answered 200 and ignored."
    ),
    "parameters": [
        {
            "name": signature.HEADER,
            "in": "header",
            "required": True,
            "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": DELIVERY_SCHEMA}},
    },
    "responses": {
        "200": {
            "description": "the results of the delivery's messages, and what was ignored",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["received", "results"],
                        "properties": {
                            "received": {"type": "boolean"},
                            "results": {"type": "array", "items": {"type": "object"}},
                            "ignored": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                }
            },
        },
        "400": ERROR,
        "403": ERROR,
        "413": ERROR,
        "503": ERROR,
    },
}


def _setting(kernel: KernelServices, key: str) -> str | None:
    value = kernel.plugin_config(NAME).get(key)
    if not isinstance(value, str) or not value:
        log.warning("whatsapp.not_configured", missing=f"[plugins.whatsapp] {key}")
        return None
    return value


def make_handshake(kernel: KernelServices) -> Callable[[web.Request], Any]:
    """The handler of ``GET /sources/whatsapp``: Meta's verification request."""
    verify_token = _setting(kernel, "verify_token")

    async def handshake(request: web.Request) -> web.Response:
        query = request.query
        mode = query.get("hub.mode", "subscribe")  # Meta always sends it; the token counts
        token = query.get("hub.verify_token", "").encode()
        if (
            verify_token is None
            or mode != "subscribe"
            or not hmac.compare_digest(token, verify_token.encode())
        ):
            log.warning(
                "whatsapp.verification_refused",
                mode=mode[:40],
                configured=verify_token is not None,
            )
            raise ApiError(
                403,
                "verification_failed",
                "a verification request needs the hub.verify_token of [plugins.whatsapp] "
                "verify_token (and hub.mode=subscribe)",
            )
        challenge = query.get("hub.challenge")
        if not challenge:
            raise ApiError(400, "invalid", "the verification request has no hub.challenge")
        log.info("whatsapp.verified")
        return web.Response(
            text=challenge, content_type="text/plain", headers={"X-Content-Type-Options": "nosniff"}
        )

    return handshake


async def _read_delivery(request: web.Request) -> Any:
    """The signed body as JSON: a 400 when it is not JSON (or holds an integer beyond 64
    bits, which the kernel's reader refuses with a 422)."""
    try:
        return await read_json_body(request, check_storable=False)
    except ApiError as exc:
        log.warning("whatsapp.malformed", problem=exc.message[:200])
        if exc.status != 422:
            raise
        raise ApiError(400, "malformed_payload", exc.message, exc.details) from None


def make_receiver(kernel: KernelServices) -> Callable[[web.Request], Any]:
    """The handler of ``POST /sources/whatsapp``, with the plugin's checked settings."""
    app_secret = _setting(kernel, "app_secret")

    async def receive(request: web.Request) -> web.Response:
        if app_secret is None:
            raise ApiError(503, "not_configured", "[plugins.whatsapp] app_secret is not configured")
        raw = await request.read()
        refused = signature.problem(raw, request.headers.get(signature.HEADER), app_secret)
        if refused is not None:
            log.warning("whatsapp.bad_signature", reason=refused, body_bytes=len(raw))
            raise ApiError(403, "bad_signature", refused)
        body = await _read_delivery(request)
        try:
            delivery = delivery_events(body)
        except Malformed as exc:
            log.warning("whatsapp.malformed", path=exc.path, problem=exc.message)
            raise ApiError(
                400,
                "malformed_payload",
                f"not a WhatsApp Cloud API delivery: {exc}",
                [{"path": exc.path, "message": exc.message}],
            ) from None
        # every message was checked above; a retried delivery's messages are duplicates
        results: list[JSON] = [await kernel.submit_event(event) for event in delivery.events]
        answer: dict[str, JSON] = {"received": True, "results": results}
        if delivery.ignored:
            answer["ignored"] = list(delivery.ignored)
        return json_response(answer)

    return receive


@hookimpl
def plugin_settings_schema() -> Mapping[str, JSON]:
    return SETTINGS_SCHEMA


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    register(Route("GET", PATH, make_handshake(kernel), HANDSHAKE_OPENAPI))
    register(Route("POST", PATH, make_receiver(kernel), RECEIVE_OPENAPI))
