"""The board's orders pages: ``/ui/orders`` (search) and ``/ui/orders/{id}`` (an order,
its timeline with each event's trace, its action runs, ``Move to``).

Every change goes through the API's own functions (:func:`statusflow.http.orders.apply_patch`,
:func:`statusflow.http.actions.cancel_run_now`, :func:`~statusflow.http.actions.make_run_due`)
and needs the scope the API route needs: ``events`` for a move (``PATCH /api/orders``),
``admin`` for a run's ``Cancel`` and ``Run now``. The order page follows changes through
:func:`statusflow.ui.live.stream_changes`: its summary, runs and timeline head refresh
themselves (htmx) when the order's version changes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web

from statusflow.errors import ApiError
from statusflow.http.actions import cancel_run_now, make_run_due
from statusflow.http.keys import DATABASE, SETTINGS
from statusflow.http.orders import apply_patch, find_orders, order_cursors, order_json
from statusflow.http.paging import MAX_TEXT, is_strings
from statusflow.store.lists import order_key
from statusflow.ui.keys import PARENT, USER
from statusflow.ui.live import stream_changes
from statusflow.ui.order_format import HELPERS
from statusflow.ui.order_view import (
    SHOWN_AT_MOST,
    TIMELINE_PAGE,
    OrderView,
    event_trace,
    live_version,
    load_view,
    status_list,
)
from statusflow.ui.render import message, render

log = structlog.get_logger("statusflow.ui")

routes = web.RouteTableDef()

ORDERS_PAGE = 50
"""Orders per page of the search."""
MOVE_SCOPE = "events"
"""The scope a manual move needs (that of ``PATCH /api/orders/{id}``)."""
RUN_SCOPE = "admin"
"""The scope ``Cancel`` and ``Run now`` need (that of ``POST /api/runs/{id}/...``)."""


def _may(request: web.Request, scope: str) -> bool:
    user = request.get(USER)
    return user is not None and user.may(scope)


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name, "").strip()
    return value or None


def _order_url(order_id: str) -> str:
    return "/ui/orders/" + quote(order_id, safe="")


# --- search ----------------------------------------------------------------------------


@routes.get("/orders")
async def orders_page(request: web.Request) -> web.StreamResponse:
    """Search orders by id, phone (any format) or email (any case), by status; paged."""
    app = request.app[PARENT]
    q, status, cursor = _text(request, "q"), _text(request, "status"), _text(request, "cursor")
    statuses = await status_list(app)
    context: dict[str, Any] = {
        "title": "Orders",
        "current": "/ui/orders",
        "q": q,
        "status": status,
        "statuses": statuses,
        "status_names": {s["id"]: s["name"] for s in statuses},
        "orders": [],
        "older": None,
        "error": None,
        **HELPERS,
    }
    try:
        if q is not None and len(q) > MAX_TEXT:
            raise ApiError(
                422, "bad_query_parameter", f"Search is longer than {MAX_TEXT} characters."
            )
        cursors = order_cursors(app, status, q)
        after = cursors.position(cursor, is_strings(2))
        async with app[DATABASE].read() as sql:
            rows = await find_orders(
                sql, app[SETTINGS].default_region, ORDERS_PAGE, after and tuple(after), status, q
            )
    except ApiError as exc:
        context["error"] = exc.message
        return await render(request, "orders.html", context, status=exc.status)
    page = cursors.page(rows, ORDERS_PAGE, lambda r: list(order_key(r)), order_json)
    context["orders"] = page["items"]
    if page["next"]:
        query = {k: v for k, v in (("q", q), ("status", status)) if v}
        context["older"] = str(
            request.url.with_path("/ui/orders")
            .with_query({**query, "cursor": page["next"]})
            .relative()
        )
    return await render(request, "orders.html", context)


# --- the order page ----------------------------------------------------------------------


def _context(request: web.Request, view: OrderView, **extra: Any) -> dict[str, Any]:
    return {
        "title": f"Order {view.order['id']}",
        "current": "/ui/orders",
        "order": view.order,
        "statuses": view.statuses,
        "status_names": view.status_names,
        "runs": view.runs,
        "timeline": view.timeline,
        "may_move": _may(request, MOVE_SCOPE),
        "may_run": _may(request, RUN_SCOPE),
        "paged": False,
        "version": view.version,
        **HELPERS,
        **extra,
    }


async def _refused(request: web.Request, exc: ApiError) -> web.Response:
    if exc.status == 404:
        return await message(request, "Not found", exc.message, 404)
    return await message(request, "Not done", exc.message, exc.status)


@routes.get("/orders/{id}")
async def order_page(request: web.Request) -> web.StreamResponse:
    """An order: status, contact, fields, action runs and a page of its timeline."""
    cursor = _text(request, "cursor")
    try:
        view = await load_view(request.app[PARENT], request.match_info["id"], cursor=cursor)
    except ApiError as exc:
        return await _refused(request, exc)
    return await render(request, "order.html", _context(request, view, paged=cursor is not None))


@routes.get("/orders/{id}/changes")
async def order_changes(request: web.Request) -> web.StreamResponse:
    """Server-sent ``changed`` events when the order's version changes."""
    app, order_id = request.app[PARENT], request.match_info["id"]
    rendered = request.query.get("v")

    async def version() -> str:
        # The first read is the version the page was rendered at (when it says it), so
        # that a change between the page's rendering and this stream's start is seen.
        nonlocal rendered
        if rendered is not None:
            first, rendered = rendered, None
            return first
        return await live_version(app, order_id)

    return await stream_changes(request, version)


PARTS = {
    "summary": ("_order_summary.html", False, False),
    "runs": ("_order_runs.html", True, False),
}
"""A refreshable part: its template, whether it needs the runs, the timeline."""


@routes.get("/orders/{id}/part/{part}")
async def order_part(request: web.Request) -> web.StreamResponse:
    """One part of the order page, as it stands now (what ``live-changed`` fetches)."""
    part = PARTS.get(request.match_info["part"])
    if part is None:
        raise web.HTTPNotFound()
    template, runs, timeline = part
    try:
        view = await load_view(
            request.app[PARENT], request.match_info["id"], runs=runs, timeline=timeline
        )
    except ApiError as exc:
        return await _refused(request, exc)
    return await render(request, template, _context(request, view))


def _shown(request: web.Request) -> int:
    """How many entries to read for a live refresh: those shown and a page more, at
    most :data:`SHOWN_AT_MOST`; a page when ``shown`` is absent or not a number."""
    raw = request.query.get("shown", "")
    if not raw.isdigit():
        return TIMELINE_PAGE
    return max(TIMELINE_PAGE, min(int(raw) + TIMELINE_PAGE, SHOWN_AT_MOST))


def _oldest(request: web.Request) -> int | None:
    """The ``seq`` of the oldest entry the page shows (``oldest``), if given."""
    raw = request.query.get("oldest", "")
    return int(raw) if raw.isdigit() else None


@routes.get("/orders/{id}/timeline")
async def order_timeline(request: web.Request) -> web.StreamResponse:
    """A page of the timeline (the newest without ``cursor``), with its ``More`` link.

    Without ``cursor``, ``shown`` and ``oldest`` (how many entries the page shows, and
    the ``seq`` of its oldest, sent by ``app.js`` when the page follows a change) read
    the newest entries down to that one again, with up to a page of new ones: the pages
    loaded with ``More`` stay (up to :data:`~statusflow.ui.order_view.SHOWN_AT_MOST`).
    """
    cursor = _text(request, "cursor")
    try:
        view = await load_view(
            request.app[PARENT],
            request.match_info["id"],
            runs=False,
            cursor=cursor,
            size=TIMELINE_PAGE if cursor else _shown(request),
            oldest=None if cursor else _oldest(request),
        )
    except ApiError as exc:
        return await _refused(request, exc)
    return await render(request, "_order_entries.html", _context(request, view))


@routes.get("/orders/{id}/why")
async def order_why(request: web.Request) -> web.StreamResponse:
    """One event's trace for the order: a part for htmx, a page otherwise."""
    order_id, event_id = request.match_info["id"], request.query.get("event", "")
    try:
        trace, names = await event_trace(request.app[PARENT], order_id, event_id)
    except ApiError as exc:
        return await _refused(request, exc)
    context = {
        "title": f"Why: event {event_id}",
        "current": "/ui/orders",
        "order": {"id": order_id},
        "event_id": event_id,
        "trace": trace,
        "names": names,
    }
    partial = request.headers.get("HX-Request") == "true"
    return await render(request, "_order_why.html" if partial else "order_why.html", context)


# --- changes -----------------------------------------------------------------------------


@routes.post("/orders/{id}/move")
async def move_order(request: web.Request) -> web.StreamResponse:
    """``Move to``: a manual move, through ``PATCH /api/orders/{id}``'s code."""
    order_id = request.match_info["id"]
    if not _may(request, MOVE_SCOPE):
        return await message(
            request, "Not allowed", f"Moving an order needs the scope {MOVE_SCOPE!r}.", 403
        )
    form = await request.post()
    status = form.get("status")
    if not isinstance(status, str) or not status:
        return await message(request, "Not done", "Choose a status to move the order to.", 422)
    try:
        await apply_patch(request.app[PARENT], order_id, {"status": status})
    except ApiError as exc:
        return await _refused(request, exc)
    user = request.get(USER)
    log.info("ui.order_moved", order_id=order_id, to_status=status, key=user and user.key_name)
    raise web.HTTPSeeOther(_order_url(order_id))


async def _run_change(request: web.Request, verb: str) -> web.StreamResponse:
    app = request.app[PARENT]
    if not _may(request, RUN_SCOPE):
        return await message(request, "Not allowed", f"{verb} needs the scope {RUN_SCOPE!r}.", 403)
    raw_id = request.match_info["id"]
    try:
        if verb == "Cancel":
            run = await cancel_run_now(app, raw_id, "canceled on the board")
        else:
            run = await make_run_due(app, raw_id)
    except ApiError as exc:
        return await _refused(request, exc)
    user = request.get(USER)
    log.info("ui.run_changed", run_id=run["id"], verb=verb, key=user and user.key_name)
    raise web.HTTPSeeOther(_order_url(run["order_id"]) + f"#run-{run['id']}")


@routes.post("/runs/{id}/cancel")
async def cancel_run(request: web.Request) -> web.StreamResponse:
    """``Cancel``: a pending run is canceled (``POST /api/runs/{id}/cancel``'s code)."""
    return await _run_change(request, "Cancel")


@routes.post("/runs/{id}/run-now")
async def run_now(request: web.Request) -> web.StreamResponse:
    """``Run now``: a pending run falls due now (``POST /api/runs/{id}/run-now``'s code)."""
    return await _run_change(request, "Run now")
