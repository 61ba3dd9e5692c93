"""``GET /api/tasks`` and ``POST /api/tasks/{id}/complete``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from statusflow import ApiError, KernelServices, Route, json_response, utc_now
from statusflow.plugins.tasks.tables import TASKS

ERROR = {"$ref": "#/components/schemas/Error"}


def task_json(row: Any) -> dict[str, Any]:
    """A task as the API shows it (``open``: not completed yet)."""
    return {
        "id": row.id,
        "order_id": row.order_id,
        "action_id": row.action_id,
        "run_id": row.run_id,
        "title": row.title,
        "responsible_id": row.responsible_id,
        "deadline_at": row.deadline_at,
        "created_at": row.created_at,
        "completed_at": row.completed_at,
        "open": row.completed_at is None,
    }


def _task_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) < 2**31):
        raise ApiError(404, "not_found", f"task {raw[:100]!r} not found")
    return int(raw)


def _operation(summary: str, ok: int, *errors: int) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(ok): {"description": "done", "content": {"application/json": {"schema": {}}}}
    }
    for status in errors:
        responses[str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": ERROR}},
        }
    return {"summary": summary, "responses": responses}


def routes(kernel: KernelServices) -> list[Route]:
    """The plugin's routes, bound to the app's services."""

    async def list_tasks(request: web.Request) -> web.Response:
        query = sa.select(TASKS).order_by(TASKS.c.id)
        if "order_id" in request.query:
            query = query.where(TASKS.c.order_id == request.query["order_id"])
        wanted = request.query.get("open")
        if wanted not in (None, "true", "false"):
            problem = [{"path": "?open", "message": "must be true or false"}]
            raise ApiError(422, "bad_query_parameter", "open must be true or false", problem)
        if wanted == "true":
            query = query.where(TASKS.c.completed_at.is_(None))
        elif wanted == "false":
            query = query.where(TASKS.c.completed_at.is_not(None))
        async with kernel.read() as conn:
            rows = (await conn.execute(query)).all()
        return json_response([task_json(row) for row in rows])

    async def complete(request: web.Request) -> web.Response:
        task_id = _task_id(request.match_info["id"])
        by_id = sa.select(TASKS).where(TASKS.c.id == task_id)
        async with kernel.write() as conn:
            row = (await conn.execute(by_id)).first()
            if row is None:
                raise ApiError(404, "not_found", f"task {task_id} not found", {"id": task_id})
            if row.completed_at is not None:
                raise ApiError(
                    409,
                    "conflict",
                    f"task {task_id} was completed already, at {row.completed_at}",
                    {"id": task_id, "completed_at": row.completed_at},
                )
            update = sa.update(TASKS).where(TASKS.c.id == task_id)
            await conn.execute(update.values(completed_at=utc_now()))
            row = (await conn.execute(by_id)).first()
        return json_response(task_json(row))

    open_param = {
        "name": "open",
        "in": "query",
        "required": False,
        "schema": {"enum": ["true", "false"]},
    }
    order_param = {
        "name": "order_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
    }
    return [
        Route(
            "GET",
            "/api/tasks",
            list_tasks,
            {
                **_operation("Tasks made by task.create actions", 200, 401, 422),
                "parameters": [order_param, open_param],
            },
        ),
        Route(
            "POST",
            "/api/tasks/{id}/complete",
            complete,
            _operation("Complete a task", 200, 401, 404, 409),
        ),
    ]
