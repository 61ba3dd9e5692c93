"""The plugins page (``/ui/plugins``): what ``GET /api/plugins`` shows (each plugin,
enabled or not, its trigger and action types), the event types each enabled plugin
registers, and every inactive trigger with its reason (as ``GET /api/triggers`` says
it), linking to the board."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from statusflow.engine.decide import inactive_reason
from statusflow.http.keys import DATABASE, PLUGIN_INFOS, REGISTRY
from statusflow.ui.keys import PARENT
from statusflow.ui.render import render

routes = web.RouteTableDef()


@dataclass
class InactiveTrigger:
    """A stored trigger that events ignore, and why."""

    id: int
    name: str
    type: str
    status: str
    reason: str


@dataclass
class PluginView:
    """One plugin as the page shows it."""

    info: dict[str, Any]
    """As ``GET /api/plugins`` shows it."""
    action_types: tuple[str, ...]
    event_types: list[str]
    inactive: list[InactiveTrigger] = field(default_factory=list)


async def inactive_triggers(app: web.Application) -> list[InactiveTrigger]:
    """Every trigger whose plugin, event types or condition operators are not loaded."""
    registry = app[REGISTRY]
    async with app[DATABASE].read() as sql:
        rows = await sql.all_triggers()
    found = []
    for row in rows:
        reason = inactive_reason(row["type"], row["conditions"] or [], registry)
        if reason is not None:
            name = row["name"] or row["type"]
            found.append(InactiveTrigger(row["id"], name, row["type"], row["status"], reason))
    return found


@routes.get("/plugins")
async def plugins(request: web.Request) -> web.StreamResponse:
    """Each plugin with its types, and the inactive triggers under the plugin of their
    type (or on their own when no installed plugin offers it)."""
    app = request.app[PARENT]
    registry = app[REGISTRY]
    views = [
        PluginView(
            info.as_json(),
            info.action_types,
            sorted(
                code
                for code in registry.event_types
                if registry.owners.get(("event_type", code)) == info.name
            ),
        )
        for info in app[PLUGIN_INFOS]
    ]
    orphans: list[InactiveTrigger] = []
    for trigger in await inactive_triggers(app):
        owner = next((v for v in views if trigger.type in v.info["trigger_types"]), None)
        (owner.inactive if owner else orphans).append(trigger)
    context = {
        "title": "Plugins",
        "plugins": views,
        "orphans": orphans,
        "inactive_count": sum(len(v.inactive) for v in views) + len(orphans),
    }
    return await render(request, "plugins.html", context)
