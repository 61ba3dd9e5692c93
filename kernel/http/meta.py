"""Health, plugins, trigger types and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from statusflow.http.jsonio import json_response
from statusflow.http.keys import PLUGIN_INFOS, REGISTRY
from statusflow.http.openapi import openapi_document


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def list_plugins(request: web.Request) -> web.Response:
    return json_response([info.as_json() for info in request.app[PLUGIN_INFOS]])


async def list_trigger_types(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return json_response(
        [
            {
                "type": code,
                "plugin": registry.owner("trigger_type", code),
                "title": tt.title,
                "events": list(tt.events),
                "settings_schema": dict(tt.settings_schema),
            }
            for code, tt in sorted(registry.trigger_types.items())
        ]
    )


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app))
