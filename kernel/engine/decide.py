"""Deciding what an event does to an order: triggers matched, one move chosen, a trace.

**Matching.** Triggers are made ready for the hot path (:func:`compile_trigger`: their
type resolved, their conditions compiled), with the contract's condition rules: which
fields a condition may name, how a field is read from the order or the event, and that a
condition on a missing field fails.

**Choosing** (contract §2). Triggers of one type with the same settings, conditions,
target, ``allow_backwards`` and ``enabled`` behave alike for every order and event: they
form a :class:`TriggerClass`, evaluated once (one ``match`` call per distinct settings
and event, one condition check per order). Thousands of triggers usually fall into a few
dozen classes, so an event costs about the same with 10 triggers as with 10,000.

The trace is kept the same way: one :data:`TraceGroup` per outcome and order, stored as
``trace_groups`` in the event's result and expanded to the contract's entries (one per
trigger, in trigger order) when it is read (:func:`trace_of`). A class's trigger ids are
written packed (:func:`pack_ids`, made once per class) wherever that is shorter, so that
a trace stays complete without its size growing with every trigger id: with 10,000
triggers an event's trace took 4.3 KB as plain ids.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog

from statusflow.engine import metrics
from statusflow.engine.validation import did_you_mean, schema_errors, summary
from statusflow.errors import ApiError, invalid
from statusflow.registry import Registry
from statusflow.types import (
    MATCHED,
    MISSING,
    ConditionOperator,
    Event,
    Match,
    TriggerType,
    TriggerView,
)

log = structlog.get_logger("statusflow.engine")

ORDER_FIELDS = ("amount", "currency", "status", "responsible_id")
FIELD_PATTERN = re.compile(
    r"^(amount|currency|status|responsible_id|fields\.[^.\s]+|event\.[^.\s]+)$"
)

TYPED_FIELDS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "amount": ("number", (int, float)),
    "currency": ("string", str),
    "status": ("string", str),
}
"""Order fields whose JSON type is fixed: a built-in comparison with a value of another
type could never hold, so the trigger is refused instead (422)."""

_NEVER_WITH_ANOTHER_TYPE = frozenset({"eq", "gt", "gte", "lt", "lte", "contains"})
"""Operators that can never hold between a field and a value of another type (``ne``
and ``not_in`` always do, which may be meant)."""


def typed_field_error(field: str, op: str, value: Any) -> str | None:
    """Why a condition on a field of known type can never hold, or ``None``: checked
    when a trigger is created or its conditions change (stored ones keep working)."""
    if field not in TYPED_FIELDS:
        return None
    kind, types = TYPED_FIELDS[field]

    def fits(item: Any) -> bool:
        return isinstance(item, types) and not isinstance(item, bool)

    if op == "contains" and kind != "string":
        return f"{field} is a {kind}: contains needs a string or a list field"
    if op == "in" and isinstance(value, list) and not any(fits(item) for item in value):
        return f"{field} is a {kind}: no value for 'in' is a {kind}, so it can never hold"
    if op in _NEVER_WITH_ANOTHER_TYPE and not fits(value):
        return f"{field} is a {kind}: the value for {op!r} must be a {kind}, not {value!r}"
    return None


CONDITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["field", "op"],
    "properties": {
        "field": {"type": "string", "minLength": 1, "maxLength": 200},
        "op": {"type": "string", "minLength": 1, "maxLength": 50},
        "value": {},
    },
}


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """One condition with its operator resolved and its value compiled."""

    field: str
    source: str  # "order", "fields", "status" or "event"
    key: str
    op: ConditionOperator
    expected: Any
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    """A stored trigger with its plugin's type and its compiled conditions."""

    view: TriggerView
    trigger_type: TriggerType
    plugin: str
    conditions: tuple[CompiledCondition, ...]


def _split_field(field: str) -> tuple[str, str]:
    if field == "status":
        return "status", ""
    if field.startswith("fields."):
        return "fields", field[len("fields.") :]
    if field.startswith("event."):
        return "event", field[len("event.") :]
    return "order", field


BAD_CONDITIONS = "bad_conditions"
FIELD_NAMES = "amount, currency, status, responsible_id, fields.NAME or event.NAME"


def _bad_condition(path: str, problem: str) -> ApiError:
    return invalid(
        f"trigger: {path}: {problem}", [{"path": path, "message": problem}], BAD_CONDITIONS
    )


def _field_names(field: str) -> list[str]:
    """The condition fields that ``field`` may have meant."""
    _, dot, rest = field.partition(".")
    named = (f"fields.{rest}", f"event.{rest}") if dot and rest else ("fields.NAME", "event.NAME")
    return [*ORDER_FIELDS, *named]


def compile_conditions(
    conditions: Sequence[Mapping[str, Any]], registry: Registry, *, new: bool = False
) -> tuple[CompiledCondition, ...]:
    """Check and compile a trigger's ``conditions``; a 422 says which one is wrong.

    :param new: the conditions are being created or changed: also refuse one that can
        never hold (:func:`typed_field_error`).
    :raises ApiError: 422 for a bad shape, an unknown field or operator, or a value the
        operator does not accept.
    """
    compiled = []
    for index, condition in enumerate(conditions):
        where = f"/conditions/{index}"
        errors = schema_errors(CONDITION_SCHEMA, condition, where)
        if errors:
            raise invalid(summary("trigger", errors), errors, BAD_CONDITIONS)
        field = condition["field"]
        if not FIELD_PATTERN.match(field):
            hint = did_you_mean(field, _field_names(field))
            problem = f"unknown field {field[:200]!r}{hint}: use {FIELD_NAMES}"
            raise _bad_condition(f"{where}/field", problem)
        op = registry.operators.get(condition["op"])
        if op is None:
            known = sorted(registry.operators)
            hint = did_you_mean(condition["op"], known)
            problem = f"unknown operator {condition['op'][:50]!r}{hint}; known: {', '.join(known)}"
            raise _bad_condition(f"{where}/op", problem)
        if "value" not in condition and op.value_schema:
            raise _bad_condition(f"{where}/value", f"is required by the operator {op.name!r}")
        value = condition.get("value")
        value_errors = [
            {**problem, "message": f"{problem['message']} for the operator {op.name!r}"}
            for problem in schema_errors(op.value_schema, value, f"{where}/value")
        ]
        if value_errors:
            raise invalid(summary("trigger", value_errors), value_errors, BAD_CONDITIONS)
        mismatch = typed_field_error(field, op.name, value) if new else None
        if mismatch is not None:
            raise _bad_condition(f"{where}/value", mismatch)
        if op.compile is not None:
            try:
                value = op.compile(value)
            except (ValueError, TypeError) as exc:
                raise _bad_condition(
                    f"{where}/value", f"is not valid for {op.name!r}: {exc}"
                ) from None
        source, key = _split_field(field)
        compiled.append(CompiledCondition(field, source, key, op, value, dict(condition)))
    return tuple(compiled)


def field_value(
    condition: CompiledCondition, status: str, doc: Mapping[str, Any], event: Event
) -> Any:
    """The value the condition's field has for this order and event, or ``MISSING``."""
    if condition.source == "status":
        return status
    if condition.source == "order":
        value = doc.get(condition.key)
    elif condition.source == "fields":
        value = (doc.get("fields") or {}).get(condition.key, MISSING)
    else:
        value = event.data.get(condition.key, MISSING)
    return MISSING if value is None else value


def failed_condition(
    conditions: Sequence[CompiledCondition], status: str, doc: Mapping[str, Any], event: Event
) -> str | None:
    """``None`` when every condition holds, else a sentence saying which one failed."""
    for condition in conditions:
        actual = field_value(condition, status, doc, event)
        if actual is MISSING and not condition.op.tests_missing:
            return f"condition failed: {_label(condition)} ({condition.field} is missing)"
        try:
            held = condition.op.test(actual, condition.expected)
        except (TypeError, ValueError) as exc:
            return f"condition failed: {_label(condition)} ({exc})"
        except Exception as exc:  # a plugin operator's bug never stops the event
            log.exception("plugin.condition_failed", op=condition.op.name)
            metrics.plugin_error(condition.op.name, "condition_operator")
            failed = f"operator {condition.op.name!r} failed: {exc!r}"
            return f"condition failed: {_label(condition)} ({failed})"
        if not held:
            shown = "missing" if actual is MISSING else repr(actual)
            return f"condition failed: {_label(condition)} ({condition.field} is {shown})"
    return None


def _label(condition: CompiledCondition) -> str:
    """The condition as a trace names it: ``amount gt 100``."""
    return f"{condition.field} {condition.op.name} {condition.raw.get('value')!r}"


def inactive_reason(
    type_: str, conditions: Sequence[Mapping[str, Any]], registry: Registry
) -> str | None:
    """Why a stored trigger cannot act now: its plugin, every event type its type
    listens to, or an operator is not loaded, or a loaded operator no longer accepts its
    value (the engine ignores it then too)."""
    reason = _not_loaded(type_, conditions, registry)
    if reason is not None:
        return reason
    try:
        compile_conditions(conditions, registry)
    except ApiError as exc:
        said = [f"{p['path'].lstrip('/')} {p['message']}" for p in exc.details]
        return f"conditions are no longer accepted: {'; '.join(said) or exc.message}"
    except Exception as exc:
        return f"conditions cannot be compiled: {exc!r}"
    return None


def _not_loaded(
    type_: str, conditions: Sequence[Mapping[str, Any]], registry: Registry
) -> str | None:
    if type_ not in registry.trigger_types:
        return registry.inactive_trigger_types.get(
            type_, f"trigger type {type_!r} is not provided by any loaded plugin"
        )
    for condition in conditions:
        op = condition.get("op") if isinstance(condition, Mapping) else None
        if op not in registry.operators:
            return f"condition operator {op!r} is not provided by any loaded plugin"
    return None


def compile_trigger(view: TriggerView, registry: Registry) -> CompiledTrigger | None:
    """The trigger ready for matching, or ``None`` while it is inactive."""
    if _not_loaded(view.type, view.conditions, registry) is not None:
        return None
    try:
        conditions = compile_conditions(view.conditions, registry)
    except Exception:
        return None
    return CompiledTrigger(
        view,
        registry.trigger_types[view.type],
        registry.owner("trigger_type", view.type),
        conditions,
    )


# --- choosing ----------------------------------------------------------------------

INSPECT_ERRORS = "kernel.inspect_errors"
"""``event.facts`` key: plugin name -> why its ``inspect_event`` failed."""

TraceGroup = tuple[str, str, str, Sequence[int | str]]
"""``(order_id, outcome, reason, trigger ids)``: the same outcome for several triggers;
an id list may hold packed ids (:func:`pack_ids`) beside plain ones."""

PACKED = "d:"
"""The prefix of packed trigger ids."""


def pack_ids(ids: Sequence[int]) -> str:
    """Trigger ids as one short string: ``d:`` and, base64url without padding, the
    difference of each id from the one before (the first from 0), zigzag-encoded as a
    LEB128 varint. Ids of alike triggers lie close together: a byte or two each."""
    out = bytearray()
    previous = 0
    for trigger_id in ids:
        delta = trigger_id - previous
        previous = trigger_id
        value = delta * 2 if delta >= 0 else -delta * 2 - 1
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return PACKED + base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")


def unpack_ids(packed: str) -> list[int]:
    """The ids :func:`pack_ids` packed.

    :raises ValueError: ``packed`` is not such a string.
    """
    if not packed.startswith(PACKED):
        raise ValueError(f"not packed trigger ids: {packed[:40]!r}")
    text = packed[len(PACKED) :]
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    ids: list[int] = []
    previous = value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            previous += value >> 1 if not value & 1 else -((value + 1) >> 1)
            ids.append(previous)
            value = shift = 0
    if shift:
        raise ValueError(f"packed trigger ids end inside a number: {packed[:40]!r}")
    return ids


def group_ids(items: Iterable[int | str]) -> Iterator[int]:
    """The trigger ids of a stored trace group, packed ones unpacked."""
    for item in items:
        if isinstance(item, str):
            yield from unpack_ids(item)
        else:
            yield item


def _trace_ids(ids: tuple[int, ...]) -> tuple[int | str, ...]:
    """How a class's ids are written in a trace: packed when that is shorter."""
    packed = pack_ids(ids)
    plain = len(",".join(map(str, ids)))
    return (packed,) if len(packed) + 2 < plain else ids


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
    trace_ids: tuple[int | str, ...]
    """``ids`` as a trace writes them (packed when shorter)."""


def classify(triggers: Sequence[CompiledTrigger]) -> Classes:
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
    classes = []
    for key, group in members.items():
        ids = tuple(t.view.id for t in group)
        classes.append(TriggerClass(group[0], ids, (key[0], key[2]), key[3], _trace_ids(ids)))
    classes.sort(key=lambda c: c.ids[0])
    return Classes(classes)


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


class Classes(tuple[TriggerClass, ...]):
    """The classes of one event type's triggers (:func:`classify`), and the same classes
    by type and settings (:attr:`groups`), made once per classification."""

    groups: tuple[MatchGroup, ...]

    def __new__(cls, classes: Iterable[TriggerClass]) -> Classes:
        made = super().__new__(cls, classes)
        made.groups = match_groups(made)
        return made


@dataclass(frozen=True, slots=True)
class MatchGroup:
    """Classes of one type and settings: one ``match`` answers for all of them, so when
    it does not match they are skipped together."""

    lead: TriggerClass
    enabled: tuple[TriggerClass, ...]
    enabled_ids: tuple[int | str, ...]
    """The written ids of every enabled class."""
    disabled_ids: tuple[int | str, ...]
    """The written ids of every disabled class."""


def match_groups(classes: Sequence[TriggerClass]) -> tuple[MatchGroup, ...]:
    """``classes`` by type and settings (:attr:`TriggerClass.match_key`)."""
    by_key: dict[tuple[str, bytes], list[TriggerClass]] = {}
    for cls in classes:
        by_key.setdefault(cls.match_key, []).append(cls)
    groups = []
    for members in by_key.values():
        enabled = tuple(c for c in members if c.first.view.enabled)
        disabled = [c for c in members if not c.first.view.enabled]
        groups.append(
            MatchGroup(
                enabled[0] if enabled else members[0],
                enabled,
                tuple(i for c in enabled for i in c.trace_ids),
                tuple(i for c in disabled for i in c.trace_ids),
            )
        )
    return tuple(groups)


DISABLED = "trigger is disabled"


def choose_move(
    order: OrderLike,
    event: Event,
    classes: Sequence[TriggerClass],
    statuses: Mapping[str, Status],
    memo: dict[tuple[str, bytes], Match | str],
) -> tuple[CompiledTrigger | None, list[TraceGroup]]:
    """Apply contract §2 to one order: the winning trigger (or none) and the trace.

    A trigger is skipped, in this order of reasons, when it is disabled, when its
    plugin failed to inspect the event, when its settings do not match, when a condition
    fails, when its target does not exist or is the order's status, or when it would
    move the order backwards without leave; the eligible one whose target comes first
    wins.
    """
    groups = classes.groups if isinstance(classes, Classes) else match_groups(classes)
    current = statuses.get(order.status)
    skipped: dict[str, list[int | str]] = {}  # reason -> trigger ids: a group per reason
    eligible: list[tuple[int, int, TriggerClass]] = []
    inspect_errors: Mapping[str, str] = event.facts.get(INSPECT_ERRORS, {})
    conditions: dict[bytes, str | None] = {}  # per order: alike conditions fail alike
    for group in groups:
        if group.disabled_ids:
            skipped.setdefault(DISABLED, []).extend(group.disabled_ids)
        if not group.enabled:
            continue
        lead = group.lead
        reason = inspect_errors.get(lead.first.plugin) if inspect_errors else None
        if reason is None:
            match = match_once(lead, event, memo)
            if isinstance(match, str):
                reason = match
            elif not match.matched:
                reason = f"settings do not match: {match.reason}"
        if reason is not None:
            skipped.setdefault(reason, []).extend(group.enabled_ids)
            continue
        for cls in group.enabled:
            reason = _after_match(cls, order, event, statuses, current, conditions)
            if reason is None:
                eligible.append((statuses[cls.first.view.status].sort, cls.ids[0], cls))
            else:
                skipped.setdefault(reason, []).extend(cls.trace_ids)
    winner: TriggerClass | None = None
    trace: list[TraceGroup] = []
    if eligible:
        eligible.sort(key=lambda item: (item[0], item[1]))
        winner = eligible[0][2]
        view = winner.first.view
        moved = f"moved from {order.status!r} to {view.status!r}"
        trace.append((order.id, "moved", moved, (view.id,)))
        lost = skipped.setdefault(
            f"lost to trigger {view.id} (its target {view.status!r} comes first)", []
        )
        lost.extend(winner.ids[1:])
        for _sort, _first, cls in eligible[1:]:
            lost.extend(cls.trace_ids)
    trace.extend(
        (order.id, "skipped", reason, tuple(ids)) for reason, ids in skipped.items() if ids
    )
    return (winner.first if winner is not None else None), trace


def _after_match(
    cls: TriggerClass,
    order: OrderLike,
    event: Event,
    statuses: Mapping[str, Status],
    current: Status | None,
    conditions: dict[bytes, str | None],
) -> str | None:
    """Why the class's triggers, enabled and matching, do not move ``order``; ``None``:
    they are eligible."""
    trigger = cls.first
    view = trigger.view
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
        entries.extend((trigger_id, outcome, reason) for trigger_id in group_ids(ids))
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
    "Classes",
    "TraceGroup",
    "TriggerClass",
    "choose_move",
    "classify",
    "expand",
    "group_ids",
    "match_once",
    "pack_ids",
    "trace_of",
    "unpack_ids",
]


def trigger_view(row: Any) -> TriggerView:
    """A stored trigger row as plugins see it."""
    return TriggerView(
        id=row["id"],
        type=row["type"],
        status=row["status"],
        name=row["name"],
        allow_backwards=bool(row["allow_backwards"]),
        enabled=bool(row["enabled"]),
        settings=row["settings"] or {},
        conditions=tuple(row["conditions"] or ()),
        secret=row["secret"],
    )
