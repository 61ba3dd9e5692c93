"""Triggers ready for the hot path: their type resolved, their conditions compiled.

Also the contract's condition rules: which fields a condition may name, how a field is
read from the order or the event, and that a condition on a missing field fails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from statusflow.engine import metrics
from statusflow.engine.validation import schema_errors
from statusflow.errors import ApiError, invalid
from statusflow.registry import Registry
from statusflow.types import MISSING, ConditionOperator, Event, TriggerType, TriggerView

log = structlog.get_logger("statusflow.matching")

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
        where = f"conditions/{index}"
        errors = schema_errors(CONDITION_SCHEMA, condition, where)
        if errors:
            raise invalid(f"{errors[0]['path']}: {errors[0]['message']}", errors)
        field = condition["field"]
        if not FIELD_PATTERN.match(field):
            raise invalid(
                f"{where}: unknown field {field!r}: use amount, currency, status, "
                "responsible_id, fields.NAME or event.NAME",
                {"index": index},
            )
        op = registry.operators.get(condition["op"])
        if op is None:
            raise invalid(
                f"{where}: unknown operator {condition['op']!r}; known: "
                + ", ".join(sorted(registry.operators)),
                {"index": index, "known_operators": sorted(registry.operators)},
            )
        if "value" not in condition and op.value_schema:
            raise invalid(f"{where}: operator {op.name!r} needs a value", {"index": index})
        value = condition.get("value")
        value_errors = schema_errors(op.value_schema, value, f"{where}/value")
        if value_errors:
            raise invalid(
                f"{where}: value for {op.name!r}: {value_errors[0]['message']}",
                {"index": index, "errors": value_errors},
            )
        mismatch = typed_field_error(field, op.name, value) if new else None
        if mismatch is not None:
            raise invalid(f"{where}: {mismatch}", {"index": index})
        if op.compile is not None:
            try:
                value = op.compile(value)
            except (ValueError, TypeError) as exc:
                raise invalid(f"{where}: value for {op.name!r}: {exc}", {"index": index}) from None
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
        label = f"{condition.field} {condition.op.name} {condition.raw.get('value')!r}"
        if actual is MISSING and not condition.op.tests_missing:
            return f"condition failed: {label} ({condition.field} is missing)"
        try:
            held = condition.op.test(actual, condition.expected)
        except (TypeError, ValueError) as exc:
            return f"condition failed: {label} ({exc})"
        except Exception as exc:  # a plugin operator's bug never stops the event
            log.exception("plugin.condition_failed", op=condition.op.name)
            metrics.plugin_error(condition.op.name, "condition_operator")
            return f"condition failed: {label} (operator {condition.op.name!r} failed: {exc!r})"
        if not held:
            shown = "missing" if actual is MISSING else repr(actual)
            return f"condition failed: {label} ({condition.field} is {shown})"
    return None


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
        return f"conditions are no longer accepted: {exc.message}"
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
