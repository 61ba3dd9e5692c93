"""The kernel's route table, with each route's OpenAPI operation and query parameters."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from statusflow.engine.validation import did_you_mean
from statusflow.errors import invalid
from statusflow.http import (
    actions,
    audit,
    docs_page,
    events,
    meta,
    moves,
    ops,
    orders,
    privacy,
    statuses,
    triggers,
)
from statusflow.http.auth import check_scopes, route_scope
from statusflow.http.keys import PLUGIN_ROUTES, ROUTE_SCOPES, SETTINGS
from statusflow.http.limits import expect_handler
from statusflow.http.openapi import query_names, ref
from statusflow.http.paging import PAGE_PARAMETERS, page_schema
from statusflow.http.schemas import NEW_ACTION
from statusflow.store.schema import RUN_STATES
from statusflow.types import Route, RouteHandler


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
            "content": {"application/json": {"schema": ref("Error")}},
        }
    return answers


def _op(
    operation_id: str,
    tag: str,
    summary: str,
    ok: int,
    schema: dict[str, Any] | None,
    *errors: int,
    body: Any = None,
) -> dict[str, Any]:
    """An OpenAPI operation (the 401 of a route needing a token, and the 422 of an
    unknown query parameter, are added by :func:`~statusflow.http.openapi.openapi_document`)."""
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "responses": _answers(ok, schema, *errors),
    }
    if body is not None:
        operation["requestBody"] = _body(body)
    return operation


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": ref(name)}


OBJECT = {"type": "object"}

DRY_RUN = {
    "name": "dry_run",
    "description": "evaluate and answer with the trace, storing nothing",
    "schema": {"type": "boolean", "default": False},
}


def actions_routes() -> tuple[Route, ...]:
    """The routes of actions and their runs (contract section 8)."""
    array = {"type": "array", "items": OBJECT}
    apply = {
        "name": "apply_to_existing",
        "description": "also schedule runs for the orders already in the status",
        "schema": {"type": "boolean", "default": False},
    }
    runs_query = (
        {"name": "order_id", "schema": {"type": "string"}},
        {"name": "state", "schema": {"enum": list(RUN_STATES)}},
        {"name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    )
    return (
        Route(
            "GET",
            "/api/action-types",
            actions.list_action_types,
            _op("list_action_types", "actions", "Action types of enabled plugins", 200, array),
        ),
        Route(
            "POST",
            "/api/actions",
            actions.post_action,
            _op(
                "create_action",
                "actions",
                "Create an action",
                201,
                OBJECT,
                400,
                413,
                422,
                body=NEW_ACTION,
            ),
            query=(apply,),
        ),
        Route(
            "GET",
            "/api/actions",
            actions.list_actions,
            _op("list_actions", "actions", "Actions, by status then position", 200, array),
            query=("status",),
        ),
        Route(
            "GET",
            "/api/actions/{id}",
            actions.get_action,
            _op("get_action", "actions", "An action", 200, OBJECT, 404),
        ),
        Route(
            "PATCH",
            "/api/actions/{id}",
            actions.patch_action,
            _op(
                "patch_action",
                "actions",
                "Merge-patch an action",
                200,
                OBJECT,
                400,
                404,
                413,
                422,
                body=OBJECT,
            ),
        ),
        Route(
            "DELETE",
            "/api/actions/{id}",
            actions.remove_action,
            _op(
                "delete_action",
                "actions",
                "Delete an action (its pending runs are canceled)",
                204,
                None,
                404,
            ),
        ),
        Route(
            "GET",
            "/api/orders/{id}/runs",
            actions.order_runs,
            _op("list_order_runs", "actions", "An order's action runs", 200, array, 404),
        ),
        Route(
            "GET",
            "/api/runs",
            actions.list_runs,
            _op("list_runs", "actions", "Runs, newest first", 200, array, 422),
            query=runs_query,
        ),
        Route(
            "GET",
            "/api/runs/{id}",
            actions.get_run,
            _op("get_run", "actions", "A run", 200, OBJECT, 404),
        ),
        Route(
            "POST",
            "/api/runs/{id}/cancel",
            actions.cancel_run,
            _op("cancel_run", "actions", "Cancel a pending run", 200, OBJECT, 404, 409),
        ),
        Route(
            "POST",
            "/api/runs/{id}/run-now",
            actions.run_now,
            _op("run_now", "actions", "Make a pending run due now", 200, OBJECT, 404, 409),
        ),
    )


KERNEL_ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", meta.healthz, _op("healthz", "meta", "Liveness", 200, ref("Health"))),
    Route(
        "GET",
        "/readyz",
        ops.readyz,
        _op(
            "readyz",
            "meta",
            "Readiness: the database answers, migrations at head",
            200,
            ops.READY_SCHEMA,
            503,
        ),
    ),
    Route(
        "GET",
        "/metrics",
        ops.metrics_handler,
        {
            "operationId": "metrics",
            "tags": ["meta"],
            "summary": "Prometheus metrics (text exposition format)",
            "responses": {
                "200": {
                    "description": "done",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            },
        },
    ),
    Route(
        "GET",
        "/api/openapi.json",
        meta.openapi,
        _op("get_openapi", "meta", "This document", 200, {"type": "object"}),
    ),
    Route(
        "GET",
        "/api/plugins",
        meta.list_plugins,
        _op("list_plugins", "meta", "Installed plugins", 200, _list_of("Plugin")),
    ),
    Route(
        "GET",
        "/api/trigger-types",
        meta.list_trigger_types,
        _op(
            "list_trigger_types",
            "triggers",
            "Trigger types of enabled plugins",
            200,
            _list_of("TriggerType"),
        ),
    ),
    Route(
        "GET",
        "/api/statuses",
        statuses.list_statuses,
        _op("list_statuses", "statuses", "The pipeline", 200, _list_of("Status")),
    ),
    Route(
        "PUT",
        "/api/statuses",
        statuses.put_statuses,
        _op(
            "replace_statuses",
            "statuses",
            "Replace the pipeline",
            200,
            _list_of("Status"),
            400,
            409,
            413,
            422,
            body=ref("StatusList"),
        ),
    ),
    Route(
        "POST",
        "/api/orders",
        orders.create_order,
        _op(
            "create_order",
            "orders",
            "Create an order",
            201,
            ref("Order"),
            400,
            409,
            413,
            422,
            body=ref("NewOrder"),
        ),
        scope="events",
    ),
    Route(
        "GET",
        "/api/orders",
        orders.list_orders,
        _op("list_orders", "orders", "Orders, newest first", 200, page_schema(ref("Order")), 422),
        query=orders.LIST_PARAMETERS,
    ),
    Route(
        "GET",
        "/api/orders/{id}",
        orders.get_order,
        _op("get_order", "orders", "An order", 200, ref("Order"), 404),
    ),
    Route(
        "PATCH",
        "/api/orders/{id}",
        orders.patch_order,
        _op(
            "patch_order",
            "orders",
            "Merge-patch an order",
            200,
            ref("Order"),
            400,
            404,
            413,
            422,
            body=ref("OrderPatch"),
        ),
        scope="events",
    ),
    Route(
        "DELETE",
        "/api/orders/{id}",
        privacy.delete_order,
        _op(
            "delete_order",
            "privacy",
            "Delete an order, its timeline and what refers to it",
            204,
            None,
            404,
        ),
    ),
    Route(
        "GET",
        "/api/orders/{id}/timeline",
        orders.get_timeline,
        _op(
            "get_order_timeline",
            "orders",
            "An order's timeline, oldest first (a page of it with limit or cursor)",
            200,
            {"oneOf": [_list_of("TimelineEntry"), page_schema(ref("TimelineEntry"))]},
            404,
            422,
        ),
        query=PAGE_PARAMETERS,
    ),
    Route(
        "POST",
        "/api/triggers",
        triggers.post_trigger,
        _op(
            "create_trigger",
            "triggers",
            "Create a trigger",
            201,
            ref("Trigger"),
            400,
            413,
            422,
            body=ref("NewTrigger"),
        ),
    ),
    Route(
        "GET",
        "/api/triggers",
        triggers.list_triggers,
        _op("list_triggers", "triggers", "Every trigger", 200, _list_of("Trigger")),
    ),
    Route(
        "GET",
        "/api/triggers/{id}",
        triggers.get_trigger,
        _op("get_trigger", "triggers", "A trigger", 200, ref("Trigger"), 404),
    ),
    Route(
        "PATCH",
        "/api/triggers/{id}",
        triggers.patch_trigger,
        _op(
            "patch_trigger",
            "triggers",
            "Merge-patch a trigger",
            200,
            ref("Trigger"),
            400,
            404,
            413,
            422,
            body=ref("TriggerPatch"),
        ),
    ),
    Route(
        "DELETE",
        "/api/triggers/{id}",
        triggers.remove_trigger,
        _op("delete_trigger", "triggers", "Delete a trigger", 204, None, 404),
    ),
    Route(
        "POST",
        "/api/events",
        events.post_events,
        _op(
            "post_events",
            "events",
            "Post one event or a list of events (a list in, a list of results out)",
            200,
            {"oneOf": [ref("EventResult"), _list_of("EventResult")]},
            400,
            404,
            413,
            422,
            body={"oneOf": [ref("Event"), _list_of("Event")]},
        ),
        query=(DRY_RUN,),
        scope="events",
    ),
    Route(
        "GET",
        "/api/events",
        events.list_events,
        _op(
            "list_events",
            "events",
            "Processed events, newest first (without their trace)",
            200,
            page_schema(ref("EventSummary")),
            422,
        ),
        query=events.LIST_PARAMETERS,
    ),
    Route(
        "GET",
        "/api/events/{id}",
        events.get_event,
        _op(
            "get_event",
            "events",
            "A processed event with its trace",
            200,
            ref("StoredEvent"),
            404,
        ),
    ),
    *actions_routes(),
    Route(
        "GET",
        "/api/moves",
        moves.list_moves,
        _op(
            "list_moves",
            "events",
            "Committed moves after a cursor (the change feed)",
            200,
            moves.FEED_SCHEMA,
            422,
        ),
        query=moves.FEED_PARAMETERS,
    ),
    Route(
        "POST",
        "/api/contacts/erase",
        privacy.erase_contact,
        _op(
            "erase_contact",
            "privacy",
            "Erase a person's phone or email from every order and stored event",
            200,
            privacy.ERASED_SCHEMA,
            400,
            413,
            422,
            body=privacy.ERASE_BODY,
        ),
    ),
    Route(
        "GET",
        "/api/audit",
        audit.list_audit,
        _op("list_audit", "audit", "The audit log, newest first", 200, audit.PAGE_SCHEMA, 422),
        query=audit.PARAMETERS,
    ),
)


def _checking_query(route: Route) -> RouteHandler:
    """The route's handler, behind a 422 for a query parameter it does not accept
    (routes under ``/api/`` only: a public route's callers may add their own)."""
    if not route.path.startswith("/api/"):
        return route.handler
    accepted = query_names(route)
    handler = route.handler
    where = f"{route.method} {route.path}"

    async def check_query(request: web.Request) -> web.StreamResponse:
        unknown = [name for name in dict.fromkeys(request.query) if name not in accepted]
        if unknown:
            takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none"
            problems = [
                {
                    "path": f"?{name}",
                    "message": "is not a query parameter of this operation"
                    + did_you_mean(name, accepted),
                }
                for name in unknown
            ]
            shown = ", ".join(repr(name[:100]) for name in unknown)
            raise invalid(
                f"unknown query parameter {shown} for {where}: {takes}",
                problems,
                "unknown_query_parameter",
            )
        response: web.StreamResponse = await handler(request)
        return response

    return check_query


def setup_routes(app: web.Application, plugin_routes: list[tuple[str, Route]]) -> None:
    """Mount the kernel's routes, the docs page, then the plugins' (a clash, or a scope
    that does not exist, stops start-up), and note the scope each needs."""
    check_scopes(plugin_routes)
    expect = expect_handler(app[SETTINGS])
    scopes = {}
    for route in (*KERNEL_ROUTES, *docs_page.ROUTES, *(r for _, r in plugin_routes)):
        mounted = app.router.add_route(
            route.method, route.path, _checking_query(route), expect_handler=expect
        )
        scopes[mounted] = route_scope(route)
    app[PLUGIN_ROUTES] = plugin_routes
    app[ROUTE_SCOPES] = scopes
