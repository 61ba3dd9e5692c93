"""Checking request bodies against JSON Schemas, with the contract's 422 details."""

from __future__ import annotations

from collections.abc import Mapping
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
