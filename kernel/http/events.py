"""``/api/events``: post events (one or a list, optionally as a dry run), list them,
and read one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from statusflow.engine.decide import trace_of
from statusflow.engine.validation import surely_storable
from statusflow.errors import invalid, not_found
from statusflow.http.jsonio import json_response, read_json_body
from statusflow.http.keys import DATABASE, ENGINE, REGISTRY, SERVICES
from statusflow.http.paging import (
    PAGE_PARAMETERS,
    Cursors,
    ListQuery,
    bad_parameter,
    is_seq,
    query_parameter,
)
from statusflow.store.lists import event_type_stored, events_page

TRUE = ("1", "true", "yes")


async def post_events(request: web.Request) -> web.Response:
    body = await read_json_body(request, check_storable=False)  # parse_event checks each event
    check_storable = not surely_storable(await request.read())  # (read once, cached)
    dry_run_flag = request.query.get("dry_run", "false").lower()
    if dry_run_flag not in (*TRUE, "0", "false", "no"):
        problem = {"path": "?dry_run", "message": "must be true or false"}
        raise invalid("dry_run must be true or false", [problem], "bad_query_parameter")
    dry_run = dry_run_flag in TRUE
    if isinstance(body, list):
        engine = request.app[ENGINE]
        return json_response(
            await engine.process(body, dry_run=dry_run, check_storable=check_storable)
        )
    if isinstance(body, dict):
        return json_response(
            await process_event(request.app, body, dry_run=dry_run, check_storable=check_storable)
        )
    problem = {"path": "", "message": "must be an event (a JSON object) or a list of events"}
    raise invalid("the body must be an event (a JSON object) or a list of events", [problem])


async def process_event(
    app: web.Application, body: dict[str, Any], *, dry_run: bool, check_storable: bool = True
) -> dict[str, Any]:
    """One event sent alone, as ``POST /api/events`` (``?dry_run=true``) takes it: its
    result (a dry run's with its ``trace`` and the ``runs`` it would schedule).

    :raises ApiError: the event breaks the rules (422) or names an unknown order (404).
    """
    results = await app[ENGINE].process(
        [body], dry_run=dry_run, check_storable=check_storable, listed=False
    )
    return results[0]


def event_json(row: Any) -> dict[str, Any]:
    """A stored event as ``GET /api/events`` lists it (``GET /api/events/{id}`` adds
    its ``trace``)."""
    result = row["result"]
    return {
        "id": row["id"],
        "type": row["type"],
        "order_id": row["order_id"],
        "contact": row["contact"],
        "data": row["data"],
        "occurred_at": row["occurred_at"],
        "received_at": row["received_at"],
        "order_ids": result["order_ids"],
        "moves": result["moves"],
    }


async def get_event(request: web.Request) -> web.Response:
    event_id = request.match_info["id"]
    async with request.app[DATABASE].read() as sql:
        row = await sql.event(event_id)
    if row is None:
        raise not_found(f"event {event_id[:200]!r} not found", code="event_not_found")
    return json_response({**event_json(row), "trace": trace_of(row["result"])})


@dataclass(frozen=True)
class EventFilters:
    """The filters of the event list (``None``: not filtered by it)."""

    order_id: str | None = None
    event_type: str | None = None
    moved: bool | None = None


async def find_events(
    app: web.Application,
    filters: EventFilters,
    limit: int,
    cursor: str | None = None,
    *,
    with_trace: bool = False,
) -> dict[str, Any]:
    """A page of events, newest first, as ``GET /api/events`` answers it (``{"items",
    "next"}``); by order, the events resolved to it. ``with_trace`` adds each event's
    ``trace`` (the board shows it).

    :raises ApiError: 422 for an unknown order or event type, or a bad cursor.
    """
    order_id, event_type, moved = filters.order_id, filters.event_type, filters.moved
    cursors = Cursors(
        app[SERVICES], "events", {"order_id": order_id, "type": event_type, "moved": moved}
    )
    after = cursors.position(cursor, is_seq)
    async with app[DATABASE].read() as sql:
        if order_id is not None and not await sql.order_exists(order_id):
            raise bad_parameter("order_id", f"unknown order {order_id!r}", "unknown_order")
        if (
            event_type is not None
            and event_type not in app[REGISTRY].event_types
            and not await event_type_stored(sql, event_type)
        ):
            known = ", ".join(sorted(t for t, et in app[REGISTRY].event_types.items()))
            raise bad_parameter(
                "type",
                f"unknown event type {event_type!r}; known types: {known}",
                "unknown_event_type",
            )
        rows = await events_page(sql, limit, after, event_type, moved, order_id)

    def item(row: Any) -> dict[str, Any]:
        shown = event_json(row)
        return {**shown, "trace": trace_of(row["result"])} if with_trace else shown

    return cursors.page(rows, limit, lambda r: r["position"], item)


async def list_events(request: web.Request) -> web.Response:
    """``GET /api/events?order_id=&type=&moved=&limit=&cursor=``: a page of events,
    newest first; by order, the events resolved to it."""
    query = ListQuery(request)
    filters = EventFilters(
        query.text("order_id", 200), query.text("type", 100), query.flag("moved")
    )
    limit = query.limit()
    return json_response(await find_events(request.app, filters, limit, query.one("cursor")))


LIST_PARAMETERS = [
    query_parameter(
        "order_id", {"type": "string"}, "events resolved to this order (by id or by contact)"
    ),
    query_parameter("type", {"type": "string"}, "events of this type"),
    query_parameter(
        "moved",
        {"type": "boolean"},
        "true: events that moved an order; false: events that moved none",
    ),
    *PAGE_PARAMETERS,
]
