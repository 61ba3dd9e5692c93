"""Paged lists (contract §7): their query parameters checked, their opaque cursors.

A list answers ``{"items": [...], "next": CURSOR or null}``. A cursor is the position of
a page's last item (a keyset position, :mod:`statusflow.store.lists`) with the list's
name and a digest of its filters, signed with the instance's signing key
(``KernelServices.sign``): a cursor that was altered, cut, or made for another list or
other filters is a 422, never a wrong page. ``next`` is null on the last page.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from statusflow.engine.services import Services
from statusflow.errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
TRUE = ("true", "1", "yes")
FALSE = ("false", "0", "no")
MAX_TEXT = 320
"""The longest filter value taken (an email's longest form)."""


def bad_parameter(name: str, message: str, code: str = "bad_query_parameter") -> ApiError:
    """A 422 naming the query parameter at fault."""
    return ApiError(422, code, message, [{"path": f"?{name}", "message": message}])


class ListQuery:
    """One list request's query parameters, each read and checked by its reader."""

    def __init__(self, request: web.Request) -> None:
        self._query = request.query

    def __contains__(self, name: str) -> bool:
        return name in self._query

    def one(self, name: str) -> str | None:
        """The parameter's value (``None`` when absent); given twice: a 422."""
        values = self._query.getall(name, [])
        if len(values) > 1:
            raise bad_parameter(name, f"{name} is given {len(values)} times: give it once")
        return values[0] if values else None

    def text(self, name: str, max_length: int = MAX_TEXT) -> str | None:
        """A filter's text, trimmed; empty or too long: a 422."""
        raw = self.one(name)
        if raw is None:
            return None
        value = raw.strip()
        if not value:
            raise bad_parameter(name, f"{name} is empty: give a value or leave it out")
        if len(value) > max_length:
            raise bad_parameter(name, f"{name} is longer than {max_length} characters")
        return value

    def flag(self, name: str) -> bool | None:
        """``true`` or ``false`` (also ``1``/``0``, ``yes``/``no``)."""
        raw = self.one(name)
        if raw is None:
            return None
        value = raw.strip().lower()
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        raise bad_parameter(name, f"{name} must be true or false")

    def limit(self) -> int:
        """The page size: an integer from 1 to :data:`MAX_LIMIT`, :data:`DEFAULT_LIMIT`
        when absent."""
        raw = self.one("limit")
        if raw is None:
            return DEFAULT_LIMIT
        value = raw.strip()
        digits = value.isascii() and value.isdigit() and len(value) <= 6
        if not digits or not 1 <= int(value) <= MAX_LIMIT:
            raise bad_parameter("limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
        return int(value)


class Cursors:
    """The cursors of one list with one set of filters (see the module docstring)."""

    def __init__(self, services: Services, list_name: str, filters: Mapping[str, Any]) -> None:
        self._services = services
        self._list = list_name
        filtered = orjson.dumps(dict(filters), option=orjson.OPT_SORT_KEYS)
        self._filters = hashlib.blake2s(filtered, digest_size=9).hexdigest()

    def position(self, raw: str | None, check: Callable[[Any], bool]) -> Any:
        """The position a ``cursor`` parameter names (``None`` without one); ``check``
        says whether a signed position has the list's shape.

        :raises ApiError: 422, a cursor this list did not give for these filters.
        """
        if raw is None:
            return None
        payload = self._services.unsign(raw.strip()) if raw.strip().isascii() else None
        if payload is None or payload.get("list") != self._list or "at" not in payload:
            raise bad_parameter(
                "cursor",
                "cursor is not one this list gave: pass an answer's next as it is",
                "invalid_cursor",
            )
        if payload.get("filters") != self._filters:
            raise bad_parameter(
                "cursor",
                "cursor belongs to other filters: send the filters of the request that gave it",
                "invalid_cursor",
            )
        position = payload["at"]
        if not check(position):
            raise bad_parameter("cursor", "cursor is not one this list gave", "invalid_cursor")
        return position

    def make(self, position: Any) -> str:
        return self._services.sign({"list": self._list, "filters": self._filters, "at": position})

    def page(
        self,
        rows: Sequence[Any],
        limit: int,
        position: Callable[[Any], Any],
        item: Callable[[Any], Any],
    ) -> dict[str, Any]:
        """The answer for ``rows`` (up to ``limit + 1``, in the list's order)."""
        shown = rows[:limit]
        next_cursor = self.make(position(shown[-1])) if len(rows) > limit else None
        return {"items": [item(row) for row in shown], "next": next_cursor}


def is_seq(value: Any) -> bool:
    """A row's ``seq`` as a position."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def is_strings(count: int) -> Callable[[Any], bool]:
    """A position of ``count`` strings."""

    def check(value: Any) -> bool:
        return (
            isinstance(value, list)
            and len(value) == count
            and all(isinstance(v, str) for v in value)
        )

    return check


# --- OpenAPI ---------------------------------------------------------------------------


def query_parameter(name: str, schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": dict(schema),
    }


LIMIT = query_parameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    f"items per page ({DEFAULT_LIMIT} when left out; a timeline without it is whole)",
)
CURSOR = query_parameter(
    "cursor",
    {"type": "string"},
    "an earlier answer's next, with the same filters: the page after it",
)
PAGE_PARAMETERS = [LIMIT, CURSOR]


def page_schema(item: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a page of ``item``s."""
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": dict(item)},
            "next": {
                "type": ["string", "null"],
                "description": "the cursor of the next page; null on the last page",
            },
        },
    }
