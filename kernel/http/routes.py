"""The kernel's route table, with each route's OpenAPI operation."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from statusflow.engine.intake import EVENT_SCHEMA
from statusflow.http import events, meta, moves, ops, orders, statuses, triggers
from statusflow.http.keys import PLUGIN_ROUTES, SETTINGS
from statusflow.http.limits import expect_handler
from statusflow.http.paging import PAGE_PARAMETERS, page_schema
from statusflow.http.schemas import NEW_ORDER, NEW_TRIGGER, STATUS, STATUS_LIST
from statusflow.types import Route

JSON_OBJECT = {"type": "object"}
ERROR = {"$ref": "#/components/schemas/Error"}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _answers(ok: int, schema: dict[str, Any] | None, *errors: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    if schema is None:
        answers[str(ok)] = {"description": "done"}
    else:
        answers[str(ok)] = {
            "description": "done",
            "content": {"application/json": {"schema": schema}},
        }
    for status in errors:
        answers[str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": ERROR}},
        }
    return answers


def _op(
    summary: str, ok: int, schema: dict[str, Any] | None, *errors: int, body: Any = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": _answers(ok, schema, *errors)}
    if body is not None:
        operation["requestBody"] = _body(body)
    return operation


EVENT_OR_LIST = {"oneOf": [EVENT_SCHEMA, {"type": "array", "items": EVENT_SCHEMA}]}
RESULT_OR_LIST = {"oneOf": [JSON_OBJECT, {"type": "array", "items": JSON_OBJECT}]}
DRY_RUN = {
    "name": "dry_run",
    "in": "query",
    "required": False,
    "schema": {"enum": ["true", "false"]},
}

KERNEL_ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", meta.healthz, _op("Liveness", 200, JSON_OBJECT)),
    Route(
        "GET",
        "/readyz",
        ops.readyz,
        _op("Readiness: the database answers, migrations at head", 200, ops.READY_SCHEMA, 503),
    ),
    Route(
        "GET",
        "/metrics",
        ops.metrics_handler,
        {
            "summary": "Prometheus metrics (text exposition format)",
            "responses": {
                "200": {"description": "done", "content": {"text/plain": {"schema": {}}}},
                "401": {"description": "error", "content": {"application/json": {"schema": ERROR}}},
            },
        },
    ),
    Route("GET", "/api/openapi.json", meta.openapi, _op("This document", 200, JSON_OBJECT, 401)),
    Route(
        "GET",
        "/api/plugins",
        meta.list_plugins,
        _op("Installed plugins", 200, {"type": "array"}, 401),
    ),
    Route(
        "GET",
        "/api/trigger-types",
        meta.list_trigger_types,
        _op("Trigger types of enabled plugins", 200, {"type": "array"}, 401),
    ),
    Route(
        "GET",
        "/api/statuses",
        statuses.list_statuses,
        _op("The pipeline", 200, {"type": "array", "items": STATUS}, 401),
    ),
    Route(
        "PUT",
        "/api/statuses",
        statuses.put_statuses,
        _op(
            "Replace the pipeline",
            200,
            {"type": "array"},
            400,
            401,
            409,
            413,
            422,
            body=STATUS_LIST,
        ),
    ),
    Route(
        "POST",
        "/api/orders",
        orders.create_order,
        _op("Create an order", 201, JSON_OBJECT, 400, 401, 409, 413, 422, body=NEW_ORDER),
    ),
    Route(
        "GET",
        "/api/orders",
        orders.list_orders,
        {
            **_op("Orders, newest first", 200, page_schema(JSON_OBJECT), 401, 422),
            "parameters": orders.LIST_PARAMETERS,
        },
    ),
    Route("GET", "/api/orders/{id}", orders.get_order, _op("An order", 200, JSON_OBJECT, 401, 404)),
    Route(
        "PATCH",
        "/api/orders/{id}",
        orders.patch_order,
        _op("Merge-patch an order", 200, JSON_OBJECT, 400, 401, 404, 413, 422, body=JSON_OBJECT),
    ),
    Route(
        "GET",
        "/api/orders/{id}/timeline",
        orders.get_timeline,
        {
            **_op(
                "An order's timeline, oldest first (a page of it with limit or cursor)",
                200,
                {"oneOf": [{"type": "array"}, page_schema(JSON_OBJECT)]},
                401,
                404,
                422,
            ),
            "parameters": PAGE_PARAMETERS,
        },
    ),
    Route(
        "POST",
        "/api/triggers",
        triggers.create_trigger,
        _op("Create a trigger", 201, JSON_OBJECT, 400, 401, 413, 422, body=NEW_TRIGGER),
    ),
    Route(
        "GET",
        "/api/triggers",
        triggers.list_triggers,
        _op("Every trigger", 200, {"type": "array"}, 401),
    ),
    Route(
        "GET",
        "/api/triggers/{id}",
        triggers.get_trigger,
        _op("A trigger", 200, JSON_OBJECT, 401, 404),
    ),
    Route(
        "PATCH",
        "/api/triggers/{id}",
        triggers.patch_trigger,
        _op("Merge-patch a trigger", 200, JSON_OBJECT, 400, 401, 404, 413, 422, body=JSON_OBJECT),
    ),
    Route(
        "DELETE",
        "/api/triggers/{id}",
        triggers.delete_trigger,
        _op("Delete a trigger", 204, None, 401, 404),
    ),
    Route(
        "POST",
        "/api/events",
        events.post_events,
        {
            **_op("Post events", 200, RESULT_OR_LIST, 400, 401, 404, 413, 422, body=EVENT_OR_LIST),
            "parameters": [DRY_RUN],
        },
    ),
    Route(
        "GET",
        "/api/events",
        events.list_events,
        {
            **_op("Processed events, newest first", 200, page_schema(JSON_OBJECT), 401, 422),
            "parameters": events.LIST_PARAMETERS,
        },
    ),
    Route(
        "GET",
        "/api/events/{id}",
        events.get_event,
        _op("A processed event with its trace", 200, JSON_OBJECT, 401, 404),
    ),
    Route(
        "GET",
        "/api/moves",
        moves.list_moves,
        {
            **_op("Committed moves after a cursor", 200, moves.FEED_SCHEMA, 401, 422),
            "parameters": moves.FEED_PARAMETERS,
        },
    ),
)


def setup_routes(app: web.Application, plugin_routes: list[tuple[str, Route]]) -> None:
    """Mount the kernel's routes, then the plugins' (a clash stops start-up)."""
    expect = expect_handler(app[SETTINGS])
    for route in KERNEL_ROUTES:
        app.router.add_route(route.method, route.path, route.handler, expect_handler=expect)
    for _plugin, route in plugin_routes:
        app.router.add_route(route.method, route.path, route.handler, expect_handler=expect)
    app[PLUGIN_ROUTES] = plugin_routes
