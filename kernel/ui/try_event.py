"""``Try an event`` (``/ui/try``): a dry run from a form, and what it would do.

The form's event goes through :func:`statusflow.http.events.process_event` with
``dry_run=True``, the code of ``POST /api/events?dry_run=true``: it stores nothing (no
event, no move, no timeline entry, no plugin state), and the API's rules and messages
apply (a 422 or a 404 is shown next to the form).
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from statusflow.errors import ApiError
from statusflow.http.events import process_event
from statusflow.http.keys import REGISTRY
from statusflow.ui.keys import PARENT, USER
from statusflow.ui.labels import action_names, trigger_names
from statusflow.ui.render import render

log = structlog.get_logger("statusflow.ui")

routes = web.RouteTableDef()

SCOPE = "events"
"""The scope a dry run needs, as ``POST /api/events?dry_run=true`` does."""
FIELDS = ("type", "order_id", "phone", "email", "data")


class FormError(Exception):
    """The form's own problem (its data is not JSON), said before the API is asked."""


def event_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The event the form describes, as ``POST /api/events`` takes it (empty fields left
    out, so that the API's rules judge what was given).

    :raises FormError: the data field is not a JSON value.
    """
    event: dict[str, Any] = {"type": form["type"].strip()}
    if form["order_id"].strip():
        event["order_id"] = form["order_id"].strip()
    contact = {key: form[key].strip() for key in ("phone", "email") if form[key].strip()}
    if contact:
        event["contact"] = contact
    if form["data"].strip():
        try:
            event["data"] = orjson.loads(form["data"])
        except orjson.JSONDecodeError as exc:
            raise FormError(f"Data is not valid JSON: {exc}") from exc
    return event


def _public_types(app: web.Application) -> list[tuple[str, str]]:
    """The event types a client may post: code, title."""
    types = app[REGISTRY].event_types
    return [(code, t.title) for code, t in sorted(types.items()) if t.public]


async def _page(
    request: web.Request,
    form: dict[str, str],
    result: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    app = request.app[PARENT]
    context = {
        "title": "Try an event",
        "current": "/ui/try",
        "types": _public_types(app),
        "form": form,
        "result": result,
        "error": error,
        "may_try": request[USER].may(SCOPE),
        "names": await trigger_names(app) if result else {},
        "actions": await action_names(app) if result and result.get("runs") else {},
    }
    return await render(request, "try_event.html", context, status)


@routes.get("/try")
async def try_form(request: web.Request) -> web.StreamResponse:
    """The empty form (a type, an order id or a contact, data)."""
    form = {name: request.query.get(name, "") for name in FIELDS}
    return await _page(request, form)


@routes.post("/try")
async def try_event(request: web.Request) -> web.StreamResponse:
    """Run the form's event as a dry run and show its result, trace and planned runs."""
    posted = await request.post()
    form = {name: str(posted.get(name, "")) for name in FIELDS}
    if not request[USER].may(SCOPE):
        error = f"Your key lacks the {SCOPE!r} scope that a dry run needs."
        return await _page(request, form, error=error, status=403)
    try:
        event = event_from_form(form)
        result = await process_event(request.app[PARENT], event, dry_run=True)
    except FormError as exc:
        return await _page(request, form, error=str(exc), status=422)
    except ApiError as exc:
        return await _page(request, form, error=exc.message, status=exc.status)
    log.info("ui.dry_run", type=event["type"], moves=len(result["moves"]))
    return await _page(request, form, result=result)
