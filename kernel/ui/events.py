"""The event log (``/ui/events``): newest first, filtered by type, order and "moved
nothing", each event with its trace, paged with the API's cursors; the first page
follows new events (``/ui/events/live``, see :mod:`statusflow.ui.live`).

The page lists through :func:`statusflow.http.events.find_events`, the code of
``GET /api/events``: the same filters, the same rules, the same messages.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from statusflow.errors import ApiError
from statusflow.http.events import EventFilters, find_events
from statusflow.http.keys import DATABASE, REGISTRY
from statusflow.store.lists import events_page
from statusflow.ui.keys import PARENT
from statusflow.ui.labels import trigger_names
from statusflow.ui.live import stream_changes
from statusflow.ui.render import render

routes = web.RouteTableDef()

PAGE_SIZE = 25
"""Events per page."""
SUMMARY_LENGTH = 160
"""The longest data summary shown in the list (the whole data is in the details)."""


def summary(value: Any, length: int = SUMMARY_LENGTH) -> str:
    """``value`` as compact JSON text, cut to ``length`` characters (shown escaped)."""
    if not value:
        return ""
    text = orjson.dumps(value).decode()
    return text if len(text) <= length else text[: length - 1] + "…"


def _filters(query: Any) -> EventFilters:
    """The page's filters from its form (an empty field is no filter)."""
    order_id = (query.get("order_id") or "").strip() or None
    event_type = (query.get("type") or "").strip() or None
    moved = False if query.get("moved") == "false" else None
    return EventFilters(order_id, event_type, moved)


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    """The log: one page of events, newest first."""
    app = request.app[PARENT]
    filters = _filters(request.query)
    cursor = request.query.get("cursor") or None
    page: dict[str, Any] = {"items": [], "next": None}
    error = None
    try:
        page = await find_events(app, filters, PAGE_SIZE, cursor, with_trace=True)
    except ApiError as exc:
        error = exc.message
    next_query = None
    if page["next"]:
        next_query = {"cursor": page["next"]}
        next_query.update({"order_id": filters.order_id} if filters.order_id else {})
        next_query.update({"type": filters.event_type} if filters.event_type else {})
        next_query.update({"moved": "false"} if filters.moved is False else {})
    context = {
        "title": "Events",
        "filters": filters,
        "types": sorted(app[REGISTRY].event_types),
        "events": page["items"],
        "next_query": next_query,
        "paged": cursor is not None,
        "error": error,
        "names": await trigger_names(app),
        "summary": summary,
    }
    return await render(request, "events.html", context, status=422 if error else 200)


@routes.get("/events/live")
async def events_live(request: web.Request) -> web.StreamResponse:
    """Says ``changed`` when a new event is stored (the first page then reloads its list)."""
    database = request.app[PARENT][DATABASE]

    async def newest() -> object:
        async with database.read() as sql:
            rows = await events_page(sql, 1)
        return rows[0]["id"] if rows else None

    return await stream_changes(request, newest)
