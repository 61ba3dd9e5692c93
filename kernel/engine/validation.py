"""Checking request bodies against JSON Schemas: problems said for people, with the
JSON Pointer of each value at fault; the closest known names for an unknown one."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
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


Problem = dict[str, str]
"""One entry of an error's ``details``: ``{"path", "message"}``."""

MAX_PROBLEMS = 20


def pointer(*parts: str | int) -> str:
    """A JSON Pointer (RFC 6901) from keys and indexes: ``pointer("contact", "phone")``
    is ``"/contact/phone"``; no part is ``""``, the whole document."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def closest(word: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``word`` (case aside), best first; ``[]`` if none is close."""
    by_lower: dict[str, str] = {}
    for name in known:
        by_lower.setdefault(name.lower(), name)
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[match] for match in found]


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest known names, or ``""``."""
    found = closest(word, known)
    return f" (did you mean {' or '.join(repr(f) for f in found)}?)" if found else ""


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a JSON object",
    "array": "a list",
    "null": "null",
}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _one_of(values: Any) -> str:
    shown = [orjson.dumps(v).decode() for v in _as_list(values)][:30]
    return shown[0] if len(shown) == 1 else "one of " + ", ".join(shown)


_BY_KEYWORD: dict[str, Callable[[Any], str]] = {
    "type": lambda v: "must be " + " or ".join(_TYPE_WORDS.get(t, str(t)) for t in _as_list(v)),
    "enum": lambda v: f"must be {_one_of(v)}",
    "const": lambda v: f"must be {_one_of(v)}",
    "minLength": lambda v: (
        "must not be empty" if v == 1 else f"must be at least {_plural(v, 'character')} long"
    ),
    "maxLength": lambda v: f"must be at most {_plural(v, 'character')} long",
    "pattern": lambda v: f"must match the pattern {v}",
    "format": lambda v: f"must be a valid {v}",
    "minimum": lambda v: f"must be at least {v}",
    "maximum": lambda v: f"must be at most {v}",
    "exclusiveMinimum": lambda v: f"must be greater than {v}",
    "exclusiveMaximum": lambda v: f"must be less than {v}",
    "multipleOf": lambda v: f"must be a multiple of {v}",
    "minItems": lambda v: (
        "must not be an empty list" if v == 1 else f"must have at least {_plural(v, 'item')}"
    ),
    "maxItems": lambda v: f"must have at most {_plural(v, 'item')}",
    "uniqueItems": lambda v: "must not repeat an item",
    "minProperties": lambda v: f"must have at least {_plural(v, 'field')}",
    "maxProperties": lambda v: f"must have at most {_plural(v, 'field')}",
    "propertyNames": lambda v: "has a field whose name is not allowed",
    "not": lambda v: "is not allowed in this form",
    "dependentRequired": lambda v: "lacks a field that another field requires",
    "oneOf": lambda v: "must match exactly one of the allowed forms",
    "anyOf": lambda v: "matches none of the allowed forms",
}


def _problems(error: jsonschema.ValidationError) -> list[Problem]:
    """``error`` said for people, at the path of the value at fault; never a library's
    message nor the value sent."""
    path = pointer(*error.absolute_path)
    keyword, rule, instance = str(error.validator), error.validator_value, error.instance
    if keyword == "required" and isinstance(instance, Mapping):
        missing = [key for key in _as_list(rule) if key not in instance]
        return [{"path": path + pointer(key), "message": "is required"} for key in missing]
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(
        instance, Mapping
    ):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        known = sorted(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        unknown = [
            str(key)
            for key in instance
            if key not in known and not any(re.search(p, str(key)) for p in patterns)
        ]
        hint = f"; known fields: {', '.join(known)}" if known else "; no field is allowed here"
        return [
            {
                "path": path + pointer(key),
                "message": "is not a known field" + (did_you_mean(key, known) or hint),
            }
            for key in unknown
        ]
    if keyword in ("anyOf", "oneOf") and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None and best.validator not in ("anyOf", "oneOf"):
            return _problems(best)
    if keyword == "enum" and isinstance(instance, str):
        known = [str(v) for v in _as_list(rule) if isinstance(v, str)]
        return [
            {"path": path, "message": f"must be {_one_of(rule)}{did_you_mean(instance, known)}"}
        ]
    explain = _BY_KEYWORD.get(keyword)
    if keyword == "false" or error.schema is False:
        message = "is not allowed here"
    elif explain is None:
        message = f"is not valid here (it breaks the rule {keyword!r})"
    else:
        message = explain(rule)
    return [{"path": path, "message": message}]


def schema_errors(schema: Mapping[str, Any], value: Any, where: str = "") -> list[Problem]:
    """The ways ``value`` breaks ``schema``, as ``{"path", "message"}`` items in path
    order, each path a JSON Pointer prefixed with ``where`` (the value's own pointer)."""
    fast, explaining = _validators_for(schema)
    if fast.is_valid(value):
        return []
    found: dict[tuple[str, str], Problem] = {}
    for error in explaining.iter_errors(value):
        for problem in _problems(error):
            problem["path"] = where + problem["path"]
            found.setdefault((problem["path"], problem["message"]), problem)
    return sorted(found.values(), key=lambda p: p["path"])[:MAX_PROBLEMS]


def summary(what: str, problems: list[Problem]) -> str:
    """One sentence for an error's message: the first problem, and how many more."""
    first = problems[0]
    where = f"{first['path']} " if first["path"] else ""
    more = len(problems) - 1
    tail = f" (and {_plural(more, 'more problem')}: see details)" if more else ""
    return f"{what}: {where}{first['message']}{tail}"


def check(
    schema: Mapping[str, Any],
    value: Any,
    what: str,
    where: str = "",
    code: str = "validation_failed",
) -> None:
    """Raise a 422 with ``code`` listing the problems when ``value`` breaks ``schema``."""
    errors = schema_errors(schema, value, where)
    if errors:
        raise invalid(summary(what, errors), errors, code)


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
