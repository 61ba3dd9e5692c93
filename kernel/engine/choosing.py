"""Choosing a move (contract §2), by classes of alike triggers, and the trace it leaves.

Triggers of one type with the same settings, conditions, target, ``allow_backwards`` and
``enabled`` behave alike for every order and event: they form a :class:`TriggerClass`,
evaluated once (one ``match`` call per distinct settings and event, one condition check
per order). Thousands of triggers usually fall into a few dozen classes, so an event
costs about the same with 10 triggers as with 10,000.

The trace is kept the same way: one :data:`TraceGroup` per class and order, stored as
``trace_groups`` in the event's result and expanded to the contract's entries (one per
trigger, in trigger order) when it is read (:func:`trace_of`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog

from statusflow.engine import metrics
from statusflow.engine.matching import CompiledTrigger, failed_condition
from statusflow.types import MATCHED, Event, Match

log = structlog.get_logger("statusflow.engine")

INSPECT_ERRORS = "kernel.inspect_errors"
"""``event.facts`` key: plugin name -> why its ``inspect_event`` failed."""

TraceGroup = tuple[str, str, str, tuple[int, ...]]
"""``(order_id, outcome, reason, trigger ids)``: the same outcome for several triggers."""


class Status(Protocol):
    """What choosing needs of a status."""

    @property
    def sort(self) -> int: ...


class OrderLike(Protocol):
    """What choosing needs of an order."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def doc(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class TriggerClass:
    """Alike triggers (see the module docstring); ``first`` stands for all of them."""

    first: CompiledTrigger
    ids: tuple[int, ...]
    match_key: tuple[str, bytes]
    conditions_key: bytes


def classify(triggers: Sequence[CompiledTrigger]) -> tuple[TriggerClass, ...]:
    """Group ``triggers`` (oldest first) into classes, ordered by their oldest member."""
    members: dict[tuple[Any, ...], list[CompiledTrigger]] = {}
    for trigger in triggers:
        view = trigger.view
        settings = orjson.dumps(view.settings, option=orjson.OPT_SORT_KEYS)
        key = (
            view.type,
            trigger.plugin,
            settings,
            orjson.dumps(list(view.conditions), option=orjson.OPT_SORT_KEYS),
            view.status,
            view.allow_backwards,
            view.enabled,
        )
        members.setdefault(key, []).append(trigger)
    classes = [
        TriggerClass(group[0], tuple(t.view.id for t in group), (key[0], key[2]), key[3])
        for key, group in members.items()
    ]
    classes.sort(key=lambda c: c.ids[0])
    return tuple(classes)


def match_once(
    cls: TriggerClass, event: Event, memo: dict[tuple[str, bytes], Match | str]
) -> Match | str:
    """The class's ``match`` result for ``event`` (a string: why the plugin failed),
    computed once per event for all classes with the same type and settings."""
    found = memo.get(cls.match_key)
    if found is not None:
        return found
    trigger = cls.first
    result: Match | str
    try:
        answer = trigger.trigger_type.match(trigger.view.settings, event)
    except Exception as exc:  # a plugin's bug never stops the event
        log.exception("plugin.match_failed", plugin=trigger.plugin, trigger_ids=list(cls.ids))
        metrics.plugin_error(trigger.plugin, "match")
        result = f"plugin {trigger.plugin!r} failed to match: {exc!r}"
    else:
        result = _as_match(answer, trigger.plugin)
    memo[cls.match_key] = result
    return result


NOT_MATCHED = Match(False, "the plugin gave no reason")
"""What a ``match`` answering a plain ``False`` stands for."""


def _as_match(answer: object, plugin: str) -> Match | str:
    """A ``match`` answer as a :class:`Match` (a plain ``bool`` is taken for one, without
    a reason); anything else is the plugin's failure, said as such."""
    if isinstance(answer, Match):
        return answer
    if isinstance(answer, bool):
        return MATCHED if answer else NOT_MATCHED
    log.error("plugin.match_failed", plugin=plugin, returned=type(answer).__name__)
    metrics.plugin_error(plugin, "match")
    return f"plugin {plugin!r} failed to match: it returned {type(answer).__name__}, not a Match"


def choose_move(
    order: OrderLike,
    event: Event,
    classes: Sequence[TriggerClass],
    statuses: Mapping[str, Status],
    memo: dict[tuple[str, bytes], Match | str],
) -> tuple[CompiledTrigger | None, list[TraceGroup]]:
    """Apply contract §2 to one order: the winning trigger (or none) and the trace."""
    current = statuses.get(order.status)
    skipped: dict[str, list[int]] = {}  # reason -> trigger ids: one group per reason
    eligible: list[tuple[int, int, TriggerClass]] = []
    inspect_errors: Mapping[str, str] = event.facts.get(INSPECT_ERRORS, {})
    conditions: dict[bytes, str | None] = {}  # per order: alike conditions fail alike
    for cls in classes:
        reason = _skip_reason(
            cls, order, event, statuses, current, inspect_errors, memo, conditions
        )
        if reason is None:
            eligible.append((statuses[cls.first.view.status].sort, cls.ids[0], cls))
        else:
            skipped.setdefault(reason, []).extend(cls.ids)
    winner: TriggerClass | None = None
    groups: list[TraceGroup] = []
    if eligible:
        eligible.sort(key=lambda item: (item[0], item[1]))
        winner = eligible[0][2]
        view = winner.first.view
        moved = f"moved from {order.status!r} to {view.status!r}"
        groups.append((order.id, "moved", moved, (view.id,)))
        lost = skipped.setdefault(
            f"lost to trigger {view.id} (its target {view.status!r} comes first)", []
        )
        lost.extend(winner.ids[1:])
        for _sort, _first, cls in eligible[1:]:
            lost.extend(cls.ids)
    groups.extend(
        (order.id, "skipped", reason, tuple(ids)) for reason, ids in skipped.items() if ids
    )
    return (winner.first if winner is not None else None), groups


def _skip_reason(
    cls: TriggerClass,
    order: OrderLike,
    event: Event,
    statuses: Mapping[str, Status],
    current: Status | None,
    inspect_errors: Mapping[str, str],
    memo: dict[tuple[str, bytes], Match | str],
    conditions: dict[bytes, str | None],
) -> str | None:
    """Why the class's triggers do not move ``order``; ``None``: they are eligible."""
    trigger = cls.first
    view = trigger.view
    if not view.enabled:
        return "trigger is disabled"
    if trigger.plugin in inspect_errors:
        return inspect_errors[trigger.plugin]
    match = match_once(cls, event, memo)
    if isinstance(match, str):
        return match
    if not match.matched:
        return f"settings do not match: {match.reason}"
    if trigger.conditions:
        key = cls.conditions_key
        if key in conditions:
            failure = conditions[key]
        else:
            failure = conditions[key] = failed_condition(
                trigger.conditions, order.status, order.doc, event
            )
        if failure is not None:
            return failure
    target = statuses.get(view.status)
    if target is None:
        return f"target status {view.status!r} does not exist"
    if view.status == order.status:
        return f"order is already in status {view.status!r}"
    if current is not None and target.sort < current.sort and not view.allow_backwards:
        return (
            f"backwards not allowed: {view.status!r} (sort {target.sort}) comes before "
            f"{order.status!r} (sort {current.sort})"
        )
    return None


def expand(groups: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The contract's trace entries of stored groups: per order (in the order they come),
    one entry per trigger, in trigger order."""
    by_order: dict[str, list[tuple[int, str, str]]] = {}
    for order_id, outcome, reason, ids in groups:
        entries = by_order.setdefault(order_id, [])
        entries.extend((trigger_id, outcome, reason) for trigger_id in ids)
    trace: list[dict[str, Any]] = []
    for order_id, entries in by_order.items():
        entries.sort(key=lambda entry: entry[0])
        trace.extend(
            {"order_id": order_id, "trigger_id": t, "outcome": outcome, "reason": reason}
            for t, outcome, reason in entries
        )
    return trace


def trace_of(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trace of a stored result: ``trace_groups`` expanded (or a ``trace`` list, as
    results stored before the groups were kept)."""
    if "trace_groups" in result:
        return expand(result["trace_groups"])
    return list(result.get("trace") or ())


__all__ = [
    "INSPECT_ERRORS",
    "TraceGroup",
    "TriggerClass",
    "choose_move",
    "classify",
    "expand",
    "match_once",
    "trace_of",
]
