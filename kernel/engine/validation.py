"""Checking request bodies against JSON Schemas, with the contract's 422 details."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jsonschema
import jsonschema_rs
import orjson

from statusflow.errors import invalid

# Valid bodies are recognised by jsonschema-rs (compiled, about 100 times faster than the
# pure-Python ``jsonschema`` on the event path); the rare invalid body is explained by
# ``jsonschema``, whose messages name the offending key.
_BY_IDENTITY: dict[int, tuple[Mapping[str, Any], Any, jsonschema.Draft202012Validator]] = {}


@lru_cache(maxsize=512)
def _validators(schema_json: bytes) -> tuple[Any, jsonschema.Draft202012Validator]:
    schema = orjson.loads(schema_json)
    return jsonschema_rs.Draft202012Validator(schema), jsonschema.Draft202012Validator(schema)


def _validators_for(schema: Mapping[str, Any]) -> tuple[Any, jsonschema.Draft202012Validator]:
    """Compiled validators for ``schema``, cached by identity, then by content."""
    cached = _BY_IDENTITY.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1], cached[2]
    fast, explaining = _validators(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    if len(_BY_IDENTITY) < 4096:  # the entry keeps the schema alive, so its id stays valid
        _BY_IDENTITY[id(schema)] = (schema, fast, explaining)
    return fast, explaining


def schema_errors(schema: Mapping[str, Any], value: Any, where: str = "") -> list[dict[str, str]]:
    """The ways ``value`` breaks ``schema``, as ``{"path", "message"}`` items."""
    fast, explaining = _validators_for(schema)
    if fast.is_valid(value):
        return []
    errors = []
    for error in explaining.iter_errors(value):
        path = "/".join(str(p) for p in error.absolute_path)
        joined = "/".join(p for p in (where, path) if p)
        errors.append({"path": joined or "/", "message": error.message[:500]})
    errors.sort(key=lambda e: e["path"])
    return errors


def check(schema: Mapping[str, Any], value: Any, what: str, where: str = "") -> None:
    """Raise a 422 naming the first problems when ``value`` breaks ``schema``."""
    errors = schema_errors(schema, value, where)
    if errors:
        first = errors[0]
        raise invalid(f"{what}: {first['path']}: {first['message']}", errors[:20])


MAX_FUTURE = timedelta(days=365)
"""How far ahead of the server's clock an event's ``occurred_at`` may be."""


_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)


def parse_timestamp(value: str) -> str:
    """An ISO-8601 time with a zone, returned in UTC ``...Z`` form; ``ValueError`` if not,
    or if it is more than :data:`MAX_FUTURE` ahead of now (no event happens then)."""
    if _CANONICAL.fullmatch(value):  # already the stored form: check it is a real time
        datetime.fromisoformat(value[:-1])
        if value > _latest_allowed(int(time.time())):
            raise ValueError(f"time {value!r} is more than {MAX_FUTURE.days} days in the future")
        return value
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    parsed = parsed.astimezone(UTC)
    if parsed > datetime.now(UTC) + MAX_FUTURE:
        raise ValueError(f"time {value!r} is more than {MAX_FUTURE.days} days in the future")
    return _utc_text(parsed)


@lru_cache(maxsize=1)
def _latest_allowed(whole_second: int) -> str:
    """That second plus :data:`MAX_FUTURE`, in the stored form (once a second: cached)."""
    return _utc_text(datetime.fromtimestamp(whole_second, UTC) + MAX_FUTURE)


def _utc_text(moment: datetime) -> str:
    """``moment`` (in UTC) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (``isoformat`` is several
    times faster than ``strftime``; years before 1000 keep their four digits)."""
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


MAX_JSON_DEPTH = 100


def surely_storable(raw: bytes) -> bool:
    """Whether every value parsed from the JSON text ``raw`` is storable, judged from the
    bytes alone (no ``\\u0000`` escape, too few brackets to nest too deep); ``False``
    means "check with :func:`storable_problem`"."""
    return b"\\u0000" not in raw and raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH


def storable_problem(value: Any) -> str | None:
    """Why a JSON value cannot be stored, or ``None``: U+0000 in a string or key
    (PostgreSQL text cannot hold it) or nesting deeper than :data:`MAX_JSON_DEPTH`
    (stored JSON is serialised with orjson, which stops at 255 levels)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "strings must not contain the NUL character (\\u0000)"
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"JSON must not be nested deeper than {MAX_JSON_DEPTH} levels"
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


@lru_cache(maxsize=1)
def _date_and_time(whole_second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a Unix time (formatted once a second: cached)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole_second))


def utc_now() -> str:
    """Now, as the ISO-8601 UTC string every stored time uses."""
    now = time.time()
    whole = int(now)
    return f"{_date_and_time(whole)}.{int((now - whole) * 1_000_000):06d}Z"
