"""The ``order_actions`` plugin: actions that change the order itself.

* ``status.change`` moves the order to ``status``: a move like any other (recorded, in
  the timeline, told to the status sinks, scheduling the new status's actions) that
  fires no triggers; at most ``[actions] max_moves_per_order_per_day`` of them per order.
* ``responsible.change`` sets the order's ``responsible_id``. It emits no
  ``responsible.changed`` event (a ``PATCH`` does): what an action does fires no
  triggers, so that actions and triggers never chain into each other.
* ``field.set`` sets ``fields.NAME`` of the order to ``value`` (``null`` removes it; an
  object is merged into the one there, as a JSON Merge Patch does).

Each change is made when the run ends, in the run's own transaction: a retried run never
makes it twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from statusflow import JSON, ActionContext, ActionResult, ActionType, hookimpl

STATUS_CHANGE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "minLength": 1, "maxLength": 64, "description": "move to"}
    },
}
RESPONSIBLE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["responsible_id"],
    "properties": {
        "responsible_id": {
            "type": ["string", "integer", "null"],
            "maxLength": 200,
            "description": "the new responsible person (null: nobody)",
        }
    },
}
FIELD_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["field", "value"],
    "properties": {
        "field": {
            "type": "string",
            "pattern": "^[^.\\s]+$",
            "maxLength": 200,
            "description": "NAME of fields.NAME",
        },
        "value": {"description": "any JSON value; null removes the field"},
    },
}


def check_status(settings: Mapping[str, JSON], statuses: frozenset[str]) -> None:
    """A ``status.change`` must name a status of the pipeline."""
    if settings["status"] not in statuses:
        raise ValueError(f"unknown status {settings['status']!r}")


async def change_status(ctx: ActionContext) -> ActionResult | None:
    target = ctx.action.settings["status"]
    if ctx.order["status"] == target:
        return ActionResult(skipped=True, reason=f"the order is already in status {target!r}")
    ctx.move_to(target)
    return None


async def change_responsible(ctx: ActionContext) -> ActionResult:
    new = ctx.action.settings["responsible_id"]
    old = ctx.order.get("responsible_id")
    if old == new:
        return ActionResult(skipped=True, reason=f"responsible_id is already {new!r}")
    ctx.update_order({"responsible_id": new})
    return ActionResult(reason=f"responsible_id changed from {old!r} to {new!r}")


async def set_field(ctx: ActionContext) -> ActionResult:
    name, value = ctx.action.settings["field"], ctx.action.settings["value"]
    ctx.update_order({"fields": {name: value}})
    if value is None:
        return ActionResult(reason=f"fields.{name} removed")
    return ActionResult(reason=f"fields.{name} set to {value!r}")


@hookimpl
def register_action_types(register: Callable[[ActionType], None]) -> None:
    register(
        ActionType(
            "status.change", "Change the status", change_status, STATUS_CHANGE_SCHEMA, check_status
        )
    )
    register(
        ActionType(
            "responsible.change",
            "Change the responsible person",
            change_responsible,
            RESPONSIBLE_SCHEMA,
        )
    )
    register(ActionType("field.set", "Set a field", set_field, FIELD_SCHEMA))
