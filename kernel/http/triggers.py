"""``/api/triggers``: create, list, read, merge-patch and delete triggers.

The rules live in request-free functions (:func:`create_trigger`, :func:`update_trigger`,
:func:`delete_trigger`, :func:`load_trigger`) that take the API application and the
acting key's name: the API's handlers and the board (``statusflow.ui``) both call them,
so there is one set of rules and one set of messages.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from statusflow.engine.decide import compile_conditions, inactive_reason, trigger_view
from statusflow.engine.validation import check, did_you_mean, pointer
from statusflow.errors import invalid, not_found
from statusflow.http.auth import api_key_name
from statusflow.http.jsonio import json_response, merge_patch, read_json_body, require_object
from statusflow.http.keys import DATABASE, ENGINE, REGISTRY, SERVICES
from statusflow.http.schemas import NEW_TRIGGER
from statusflow.http.statuses import unknown_status
from statusflow.registry import Registry
from statusflow.store.queries import TRIGGER_FIELDS as EDITABLE
from statusflow.store.statements import StoreSQL
from statusflow.timestamps import utc_now


def trigger_json(request: web.Request, row: Any) -> dict[str, Any]:
    """A trigger row as the API shows it, with what its plugin adds (``webhook_url``)."""
    return trigger_body(request.app, row)


def trigger_body(app: web.Application, row: Any) -> dict[str, Any]:
    """A trigger row as the API shows it, from the API application ``app``."""
    registry = app[REGISTRY]
    body: dict[str, Any] = {
        "id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "name": row["name"],
        "allow_backwards": bool(row["allow_backwards"]),
        "enabled": bool(row["enabled"]),
        "settings": row["settings"] or {},
        "conditions": row["conditions"] or [],
        "created_at": row["created_at"],
    }
    reason = inactive_reason(row["type"], body["conditions"], registry)
    body["active"] = reason is None
    body["inactive_reason"] = reason
    trigger_type = registry.trigger_types.get(row["type"])
    if trigger_type is not None and trigger_type.describe is not None:
        body.update(trigger_type.describe(trigger_view(row), app[SERVICES]))
    return body


def audited(row: Any) -> dict[str, Any]:
    """A trigger as the audit log keeps it: its editable fields and id (never its secret,
    nor the ``webhook_url`` that holds it)."""
    return {"id": row["id"], **{k: row[k] for k in EDITABLE}}


def _check_type_and_settings(registry: Registry, type_: str, settings: dict[str, Any]) -> None:
    trigger_type = registry.trigger_types.get(type_)
    if trigger_type is None:
        known = sorted(registry.trigger_types)
        hint = did_you_mean(type_, known)
        raise invalid(
            f"unknown or disabled trigger type {type_[:100]!r}{hint}; "
            f"known types: {', '.join(known)}",
            [
                {
                    "path": "/type",
                    "message": f"is not a known trigger type of an enabled plugin{hint}",
                }
            ],
            "unknown_trigger_type",
        )
    check(
        trigger_type.settings_schema, settings, f"settings of {type_}", "/settings", "bad_settings"
    )


async def _check_status(sql: StoreSQL, status: str) -> None:
    if not await sql.status_exists(status):
        raise await unknown_status(sql, status)


def _trigger_id(raw: str) -> int:
    """A path's trigger id; ids are positive 32-bit integers (PostgreSQL INTEGER):
    anything else is unknown (404)."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) < 2**31):
        raise not_found(f"trigger {raw[:100]!r} not found", code="trigger_not_found")
    return int(raw)


async def load_trigger(sql: StoreSQL, raw_id: str | int) -> dict[str, Any]:
    """The stored trigger of id ``raw_id`` (a path's text or an int).

    :raises ApiError: 404 ``trigger_not_found``.
    """
    trigger_id = _trigger_id(str(raw_id))
    row = await sql.trigger(trigger_id)
    if row is None:
        raise not_found(f"trigger {trigger_id} not found", code="trigger_not_found")
    return row


async def create_trigger(app: web.Application, body: Any, key_name: str | None) -> dict[str, Any]:
    """Check and store a new trigger from the API's body (contract section 4); its row.

    :raises ApiError: 422 for a bad body, an unknown or disabled type, an unknown
        status, bad settings or conditions.
    """
    body = require_object(body, "a trigger")
    check(NEW_TRIGGER, body, "trigger")
    registry = app[REGISTRY]
    settings = body.get("settings", {})
    conditions = body.get("conditions", [])
    _check_type_and_settings(registry, body["type"], settings)
    compile_conditions(conditions, registry, new=True)
    async with app[DATABASE].write() as sql:
        await _check_status(sql, body["status"])
        trigger_id = await sql.insert_trigger(
            {
                "type": body["type"],
                "status": body["status"],
                "name": body.get("name", ""),
                "allow_backwards": body.get("allow_backwards", False),
                "enabled": body.get("enabled", True),
                "settings": settings,
                "conditions": conditions,
                "secret": secrets.token_urlsafe(24),
                "created_at": utc_now(),
            }
        )
        await app[ENGINE].definitions_changed(sql)
        row = await sql.trigger(trigger_id)
        assert row is not None  # written in this transaction
        await sql.record_audit(
            action="create",
            kind="trigger",
            resource_id=trigger_id,
            after=audited(row),
            key_name=key_name,
        )
    return row


async def update_trigger(
    app: web.Application, raw_id: str | int, patch: Any, key_name: str | None
) -> dict[str, Any]:
    """Apply a JSON Merge Patch to a trigger's editable fields; the row as it stands.

    :raises ApiError: 404 for an unknown trigger; 422 for an id change, unknown or
        read-only fields, or what :func:`create_trigger` refuses.
    """
    patch = require_object(patch, "a merge patch")
    if "id" in patch and str(patch["id"]) != str(raw_id):
        raise invalid("a trigger's id cannot change", [{"path": "/id", "message": "cannot change"}])
    unknown = sorted(set(patch) - {"id", *EDITABLE})
    if unknown:
        raise invalid(
            f"trigger: unknown or read-only fields {', '.join(map(repr, unknown))}; "
            f"editable: {', '.join(EDITABLE)}",
            [
                {
                    "path": pointer(key),
                    "message": "is not an editable field"
                    + (did_you_mean(key, EDITABLE) or f"; editable: {', '.join(EDITABLE)}"),
                }
                for key in unknown
            ],
        )
    registry = app[REGISTRY]
    async with app[DATABASE].write() as sql:
        row = await load_trigger(sql, raw_id)
        before = {k: row[k] for k in EDITABLE}
        after = merge_patch(before, {k: v for k, v in patch.items() if k in EDITABLE})
        after.setdefault("settings", {})
        after.setdefault("conditions", [])
        after.setdefault("name", "")
        check(NEW_TRIGGER, after, "trigger")
        # A trigger whose plugin is gone may still be renamed, retargeted or switched
        # off; what needs the plugin is checked only when it changes.
        if after["type"] != before["type"] or after["settings"] != before["settings"]:
            _check_type_and_settings(registry, after["type"], after["settings"])
        if after["conditions"] != before["conditions"]:
            compile_conditions(after["conditions"], registry, new=True)
        if after["status"] != before["status"]:
            await _check_status(sql, after["status"])
        await sql.update_trigger(row["id"], {**before, **after})  # a null leaves it be
        await app[ENGINE].definitions_changed(sql)
        changed = await load_trigger(sql, row["id"])
        if audited(changed) != audited(row):
            await sql.record_audit(
                action="update",
                kind="trigger",
                resource_id=row["id"],
                before=audited(row),
                after=audited(changed),
                key_name=key_name,
            )
    return changed


async def delete_trigger(app: web.Application, raw_id: str | int, key_name: str | None) -> None:
    """Delete a trigger.

    :raises ApiError: 404 for an unknown trigger.
    """
    async with app[DATABASE].write() as sql:
        row = await load_trigger(sql, raw_id)
        await sql.delete_trigger(row["id"])
        await app[ENGINE].definitions_changed(sql)
        await sql.record_audit(
            action="delete",
            kind="trigger",
            resource_id=row["id"],
            before=audited(row),
            key_name=key_name,
        )


# --- the API's handlers ----------------------------------------------------------------


async def post_trigger(request: web.Request) -> web.Response:
    row = await create_trigger(request.app, await read_json_body(request), api_key_name(request))
    return json_response(trigger_json(request, row), 201)


async def list_triggers(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as sql:
        rows = await sql.all_triggers()
    return json_response([trigger_json(request, row) for row in rows])


async def get_trigger(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as sql:
        row = await load_trigger(sql, request.match_info["id"])
    return json_response(trigger_json(request, row))


async def patch_trigger(request: web.Request) -> web.Response:
    patch = await read_json_body(request)
    row = await update_trigger(request.app, request.match_info["id"], patch, api_key_name(request))
    return json_response(trigger_json(request, row))


async def remove_trigger(request: web.Request) -> web.Response:
    await delete_trigger(request.app, request.match_info["id"], api_key_name(request))
    return web.Response(status=204)
