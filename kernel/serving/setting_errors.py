"""What a setting breaks, said without its value.

jsonschema's messages quote the value (``'sk_live_...' is too short``), and a setting
may be a secret from the environment: these messages reach standard error and the log.
Any value may be a secret, so none is ever quoted; what is said comes from the schema's
constraint and from keys (names are not secrets).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jsonschema import ValidationError

NOT_ALLOWED = "has keys that are not allowed"


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _listed(values: Any) -> str:
    return ", ".join(repr(item) for item in _as_list(values))


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'port'?)`` when one of ``known`` is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(known), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(name) for name in close)}?)" if close else ""


def unknown_names(what: str, names: Iterable[str], known: Iterable[str]) -> str:
    """``unknown key(s) 'prot' (did you mean 'port'?)``: each name, with the known names
    close to it."""
    choices = sorted(known)
    listed = ", ".join(f"{name!r}{did_you_mean(name, choices)}" for name in sorted(names))
    return f"unknown {what}(s) {listed}"


def _unknown_keys(error: ValidationError) -> str:
    instance, schema = error.instance, error.schema
    if not isinstance(instance, Mapping) or not isinstance(schema, Mapping):
        return NOT_ALLOWED
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    unknown = [
        str(key)
        for key in instance
        if key not in known and not any(re.search(p, str(key)) for p in patterns)
    ]
    return unknown_names("key", unknown, map(str, known)) if unknown else NOT_ALLOWED


def _missing_keys(error: ValidationError) -> str:
    instance = error.instance
    wanted = error.validator_value if isinstance(error.validator_value, list) else []
    missing = [key for key in wanted if isinstance(instance, Mapping) and key not in instance]
    return f"missing required key(s) {_listed(missing or wanted)}"


def _plural(word: str) -> Callable[[Any], str]:
    return lambda n: f"{n} {word}" if n == 1 else f"{n} {word}s"


_characters, _items, _keys_n = _plural("character"), _plural("item"), _plural("key")

_BY_KEYWORD: dict[str, Callable[[ValidationError], str]] = {
    "type": lambda e: f"must be of type {' or '.join(map(str, _as_list(e.validator_value)))}",
    "enum": lambda e: f"must be one of {_listed(e.validator_value)}",
    "const": lambda e: f"must be {e.validator_value!r}",
    "minLength": lambda e: (
        "must not be empty"
        if e.validator_value == 1
        else f"is shorter than {_characters(e.validator_value)}"
    ),
    "maxLength": lambda e: f"is longer than {_characters(e.validator_value)}",
    "pattern": lambda e: f"does not match the pattern '{e.validator_value}'",
    "format": lambda e: f"is not a valid {e.validator_value}",
    "minimum": lambda e: f"must be at least {e.validator_value}",
    "maximum": lambda e: f"must be at most {e.validator_value}",
    "exclusiveMinimum": lambda e: f"must be greater than {e.validator_value}",
    "exclusiveMaximum": lambda e: f"must be less than {e.validator_value}",
    "multipleOf": lambda e: f"must be a multiple of {e.validator_value}",
    "minItems": lambda e: f"must have at least {_items(e.validator_value)}",
    "maxItems": lambda e: f"must have at most {_items(e.validator_value)}",
    "uniqueItems": lambda e: "must not repeat an item",
    "minProperties": lambda e: f"must have at least {_keys_n(e.validator_value)}",
    "maxProperties": lambda e: f"must have at most {_keys_n(e.validator_value)}",
    "required": _missing_keys,
    "additionalProperties": _unknown_keys,
    "unevaluatedProperties": _unknown_keys,
    "propertyNames": lambda e: "has a key whose name is not allowed",
    "anyOf": lambda e: "matches none of the allowed forms",
    "oneOf": lambda e: "must match exactly one of the allowed forms",
    "not": lambda e: "has a form that is not allowed",
    "dependentRequired": lambda e: "lacks a key that another key requires",
}


def describe(error: ValidationError) -> str:
    """What ``error`` says is wrong, without the value: ``is shorter than 16 characters``."""
    explain = _BY_KEYWORD.get(str(error.validator))
    if explain is None:
        return f"breaks the schema's {error.validator!r} rule"
    return explain(error)


def where(error: ValidationError) -> str:
    """The dotted path of keys and indexes to the value, ``""`` at the top."""
    return ".".join(str(part) for part in error.absolute_path)
