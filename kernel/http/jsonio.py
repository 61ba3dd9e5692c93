"""Reading JSON bodies and writing JSON answers, the contract's way."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from aiohttp import web

from statusflow.engine.validation import storable_problem
from statusflow.errors import ApiError

NO_BODY = object()
JSON_HEADERS = {"Content-Type": "application/json"}

INTEGERS = range(-(2**63), 2**64)
"""The integers a body may hold: orjson reads larger ones as floats, which would store
a number other than the one sent."""
_LONG_DIGITS = re.compile(rb"\d{19}")  # the shortest integer that may fall outside


def _integer_out_of_range(value: Any, path: str = "") -> str | None:
    """The path of the first integer outside :data:`INTEGERS` in ``value``, or ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value in INTEGERS else path or "/"
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _integer_out_of_range(item, f"{path}/{key}")
        if found is not None:
            return found
    return None


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
    if _LONG_DIGITS.search(raw):  # rare: read it again, keeping every integer exact
        try:
            where = _integer_out_of_range(json.loads(raw))
        except RecursionError:
            raise ApiError(422, "invalid", "the JSON body is nested too deeply") from None
        if where is not None:
            raise ApiError(
                422, "invalid", f"{where}: integers must be within 64 bits", {"path": where}
            )
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
