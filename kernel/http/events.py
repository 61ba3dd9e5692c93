"""``/api/events``: post events (one or a list, optionally as a dry run) and read one."""

from __future__ import annotations

from aiohttp import web

from statusflow.engine.decide import trace_of
from statusflow.engine.validation import surely_storable
from statusflow.errors import invalid, not_found
from statusflow.http.jsonio import json_response, read_json_body
from statusflow.http.keys import DATABASE, ENGINE

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
        engine = request.app[ENGINE]
        results = await engine.process(
            [body], dry_run=dry_run, check_storable=check_storable, listed=False
        )
        return json_response(results[0])
    problem = {"path": "", "message": "must be an event (a JSON object) or a list of events"}
    raise invalid("the body must be an event (a JSON object) or a list of events", [problem])


async def get_event(request: web.Request) -> web.Response:
    event_id = request.match_info["id"]
    async with request.app[DATABASE].read() as sql:
        row = await sql.event(event_id)
    if row is None:
        raise not_found(f"event {event_id[:200]!r} not found", code="event_not_found")
    result = row["result"]
    return json_response(
        {
            "id": row["id"],
            "type": row["type"],
            "order_id": row["order_id"],
            "contact": row["contact"],
            "data": row["data"],
            "occurred_at": row["occurred_at"],
            "received_at": row["received_at"],
            "order_ids": result["order_ids"],
            "moves": result["moves"],
            "trace": trace_of(result),
        }
    )
