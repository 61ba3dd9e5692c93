"""``/api/orders``: create, read, merge-patch, and the timeline."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from statusflow.engine import metrics
from statusflow.engine.contacts import order_identifiers
from statusflow.engine.validation import check
from statusflow.errors import conflict, invalid, not_found
from statusflow.hooks import runner
from statusflow.http.jsonio import json_response, merge_patch, read_json_body, require_object
from statusflow.http.keys import DATABASE, ENGINE, PLUGIN_MANAGER, SETTINGS
from statusflow.http.schemas import NEW_ORDER, ORDER_AFTER_PATCH
from statusflow.store.schema import Order, OrderIdentifier, Status, TimelineEntry
from statusflow.timestamps import utc_now
from statusflow.types import Outcome

log = structlog.get_logger("statusflow.http")

ORDERS = Order.__table__  # type: ignore[attr-defined]
IDENTIFIERS = OrderIdentifier.__table__  # type: ignore[attr-defined]
STATUSES = Status.__table__  # type: ignore[attr-defined]
TIMELINE = TimelineEntry.__table__  # type: ignore[attr-defined]

DOC_KEYS = ("responsible_id", "amount", "currency", "contact", "company", "visitor_ids", "fields")
IDENTITY_KEYS = ("contact", "company", "visitor_ids")


def order_json(row: Any) -> dict[str, Any]:
    """An order row as the API shows it."""
    doc = row.doc or {}
    return {
        "id": row.id,
        "status": row.status,
        "responsible_id": doc.get("responsible_id"),
        "amount": doc.get("amount"),
        "currency": doc.get("currency"),
        "contact": doc.get("contact"),
        "company": doc.get("company"),
        "visitor_ids": doc.get("visitor_ids", []),
        "fields": doc.get("fields", {}),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _doc(order: dict[str, Any]) -> dict[str, Any]:
    return {k: order[k] for k in DOC_KEYS if order.get(k) is not None}


def _identifier_rows(order_id: str, doc: dict[str, Any], region: str) -> list[dict[str, str]]:
    try:
        pairs = list(order_identifiers(doc, region))
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return [{"order_id": order_id, "kind": k, "value": v} for k, v in pairs]


async def _status_exists(conn: AsyncConnection, status_id: str) -> bool:
    return (
        await conn.execute(select(STATUSES.c.id).where(STATUSES.c.id == status_id))
    ).first() is not None


async def _load(conn: AsyncConnection, order_id: str, lock: bool = False) -> Any:
    query = select(ORDERS).where(ORDERS.c.id == order_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
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
        async with request.app[DATABASE].write() as conn:
            status = body.get("status")
            if status is None:
                first = select(STATUSES.c.id).order_by(STATUSES.c.sort).limit(1)
                status = (await conn.execute(first)).scalar_one()
            elif not await _status_exists(conn, status):
                raise invalid(f"unknown status {status!r}", {"status": status})
            if (await conn.execute(select(ORDERS.c.id).where(ORDERS.c.id == body["id"]))).first():
                raise conflict(f"order {body['id']!r} already exists", {"id": body["id"]})
            await conn.execute(
                insert(ORDERS).values(
                    id=body["id"], status=status, doc=doc, created_at=now, updated_at=now
                )
            )
            if identifiers:
                await conn.execute(insert(IDENTIFIERS), identifiers)
            await conn.execute(
                insert(TIMELINE).values(
                    order_id=body["id"], at=now, kind="created", data={"status": status}
                )
            )
            row = await _load(conn, body["id"])
    except IntegrityError:
        raise conflict(f"order {body['id']!r} already exists", {"id": body["id"]}) from None
    return json_response(order_json(row), 201)


async def get_order(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as conn:
        row = await _load(conn, request.match_info["id"])
    return json_response(order_json(row))


async def patch_order(request: web.Request) -> web.Response:
    patch = require_object(await read_json_body(request), "a merge patch")
    order_id = request.match_info["id"]
    app = request.app
    engine = app[ENGINE]
    outcome: Outcome | None = None
    async with app[DATABASE].write() as conn:
        row = await _load(conn, order_id, lock=True)
        before = order_json(row)
        editable = {k: v for k, v in before.items() if k not in ("created_at", "updated_at")}
        after = merge_patch(editable, patch)
        if after.get("id") != order_id:
            raise invalid("an order's id cannot change", {"id": after.get("id")})
        check(ORDER_AFTER_PATCH, after, "order")
        doc = _doc(after)
        now = utc_now()
        if after["status"] != before["status"] and not await _status_exists(conn, after["status"]):
            raise invalid(f"unknown status {after['status']!r}", {"status": after["status"]})
        if any(before.get(k) != after.get(k) for k in IDENTITY_KEYS):
            identifiers = _identifier_rows(order_id, doc, app[SETTINGS].default_region)
            await conn.execute(delete(IDENTIFIERS).where(IDENTIFIERS.c.order_id == order_id))
            if identifiers:
                await conn.execute(insert(IDENTIFIERS), identifiers)
        await conn.execute(
            update(ORDERS)
            .where(ORDERS.c.id == order_id)
            .values(status=after["status"], doc=doc, updated_at=now)
        )
        if after["status"] != before["status"]:
            outcome = await engine.record_manual_move(
                conn, order_id, before["status"], after["status"]
            )
    if outcome is not None:
        await engine.notify(outcome)
    changes = runner(app[PLUGIN_MANAGER]).call(
        "events_from_order_change", {"before": before, "after": after}, _order_change_failed
    )
    events = [{**event, "order_id": order_id} for _, produced in changes for event in produced]
    if events:
        await engine.process(events, allow_private=True)
    async with app[DATABASE].read() as conn:
        row = await _load(conn, order_id)
    return json_response(order_json(row))


def _order_change_failed(plugin: str, exc: Exception) -> None:
    """A plugin's failure in ``events_from_order_change`` is its own: logged, counted, and
    the other plugins' events are still processed."""
    log.error("plugin.order_change_failed", plugin=plugin, exc_info=exc)
    metrics.plugin_error(plugin, "events_from_order_change")


async def get_timeline(request: web.Request) -> web.Response:
    order_id = request.match_info["id"]
    async with request.app[DATABASE].read() as conn:
        await _load(conn, order_id)
        query = select(TIMELINE).where(TIMELINE.c.order_id == order_id).order_by(TIMELINE.c.seq)
        rows = (await conn.execute(query)).all()
    return json_response([{"at": r.at, "kind": r.kind, **(r.data or {})} for r in rows])


__all__ = ["create_order", "get_order", "get_timeline", "patch_order"]
