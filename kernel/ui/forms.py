"""Forms built from a type's settings schema (JSON Schema), and the settings read back.

:func:`fields_for` turns a schema into :class:`Field` descriptions that the template
``_fields.html`` renders: a ``string`` with an ``enum`` is a select, ``integer`` and
``number`` are number inputs, ``boolean`` a checkbox, an array of strings or numbers a
list with one item a line, an object with ``properties`` a fieldset of its own fields,
anything else a JSON text area. Every control is labelled by the property's ``title``
(else its name) and shows its ``description``.

:func:`settings_from_form` reads the submitted form back into settings. It does not
judge them: what the form cannot read (a word where a number goes) is passed on as
typed, so that the API's own rules answer it with their message (one set of rules).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "settings"
"""The form fields of the settings are named ``settings.NAME`` (``settings.a.b`` nested)."""
LONG_TEXT = 500
"""Strings allowed to be longer than this get a text area."""


@dataclass
class Field:
    """One control (or fieldset) of a settings form."""

    name: str
    """The form field's name, e.g. ``settings.url``."""
    label: str
    kind: str
    """``text``, ``textarea``, ``integer``, ``number``, ``checkbox``, ``select``,
    ``list``, ``json`` or ``group`` (a fieldset of :attr:`children`)."""
    description: str = ""
    required: bool = False
    value: str = ""
    """The control's current text (``"on"`` for a checked checkbox)."""
    options: list[tuple[str, str]] = field(default_factory=list)
    """A select's ``(value, label)`` pairs."""
    children: list[Field] = field(default_factory=list)
    error: str = ""
    """The API's message about this field, when a save was refused."""

    @property
    def dom_id(self) -> str:
        """An id for the control (its label's ``for``)."""
        return "f-" + "".join(c if c.isalnum() else "-" for c in self.name)


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    return []


def _kind(schema: Mapping[str, Any]) -> str:
    """The control a property gets (see the module docstring)."""
    if isinstance(schema.get("enum"), list):
        return "select"
    types = [t for t in _types(schema) if t != "null"]
    if types == ["boolean"]:
        return "checkbox"
    if types in (["integer"], ["number"]):
        return types[0]
    if types == ["object"] and isinstance(schema.get("properties"), Mapping):
        return "group"
    if types == ["array"]:
        items = schema.get("items")
        item_types = _types(items) if isinstance(items, Mapping) else []
        if item_types and set(item_types) <= {"string", "integer", "number"}:
            return "list"
        return "json"
    if types and set(types) <= {"string", "integer", "number"}:
        long = schema.get("maxLength", 0)
        return "textarea" if isinstance(long, int) and long > LONG_TEXT else "text"
    if not types:
        return "text"  # any JSON value: read as JSON when it parses, else as text
    return "json"


def _shown(value: Any, kind: str) -> str:
    """A stored value as its control's text."""
    if value is None:
        return ""
    if kind == "checkbox":
        return "on" if value else ""
    if kind == "list" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if kind == "json" or not isinstance(value, str | int | float):
        return json.dumps(value, ensure_ascii=False, indent=1)
    if isinstance(value, bool):
        return json.dumps(value)
    return str(value)


def fields_for(
    schema: Mapping[str, Any], values: Mapping[str, Any] | None = None, prefix: str = PREFIX
) -> list[Field]:
    """The controls of an object schema's properties, filled with ``values``."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    required = set(schema.get("required") or ())
    values = values or {}
    made = []
    for name, sub in properties.items():
        if not isinstance(sub, Mapping):
            continue
        kind = _kind(sub)
        title = sub.get("title")
        made_field = Field(
            name=f"{prefix}.{name}",
            label=str(title) if isinstance(title, str) and title else str(name),
            kind=kind,
            description=str(sub.get("description") or ""),
            required=name in required,
        )
        value = values.get(name, sub.get("default"))
        if kind == "group":
            nested = value if isinstance(value, Mapping) else {}
            made_field.children = fields_for(sub, nested, made_field.name)
        else:
            made_field.value = _shown(value, kind)
        if kind == "select":
            made_field.options = [(_shown(v, "text"), str(v)) for v in sub["enum"]]
        made.append(made_field)
    return made


def _read_scalar(text: str, schema: Mapping[str, Any]) -> Any:
    """A control's text as the value its schema expects (or the text, for the API to judge)."""
    types = _types(schema)
    if "integer" in types and "string" not in types:
        try:
            return int(text)
        except ValueError:
            pass
    if ("number" in types or "integer" in types) and "string" not in types:
        try:
            number = float(text)
            return int(number) if number.is_integer() and "integer" in types else number
        except ValueError:
            return text
    if not types:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _read(schema: Mapping[str, Any], kind: str, name: str, form: Mapping[str, Any]) -> Any:
    """The value of one control, or ``...`` when the form leaves it out."""
    if kind == "checkbox":
        return name in form and str(form[name]) not in ("", "off", "false")
    if kind == "group":
        nested = settings_from_form(schema, form, name)
        return nested if nested else ...
    text = str(form.get(name, "")).strip()
    if not text:
        return None if "null" in _types(schema) and name in form else ...
    if kind == "select":
        for option in schema.get("enum", ()):
            if _shown(option, "text") == text:
                return option
        return text
    if kind == "list":
        items = schema.get("items", {})
        lines = text.splitlines() if "\n" in text else text.split(",")
        return [_read_scalar(line.strip(), items) for line in lines if line.strip()]
    if kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return _read_scalar(text, schema)


def settings_from_form(
    schema: Mapping[str, Any], form: Mapping[str, Any], prefix: str = PREFIX
) -> dict[str, Any]:
    """The settings a submitted form holds for ``schema``: empty controls are left out
    (a nullable one that was shown empty is ``null``), unchecked checkboxes are ``false``."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    settings: dict[str, Any] = {}
    for name, sub in properties.items():
        if not isinstance(sub, Mapping):
            continue
        value = _read(sub, _kind(sub), f"{prefix}.{name}", form)
        if value is not ...:
            settings[name] = value
    return settings


def place_errors(fields: list[Field], details: list[dict[str, str]], prefix: str = PREFIX) -> None:
    """Put each of the API's ``details`` (``{"path", "message"}``, a JSON Pointer such as
    ``/settings/url``) next to its field."""
    by_name = {}
    stack = list(fields)
    while stack:
        one = stack.pop()
        by_name[one.name] = one
        stack.extend(one.children)
    for problem in details:
        path = problem.get("path", "").strip("/").replace("/", ".")
        if not path.startswith(prefix):
            path = f"{prefix}.{path}"
        while path:
            if path in by_name:
                by_name[path].error = problem.get("message", "")
                break
            path = path.rpartition(".")[0]
