"""Reading JSON bodies and writing JSON answers, the contract's way."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from kernel.errors import ApiError
from kernel.validation import storable_problem

NO_BODY = object()
JSON_HEADERS = {"Content-Type": "application/json"}


async def read_json(
    request: web.Request, *, optional: bool = False, check_storable: bool = True
) -> Any:
    """The request's JSON body; 400 when it is malformed, 413 when it is too large.

    :param optional: return :data:`NO_BODY` for an empty body instead of a 400.
    :param check_storable: refuse (422) a NUL character or too deep nesting here;
        ``False`` where the caller checks the parts it stores itself (events).
    """
    raw = await request.read()
    if not raw.strip():
        if optional:
            return NO_BODY
        raise ApiError(400, "malformed_json", "the request body is empty; JSON was expected")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400, "malformed_json", f"the request body is not valid JSON: {exc}"
        ) from None
    problem = storable_problem(body) if check_storable else None
    if problem is not None:
        raise ApiError(422, "invalid", problem)
    return body


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON answer serialised with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, headers=JSON_HEADERS)


def require_object(body: Any, what: str) -> dict[str, Any]:
    """``body`` when it is a JSON object, else a 422."""
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", f"{what} must be a JSON object")
    return body


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: ``patch`` applied to ``target`` (neither is changed)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
