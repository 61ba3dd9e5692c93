"""``DELETE /api/orders/{id}`` and ``POST /api/contacts/erase``: personal data removed,
each in one transaction with its audit entry (:mod:`statusflow.store.privacy`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiohttp import web

from statusflow.engine.contacts import normalize_email, normalize_phone
from statusflow.errors import ApiError, not_found
from statusflow.http.auth import api_key_name
from statusflow.http.jsonio import json_response, read_json_object
from statusflow.http.keys import DATABASE, SETTINGS
from statusflow.store import privacy
from statusflow.store.errors import StorageConflict
from statusflow.store.statements import StoreSQL

log = structlog.get_logger("statusflow.privacy")
T = TypeVar("T")
ATTEMPTS = 3
"""Tries of a transaction that lost a race on PostgreSQL (a deadlock, a conflict)."""

ERASE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "a phone, an email, or both",
    "properties": {
        "phone": {"type": "string", "minLength": 1, "maxLength": 64},
        "email": {"type": "string", "minLength": 1, "maxLength": 320},
    },
}
ERASED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        name: {"type": "integer"}
        for name in ("orders", "identifiers", "events", "timeline_entries", "plugin_marks")
    },
}


async def _retried(db: Any, work: Callable[[StoreSQL], Awaitable[T]]) -> T:
    """``work`` in a write transaction, run again when it lost a race (PostgreSQL)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with db.write() as sql:
                return await work(sql)
        except StorageConflict:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def delete_order(request: web.Request) -> web.Response:
    """204: the order, its identifiers, timeline and moves are gone, and so are the
    stored events that resolved to it alone; the other events no longer name it."""
    order_id = request.match_info["id"]
    key_name = api_key_name(request)

    async def work(sql: StoreSQL) -> dict[str, int] | None:
        row = await sql.order(order_id, lock=True)
        done = await privacy.delete_order(sql, order_id)
        if row is None or done is None:
            return None
        summary = {k: row[k] for k in ("id", "status", "created_at", "updated_at")}
        await sql.record_audit(
            action="delete", kind="order", resource_id=order_id, before=summary, key_name=key_name
        )
        return done

    done = await _retried(request.app[DATABASE], work)
    if done is None:
        raise not_found(f"order {order_id!r} not found", {"order_id": order_id})
    log.info("order.deleted", order_id=order_id, key_name=key_name, **done)
    return web.Response(status=204)


def _eraser(body: dict[str, Any], region: str) -> privacy.Eraser:
    phone = email = None
    if "phone" not in body and "email" not in body:
        message = "give the phone, the email or both of the person to erase"
        problem = [{"path": "", "message": message}]
        raise ApiError(422, "validation_failed", f"an erasure: {message}", problem)
    try:
        if "phone" in body:
            phone = normalize_phone(body["phone"], region)
    except ValueError:
        message = "is not a phone number (written with + and its country code, or of the region)"
        details = [{"path": "phone", "message": message}]
        raise ApiError(422, "validation_failed", f"phone {message}", details) from None
    try:
        if "email" in body:
            email = normalize_email(body["email"])
    except ValueError:
        message = "is not an email address"
        details = [{"path": "email", "message": message}]
        raise ApiError(422, "validation_failed", f"email {message}", details) from None
    return privacy.Eraser(phone, email, region)


async def erase_contact(request: web.Request) -> web.Response:
    """200 with what changed: ``{"orders", "identifiers", "events", "timeline_entries",
    "plugin_marks"}``; the phone or email is in no order, stored event or timeline."""
    body = await read_json_object(request, "an erasure", ERASE_BODY)
    eraser = _eraser(body, request.app[SETTINGS].default_region)
    key_name = api_key_name(request)
    db = request.app[DATABASE]
    candidates: set[int] = set()
    after = 0
    if db.is_sqlite:  # look through the events before taking the one writer's gate
        async with db.read() as sql:
            candidates, after = await privacy.mentioning(sql, eraser)

    async def work(sql: StoreSQL) -> dict[str, int]:
        counts = await privacy.erase_contact(sql, eraser, candidates, after)
        await sql.record_audit(action="erase", kind="contact", after=counts, key_name=key_name)
        return counts

    counts = await _retried(db, work)
    log.info("contact.erased", key_name=key_name, **counts)
    return json_response(counts)
