"""The OpenAPI 3.1 document of the kernel's and the plugins' routes.

Its components are the very JSON Schemas the API checks bodies with
(:mod:`statusflow.http.schemas`, the event schema of :mod:`statusflow.engine.intake`), so
the document cannot drift from the checks; each operation has an ``operationId``, its
request and answer schemas, its errors, its query parameters (the ones the route accepts:
any other is a 422) and, where a token is needed, the ``bearer`` security scheme.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from statusflow.engine.intake import EVENT_SCHEMA
from statusflow.http import schemas
from statusflow.http.auth import route_scope
from statusflow.http.codes import ERROR_CODES
from statusflow.http.keys import PLUGIN_ROUTES, SETTINGS
from statusflow.http.limits import is_public
from statusflow.http.middlewares import needs_token
from statusflow.types import Route


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


ERROR_INFO: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {
            "type": "string",
            "description": "a stable code to branch on (docs/api.md#error-codes); plugins "
            "may add their own. Built-in: " + ", ".join(ERROR_CODES),
        },
        "message": {"type": "string", "description": "what went wrong, for people"},
        "details": {"type": "array", "items": ref("Problem")},
    },
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": ref("ErrorInfo")},
}

COMPONENTS: dict[str, Mapping[str, Any]] = {
    "Error": ERROR_SCHEMA,
    "ErrorInfo": ERROR_INFO,
    "Problem": schemas.PROBLEM,
    "Health": schemas.HEALTH,
    "Status": schemas.STATUS,
    "StatusList": schemas.STATUS_LIST,
    "NewOrder": schemas.NEW_ORDER,
    "OrderPatch": schemas.ORDER_PATCH,
    "Order": schemas.ORDER,
    "NewTrigger": schemas.NEW_TRIGGER,
    "TriggerPatch": schemas.TRIGGER_PATCH,
    "Trigger": schemas.TRIGGER,
    "Event": EVENT_SCHEMA,
    "EventResult": schemas.EVENT_RESULT,
    "Move": schemas.MOVE,
    "TraceEntry": schemas.TRACE_ENTRY,
    "StoredEvent": schemas.STORED_EVENT,
    "EventSummary": schemas.EVENT_SUMMARY,
    "TimelineEntry": schemas.TIMELINE_ENTRY,
    "Plugin": schemas.PLUGIN,
    "TriggerType": schemas.TRIGGER_TYPE,
}
"""The component schemas, by name: each is the object the checks use."""


def _with_refs(value: Any, names: Mapping[int, str], top: bool = False) -> Any:
    """``value`` with every component schema inside it replaced by a ``$ref``."""
    if not top and id(value) in names:
        return ref(names[id(value)])
    if isinstance(value, Mapping):
        return {k: _with_refs(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_with_refs(v, names) for v in value]
    return value


def components() -> dict[str, Any]:
    """``components.schemas``: nested component schemas are references."""
    names = {id(schema): name for name, schema in COMPONENTS.items()}
    return {name: _with_refs(schema, names, top=True) for name, schema in COMPONENTS.items()}


ERROR_ANSWER = {"description": "error", "content": {"application/json": {"schema": ref("Error")}}}
LIMIT_ANSWER = {
    "description": "a limit of the server (408: slow body, 429: rate limit)",
    "content": {"application/json": {"schema": ref("Error")}},
}
UNAUTHORIZED = {
    "description": "no valid bearer token (when the server has tokens configured)",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
    "content": {"application/json": {"schema": ref("Error")}},
}
BAD_QUERY = {
    "description": "a body or a query parameter that breaks the rules (an unknown query "
    "parameter is unknown_query_parameter)",
    "content": {"application/json": {"schema": ref("Error")}},
}


def _parameter(item: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item, str):
        return {"name": item, "in": "query", "required": False, "schema": {"type": "string"}}
    return {"in": "query", "required": False, "schema": {"type": "string"}, **item}


def query_parameters(route: Route) -> list[dict[str, Any]]:
    """The OpenAPI parameters of the query parameters ``route`` accepts."""
    if route.query is not None:
        return [_parameter(item) for item in route.query]
    declared = (route.openapi or {}).get("parameters") or []
    return [dict(p) for p in declared if isinstance(p, Mapping) and p.get("in", "query") == "query"]


def query_names(route: Route) -> tuple[str, ...]:
    """The names of the query parameters ``route`` accepts (:attr:`Route.query`)."""
    return tuple(str(p["name"]) for p in query_parameters(route))


FORBIDDEN = {
    "description": "the API key lacks the scope this operation needs (`missing_scope`)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{([^}:]+)", path)
    ]


def _operation_id(route: Route, taken: set[str]) -> str:
    """The route's own ``operationId``, or one made from its method and path; unique."""
    given = (route.openapi or {}).get("operationId")
    base = (
        str(given)
        if given
        else route.method.lower() + "_" + "_".join(re.findall(r"[a-z0-9]+", route.path.lower()))
    )
    found, n = base, 1
    while found in taken:
        n += 1
        found = f"{base}_{n}"
    taken.add(found)
    return found


def _operation(plugin: str, route: Route, taken: set[str]) -> dict[str, Any]:
    operation = dict(
        route.openapi
        or {
            "summary": f"contributed by plugin {plugin}",
            "responses": {"200": {"description": "done"}},
        }
    )
    operation["operationId"] = _operation_id(route, taken)
    operation.setdefault("tags", [plugin])
    other = [p for p in operation.get("parameters", []) if p.get("in", "query") != "query"]
    path_names = {p.get("name") for p in other if p.get("in") == "path"}
    parameters = [
        *query_parameters(route),
        *other,
        *(p for p in _path_parameters(route.path) if p["name"] not in path_names),
    ]
    if parameters:
        operation["parameters"] = parameters
    responses = dict(operation.get("responses", {}))
    token = needs_token(route.path)
    # OpenAPI 3.1 lets a bearer requirement list role names: the key's scope
    operation["security"] = [{"bearer": [route_scope(route)]}] if token else []
    if token:
        responses.setdefault("401", UNAUTHORIZED)
        responses.setdefault("403", FORBIDDEN)
    if route.path.startswith("/api/"):
        responses.setdefault("422", BAD_QUERY)
    # the limits every route of its kind may answer (docs/operations.md#limits)
    if is_public(route.path):
        responses.setdefault("429", LIMIT_ANSWER)
    if route.method in ("POST", "PUT", "PATCH"):
        responses.setdefault("408", LIMIT_ANSWER)
    operation["responses"] = responses
    return operation


def openapi_document(app: web.Application) -> dict[str, Any]:
    """Build the document from the route table, so a new route shows up by itself."""
    from statusflow.http.routes import KERNEL_ROUTES

    settings = app[SETTINGS]
    paths: dict[str, dict[str, Any]] = {}
    routes: list[tuple[str, Route]] = [("kernel", r) for r in KERNEL_ROUTES]
    plugin_routes: list[tuple[str, Route]] = app[PLUGIN_ROUTES]
    routes.extend(plugin_routes)
    taken: set[str] = set()
    for plugin, route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(plugin, route, taken)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "statusflow",
            "version": "1",
            "description": "Order status automation. Errors are "
            '{"error": {"code", "message", "details"}} (components Error); the docs page '
            "is at /api/docs.",
        },
        "servers": [{"url": settings.base_url}],
        "paths": paths,
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "one of [auth] tokens (STATUSFLOW_TOKENS); needed on "
                    "/api/* when tokens are configured",
                }
            },
        },
    }
