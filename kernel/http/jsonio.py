"""Reading JSON bodies and writing JSON answers, the contract's way.

:func:`read_json_body`, :func:`read_json_object` and :func:`json_response` are public:
plugins import them from :mod:`statusflow` so that their routes answer bad bodies as the
kernel's routes do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from statusflow.engine.validation import check, pointer, storable_problem
from statusflow.errors import ApiError, invalid
from statusflow.types import JSON

JSON_HEADERS = {"Content-Type": "application/json"}

INTEGERS = range(-(2**63), 2**64)
"""The integers a body may hold: orjson reads larger ones as floats, which would store
a number other than the one sent."""
_LONG_DIGITS = re.compile(rb"\d{19}")  # the shortest integer that may fall outside


def _integer_out_of_range(value: Any, path: str = "") -> str | None:
    """The JSON Pointer of the first integer outside :data:`INTEGERS` in ``value``, or
    ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value in INTEGERS else path
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _integer_out_of_range(item, path + pointer(key))
        if found is not None:
            return found
    return None


class _Required:
    """The ``default`` of :func:`read_json_body` that makes an empty body a 400."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


async def read_json_body(
    request: web.Request, *, default: Any = REQUIRED, check_storable: bool = True
) -> JSON:
    """The request's JSON body, read the way the kernel's own routes read theirs.

    Answers (as :class:`~statusflow.ApiError`): 400 ``malformed_json`` for a body that
    is not JSON, or is empty; 422 ``validation_failed`` for an integer outside 64 bits (it would
    otherwise be read as a float, another number than the one sent) and, unless
    ``check_storable`` is false, for a string holding the NUL character or nesting
    deeper than 100 levels (the database cannot store them). A body over ``[server]
    max_body_bytes`` never gets here: it is a 413.

    :param default: what an empty body (or one of only whitespace) gives instead of a
        400, e.g. ``{}`` for a route whose body is optional.
    :param check_storable: ``False`` where the route stores none of the body as it is
        (it checks and copies the fields it uses): NUL characters and deep nesting then
        reach it.
    """
    raw = await request.read()
    if not raw.strip():
        if default is not REQUIRED:
            return default
        raise ApiError(400, "malformed_json", "the request body is empty; JSON was expected")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        at = f" (line {exc.lineno}, column {exc.colno})" if exc.lineno else ""
        raise ApiError(400, "malformed_json", f"the request body is not valid JSON{at}") from None
    if _LONG_DIGITS.search(raw):  # rare: read it again, keeping every integer exact
        try:
            where = _integer_out_of_range(json.loads(raw))
        except RecursionError:
            raise invalid("the JSON body is nested too deeply") from None
        if where is not None:
            wide = "must be an integer within 64 bits"
            raise invalid(f"{where or 'the body'} {wide}", [{"path": where, "message": wide}])
    problem = storable_problem(body) if check_storable else None
    if problem is not None:
        raise invalid(problem)
    return body


async def read_json_object(
    request: web.Request,
    what: str = "the request body",
    schema: Mapping[str, JSON] | None = None,
    *,
    default: Any = REQUIRED,
    check_storable: bool = True,
) -> dict[str, JSON]:
    """The request's JSON body when it is an object (and valid against ``schema``).

    Reads it as :func:`read_json_body` does (same ``default`` and ``check_storable``),
    then answers 422 ``validation_failed`` with ``"{what} must be a JSON object"``, or,
    when it breaks ``schema`` (JSON Schema draft 2020-12), ``"{what}: {path} {problem}"``
    with the problems as ``[{"path", "message"}, ...]`` in ``details`` (each ``path`` a
    JSON Pointer into the body; messages written for people, unknown fields answered
    with the closest known ones).

    :param what: how the messages name the body, e.g. ``"a webhook endpoint"``.
    """
    body = require_object(
        await read_json_body(request, default=default, check_storable=check_storable), what
    )
    if schema is not None:
        check(schema, body, what)
    return body


def json_response(body: JSON, status: int = 200) -> web.Response:
    """A JSON answer with ``status``, serialised as the kernel's own answers are
    (compact, with orjson; ``Content-Type: application/json``)."""
    return web.Response(body=orjson.dumps(body), status=status, headers=JSON_HEADERS)


def require_object(body: Any, what: str) -> dict[str, Any]:
    """``body`` when it is a JSON object, else a 422."""
    if not isinstance(body, dict):
        problem = {"path": "", "message": "must be a JSON object"}
        raise invalid(f"{what} must be a JSON object", [problem])
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
