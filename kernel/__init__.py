"""statusflow's kernel: what a plugin imports.

``from kernel import hookimpl, TriggerType, EventType, Match, ...``
"""

from pluggy import HookimplMarker

from statusflow.errors import ApiError, StartupError
from statusflow.types import (
    JSON,
    MATCHED,
    MISSING,
    ConditionOperator,
    Event,
    EventType,
    KernelServices,
    Match,
    Move,
    Outcome,
    Route,
    StateStore,
    Transaction,
    TriggerType,
    TriggerView,
    match_always,
)

hookimpl = HookimplMarker("statusflow")

__all__ = [
    "JSON",
    "MATCHED",
    "MISSING",
    "ApiError",
    "ConditionOperator",
    "Event",
    "EventType",
    "KernelServices",
    "Match",
    "Move",
    "Outcome",
    "Route",
    "StartupError",
    "StateStore",
    "Transaction",
    "TriggerType",
    "TriggerView",
    "hookimpl",
    "match_always",
]
