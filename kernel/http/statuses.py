"""``/api/statuses``: the pipeline, read and replaced whole."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from statusflow.engine.validation import check, closest, did_you_mean, pointer
from statusflow.errors import ApiError, conflict, invalid
from statusflow.http.auth import api_key_name
from statusflow.http.jsonio import json_response, read_json_body
from statusflow.http.keys import DATABASE, ENGINE
from statusflow.http.schemas import STATUS_LIST
from statusflow.store.statements import StoreSQL


def _status_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "sort": row["sort"],
        "semantics": row["semantics"],
    }


async def unknown_status(sql: StoreSQL, status: str, path: str = "/status") -> ApiError:
    """The 422 of a ``status`` that the pipeline does not have, with the closest ids
    (a status's name given for its id is named too: ``'Paid'`` means ``'P'``)."""
    rows = await sql.pipeline()
    known = sorted(row["id"] for row in rows)
    by_name = {str(row["name"]).lower(): row["id"] for row in rows}
    named = [by_name[name] for name in closest(status.lower(), by_name)]
    hint = did_you_mean(status, known) or (f" (did you mean {named[0]!r}?)" if named else "")
    return invalid(
        f"unknown status {status[:64]!r}{hint}; the pipeline has {', '.join(known)}",
        [{"path": path, "message": f"is not a status of the pipeline{hint}"}],
        "unknown_status",
    )


async def pipeline(app: web.Application) -> list[dict[str, Any]]:
    """The statuses in ``sort`` order, as ``GET /api/statuses`` answers them."""
    async with app[DATABASE].read() as sql:
        rows = await sql.pipeline()
    return [_status_json(r) for r in rows]


async def list_statuses(request: web.Request) -> web.Response:
    return json_response(await pipeline(request.app))


def _duplicates(values: list[Any]) -> list[Any]:
    counts = Counter(values)
    return sorted((v for v, n in counts.items() if n > 1), key=str)


def _uses(
    used_by_orders: list[str], targets: list[tuple[int, str]], with_actions: list[str]
) -> list[str]:
    """What keeps dropped statuses in use, in words."""
    uses = [f"{status!r} is the status of orders" for status in used_by_orders]
    uses += [f"{status!r} has actions" for status in with_actions]
    for status in sorted({status for _, status in targets}):
        ids = sorted(trigger_id for trigger_id, target in targets if target == status)
        uses.append(f"{status!r} is the target of trigger(s) {', '.join(map(str, ids))}")
    return uses


async def put_statuses(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    return json_response(await replace_pipeline(request.app, body, api_key_name(request)))


async def replace_pipeline(
    app: web.Application, body: Any, key_name: str | None
) -> list[dict[str, Any]]:
    """Replace the pipeline with ``body`` (a list of statuses), as ``PUT /api/statuses``
    does, recording the change in the audit log under ``key_name``; the new pipeline.

    :raises ApiError: 422 for a malformed list, duplicate ids or sorts, or unknown
        ``semantics``; 409 when it drops a status still in use (orders, triggers, actions).
    """
    check(STATUS_LIST, body, "statuses")
    for key in ("id", "sort"):
        repeated = _duplicates([s[key] for s in body])
        if repeated:
            problems = [
                {"path": pointer(index, key), "message": f"repeats the {key} of an earlier status"}
                for index, status in enumerate(body)
                if status[key] in repeated
                and any(other[key] == status[key] for other in body[:index])
            ]
            shown = ", ".join(map(repr, repeated))
            raise invalid(f"statuses: duplicate {key}s {shown}", problems, "duplicate_status")
    new_ids = {s["id"] for s in body}
    async with app[DATABASE].write() as sql:
        before = [_status_json(r) for r in await sql.pipeline()]
        dropped = (await sql.status_ids()) - new_ids
        if dropped:
            used_by_orders = await sql.statuses_with_orders(dropped)
            targets = await sql.triggers_to(dropped)
            with_actions = await sql.statuses_with_actions(dropped)
            if used_by_orders or targets or with_actions:
                raise conflict(
                    "the new pipeline drops statuses that are still in use: "
                    + "; ".join(_uses(used_by_orders, targets, with_actions)),
                    code="status_in_use",
                )
        await sql.replace_statuses(body)
        await app[ENGINE].definitions_changed(sql)
        after = [_status_json(r) for r in await sql.pipeline()]
        if after != before:
            await sql.record_audit(
                action="replace",
                kind="statuses",
                before=before,
                after=after,
                key_name=key_name,
            )
    return after
