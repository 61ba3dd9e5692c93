"""A trigger's or action's conditions as rows of a form, and the rows read back.

Each row is one condition: a ``Field`` (a known order field, or ``Order field…`` /
``Event data…`` with the name typed in the ``Key`` box beside it), an ``Operator`` and a
``Value``. The form fields are named ``conditions-N-field``, ``conditions-N-key``,
``conditions-N-op`` and ``conditions-N-value`` (``N`` any number: the rows are read in
its order, so that rows added by the page's script need no counter from the server).

Values are read by one rule, which :func:`value_text` reverses, so every stored value
comes back as it was: a number is a number, ``true``/``false`` are yes/no, ``null`` is
null, text in double quotes (``"100"``) is text, anything else is text. ``currency`` and
``status`` are always text. An operator that takes a list (``in``, ``not_in``) reads a
comma-separated list of such values (or a JSON list, starting with ``[``). ``exists`` with
no value is ``exists: true``; ``does not exist`` is ``exists: false``.

Blank rows are ignored. What cannot be read is passed on as typed, so that the API's own
rules answer it (one set of rules).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KNOWN_FIELDS: tuple[tuple[str, str], ...] = (
    ("amount", "Amount"),
    ("currency", "Currency"),
    ("status", "Status"),
    ("responsible_id", "Responsible"),
    ("fields", "Order field…"),
    ("event", "Event data…"),
)
"""The ``Field`` select's ``(value, text)``: ``fields`` and ``event`` take a key."""
NAMED = ("fields", "event")
TEXT_FIELDS = frozenset({"currency", "status"})
"""Fields whose values are always text (their type is known)."""
NOT_EXISTS = "!exists"
"""The ``Operator`` select's value for ``exists: false`` (the API has no such operator)."""
OPERATOR_TEXTS: dict[str, str] = {
    "eq": "is",
    "ne": "is not",
    "gt": "greater than",
    "gte": "at least",
    "lt": "less than",
    "lte": "at most",
    "in": "is one of",
    "not_in": "is not one of",
    "contains": "contains",
    "exists": "exists",
    NOT_EXISTS: "does not exist",
}
LIST_OPERATORS = frozenset({"in", "not_in"})
"""The built-in operators whose value is a list (a plugin's may be too: see
:func:`list_operators`)."""
_NAME = re.compile(r"^conditions-(\d+)-(field|key|op|value)$")
_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$")


@dataclass
class ConditionRow:
    """One row of the form, as its controls show it (text, as typed)."""

    field: str = ""
    """The ``Field`` select: a known field, ``fields``, ``event`` or empty."""
    key: str = ""
    """The name of an order field or event datum (for ``fields``/``event``)."""
    op: str = "eq"
    value: str = ""
    error: str = ""
    """The API's message about this condition, when a save was refused."""
    error_part: str = ""
    """The control the message is about: ``field``, ``op``, ``value`` or empty."""

    @property
    def blank(self) -> bool:
        """A row with nothing chosen nor typed (the operator aside): ignored."""
        return not (self.field or self.key.strip() or self.value.strip())


def operator_options(known: Iterable[str], current: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The ``Operator`` select's ``(value, text)``: the built-in operators in their
    order, ``does not exist`` after ``exists``, a plugin's by code, and an operator a row
    uses that no loaded plugin provides (so that it can be kept)."""
    known = set(known)
    options = [(op, text) for op, text in OPERATOR_TEXTS.items() if op in known]
    if "exists" in known:
        options.append((NOT_EXISTS, OPERATOR_TEXTS[NOT_EXISTS]))
        options.sort(key=lambda o: list(OPERATOR_TEXTS).index(o[0]))
    options += [(op, op) for op in sorted(known - set(OPERATOR_TEXTS))]
    listed = {op for op, _ in options}
    for op in current:
        if op and op not in listed:
            options.append((op, f"{op} (not loaded)"))
            listed.add(op)
    return options


def list_operators(value_schemas: Mapping[str, Any]) -> frozenset[str]:
    """The operators (by code) whose value schema is a JSON array."""
    found = set(LIST_OPERATORS)
    for op, schema in value_schemas.items():
        if isinstance(schema, Mapping) and schema.get("type") == "array":
            found.add(op)
    return frozenset(found)


def _reads_as_other(text: str) -> bool:
    """Whether this text, typed in a ``Value``, would read as something else than itself."""
    stripped = text.strip()
    return (
        stripped != text
        or not text
        or stripped in ("true", "false", "null")
        or bool(_NUMBER.match(stripped))
        or stripped[:1] in ('"', "[")
    )


def _scalar_text(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if _reads_as_other(value) else value
    return json.dumps(value, ensure_ascii=False)


def value_text(value: Any, field: str = "", takes_list: bool = False) -> str:
    """A stored condition value as its ``Value`` text (the reverse of :func:`read_value`)."""
    if field in TEXT_FIELDS and isinstance(value, str) and not takes_list:
        return value
    if isinstance(value, list):
        text_field = field in TEXT_FIELDS
        items = [v if text_field and isinstance(v, str) else _scalar_text(v) for v in value]
        if value and all("," not in item for item in items):
            return ", ".join(items)
        return json.dumps(value, ensure_ascii=False)
    return _scalar_text(value)


def _read_scalar(text: str, field: str) -> Any:
    text = text.strip()
    if field in TEXT_FIELDS:
        return text
    if text in ("true", "false", "null") or _NUMBER.match(text) or text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def read_value(text: str, field: str = "", takes_list: bool = False) -> Any:
    """A ``Value`` text as the condition's value (see the module docstring)."""
    if takes_list:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                found = json.loads(stripped)
            except ValueError:
                return stripped
            return found
        return [_read_scalar(item, field) for item in stripped.split(",") if item.strip()]
    return _read_scalar(text, field)


def _split_field(name: str) -> tuple[str, str]:
    """A condition's ``field`` as the ``Field`` select's value and the ``Key``."""
    head, dot, rest = name.partition(".")
    if dot and head in NAMED:
        return head, rest
    return name, ""


def rows_from_conditions(
    conditions: Sequence[Mapping[str, Any]] | None, list_ops: Iterable[str] = LIST_OPERATORS
) -> list[ConditionRow]:
    """Stored conditions as the form's rows."""
    list_ops = frozenset(list_ops)
    rows = []
    for condition in conditions or ():
        field, key = _split_field(str(condition.get("field", "")))
        op = str(condition.get("op", ""))
        value = condition.get("value")
        if op == "exists":
            rows.append(ConditionRow(field, key, "exists" if value else NOT_EXISTS))
            continue
        text = value_text(value, field, op in list_ops) if "value" in condition else ""
        rows.append(ConditionRow(field, key, op, text))
    return rows


def rows_from_form(form: Mapping[str, Any]) -> list[ConditionRow]:
    """The rows a submitted form holds, in the order of their numbers."""
    by_number: dict[int, dict[str, str]] = {}
    for name in form:
        found = _NAME.match(name)
        if found:
            by_number.setdefault(int(found.group(1)), {})[found.group(2)] = str(form[name])
    return [ConditionRow(**by_number[n]) for n in sorted(by_number)]


def condition_of(row: ConditionRow, list_ops: Iterable[str] = LIST_OPERATORS) -> dict[str, Any]:
    """One (non-blank) row as the API's condition."""
    field = f"{row.field}.{row.key.strip()}" if row.field in NAMED else row.field
    if row.op == NOT_EXISTS:
        return {"field": field, "op": "exists", "value": False}
    if row.op == "exists" and not row.value.strip():
        return {"field": field, "op": "exists", "value": True}
    value = read_value(row.value, row.field, row.op in frozenset(list_ops))
    return {"field": field, "op": row.op, "value": value}


def conditions_from_rows(
    rows: Sequence[ConditionRow], list_ops: Iterable[str] = LIST_OPERATORS
) -> tuple[list[dict[str, Any]], list[int]]:
    """The API's conditions of the rows (blank ones left out), and for each condition
    the index of its row (to put the API's message on it)."""
    conditions, where = [], []
    for index, row in enumerate(rows):
        if not row.blank:
            conditions.append(condition_of(row, list_ops))
            where.append(index)
    return conditions, where


def place_condition_errors(
    rows: Sequence[ConditionRow], where: Sequence[int], details: Iterable[Mapping[str, Any]]
) -> bool:
    """Put each of the API's ``details`` whose path is ``/conditions/I[/part]`` on its
    row; ``True`` when one was placed."""
    placed = False
    for detail in details:
        parts = str(detail.get("path", "")).strip("/").split("/")
        if len(parts) < 2 or parts[0] != "conditions" or not parts[1].isdigit():
            continue
        index = int(parts[1])
        if index >= len(where):
            continue
        row = rows[where[index]]
        if not row.error:
            row.error = str(detail.get("message", ""))
            row.error_part = parts[2] if len(parts) > 2 else ""
        placed = True
    return placed
