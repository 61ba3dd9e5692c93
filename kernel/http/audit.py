"""``GET /api/audit``: the audit log, newest first, a page at a time."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from aiohttp import web

from statusflow.errors import ApiError
from statusflow.http.jsonio import json_response
from statusflow.http.keys import DATABASE

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
TOP = 2**31 - 1
"""Above every id (an INTEGER column on PostgreSQL): the first page."""

ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string"},
        "key_name": {"type": ["string", "null"]},
        "action": {"type": "string"},
        "kind": {"type": "string"},
        "resource_id": {"type": ["string", "null"]},
        "before": {},
        "after": {},
    },
}
PAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": ENTRY_SCHEMA},
        "next": {"type": ["string", "null"], "description": "the next page's cursor"},
    },
}
PARAMETERS = [
    {"name": "kind", "in": "query", "required": False, "schema": {"type": "string"}},
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
]


def _bad(name: str, message: str) -> ApiError:
    return ApiError(
        422, "bad_query_parameter", f"{name}: {message}", [{"path": f"?{name}", "message": message}]
    )


def encode_cursor(below: int) -> str:
    """An opaque cursor: the page after it holds the entries of ids below ``below``."""
    return base64.urlsafe_b64encode(orjson.dumps({"audit_below": below})).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    """:raises ApiError: (422) not a cursor of this list."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        below = orjson.loads(raw)["audit_below"]
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise _bad("cursor", "is not a cursor of the audit log") from None
    if not isinstance(below, int) or isinstance(below, bool) or not 0 < below <= TOP:
        raise _bad("cursor", "is not a cursor of the audit log")
    return below


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def entry_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": row["at"],
        "key_name": row["key_name"],
        "action": row["action"],
        "kind": row["kind"],
        "resource_id": row["resource_id"],
        "before": row["before"],
        "after": row["after"],
    }


async def list_audit(request: web.Request) -> web.Response:
    """``{"items": [...], "next": cursor or null}``, newest first; ``kind`` filters."""
    limit = _limit(request.query.get("limit"))
    cursor = request.query.get("cursor")
    below = TOP if cursor is None else decode_cursor(cursor)
    kind = request.query.get("kind")
    if kind is not None and not 1 <= len(kind) <= 60:
        raise _bad("kind", "must be 1 to 60 characters")
    async with request.app[DATABASE].read() as sql:
        rows = await sql.audit_page(below, limit + 1, kind)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response(
        {
            "items": [entry_json(row) for row in rows],
            "next": encode_cursor(rows[-1]["id"]) if more else None,
        }
    )
