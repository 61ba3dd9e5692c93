"""statusflow's kernel: what a plugin imports.

``from statusflow import hookimpl, TriggerType, EventType, Match, ...``; every name is
documented in ``docs/types.md``.
"""

from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker

from statusflow.engine.durations import parse_duration
from statusflow.errors import ApiError, StartupError
from statusflow.timestamps import format_timestamp, parse_timestamp, utc_now
from statusflow.types import (
    API_SCOPES,
    CONTACT_KEYS,
    DONE,
    JSON,
    MATCHED,
    MISSING,
    ActionContext,
    ActionFailed,
    ActionFunction,
    ActionResult,
    ActionType,
    ActionView,
    CheckFunction,
    ConditionFunction,
    ConditionOperator,
    DescribeFunction,
    Event,
    EventType,
    KernelServices,
    Match,
    MatchFunction,
    Move,
    NormalizeFunction,
    Outcome,
    Route,
    RouteHandler,
    StateStore,
    Transaction,
    TriggerType,
    TriggerView,
    UiPage,
    match_always,
)

if TYPE_CHECKING:
    from statusflow.http.auth import api_key_name
    from statusflow.http.jsonio import json_response, read_json_body, read_json_object

hookimpl = HookimplMarker("statusflow")
"""The decorator of a plugin's hook implementations: ``@hookimpl`` (also
``@hookimpl(tryfirst=True)`` and pluggy's other options)."""

_HTTP_HELPERS = frozenset({"json_response", "read_json_body", "read_json_object"})
_AUTH_HELPERS = frozenset({"api_key_name"})


def __getattr__(name: str) -> Any:
    """The HTTP helpers, imported when first asked for: they need aiohttp and the HTTP
    layer, which ``import statusflow`` alone (the command line, a plugin's types) does not
    load."""
    if name in _HTTP_HELPERS:
        from statusflow.http import jsonio

        return getattr(jsonio, name)
    if name in _AUTH_HELPERS:
        from statusflow.http import auth

        return getattr(auth, name)
    raise AttributeError(f"module 'statusflow' has no attribute {name!r}")


__all__ = [
    "API_SCOPES",
    "CONTACT_KEYS",
    "DONE",
    "JSON",
    "MATCHED",
    "MISSING",
    "ActionContext",
    "ActionFailed",
    "ActionFunction",
    "ActionResult",
    "ActionType",
    "ActionView",
    "ApiError",
    "CheckFunction",
    "ConditionFunction",
    "ConditionOperator",
    "DescribeFunction",
    "Event",
    "EventType",
    "KernelServices",
    "Match",
    "MatchFunction",
    "Move",
    "NormalizeFunction",
    "Outcome",
    "Route",
    "RouteHandler",
    "StartupError",
    "StateStore",
    "Transaction",
    "TriggerType",
    "TriggerView",
    "UiPage",
    "api_key_name",
    "format_timestamp",
    "hookimpl",
    "json_response",
    "match_always",
    "parse_duration",
    "parse_timestamp",
    "read_json_body",
    "read_json_object",
    "utc_now",
]
