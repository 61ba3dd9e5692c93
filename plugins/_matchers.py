"""Building blocks shared by the built-in plugins: schemas, match functions, state keys.

Every trigger type's ``match`` is one of the small factories below (or a combination
made with :func:`all_of`), so each plugin states *what* it compares and this module
decides *how*, with the same wording of the reasons in every trace:

* :func:`equals`: a setting equals an event data field, compared as strings
  (``"line is '2', trigger wants '1'"``);
* :func:`starts_with`: an event data field starts with a setting (URLs);
* :func:`contains`: an event data field contains a setting, ignoring case (chat text);
* :func:`fact_is_true`: an ``inspect_event`` hook found something out about the event
  (the first message of a dialog, a returning visitor).

An optional setting that is absent (or ``null``) never narrows the match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from statusflow import JSON, MATCHED, Event, Match
from statusflow.types import MatchFunction

MAX_ID_LENGTH = 200
"""Longest id (line, form, channel, template, ...) a trigger's settings may name."""

MAX_URL_LENGTH = 2048
"""Longest URL a trigger's settings may name."""

MAX_TEXT_LENGTH = 500
"""Longest text fragment a trigger's settings may name."""

MAX_STATE_KEY_LENGTH = 400
"""Longer :class:`~kernel.StateStore` keys are replaced by a hash (the store keeps 500)."""

SHOWN_LENGTH = 80
"""Values longer than this are cut short in match reasons."""

# --- JSON Schemas ----------------------------------------------------------------------


def settings_schema(**properties: Mapping[str, JSON]) -> dict[str, JSON]:
    """The JSON Schema of a trigger type's settings: these optional properties only."""
    return {"type": "object", "additionalProperties": False, "properties": dict(properties)}


def data_schema(**properties: Mapping[str, JSON]) -> dict[str, JSON]:
    """The JSON Schema of an event type's data: these fields typed, any other allowed."""
    return {"type": "object", "properties": dict(properties)}


def string_setting(description: str, max_length: int = MAX_ID_LENGTH) -> dict[str, JSON]:
    """A non-empty string setting."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "description": description,
    }


def id_setting(description: str) -> dict[str, JSON]:
    """An id setting that may be a non-empty string or an integer (compared as strings)."""
    return {
        "type": ["string", "integer"],
        "minLength": 1,
        "maxLength": MAX_ID_LENGTH,
        "description": description,
    }


def string_field(description: str) -> dict[str, JSON]:
    """An event data field that is a string."""
    return {"type": "string", "description": description}


def id_field(description: str, *, nullable: bool = False) -> dict[str, JSON]:
    """An event data field that is an id: a string or an integer (or ``null``)."""
    types = ["string", "integer", "null"] if nullable else ["string", "integer"]
    return {"type": types, "description": description}


# --- match functions ---------------------------------------------------------------------


def show(value: JSON) -> str:
    """A value as a reason shows it: quoted, and cut short when it is long."""
    text = str(value)
    if len(text) > SHOWN_LENGTH:
        text = text[: SHOWN_LENGTH - 3] + "..."
    return repr(text)


def _wanted(settings: Mapping[str, JSON], setting: str) -> str | None:
    value = settings.get(setting)
    return None if value is None else str(value)


def _actual(event: Event, field: str) -> str | None:
    value = event.data.get(field)
    return None if value is None else str(value)


def _compare(
    setting: str,
    field: str | None,
    holds: Callable[[str, str], bool],
    wants: str,
    mismatch: Callable[[str, str, str], str],
) -> MatchFunction:
    """A match of an event data field against an optional string setting.

    :param holds: ``holds(actual, wanted)``, both as strings.
    :param wants: how a reason names what the trigger wants, before the wanted value.
    :param mismatch: ``mismatch(name, actual, wanted)``, the reason when it does not hold.
    """
    name = field or setting

    def match(settings: Mapping[str, JSON], event: Event) -> Match:
        wanted = _wanted(settings, setting)
        if wanted is None:
            return MATCHED
        actual = _actual(event, name)
        if actual is None:
            return Match(False, f"event has no {name}, trigger wants {wants}{show(wanted)}")
        if not holds(actual, wanted):
            return Match(False, mismatch(name, actual, wanted))
        return MATCHED

    return match


def equals(setting: str, field: str | None = None) -> MatchFunction:
    """Match when the event's ``data[field]`` equals ``settings[setting]`` as strings.

    :param setting: the optional setting; absent, every event matches.
    :param field: the event data field, by default named like the setting.
    """
    return _compare(
        setting,
        field,
        lambda actual, wanted: actual == wanted,
        "",
        lambda name, actual, wanted: f"{name} is {show(actual)}, trigger wants {show(wanted)}",
    )


def starts_with(setting: str, field: str | None = None) -> MatchFunction:
    """Match when the event's ``data[field]`` starts with ``settings[setting]``.

    :param setting: the optional setting; absent, every event matches.
    :param field: the event data field, by default named like the setting.
    """
    return _compare(
        setting,
        field,
        lambda actual, wanted: actual.startswith(wanted),
        "one starting with ",
        lambda name, actual, wanted: f"{name} {show(actual)} does not start with {show(wanted)}",
    )


def contains(setting: str, field: str | None = None) -> MatchFunction:
    """Match when the event's ``data[field]`` contains ``settings[setting]``, ignoring case.

    :param setting: the optional setting; absent, every event matches.
    :param field: the event data field, by default named like the setting.
    """
    return _compare(
        setting,
        field,
        lambda actual, wanted: wanted.casefold() in actual.casefold(),
        "one containing ",
        lambda name, actual, wanted: (
            f"{name} {show(actual)} does not contain {show(wanted)} (ignoring case)"
        ),
    )


def fact_is_true(fact: str, reason: Callable[[Event], str]) -> MatchFunction:
    """Match when an ``inspect_event`` hook set ``event.facts[fact]`` to ``True``.

    :param fact: the key in ``event.facts``.
    :param reason: says, for an event that does not match, why (in the trace).
    """

    def match(settings: Mapping[str, JSON], event: Event) -> Match:
        if event.facts.get(fact) is True:
            return MATCHED
        return Match(False, reason(event))

    return match


def all_of(*matchers: MatchFunction) -> MatchFunction:
    """Match when every one of ``matchers`` does; the first that does not gives the reason."""

    def match(settings: Mapping[str, JSON], event: Event) -> Match:
        for matcher in matchers:
            result = matcher(settings, event)
            if not result.matched:
                return result
        return MATCHED

    return match


# --- plugin state -----------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys: equal values give equal text."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def state_key(key: str) -> str:
    """``key`` as a :class:`~kernel.StateStore` key: itself, or a hash when it is long.

    Hashed keys start with ``"h:"``, which no plugin uses for a readable key.
    """
    if len(key) <= MAX_STATE_KEY_LENGTH:
        return key
    return "h:" + hashlib.sha256(key.encode()).hexdigest()
