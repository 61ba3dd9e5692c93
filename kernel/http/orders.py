"""``/api/orders``: create, list, read, merge-patch, and the timeline."""

from __future__ import annotations

import contextlib
from typing import Any

import structlog
from aiohttp import web

from statusflow.engine import metrics
from statusflow.engine.contacts import (
    IdentifierError,
    normalize_email,
    normalize_phone,
    order_identifiers,
)
from statusflow.engine.validation import check, pointer
from statusflow.errors import ApiError, conflict, invalid, not_found
from statusflow.hooks import runner
from statusflow.http.jsonio import json_response, merge_patch, read_json_body, require_object
from statusflow.http.keys import DATABASE, ENGINE, PLUGIN_MANAGER, SERVICES, SETTINGS
from statusflow.http.paging import (
    PAGE_PARAMETERS,
    Cursors,
    ListQuery,
    bad_parameter,
    is_seq,
    is_strings,
    query_parameter,
)
from statusflow.http.schemas import NEW_ORDER, ORDER_AFTER_PATCH
from statusflow.http.statuses import unknown_status
from statusflow.store.admin import Row
from statusflow.store.lists import OrderKey, OrderSearch, order_key, orders_page, timeline_page
from statusflow.store.statements import ConstraintViolated, GroupWrites, StoreSQL
from statusflow.timestamps import utc_now
from statusflow.types import Outcome

log = structlog.get_logger("statusflow.http")

DOC_KEYS = ("responsible_id", "amount", "currency", "contact", "company", "visitor_ids", "fields")
IDENTITY_KEYS = ("contact", "company", "visitor_ids")


def order_json(row: Any) -> dict[str, Any]:
    """An order row as the API shows it."""
    doc = row["doc"] or {}
    return {
        "id": row["id"],
        "status": row["status"],
        "responsible_id": doc.get("responsible_id"),
        "amount": doc.get("amount"),
        "currency": doc.get("currency"),
        "contact": doc.get("contact"),
        "company": doc.get("company"),
        "visitor_ids": doc.get("visitor_ids", []),
        "fields": doc.get("fields", {}),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _doc(order: dict[str, Any]) -> dict[str, Any]:
    return {k: order[k] for k in DOC_KEYS if order.get(k) is not None}


def _identifier_rows(order_id: str, doc: dict[str, Any], region: str) -> list[dict[str, str]]:
    try:
        pairs = list(order_identifiers(doc, region))
    except IdentifierError as exc:
        path = pointer(*exc.path)
        problem = {"path": path, "message": exc.message}
        raise invalid(f"order: {path} {exc.message}", [problem], "bad_contact") from None
    return [{"order_id": order_id, "kind": k, "value": v} for k, v in pairs]


async def load_order(sql: StoreSQL, order_id: str, lock: bool = False) -> dict[str, Any]:
    """The stored order ``order_id``.

    :raises ApiError: 404 for an unknown order.
    """
    row = await sql.order(order_id, lock)
    if row is None:
        raise not_found(f"order {order_id[:200]!r} not found", code="order_not_found")
    return row


async def create_order(request: web.Request) -> web.Response:
    body = require_object(await read_json_body(request), "an order")
    check(NEW_ORDER, body, "order")
    region = request.app[SETTINGS].default_region
    doc = _doc(body)
    identifiers = _identifier_rows(body["id"], doc, region)
    now = utc_now()
    try:
        async with request.app[DATABASE].write() as sql:
            status = body.get("status")
            if status is None:
                status = await sql.first_status()
            elif not await sql.status_exists(status):
                raise await unknown_status(sql, status)
            if status is None:
                raise invalid("the pipeline has no status", code="unknown_status")
            if await sql.order_exists(body["id"]):
                raise _exists(body["id"])
            await sql.insert_order(body["id"], status, doc, now)
            await sql.add_identifiers(identifiers)
            await sql.add_timeline(body["id"], now, "created", {"status": status})
            writes = await request.app[ENGINE].record_new_order(sql, body["id"], status, now)
            row = await load_order(sql, body["id"])
    except ConstraintViolated:
        raise _exists(body["id"]) from None
    await request.app[ENGINE].committed(None, writes)
    return json_response(order_json(row), 201)


def _exists(order_id: str) -> ApiError:
    problem = {"path": "/id", "message": "is the id of an order that exists"}
    return conflict(f"order {order_id!r} already exists", [problem], "order_exists")


async def get_order(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as sql:
        row = await load_order(sql, request.match_info["id"])
    return json_response(order_json(row))


async def patch_order(request: web.Request) -> web.Response:
    patch = require_object(await read_json_body(request), "a merge patch")
    order = await apply_patch(request.app, request.match_info["id"], patch)
    return json_response(order)


async def apply_patch(app: web.Application, order_id: str, patch: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch the order ``order_id`` (``PATCH /api/orders/{id}`` and the board's
    ``Move to``): a changed ``status`` is a manual move; the order as it stands after
    everything the patch caused.

    :raises ApiError: 404 for an unknown order, 422 for a patch that breaks the rules.
    """
    engine = app[ENGINE]
    recorded: tuple[Outcome, GroupWrites] | None = None
    async with app[DATABASE].write() as sql:
        row = await load_order(sql, order_id, lock=True)
        before = order_json(row)
        editable = {k: v for k, v in before.items() if k not in ("created_at", "updated_at")}
        after = merge_patch(editable, patch)
        if after.get("id") != order_id:
            problem = {"path": "/id", "message": "cannot change"}
            raise invalid("an order's id cannot change", [problem])
        check(ORDER_AFTER_PATCH, after, "order")
        doc = _doc(after)
        now = utc_now()
        moved = after["status"] != before["status"]
        if moved and not await sql.status_exists(after["status"]):
            raise await unknown_status(sql, after["status"])
        if any(before.get(k) != after.get(k) for k in IDENTITY_KEYS):
            identifiers = _identifier_rows(order_id, doc, app[SETTINGS].default_region)
            await sql.replace_identifiers(order_id, identifiers)
        await sql.save_order(order_id, after["status"], doc, now)
        if moved:
            epoch = int(row.get("status_epoch") or 0)
            recorded = await engine.record_manual_move(
                sql, order_id, before["status"], after["status"], epoch
            )
    if recorded is not None:
        await engine.committed(*recorded)
    changes = runner(app[PLUGIN_MANAGER]).call(
        "events_from_order_change", {"before": before, "after": after}, _order_change_failed
    )
    events = [{**event, "order_id": order_id} for _, produced in changes for event in produced]
    if events:
        await engine.process(events, allow_private=True)
    async with app[DATABASE].read() as sql:
        row = await load_order(sql, order_id)
    return order_json(row)


def _order_change_failed(plugin: str, exc: Exception) -> None:
    """A plugin's failure in ``events_from_order_change`` is its own: logged, counted, and
    the other plugins' events are still processed."""
    log.error("plugin.order_change_failed", plugin=plugin, exc_info=exc)
    metrics.plugin_error(plugin, "events_from_order_change")


def search_for(q: str, region: str) -> OrderSearch:
    """What ``q`` finds: the order of that id, and the orders whose contact or company
    has that phone (compared in E.164, parsed with ``region``) or email (any case)."""
    identifiers = []
    with contextlib.suppress(ValueError):  # not a phone
        identifiers.append(("phone", normalize_phone(q, region)))
    if "@" in q:
        identifiers.append(("email", normalize_email(q)))
    return OrderSearch(q, identifiers)


async def find_orders(
    sql: StoreSQL,
    region: str,
    limit: int,
    after: OrderKey | None = None,
    status: str | None = None,
    q: str | None = None,
) -> list[Row]:
    """Up to ``limit + 1`` orders after ``after``, newest first: in ``status`` when given,
    found by ``q`` (see :func:`search_for`) when given (``GET /api/orders`` and the
    board's search).

    :raises ApiError: 422 for an unknown status.
    """
    if status is not None and not await sql.status_exists(status):
        raise bad_parameter("status", f"unknown status {status!r}", "unknown_status")
    search = None if q is None else search_for(q, region)
    return await orders_page(sql, limit, after, status, search)


def order_cursors(app: web.Application, status: str | None, q: str | None) -> Cursors:
    """The cursors of the orders list with these filters (the API's and the board's)."""
    return Cursors(app[SERVICES], "orders", {"status": status, "q": q})


async def list_orders(request: web.Request) -> web.Response:
    """``GET /api/orders?status=&q=&limit=&cursor=``: a page of orders, newest first."""
    query = ListQuery(request)
    status, q, limit = query.text("status", 64), query.text("q"), query.limit()
    cursors = order_cursors(request.app, status, q)
    after = cursors.position(query.one("cursor"), is_strings(2))
    region = request.app[SETTINGS].default_region
    async with request.app[DATABASE].read() as sql:
        rows = await find_orders(sql, region, limit, after and tuple(after), status, q)
    return json_response(cursors.page(rows, limit, lambda r: list(order_key(r)), order_json))


def _entry(row: Any) -> dict[str, Any]:
    return {"at": row["at"], "kind": row["kind"], **(row["data"] or {})}


async def get_timeline(request: web.Request) -> web.Response:
    """The whole timeline (a list), or with ``limit`` or ``cursor`` a page of it
    (``{"items", "next"}``); oldest first either way."""
    order_id = request.match_info["id"]
    query = ListQuery(request)
    if "limit" not in query and "cursor" not in query:
        async with request.app[DATABASE].read() as sql:
            await load_order(sql, order_id)
            rows = await sql.timeline(order_id)
        return json_response([_entry(r) for r in rows])
    limit = query.limit()
    cursors = Cursors(request.app[SERVICES], "timeline", {"order_id": order_id})
    after = cursors.position(query.one("cursor"), is_seq)
    async with request.app[DATABASE].read() as sql:
        await load_order(sql, order_id)
        rows = await timeline_page(sql, order_id, limit, after)
    return json_response(cursors.page(rows, limit, lambda r: r["seq"], _entry))


LIST_PARAMETERS = [
    query_parameter("status", {"type": "string"}, "orders in this status (its id)"),
    query_parameter(
        "q",
        {"type": "string"},
        "an order id, or a phone (any format) or an email (any case) of its contact or company",
    ),
    *PAGE_PARAMETERS,
]


__all__ = [
    "apply_patch",
    "create_order",
    "find_orders",
    "get_order",
    "get_timeline",
    "list_orders",
    "load_order",
    "order_cursors",
    "patch_order",
]
