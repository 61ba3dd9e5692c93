"""The kernel's route table, with each route's OpenAPI operation."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from statusflow.engine.intake import EVENT_SCHEMA
from statusflow.http import actions, events, meta, moves, ops, orders, statuses, triggers
from statusflow.http.keys import PLUGIN_ROUTES, SETTINGS
from statusflow.http.limits import expect_handler
from statusflow.http.schemas import NEW_ACTION, NEW_ORDER, NEW_TRIGGER, STATUS, STATUS_LIST
from statusflow.store.schema import RUN_STATES
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


def actions_routes() -> tuple[Route, ...]:
    """The routes of actions and their runs (contract section 8)."""
    array = {"type": "array"}
    apply = {
        "name": "apply_to_existing",
        "in": "query",
        "required": False,
        "schema": {"enum": ["true", "false"]},
    }
    status = {"name": "status", "in": "query", "required": False, "schema": {"type": "string"}}
    return (
        Route(
            "GET",
            "/api/action-types",
            actions.list_action_types,
            _op("Action types of enabled plugins", 200, array, 401),
        ),
        Route(
            "POST",
            "/api/actions",
            actions.create_action,
            {
                **_op("Create an action", 201, JSON_OBJECT, 400, 401, 413, 422, body=NEW_ACTION),
                "parameters": [apply],
            },
        ),
        Route(
            "GET",
            "/api/actions",
            actions.list_actions,
            {**_op("Actions, by status then position", 200, array, 401), "parameters": [status]},
        ),
        Route(
            "GET",
            "/api/actions/{id}",
            actions.get_action,
            _op("An action", 200, JSON_OBJECT, 401, 404),
        ),
        Route(
            "PATCH",
            "/api/actions/{id}",
            actions.patch_action,
            _op(
                "Merge-patch an action", 200, JSON_OBJECT, 400, 401, 404, 413, 422, body=JSON_OBJECT
            ),
        ),
        Route(
            "DELETE",
            "/api/actions/{id}",
            actions.delete_action,
            _op("Delete an action (its pending runs are canceled)", 204, None, 401, 404),
        ),
        Route(
            "GET",
            "/api/orders/{id}/runs",
            actions.order_runs,
            _op("An order's action runs", 200, array, 401, 404),
        ),
        Route(
            "GET",
            "/api/runs",
            actions.list_runs,
            {
                **_op("Runs, newest first", 200, array, 401, 422),
                "parameters": [
                    {"name": name, "in": "query", "required": False, "schema": schema}
                    for name, schema in (
                        ("order_id", {"type": "string"}),
                        ("state", {"enum": list(RUN_STATES)}),
                        ("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    )
                ],
            },
        ),
        Route("GET", "/api/runs/{id}", actions.get_run, _op("A run", 200, JSON_OBJECT, 401, 404)),
        Route(
            "POST",
            "/api/runs/{id}/cancel",
            actions.cancel_run,
            _op("Cancel a pending run", 200, JSON_OBJECT, 401, 404, 409),
        ),
        Route(
            "POST",
            "/api/runs/{id}/run-now",
            actions.run_now,
            _op("Make a pending run due now", 200, JSON_OBJECT, 401, 404, 409),
        ),
    )


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
        _op("An order's timeline", 200, {"type": "array"}, 401, 404),
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
        "/api/events/{id}",
        events.get_event,
        _op("A processed event with its trace", 200, JSON_OBJECT, 401, 404),
    ),
    *actions_routes(),
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
