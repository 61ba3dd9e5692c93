"""The OpenAPI 3.1 document of the kernel's and the plugins' routes."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from statusflow.http.auth import route_scope
from statusflow.http.keys import PLUGIN_ROUTES, SETTINGS
from statusflow.http.limits import is_public
from statusflow.http.middlewares import needs_token
from statusflow.types import Route

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


LIMIT_ANSWER = {
    "description": "a limit of the server (408: slow body, 429: rate limit)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


FORBIDDEN = {
    "description": "the API key lacks the scope this operation needs (`missing_scope`)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{([^}:]+)", path)
    ]


def openapi_document(app: web.Application) -> dict[str, Any]:
    """Build the document from the route table, so a new route shows up by itself."""
    from statusflow.http.routes import KERNEL_ROUTES

    settings = app[SETTINGS]
    paths: dict[str, dict[str, Any]] = {}
    routes: list[tuple[str, Route]] = [("kernel", r) for r in KERNEL_ROUTES]
    plugin_routes: list[tuple[str, Route]] = app[PLUGIN_ROUTES]
    routes.extend(plugin_routes)
    for plugin, route in routes:
        operation = dict(
            route.openapi
            or {
                "summary": f"contributed by plugin {plugin}",
                "responses": {"200": {"description": "done"}},
            }
        )
        operation.setdefault("tags", [plugin])
        parameters = list(operation.get("parameters", [])) + _path_parameters(route.path)
        if parameters:
            operation["parameters"] = parameters
        if needs_token(route.path) and settings.auth_enabled:
            # OpenAPI 3.1 lets a bearer requirement list role names: the key's scope
            operation.setdefault("security", [{"bearer": [route_scope(route)]}])
            operation["responses"] = {**operation.get("responses", {}), "403": FORBIDDEN}
        # the limits every route of its kind may answer (docs/operations.md#limits)
        limits = {"429": is_public(route.path), "408": route.method in ("POST", "PUT", "PATCH")}
        if any(limits.values()):
            responses = dict(operation.get("responses", {}))
            for status in (code for code, applies in limits.items() if applies):
                responses.setdefault(status, LIMIT_ANSWER)
            operation["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "statusflow", "version": "1", "description": "Order status automation"},
        "servers": [{"url": settings.base_url}],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
