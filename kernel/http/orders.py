"""``/api/orders``: create, read, merge-patch, and the timeline."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from statusflow.engine import metrics
from statusflow.engine.contacts import order_identifiers
from statusflow.engine.validation import check
from statusflow.errors import conflict, invalid, not_found
from statusflow.hooks import runner
from statusflow.http.jsonio import json_response, merge_patch, read_json_body, require_object
from statusflow.http.keys import DATABASE, ENGINE, PLUGIN_MANAGER, SETTINGS
from statusflow.http.schemas import NEW_ORDER, ORDER_AFTER_PATCH
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
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return [{"order_id": order_id, "kind": k, "value": v} for k, v in pairs]


async def _load(sql: StoreSQL, order_id: str, lock: bool = False) -> dict[str, Any]:
    row = await sql.order(order_id, lock)
    if row is None:
        raise not_found(f"order {order_id!r} not found", {"order_id": order_id})
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
                raise invalid(f"unknown status {status!r}", {"status": status})
            if status is None:
                raise invalid("the pipeline has no status")
            if await sql.order_exists(body["id"]):
                raise conflict(f"order {body['id']!r} already exists", {"id": body["id"]})
            await sql.insert_order(body["id"], status, doc, now)
            await sql.add_identifiers(identifiers)
            await sql.add_timeline(body["id"], now, "created", {"status": status})
            writes = await request.app[ENGINE].record_new_order(sql, body["id"], status, now)
            row = await _load(sql, body["id"])
    except ConstraintViolated:
        raise conflict(f"order {body['id']!r} already exists", {"id": body["id"]}) from None
    await request.app[ENGINE].committed(None, writes)
    return json_response(order_json(row), 201)


async def get_order(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as sql:
        row = await _load(sql, request.match_info["id"])
    return json_response(order_json(row))


async def patch_order(request: web.Request) -> web.Response:
    patch = require_object(await read_json_body(request), "a merge patch")
    order_id = request.match_info["id"]
    app = request.app
    engine = app[ENGINE]
    recorded: tuple[Outcome, GroupWrites] | None = None
    async with app[DATABASE].write() as sql:
        row = await _load(sql, order_id, lock=True)
        before = order_json(row)
        editable = {k: v for k, v in before.items() if k not in ("created_at", "updated_at")}
        after = merge_patch(editable, patch)
        if after.get("id") != order_id:
            raise invalid("an order's id cannot change", {"id": after.get("id")})
        check(ORDER_AFTER_PATCH, after, "order")
        doc = _doc(after)
        now = utc_now()
        moved = after["status"] != before["status"]
        if moved and not await sql.status_exists(after["status"]):
            raise invalid(f"unknown status {after['status']!r}", {"status": after["status"]})
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
        row = await _load(sql, order_id)
    return json_response(order_json(row))


def _order_change_failed(plugin: str, exc: Exception) -> None:
    """A plugin's failure in ``events_from_order_change`` is its own: logged, counted, and
    the other plugins' events are still processed."""
    log.error("plugin.order_change_failed", plugin=plugin, exc_info=exc)
    metrics.plugin_error(plugin, "events_from_order_change")


async def get_timeline(request: web.Request) -> web.Response:
    order_id = request.match_info["id"]
    async with request.app[DATABASE].read() as sql:
        await _load(sql, order_id)
        rows = await sql.timeline(order_id)
    return json_response([{"at": r["at"], "kind": r["kind"], **(r["data"] or {})} for r in rows])


__all__ = ["create_order", "get_order", "get_timeline", "patch_order"]
