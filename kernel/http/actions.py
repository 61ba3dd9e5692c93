"""``/api/actions``, ``/api/action-types``, ``/api/orders/{id}/runs`` and ``/api/runs``.

Actions are edited like triggers (merge patches, the same conditions, a 422 naming what
is wrong); every change bumps the definitions version, so every instance's move path
sees it from its next transaction on. What a change does to runs not started yet:
disabling an action, moving it to another status or deleting it cancels them (with the
reason); a new ``delay`` moves their due time (from when their delay counts: the order's
entering the status, or the end of the run before); other changes apply when they run.

The rules live in request-free functions (:func:`create_action`, :func:`update_action`,
:func:`delete_action`, :func:`load_action`) that the API's handlers and the board
(``statusflow.ui``) both call: one set of rules and messages.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from statusflow.engine.actions import due, inactive_reason
from statusflow.engine.decide import compile_conditions
from statusflow.engine.durations import parse_duration
from statusflow.engine.runs import cancel_one, cancel_pending, lateness
from statusflow.engine.validation import check
from statusflow.errors import ApiError, conflict, invalid, not_found
from statusflow.http.auth import api_key_name
from statusflow.http.jsonio import json_response, merge_patch, read_json_body, require_object
from statusflow.http.keys import DATABASE, ENGINE, REGISTRY
from statusflow.http.schemas import NEW_ACTION
from statusflow.registry import Registry
from statusflow.store.queries import ACTION_FIELDS as EDITABLE
from statusflow.store.runs import PENDING
from statusflow.store.schema import RUN_STATES
from statusflow.store.statements import GroupWrites, StoreSQL
from statusflow.timestamps import utc_now


def action_json(registry: Registry, row: Any) -> dict[str, Any]:
    """An action row as the API shows it."""
    conditions = row["conditions"] or []
    reason = inactive_reason(row["type"], conditions, registry)
    return {
        "id": row["id"],
        "status": row["status"],
        "type": row["type"],
        "name": row["name"],
        "settings": row["settings"] or {},
        "conditions": conditions,
        "delay": row["delay"],
        "after_previous": bool(row["after_previous"]),
        "enabled": bool(row["enabled"]),
        "position": row["position"],
        "created_at": row["created_at"],
        "active": reason is None,
        "inactive_reason": reason,
    }


def run_json(row: Any) -> dict[str, Any]:
    """A run as the API shows it (``lateness``: seconds from due to first start)."""
    late = None
    if row["started_at"] is not None and (row["due_at"] or row["entered_at"]):
        late = round(lateness(row, row["started_at"]), 6)
    return {
        "id": row["id"],
        "action_id": row["action_id"],
        "order_id": row["order_id"],
        "status": row["status"],
        "state": row["state"],
        "due_at": row["due_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "attempts": row["attempts"],
        "reason": row["reason"],
        "lateness": late,
        "next_attempt_at": row["next_at"] if row["state"] == PENDING else None,
    }


def _int_id(raw: str, what: str) -> int:
    """A path's numeric id (a positive 32-bit integer); anything else is unknown."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) < 2**31):
        raise not_found(f"{what} {raw[:100]!r} not found")
    return int(raw)


async def _load_action(sql: StoreSQL, request: web.Request) -> dict[str, Any]:
    return await load_action(sql, request.match_info["id"])


async def load_action(sql: StoreSQL, raw_id: str | int) -> dict[str, Any]:
    """The stored action of id ``raw_id`` (a path's text or an int).

    :raises ApiError: 404 for an unknown action.
    """
    action_id = _int_id(str(raw_id), "action")
    row = await sql.action(action_id)
    if row is None:
        raise not_found(f"action {action_id} not found", {"id": action_id})
    return row


def _check_fields(registry: Registry, body: dict[str, Any], changed: set[str]) -> None:
    """The checks that need no database: type and settings, conditions, delay."""
    if changed & {"type", "settings"}:
        action_type = registry.action_types.get(body["type"])
        if action_type is None:
            known = sorted(registry.action_types)
            raise invalid(
                f"unknown or disabled action type {body['type']!r}; known types: "
                f"{', '.join(known)}",
                {"known_types": known},
            )
        check(
            action_type.settings_schema, body["settings"], f"settings of {body['type']}", "settings"
        )
    if "conditions" in changed:
        compile_conditions(body["conditions"], registry, new=True)
    if "delay" in changed and body.get("delay") is not None:
        try:
            parse_duration(body["delay"])
        except ValueError as exc:
            raise invalid(f"delay: {exc}", {"delay": body["delay"]}) from None


async def _check_stored(
    sql: StoreSQL, registry: Registry, body: dict[str, Any], changed: set[str]
) -> None:
    """The checks that read the pipeline: the status, the type's own ``check``."""
    statuses = frozenset(await sql.status_ids())
    if "status" in changed and body["status"] not in statuses:
        raise invalid(f"unknown status {body['status']!r}", {"status": body["status"]})
    action_type = registry.action_types.get(body["type"])
    if changed & {"type", "settings"} and action_type is not None and action_type.check:
        try:
            action_type.check(body["settings"], statuses)
        except ValueError as exc:
            raise invalid(
                f"settings of {body['type']}: {exc}", {"settings": body["settings"]}
            ) from None


async def list_action_types(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    return json_response(
        [
            {
                "type": code,
                "plugin": registry.owner("action_type", code),
                "title": action_type.title,
                "settings_schema": dict(action_type.settings_schema),
            }
            for code, action_type in sorted(registry.action_types.items())
        ]
    )


async def post_action(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    apply = request.query.get("apply_to_existing", "false")
    if apply not in ("true", "false"):
        raise invalid("apply_to_existing must be true or false", {"apply_to_existing": apply})
    row = await create_action(request.app, body, api_key_name(request), apply == "true")
    return json_response(action_json(request.app[REGISTRY], row), 201)


async def create_action(
    app: web.Application, body: Any, key_name: str | None, apply_to_existing: bool = False
) -> dict[str, Any]:
    """Check and store a new action from the API's body (contract section 8); its row.
    With ``apply_to_existing``, the orders already in its status get runs too.

    :raises ApiError: 422 for an unknown type or status, bad settings, conditions or
        duration.
    """
    body = require_object(body, "an action")
    check(NEW_ACTION, body, "action")
    registry = app[REGISTRY]
    values = {
        "status": body["status"],
        "type": body["type"],
        "name": body.get("name", ""),
        "settings": body.get("settings", {}),
        "conditions": body.get("conditions", []),
        "delay": body.get("delay"),
        "after_previous": body.get("after_previous", False),
        "enabled": body.get("enabled", True),
    }
    _check_fields(registry, values, set(values))
    engine = app[ENGINE]
    writes = GroupWrites()
    async with app[DATABASE].write() as sql:
        await _check_stored(sql, registry, values, set(values))
        position = body.get("position")
        if position is None:
            last = await sql.last_position(values["status"])
            position = 0 if last is None else last + 1
        values["position"] = position
        action_id = await sql.insert_action({**values, "created_at": utc_now()})
        await engine.definitions_changed(sql)
        if apply_to_existing and values["enabled"]:
            await engine.schedule_existing(sql, action_id, writes)
        row = await sql.action(action_id)
        assert row is not None  # written in this transaction
        await sql.record_audit(
            action="create",
            kind="action",
            resource_id=action_id,
            after=_audited(row),
            key_name=key_name,
        )
    engine.ran(writes)
    return row


def _audited(row: Any) -> dict[str, Any]:
    """An action as the audit log keeps it (a secret in its settings is redacted there)."""
    return {"id": row["id"], **{key: row[key] for key in EDITABLE}}


async def list_actions(request: web.Request) -> web.Response:
    status = request.query.get("status")
    async with request.app[DATABASE].read() as sql:
        rows = await sql.listed_actions(status)
    registry = request.app[REGISTRY]
    return json_response([action_json(registry, row) for row in rows])


async def get_action(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as sql:
        row = await _load_action(sql, request)
    return json_response(action_json(request.app[REGISTRY], row))


async def patch_action(request: web.Request) -> web.Response:
    patch = await read_json_body(request)
    row = await update_action(request.app, request.match_info["id"], patch, api_key_name(request))
    return json_response(action_json(request.app[REGISTRY], row))


async def update_action(
    app: web.Application, raw_id: str | int, patch: Any, key_name: str | None
) -> dict[str, Any]:
    """Apply a JSON Merge Patch to an action; the row as it stands. Disabling, moving
    or deleting cancels its runs not started yet; a new delay moves their due time.

    :raises ApiError: 404 for an unknown action; 422 for what :func:`create_action`
        refuses, an id change, unknown or read-only fields.
    """
    patch = require_object(patch, "a merge patch")
    if "id" in patch and str(patch["id"]) != str(raw_id):
        raise invalid("an action's id cannot change")
    unknown = sorted(set(patch) - {"id", *EDITABLE})
    if unknown:
        raise invalid(
            f"action: unknown or read-only fields {unknown}; editable: {', '.join(EDITABLE)}",
            {"fields": unknown},
        )
    registry = app[REGISTRY]
    engine = app[ENGINE]
    writes = GroupWrites()
    async with app[DATABASE].write() as sql:
        row = await load_action(sql, raw_id)
        before = {k: row[k] for k in EDITABLE}
        after = merge_patch(before, {k: v for k, v in patch.items() if k in EDITABLE})
        for key, default in (("settings", {}), ("conditions", []), ("name", "")):
            after.setdefault(key, default)
        for key in ("after_previous", "enabled", "position"):
            after.setdefault(key, before[key])  # null: left as it is
        check(NEW_ACTION, {k: v for k, v in after.items() if v is not None}, "action")
        changed = {k for k in EDITABLE if after.get(k) != before.get(k)}
        _check_fields(registry, after, changed)
        await _check_stored(sql, registry, after, changed)
        await sql.update_action(row["id"], after)
        await engine.definitions_changed(sql)
        index = (await engine.planner(sql)).index
        at = utc_now()
        if "enabled" in changed and not after["enabled"]:
            reason = f"action {row['id']} was disabled"
            await cancel_pending(sql, row["id"], reason, index, at, writes)
        elif "status" in changed:
            reason = f"action {row['id']} was moved to status {after['status']!r}"
            await cancel_pending(sql, row["id"], reason, index, at, writes)
        elif "delay" in changed:
            delay = parse_duration(after["delay"]) if after["delay"] else timedelta(0)
            for run in await sql.pending_runs_of(row["id"]):
                if run["attempts"] == 0 and run["counts_from"] is not None:
                    when = due(run["counts_from"], delay)
                    await sql.reschedule(run["id"], when)
                    if writes.earliest_run is None or when < writes.earliest_run:
                        writes.earliest_run = when  # the scheduler wakes for it
        await writes.write_to(sql)
        updated = await load_action(sql, row["id"])
        if _audited(updated) != _audited(row):
            await sql.record_audit(
                action="update",
                kind="action",
                resource_id=row["id"],
                before=_audited(row),
                after=_audited(updated),
                key_name=key_name,
            )
    engine.ran(writes)
    return updated


async def remove_action(request: web.Request) -> web.Response:
    await delete_action(request.app, request.match_info["id"], api_key_name(request))
    return web.Response(status=204)


async def delete_action(app: web.Application, raw_id: str | int, key_name: str | None) -> None:
    """Delete an action, canceling its runs not started yet.

    :raises ApiError: 404 for an unknown action.
    """
    engine = app[ENGINE]
    async with app[DATABASE].write() as sql:
        row = await load_action(sql, raw_id)
        index = (await engine.planner(sql)).index
        writes = GroupWrites()
        reason = f"action {row['id']} was deleted"
        await cancel_pending(sql, row["id"], reason, index, utc_now(), writes)
        await sql.delete_action(row["id"])
        await engine.definitions_changed(sql)
        await writes.write_to(sql)
        await sql.record_audit(
            action="delete",
            kind="action",
            resource_id=row["id"],
            before=_audited(row),
            key_name=key_name,
        )
    engine.ran(writes)


# --- runs ----------------------------------------------------------------------------------


async def order_runs(request: web.Request) -> web.Response:
    order_id = request.match_info["id"]
    async with request.app[DATABASE].read() as sql:
        if not await sql.order_exists(order_id):
            raise not_found(f"order {order_id!r} not found", {"order_id": order_id})
        rows = await sql.runs_of_order(order_id)
    return json_response([run_json(row) for row in rows])


async def list_runs(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state is not None and state not in RUN_STATES:
        raise invalid(f"state must be one of {', '.join(RUN_STATES)}", {"state": state})
    raw = request.query.get("limit", "100")
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 1000):
        raise invalid("limit must be an integer from 1 to 1000", {"limit": raw})
    async with request.app[DATABASE].read() as sql:
        rows = await sql.listed_runs(request.query.get("order_id"), state, int(raw))
    return json_response([run_json(row) for row in rows])


async def _load_run(sql: StoreSQL, request: web.Request) -> dict[str, Any]:
    return await load_run(sql, request.match_info["id"])


async def load_run(sql: StoreSQL, raw_id: str | int) -> dict[str, Any]:
    """The stored run of id ``raw_id`` (a path's text or an int).

    :raises ApiError: 404 for an unknown run.
    """
    run_id = _int_id(str(raw_id), "run")
    row = await sql.run_row(run_id)
    if row is None:
        raise not_found(f"run {run_id} not found", {"id": run_id})
    return row


def _not_pending(row: Any, verb: str) -> ApiError:
    started = "has already started" if row["state"] == "running" else "has already finished"
    return conflict(
        f"run {row['id']} {started} (state {row['state']!r}): it cannot be {verb}",
        {"id": row["id"], "state": row["state"]},
    )


async def get_run(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as sql:
        row = await _load_run(sql, request)
    return json_response(run_json(row))


async def cancel_run(request: web.Request) -> web.Response:
    return json_response(await cancel_run_now(request.app, request.match_info["id"]))


async def cancel_run_now(
    app: web.Application, raw_id: str | int, reason: str = "canceled through the API"
) -> dict[str, Any]:
    """Cancel the pending run ``raw_id`` (``POST /api/runs/{id}/cancel`` and the board's
    ``Cancel``); the run as it stands then.

    :raises ApiError: 404 for an unknown run, 409 for one that started or finished.
    """
    engine = app[ENGINE]
    writes = GroupWrites()
    async with app[DATABASE].write() as sql:
        row = await load_run(sql, raw_id)
        if row["state"] != PENDING:
            raise _not_pending(row, "canceled")
        index = (await engine.planner(sql)).index
        await cancel_one(sql, row, reason, index, utc_now(), writes)
        await writes.write_to(sql)
        row = await load_run(sql, row["id"])
    engine.ran(writes)
    return run_json(row)


async def run_now(request: web.Request) -> web.Response:
    return json_response(await make_run_due(request.app, request.match_info["id"]))


async def make_run_due(app: web.Application, raw_id: str | int) -> dict[str, Any]:
    """Make the pending run ``raw_id`` due now (``POST /api/runs/{id}/run-now`` and the
    board's ``Run now``); the run as it stands then.

    :raises ApiError: 404 for an unknown run, 409 for one that started or finished.
    """
    engine = app[ENGINE]
    async with app[DATABASE].write() as sql:
        row = await load_run(sql, raw_id)
        if row["state"] != PENDING:
            raise _not_pending(row, "run now")
        at = utc_now()
        await sql.run_now(row["id"], at, row["due_at"] if row["started_at"] else at)
        row = await load_run(sql, row["id"])
    if engine.runs_written is not None:
        engine.runs_written(at)
    return run_json(row)
