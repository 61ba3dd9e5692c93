"""The trigger and action forms of the board (``/ui/triggers/new``, ``/ui/triggers/{id}/edit``,
``/ui/actions/new``, ``/ui/actions/{id}/edit``).

Each form is built from the chosen type's settings schema (:mod:`statusflow.ui.forms`),
with the name, ``Allow switching to previous status`` (triggers), the delay (actions),
``Enabled`` and the conditions (rows of field, operator and value:
:mod:`statusflow.ui.conditions_form`). Choosing another type
swaps the settings fields in place (htmx), or, without JavaScript, through the
``Show this type's settings`` button. Saving calls the API's own functions
(:mod:`statusflow.http.triggers`, :mod:`statusflow.http.actions`); a refusal shows the
API's message above the form and, where its ``details`` point at a field, next to it,
and stores nothing; one about a condition goes on its row. ``Add condition`` and a row's
``Remove`` (without JavaScript: with it, the page's script does it in place) show the form
again with a row more or less, and save nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from statusflow.errors import ApiError
from statusflow.http import actions as action_api
from statusflow.http import triggers as trigger_api
from statusflow.http.keys import DATABASE, REGISTRY
from statusflow.registry import Registry
from statusflow.ui.board import may_edit, refused
from statusflow.ui.conditions_form import (
    KNOWN_FIELDS,
    ConditionRow,
    conditions_from_rows,
    list_operators,
    operator_options,
    place_condition_errors,
    rows_from_conditions,
    rows_from_form,
)
from statusflow.ui.delays import UNITS, join_delay, split_delay
from statusflow.ui.forms import Field, fields_for, place_errors, settings_from_form
from statusflow.ui.keys import PARENT, USER
from statusflow.ui.render import message, render

log = structlog.get_logger("statusflow.ui")

routes = web.RouteTableDef()

CONDITIONS_HINT = (
    "All must hold; empty rows are ignored. For an order field or event data, type its "
    "name in the box beside the field. A value that reads as a number is a number, true "
    'and false are yes and no; put text in double quotes to keep it text ("100"). "is one '
    'of" takes a list separated by commas. "exists" and "does not exist" need no value.'
)


@dataclass
class Editor:
    """What a trigger or action form shows."""

    kind: str
    """``trigger`` or ``action``."""
    action: str
    """Where the form posts."""
    heading: str
    submit: str
    values: dict[str, Any]
    types: list[tuple[str, str]]
    statuses: list[tuple[str, str]]
    fields: list[Field]
    error: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    """The API's messages by form field (``type``, ``status``, ``conditions``, ...)."""
    webhook_url: str | None = None
    """A ``webhook.called`` trigger's own URL (what its plugin describes), to copy."""
    rows: list[ConditionRow] = field(default_factory=list)
    """The conditions' rows (with a blank one to fill)."""
    operators: list[tuple[str, str]] = field(default_factory=list)
    """The ``Operator`` select's ``(value, text)``."""


def _types(registry: Registry, kind: str, current: str | None) -> list[tuple[str, str]]:
    """``(code, title)`` of the types of loaded plugins, by title; a stored trigger's or
    action's type that no loaded plugin offers stays listed (so that it can be kept)."""
    known = registry.trigger_types if kind == "trigger" else registry.action_types
    listed = sorted(((code, t.title) for code, t in known.items()), key=lambda p: p[1].lower())
    if current and current not in known:
        listed.insert(0, (current, f"{current} (not loaded)"))
    return listed


def _schema(registry: Registry, kind: str, type_: str) -> Mapping[str, Any] | None:
    known: Any = registry.trigger_types if kind == "trigger" else registry.action_types
    found = known.get(type_)
    return None if found is None else found.settings_schema


def _list_ops(registry: Registry) -> frozenset[str]:
    """The loaded operators whose value is a list."""
    return list_operators({code: op.value_schema for code, op in registry.operators.items()})


async def _statuses(app: web.Application) -> list[tuple[str, str]]:
    async with app[DATABASE].read() as sql:
        return [(s["id"], s["name"]) for s in await sql.pipeline()]


async def _show(request: web.Request, editor: Editor, status: int = 200) -> web.StreamResponse:
    context = {"title": editor.heading, "editor": editor, "units": [u for u, _ in UNITS]}
    context["conditions_hint"] = CONDITIONS_HINT
    context["known_fields"] = KNOWN_FIELDS
    context["blank_row"] = ConditionRow()
    return await render(request, "editor.html", context, status)


async def _editor(
    request: web.Request, kind: str, values: dict[str, Any], item_id: int | None
) -> Editor:
    app = request.app[PARENT]
    registry = app[REGISTRY]
    types = _types(registry, kind, values.get("type"))
    if not values.get("type") and types:
        values["type"] = types[0][0]
    schema = _schema(registry, kind, values.get("type", "")) or {}
    new = item_id is None
    rows = values.get("rows") or [ConditionRow()]
    return Editor(
        kind=kind,
        action=f"/ui/{kind}s/new" if new else f"/ui/{kind}s/{item_id}/edit",
        heading=f"New {kind}" if new else f"Edit {kind} {item_id}",
        submit=f"Add {kind}" if new else "Save",
        values=values,
        types=types,
        statuses=await _statuses(app),
        fields=fields_for(schema, values.get("settings") or {}),
        rows=rows,
        operators=operator_options(registry.operators, (row.op for row in rows)),
    )


def _values_from_form(form: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The form's fields as the editor shows them again (settings left as posted)."""
    values = {
        "type": str(form.get("type", "")),
        "status": str(form.get("status", "")),
        "name": str(form.get("name", "")),
        "enabled": "enabled" in form,
        "rows": rows_from_form(form),
    }
    if kind == "trigger":
        values["allow_backwards"] = "allow_backwards" in form
    else:
        values["after_previous"] = "after_previous" in form
        values["delay_number"] = str(form.get("delay_number", ""))
        values["delay_unit"] = str(form.get("delay_unit", "minutes"))
    return values


def _values_from_row(row: Mapping[str, Any], kind: str, list_ops: frozenset[str]) -> dict[str, Any]:
    values = {
        "type": row["type"],
        "status": row["status"],
        "name": row["name"] or "",
        "enabled": bool(row["enabled"]),
        "settings": row["settings"] or {},
        "rows": [*rows_from_conditions(row["conditions"], list_ops), ConditionRow()],
    }
    if kind == "trigger":
        values["allow_backwards"] = bool(row["allow_backwards"])
    else:
        values["after_previous"] = bool(row["after_previous"])
        values["delay_number"], values["delay_unit"] = split_delay(row["delay"])
    return values


def _field_of(path: str) -> str:
    """The form field a JSON Pointer of the API's ``details`` points at."""
    first = path.strip("/").split("/", 1)[0]
    return {"allow_backwards": "allow_backwards", "delay": "delay_number"}.get(first, first)


def _refusal(editor: Editor, exc: ApiError, where: list[int]) -> None:
    """Put the API's message on the form, and each detail next to its field (a
    condition's on its row: ``where`` holds each condition's row)."""
    editor.error = exc.message
    place_errors(editor.fields, [d for d in exc.details if _field_of(d["path"]) == "settings"])
    on_rows = place_condition_errors(editor.rows, where, exc.details)
    for detail in exc.details:
        name = _field_of(detail["path"])
        if name != "settings" and not (name == "conditions" and on_rows):
            editor.errors.setdefault(name, detail["message"])


def _rows_step(form: Mapping[str, Any], rows: list[ConditionRow]) -> bool:
    """Apply ``Add condition`` or a row's ``Remove`` (without JavaScript) to ``rows``;
    ``True`` when the form asked for one of them (then nothing is saved)."""
    if form.get("step") == "add_condition":
        rows.append(ConditionRow())
        return True
    remove = str(form.get("remove_condition", ""))
    if not remove:
        return False
    if remove.isdigit() and int(remove) < len(rows):
        del rows[int(remove)]
    if not rows:
        rows.append(ConditionRow())
    return True


async def _save(request: web.Request, kind: str, item_id: int | None) -> web.StreamResponse:
    if not may_edit(request):
        return await refused(request)
    app = request.app[PARENT]
    registry = app[REGISTRY]
    form = await request.post()
    values = _values_from_form(form, kind)
    schema = _schema(registry, kind, values["type"])
    values["settings"] = settings_from_form(schema or {}, form)
    rows_step = _rows_step(form, values["rows"])
    editor = await _editor(request, kind, values, item_id)
    editor.fields = fields_for(schema or {}, values["settings"])
    if rows_step or form.get("step") == "choose":  # no JavaScript: show the form again
        return await _show(request, editor)
    body: dict[str, Any] = {
        "type": values["type"],
        "status": values["status"],
        "name": values["name"],
        "enabled": values["enabled"],
    }
    if schema is not None:  # a type no plugin offers keeps its stored settings
        body["settings"] = values["settings"]
    body["conditions"], where = conditions_from_rows(editor.rows, _list_ops(registry))
    if kind == "trigger":
        body["allow_backwards"] = values["allow_backwards"]
    else:
        body["after_previous"] = values["after_previous"]
        body["delay"] = join_delay(values["delay_number"], values["delay_unit"])
    key_name = request[USER].key_name
    try:
        if item_id is None:
            if kind == "trigger":
                saved = await trigger_api.create_trigger(app, body, key_name)
            else:
                saved = await action_api.create_action(app, body, key_name)
        else:
            saved = await _update(app, kind, item_id, body, key_name)
    except ApiError as exc:
        log.info("ui.save_refused", kind=kind, code=exc.code)
        _refusal(editor, exc, where)
        return await _show(request, editor, exc.status)
    log.info("ui.saved", kind=kind, id=saved["id"], new=item_id is None)
    raise web.HTTPSeeOther("/ui/")


async def _update(
    app: web.Application, kind: str, item_id: int, body: dict[str, Any], key_name: str | None
) -> dict[str, Any]:
    """A merge patch of everything the form shows: settings the form no longer holds are
    removed (``null``), as a merge patch would otherwise keep them."""
    loader = trigger_api.load_trigger if kind == "trigger" else action_api.load_action
    async with app[DATABASE].read() as sql:
        row = await loader(sql, item_id)
    if "settings" in body:
        old = row["settings"] or {}
        gone = {k: None for k in old if k not in body["settings"]}
        body["settings"] = {**gone, **body["settings"]}
    if kind == "trigger":
        return await trigger_api.update_trigger(app, item_id, body, key_name)
    return await action_api.update_action(app, item_id, body, key_name)


async def _load(request: web.Request, kind: str) -> dict[str, Any] | web.StreamResponse:
    loader = trigger_api.load_trigger if kind == "trigger" else action_api.load_action
    try:
        async with request.app[PARENT][DATABASE].read() as sql:
            return await loader(sql, request.match_info["id"])
    except ApiError as exc:
        return await message(request, "Not found", exc.message, exc.status)


async def _new(request: web.Request, kind: str) -> web.StreamResponse:
    if not may_edit(request):
        return await refused(request)
    values: dict[str, Any] = {
        "type": request.query.get("type", ""),
        "status": request.query.get("status", ""),
        "name": "",
        "enabled": True,
        "settings": {},
        "rows": [ConditionRow()],
        "allow_backwards": False,
        "after_previous": False,
        "delay_number": "",
        "delay_unit": "minutes",
    }
    return await _show(request, await _editor(request, kind, values, None))


async def _edit(request: web.Request, kind: str) -> web.StreamResponse:
    if not may_edit(request):
        return await refused(request)
    row = await _load(request, kind)
    if isinstance(row, web.StreamResponse):
        return row
    values = _values_from_row(row, kind, _list_ops(request.app[PARENT][REGISTRY]))
    editor = await _editor(request, kind, values, row["id"])
    if kind == "trigger":
        described = trigger_api.trigger_body(request.app[PARENT], row).get("webhook_url")
        editor.webhook_url = described if isinstance(described, str) else None
    return await _show(request, editor)


async def _save_edit(request: web.Request, kind: str) -> web.StreamResponse:
    row = await _load(request, kind)
    if isinstance(row, web.StreamResponse):
        return row
    return await _save(request, kind, row["id"])


@routes.get("/triggers/new")
async def new_trigger(request: web.Request) -> web.StreamResponse:
    """The form of a new trigger (``?status=`` preselects its column)."""
    return await _new(request, "trigger")


@routes.post("/triggers/new")
async def create_trigger(request: web.Request) -> web.StreamResponse:
    return await _save(request, "trigger", None)


@routes.get("/triggers/{id:\\d+}/edit")
async def edit_trigger(request: web.Request) -> web.StreamResponse:
    return await _edit(request, "trigger")


@routes.post("/triggers/{id:\\d+}/edit")
async def update_trigger(request: web.Request) -> web.StreamResponse:
    return await _save_edit(request, "trigger")


@routes.get("/actions/new")
async def new_action(request: web.Request) -> web.StreamResponse:
    """The form of a new action (``?status=`` preselects its column)."""
    return await _new(request, "action")


@routes.post("/actions/new")
async def create_action(request: web.Request) -> web.StreamResponse:
    return await _save(request, "action", None)


@routes.get("/actions/{id:\\d+}/edit")
async def edit_action(request: web.Request) -> web.StreamResponse:
    return await _edit(request, "action")


@routes.post("/actions/{id:\\d+}/edit")
async def update_action(request: web.Request) -> web.StreamResponse:
    return await _save_edit(request, "action")


@routes.get("/forms/{kind:trigger|action}-settings")
async def settings_fields(request: web.Request) -> web.StreamResponse:
    """The settings fields of ``?type=`` (htmx swaps them in when the type changes)."""
    kind = request.match_info["kind"]
    schema = _schema(request.app[PARENT][REGISTRY], kind, request.query.get("type", ""))
    return await render(request, "_settings.html", {"fields": fields_for(schema or {})})
