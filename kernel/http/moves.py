"""``GET /api/moves?after=CURSOR&limit=N``: the change feed, every committed move once.

A cursor is a move's ``seq`` (as a string; clients treat it as opaque). The feed answers
the moves after the cursor in ``seq`` order, and a ``next`` cursor to resume from, and
never answers a move after a cursor that it has already passed: nothing is skipped (how,
on PostgreSQL, where ``seq`` is not commit order: :mod:`statusflow.store.feed`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from statusflow.errors import invalid
from statusflow.http.jsonio import json_response
from statusflow.http.keys import DATABASE
from statusflow.store.feed import end_cursor, read_feed

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SETTLE_TIMEOUT = 2.0
"""Seconds the feed waits for in-flight transactions before answering a shorter page."""
END = "end"


def move_json(row: Any) -> dict[str, Any]:
    """A stored move as the feed shows it."""
    return {
        "cursor": str(row["seq"]),
        "order_id": row["order_id"],
        "from": row["from_status"],
        "to": row["to_status"],
        "trigger_id": row["trigger_id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "manual": row["trigger_id"] is None and row["event_id"] is None,
        "at": row["at"],
    }


def _cursor(request: web.Request) -> str:
    raw = request.query.get("after", "0").strip()
    if raw != END and (not (raw.isascii() and raw.isdigit()) or len(raw) > 18):
        problem = "must be a cursor from an earlier answer's next, 0 or end"
        raise invalid(
            f"after {problem}", [{"path": "?after", "message": problem}], "bad_query_parameter"
        )
    return raw


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT)).strip()
    digits = raw.isascii() and raw.isdigit() and len(raw) <= 6  # int() refuses 4,300 digits
    if not digits or not 1 <= int(raw) <= MAX_LIMIT:
        problem = f"must be an integer from 1 to {MAX_LIMIT}"
        raise invalid(
            f"limit {problem}", [{"path": "?limit", "message": problem}], "bad_query_parameter"
        )
    return int(raw)


async def list_moves(request: web.Request) -> web.Response:
    """``GET /api/moves``: ``{"moves": [...], "next": CURSOR}``."""
    db = request.app[DATABASE]
    cursor = _cursor(request)
    limit = _limit(request)
    if cursor == END:
        return json_response({"moves": [], "next": str(await end_cursor(db, SETTLE_TIMEOUT))})
    rows, last = await read_feed(db, int(cursor), limit, SETTLE_TIMEOUT)
    return json_response({"moves": [move_json(r) for r in rows], "next": str(last)})


FEED_PARAMETERS = [
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "a cursor (an answer's next, or a move's cursor); 0 or absent: the "
        "first move; end: the moves committed from now on",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
]

FEED_SCHEMA = {
    "type": "object",
    "required": ["moves", "next"],
    "properties": {
        "moves": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "cursor": {"type": "string"},
                    "order_id": {"type": "string"},
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "trigger_id": {"type": ["integer", "null"]},
                    "event_id": {"type": ["string", "null"]},
                    "event_type": {"type": ["string", "null"]},
                    "manual": {"type": "boolean"},
                    "at": {"type": "string"},
                },
            },
        },
        "next": {"type": "string", "description": "the cursor to pass as after next time"},
    },
}
