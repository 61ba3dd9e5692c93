"""The ``tasks`` plugin: the ``task.create`` action type, and the tasks it makes.

A run of a ``task.create`` action stores a task for an employee: its ``title``, the
``responsible_id`` it is for (the setting, or the order's responsible person), and a
``deadline`` (an ISO-8601 duration counted from the task's creation). Tasks are read at
``GET /api/tasks?order_id=&open=`` and closed with ``POST /api/tasks/{id}/complete``
(:mod:`.api`). The task row is written in the run's own transaction: a retried run never
makes a task twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from statusflow import (
    JSON,
    ActionContext,
    ActionResult,
    ActionType,
    KernelServices,
    Route,
    format_timestamp,
    hookimpl,
    parse_duration,
    parse_timestamp,
)
from statusflow.plugins.tasks.api import routes
from statusflow.plugins.tasks.tables import TASKS

MIGRATIONS = Path(__file__).resolve().with_name("migrations")

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title"],
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 500},
        "responsible_id": {
            "type": ["string", "integer"],
            "minLength": 1,
            "maxLength": 200,
            "description": "whom the task is for; default: the order's responsible person",
        },
        "deadline": {
            "type": "string",
            "maxLength": 64,
            "description": "an ISO-8601 duration from the task's creation, e.g. PT4H or P1D",
        },
    },
}


def check_settings(settings: Mapping[str, JSON], statuses: frozenset[str]) -> None:
    """The ``deadline`` must be a duration statusflow reads (``P1D``, ``PT4H``)."""
    if "deadline" in settings:
        parse_duration(settings["deadline"])


async def create_task(ctx: ActionContext) -> ActionResult:
    settings = ctx.action.settings
    responsible = settings.get("responsible_id", ctx.order.get("responsible_id"))
    deadline = None
    if "deadline" in settings:
        moment = parse_timestamp(ctx.now) + parse_duration(settings["deadline"])
        deadline = format_timestamp(moment)
    ctx.insert(
        TASKS,
        {
            "order_id": ctx.order["id"],
            "action_id": ctx.action.id,
            "run_id": ctx.run_id,
            "title": settings["title"],
            "responsible_id": None if responsible is None else str(responsible),
            "deadline_at": deadline,
            "created_at": ctx.now,
            "completed_at": None,
        },
    )
    who = "nobody in particular" if responsible is None else f"{responsible!s}"
    return ActionResult(reason=f"task {settings['title']!r} created for {who}")


@hookimpl
def register_action_types(register: Callable[[ActionType], None]) -> None:
    register(
        ActionType("task.create", "Create a task", create_task, SETTINGS_SCHEMA, check_settings)
    )


@hookimpl
def migration_locations() -> str:
    return str(MIGRATIONS)


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    for route in routes(kernel):
        register(route)
