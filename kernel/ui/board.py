"""The board (``/ui/``): one column per status, its triggers on top as cards, its actions
below with their delays, and how many orders it holds (kept live).

Everything the board shows is read in one read transaction with four queries (the
pipeline, every trigger, every action, the grouped counts), whatever the number of
triggers. The changes the board makes (``Move to``, drag and drop, ``Disable`` /
``Enable``, ``Delete``) go through the API's own functions
(:mod:`statusflow.http.triggers`, :mod:`statusflow.http.actions`). A change answers an
htmx request with the refreshed columns and a plain form post with a redirect, so that
every control works without JavaScript too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from statusflow.engine.actions import inactive_reason as action_inactive_reason
from statusflow.engine.decide import inactive_reason as trigger_inactive_reason
from statusflow.errors import ApiError
from statusflow.http import actions as action_api
from statusflow.http import triggers as trigger_api
from statusflow.http.keys import DATABASE, REGISTRY
from statusflow.registry import Registry
from statusflow.store.board import board_version, order_counts
from statusflow.store.statements import DEFINITIONS_VERSION
from statusflow.ui.cards import column_html
from statusflow.ui.delays import delay_words
from statusflow.ui.keys import PARENT, USER
from statusflow.ui.labels import label, title_of
from statusflow.ui.live import stream_changes
from statusflow.ui.render import message, render

log = structlog.get_logger("statusflow.ui")

routes = web.RouteTableDef()


@dataclass
class Card:
    """A trigger as its card shows it."""

    id: int
    title: str
    """The trigger type's title (its code when no loaded plugin offers it)."""
    name: str
    enabled: bool
    inactive_reason: str | None
    summary: str = ""
    """Its settings and conditions in a line (``url: https://… · amount gte 100``)."""

    @property
    def text(self) -> str:
        """The card's main text: the trigger's name, else its type's title."""
        return self.name or self.title


@dataclass
class ActionItem:
    """An action as the board lists it under its status."""

    id: int
    title: str
    name: str
    delay: str
    """The delay in words: "at once", "after 3 days"."""
    after_previous: bool
    enabled: bool
    inactive_reason: str | None

    @property
    def text(self) -> str:
        return self.name or self.title


@dataclass
class Column:
    """A status with what the board shows in it."""

    index: int
    id: str
    name: str
    orders: int
    cards: list[Card] = field(default_factory=list)
    actions: list[ActionItem] = field(default_factory=list)


class _Reasons:
    """Why triggers and actions are inactive, worked out once per distinct ``(type,
    conditions)`` of a request (a thousand triggers share a few hundred of them)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._seen: dict[tuple[str, str, str], str | None] = {}

    def of(self, kind: str, type_: str, conditions: Any) -> str | None:
        conditions = conditions or []
        key = (kind, type_, repr(conditions))  # the same stored JSON reads back the same
        if key not in self._seen:
            explain = trigger_inactive_reason if kind == "trigger" else action_inactive_reason
            self._seen[key] = explain(type_, conditions, self.registry)
        return self._seen[key]


def _short(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:59] + "…"


def summary(settings: Any, conditions: Any) -> str:
    """A trigger's settings and conditions in one line, for its card."""
    parts = [f"{k}: {_short(v)}" for k, v in (settings or {}).items()]
    for condition in conditions or ():
        if isinstance(condition, dict):
            value = f" {_short(condition['value'])}" if "value" in condition else ""
            parts.append(f"{condition.get('field')} {condition.get('op')}{value}")
    return " · ".join(parts)


@dataclass
class BoardView:
    """The board's columns and the definitions version they were read at."""

    columns: list[Column]
    definitions: str


async def load_board(app: web.Application) -> BoardView:
    """The board's columns, read in one transaction (five small queries)."""
    registry = app[REGISTRY]
    async with app[DATABASE].read() as sql:
        definitions = await sql.setting(DEFINITIONS_VERSION) or ""
        statuses = await sql.pipeline()
        triggers = await sql.all_triggers()
        actions = await sql.listed_actions()
        counts = await order_counts(sql)
    columns = {
        s["id"]: Column(index, s["id"], s["name"], counts.get(s["id"], 0))
        for index, s in enumerate(statuses, 1)
    }
    reasons = _Reasons(registry)
    trigger_types = registry.trigger_types
    for row in triggers:
        column = columns.get(row["status"])
        if column is None:
            continue
        column.cards.append(
            Card(
                id=row["id"],
                title=title_of(trigger_types, row["type"]),
                name=row["name"] or "",
                enabled=bool(row["enabled"]),
                inactive_reason=reasons.of("trigger", row["type"], row["conditions"]),
                summary=summary(row["settings"], row["conditions"]),
            )
        )
    action_types = registry.action_types
    for row in actions:
        column = columns.get(row["status"])
        if column is None:
            continue
        column.actions.append(
            ActionItem(
                id=row["id"],
                title=title_of(action_types, row["type"]),
                name=row["name"] or "",
                delay=delay_words(row["delay"]),
                after_previous=bool(row["after_previous"]),
                enabled=bool(row["enabled"]),
                inactive_reason=reasons.of("action", row["type"], row["conditions"]),
            )
        )
    return BoardView(list(columns.values()), definitions)


async def _columns_context(
    request: web.Request, error: str | None = None, oob: bool = False
) -> dict[str, Any]:
    view = await load_board(request.app[PARENT])
    return {
        "title": "Board",
        "columns": view.columns,
        "definitions": view.definitions,
        "oob": oob,
        "card_parts": column_html,
        "board_error": error,
        "current": "/ui/",
    }


@routes.get("/")
async def board(request: web.Request) -> web.StreamResponse:
    return await render(request, "board.html", await _columns_context(request))


@routes.get("/board/columns")
async def columns_part(request: web.Request) -> web.StreamResponse:
    """The columns alone (the board refreshes itself with them after a drop)."""
    return await render(request, "_columns.html", await _columns_context(request))


@routes.get("/board/counts")
async def counts_part(request: web.Request) -> web.StreamResponse:
    """What the live stream asks for: each column's count as an out-of-band swap; or,
    when the triggers, actions or statuses changed since the page's ``?definitions=``
    version, the whole columns (out of band too)."""
    async with request.app[PARENT][DATABASE].read() as sql:
        definitions = await sql.setting(DEFINITIONS_VERSION) or ""
        if definitions == request.query.get("definitions", definitions):
            statuses = await sql.pipeline()
            counts = await order_counts(sql)
            rows = [(index, counts.get(s["id"], 0)) for index, s in enumerate(statuses, 1)]
            return await render(request, "_counts.html", {"counts": rows})
    return await render(request, "_columns.html", await _columns_context(request, oob=True))


@routes.get("/board/live")
async def live(request: web.Request) -> web.StreamResponse:
    """``changed`` whenever an order is created or moved, or the definitions change."""
    database = request.app[PARENT][DATABASE]

    async def version() -> object:
        async with database.read() as sql:
            return await board_version(sql)

    return await stream_changes(request, version)


# --- changes -------------------------------------------------------------------------


def may_edit(request: web.Request) -> bool:
    """Whether the signed-in key may change triggers and actions (``admin``)."""
    user = request.get(USER)
    return user is not None and user.may_edit


async def refused(request: web.Request) -> web.StreamResponse:
    """The answer to a change that the signed-in key's scopes do not allow."""
    log.warning("ui.change_refused", path=request.path, key=request[USER].key_name)
    return await message(
        request, "Not allowed", "This key may only read: changes need the admin scope.", 403
    )


def _is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


async def _after_change(request: web.Request, error: ApiError | None) -> web.StreamResponse:
    """The board again: its columns for htmx, a redirect (or the refusal) otherwise."""
    if _is_htmx(request):
        text = error.message if error is not None else None
        return await render(request, "_columns.html", await _columns_context(request, text))
    if error is not None:
        return await message(request, "Not changed", error.message, error.status)
    raise web.HTTPSeeOther("/ui/")


Change = Callable[[web.Application, str, Any, str | None], Awaitable[Any]]


async def _change(request: web.Request, update: Change, patch: dict[str, Any]) -> ApiError | None:
    try:
        await update(request.app[PARENT], request.match_info["id"], patch, request[USER].key_name)
    except ApiError as exc:
        log.info("ui.change_refused", path=request.path, code=exc.code)
        return exc
    return None


async def _form(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


@routes.post("/triggers/{id}/move")
async def move_trigger(request: web.Request) -> web.StreamResponse:
    """``Move to``: the trigger's target becomes the chosen status (as ``PATCH``)."""
    if not may_edit(request):
        return await refused(request)
    form = await _form(request)
    patch = {"status": form.get("status", "")}
    return await _after_change(request, await _change(request, trigger_api.update_trigger, patch))


@routes.post("/triggers/{id}/enabled")
async def enable_trigger(request: web.Request) -> web.StreamResponse:
    """``Disable`` / ``Enable`` a trigger."""
    if not may_edit(request):
        return await refused(request)
    patch = {"enabled": (await _form(request)).get("enabled") == "true"}
    return await _after_change(request, await _change(request, trigger_api.update_trigger, patch))


@routes.post("/actions/{id}/enabled")
async def enable_action(request: web.Request) -> web.StreamResponse:
    """``Disable`` / ``Enable`` an action."""
    if not may_edit(request):
        return await refused(request)
    patch = {"enabled": (await _form(request)).get("enabled") == "true"}
    return await _after_change(request, await _change(request, action_api.update_action, patch))


async def _confirm(request: web.Request, kind: str) -> web.StreamResponse:
    app = request.app[PARENT]
    try:
        async with app[DATABASE].read() as sql:
            if kind == "trigger":
                row = await trigger_api.load_trigger(sql, request.match_info["id"])
                types: Any = app[REGISTRY].trigger_types
            else:
                row = await action_api.load_action(sql, request.match_info["id"])
                types = app[REGISTRY].action_types
    except ApiError as exc:
        return await message(request, "Not found", exc.message, exc.status)
    title = label(types, row)
    context = {
        "title": f"Delete this {kind}?",
        "kind": kind,
        "what": title,
        "action": f"/ui/{kind}s/{row['id']}/delete",
    }
    return await render(request, "confirm_delete.html", context)


async def _delete(request: web.Request, kind: str) -> web.StreamResponse:
    if not may_edit(request):
        return await refused(request)
    delete = trigger_api.delete_trigger if kind == "trigger" else action_api.delete_action
    try:
        await delete(request.app[PARENT], request.match_info["id"], request[USER].key_name)
    except ApiError as exc:
        return await message(request, "Not deleted", exc.message, exc.status)
    log.info("ui.deleted", kind=kind, id=request.match_info["id"])
    raise web.HTTPSeeOther("/ui/")


@routes.get("/triggers/{id}/delete")
async def confirm_trigger_delete(request: web.Request) -> web.StreamResponse:
    """The confirmation step of ``Delete`` (a page: it works without JavaScript)."""
    if not may_edit(request):
        return await refused(request)
    return await _confirm(request, "trigger")


@routes.post("/triggers/{id}/delete")
async def delete_trigger(request: web.Request) -> web.StreamResponse:
    return await _delete(request, "trigger")


@routes.get("/actions/{id}/delete")
async def confirm_action_delete(request: web.Request) -> web.StreamResponse:
    if not may_edit(request):
        return await refused(request)
    return await _confirm(request, "action")


@routes.post("/actions/{id}/delete")
async def delete_action(request: web.Request) -> web.StreamResponse:
    return await _delete(request, "action")
