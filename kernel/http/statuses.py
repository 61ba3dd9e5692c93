"""``/api/statuses``: the pipeline, read and replaced whole."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from statusflow.engine.validation import check
from statusflow.errors import conflict, invalid
from statusflow.http.jsonio import json_response, read_json_body
from statusflow.http.keys import DATABASE, ENGINE
from statusflow.http.schemas import STATUS_LIST


def _status_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "sort": row["sort"],
        "semantics": row["semantics"],
    }


async def list_statuses(request: web.Request) -> web.Response:
    async with request.app[DATABASE].read() as sql:
        rows = await sql.pipeline()
    return json_response([_status_json(r) for r in rows])


def _duplicates(values: list[Any]) -> list[Any]:
    counts = Counter(values)
    return sorted((v for v, n in counts.items() if n > 1), key=str)


async def put_statuses(request: web.Request) -> web.Response:
    body = await read_json_body(request)
    check(STATUS_LIST, body, "statuses")
    for key in ("id", "sort"):
        repeated = _duplicates([s[key] for s in body])
        if repeated:
            raise invalid(f"duplicate status {key}s: {repeated}", {key: repeated})
    new_ids = {s["id"] for s in body}
    async with request.app[DATABASE].write() as sql:
        dropped = (await sql.status_ids()) - new_ids
        if dropped:
            used_by_orders = await sql.statuses_with_orders(dropped)
            targets = await sql.triggers_to(dropped)
            with_actions = await sql.statuses_with_actions(dropped)
            if used_by_orders or targets or with_actions:
                raise conflict(
                    "the new pipeline drops statuses that are still in use",
                    {
                        "statuses_with_orders": used_by_orders,
                        "trigger_targets": sorted({status for _, status in targets}),
                        "trigger_ids": sorted(trigger_id for trigger_id, _ in targets),
                        "statuses_with_actions": with_actions,
                    },
                )
        await sql.replace_statuses(body)
        await request.app[ENGINE].definitions_changed(sql)
        rows = await sql.pipeline()
    return json_response([_status_json(r) for r in rows])
