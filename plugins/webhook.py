"""The ``webhook`` plugin: an order moves when a trigger's own URL is called.

Each ``webhook.called`` trigger has a secret URL, ``{public_url}/hooks/{secret}``,
shown as the trigger's ``webhook_url``. ``POST`` to it with ``{"order_id": "..."}`` (or
with no body and ``?order_id=...``) moves that order with this trigger only: no other
trigger is a candidate. ``webhook.called`` events are not accepted at
``POST /api/events``: the URL is the only way in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from statusflow import (
    JSON,
    ApiError,
    EventType,
    KernelServices,
    Route,
    TriggerType,
    TriggerView,
    hookimpl,
    json_response,
    read_json_object,
)
from statusflow.plugins._matchers import settings_schema

WEBHOOK_CALLED = "webhook.called"

REQUEST_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "minLength": 1, "description": "the order to move"},
        "data": {"type": "object", "description": "stored as the event's data"},
    },
}

ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

OPENAPI = {
    "operationId": "call_webhook",
    "summary": "Call a webhook.called trigger's URL",
    "description": (
        "Moves the order with this trigger only. The order id comes from the JSON body, "
        "or from the query when the body is empty (or names no order_id). A disabled "
        "trigger moves nothing."
    ),
    "parameters": [
        {
            "name": "order_id",
            "in": "query",
            "required": False,
            "description": "the order to move, when the body does not name it",
            "schema": {"type": "string", "minLength": 1},
        }
    ],
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": REQUEST_SCHEMA}},
    },
    "responses": {
        "200": {
            "description": "the event's result",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "400": ERROR,
        "404": ERROR,
        "413": ERROR,
        "422": ERROR,
    },
}


def describe(trigger: TriggerView, kernel: KernelServices) -> Mapping[str, JSON]:
    """The trigger's ``webhook_url``."""
    return {"webhook_url": f"{kernel.public_url}/hooks/{trigger.secret}"}


def _invalid(message: str, path: str, problem: str) -> ApiError:
    return ApiError(422, "validation_failed", message, [{"path": path, "message": problem}])


def make_handler(kernel: KernelServices) -> Callable[[web.Request], Any]:
    """The handler of ``POST /hooks/{secret}``, bound to the kernel's services."""

    async def call_webhook(request: web.Request) -> web.Response:
        secret = request.match_info["secret"]
        trigger = await kernel.find_trigger_by_secret(secret)
        if trigger is None or trigger.type != WEBHOOK_CALLED:
            raise ApiError(404, "webhook_not_found", "unknown webhook")
        # an empty body names the order in the query; submit_event checks what is stored
        body = await read_json_object(request, default={}, check_storable=False)
        order_id = body.get("order_id")
        if order_id is None:
            order_id = request.query.get("order_id")
        if not isinstance(order_id, str) or not order_id:
            raise _invalid(
                "an order_id is required: a non-empty string in the JSON body "
                "or in the query (?order_id=)",
                "/order_id",
                "is required: a non-empty string (or ?order_id= with no body)",
            )
        data = body.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise _invalid("data must be a JSON object", "/data", "must be a JSON object")
        result = await kernel.submit_event(
            {"type": WEBHOOK_CALLED, "order_id": order_id, "data": data},
            only_trigger_id=trigger.id,
        )
        return json_response(result)

    return call_webhook


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    register(EventType(WEBHOOK_CALLED, "Webhook called", {"type": "object"}, public=False))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    register(
        TriggerType(
            WEBHOOK_CALLED,
            "Webhook called",
            (WEBHOOK_CALLED,),
            settings_schema(),
            describe=describe,
        )
    )


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    register(Route("POST", "/hooks/{secret}", make_handler(kernel), OPENAPI))
