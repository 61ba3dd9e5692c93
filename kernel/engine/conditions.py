"""The contract's condition operators, registered through the same hook as any plugin's.

The kernel registers this module directly, so these operators are there whatever
``[plugins]`` says. Field lookup and the "missing field fails" rule live in
:mod:`statusflow.engine.decide`; an operator only compares two values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from pluggy import HookimplMarker

from statusflow.types import MISSING, ConditionOperator

hookimpl = HookimplMarker("statusflow")

_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_ORDERED = {"type": ["string", "number"]}
_LIST = {"type": "array", "items": _SCALAR, "maxItems": 1000}


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(actual: Any, expected: Any) -> bool:
        if isinstance(actual, bool) or isinstance(expected, bool):
            raise TypeError("cannot order booleans")
        number = (int, float)
        if isinstance(actual, number) != isinstance(expected, number):
            raise TypeError(
                f"cannot compare {type(actual).__name__} with {type(expected).__name__}"
            )
        return compare(actual, expected)

    return test


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        if not isinstance(expected, str):
            raise TypeError("a string field can only contain a string")
        return expected in actual
    if isinstance(actual, list):
        return _member(expected, actual)
    raise TypeError(f"contains needs a string or a list, the field is {type(actual).__name__}")


def _equal(actual: Any, expected: Any) -> bool:
    """JSON equality: ``1`` equals ``1.0``, but ``true`` is not ``1`` (unlike in Python)."""
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    return bool(actual == expected)


def _member(value: Any, values: Any) -> bool:
    return any(_equal(value, item) for item in values)


def _exists(actual: Any, expected: Any) -> bool:
    return (actual is not MISSING) == bool(expected)


OPERATORS = (
    ConditionOperator("eq", _equal, _SCALAR),
    ConditionOperator("ne", lambda a, e: not _equal(a, e), _SCALAR),
    ConditionOperator("gt", _ordered(operator.gt), _ORDERED),
    ConditionOperator("gte", _ordered(operator.ge), _ORDERED),
    ConditionOperator("lt", _ordered(operator.lt), _ORDERED),
    ConditionOperator("lte", _ordered(operator.le), _ORDERED),
    ConditionOperator("in", _member, _LIST),
    ConditionOperator("not_in", lambda a, e: not _member(a, e), _LIST),
    ConditionOperator("contains", _contains, _SCALAR),
    ConditionOperator("exists", _exists, {"type": "boolean"}, tests_missing=True),
)


@hookimpl
def register_condition_operators(register: Callable[[ConditionOperator], None]) -> None:
    for op in OPERATORS:
        register(op)
