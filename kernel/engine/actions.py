"""Actions on the move path: which runs entering a status schedules, which leaving cancels.

Actions are held in memory (:class:`ActionIndex`), rebuilt with the triggers when the
definitions version changes. A move (an event's, a manual one, an action's) and an order
created in a status take the same two steps, in the move's own transaction
(:class:`RunPlanner`, writing through :class:`~statusflow.store.statements.GroupWrites`):

* leaving a status that has actions cancels the order's pending runs of it;
* entering a status schedules one run per enabled action of it, by ``position``: due at
  the moment it entered plus the action's ``delay``, or, with ``after_previous``,
  waiting for the run of the action before it (its delay counts from that run's end).

A status without actions costs nothing here: no statement, no row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from statusflow.engine.decide import CompiledCondition, compile_conditions
from statusflow.engine.durations import parse_duration
from statusflow.registry import Registry
from statusflow.store.statements import GroupWrites
from statusflow.timestamps import format_timestamp, parse_timestamp
from statusflow.types import ActionType, ActionView

NO_DELAY = timedelta(0)


@dataclass(frozen=True, slots=True)
class CompiledAction:
    """A stored action, ready to schedule and to run."""

    view: ActionView
    delay: timedelta
    after_previous: bool
    enabled: bool
    position: int
    conditions: tuple[CompiledCondition, ...]
    action_type: ActionType | None
    """``None`` while the action is inactive (see :attr:`inactive_reason`)."""
    plugin: str | None
    inactive_reason: str | None


def action_view(row: Mapping[str, Any]) -> ActionView:
    return ActionView(
        id=row["id"],
        type=row["type"],
        status=row["status"],
        name=row["name"] or "",
        settings=row["settings"] or {},
    )


def inactive_reason(
    type_: str, conditions: Sequence[Mapping[str, Any]], registry: Registry
) -> str | None:
    """Why a stored action cannot run now: its type's plugin or an operator of its
    conditions is not loaded (its runs are then not scheduled, and due ones fail)."""
    if type_ not in registry.action_types:
        return f"action type {type_!r} is not provided by any loaded plugin"
    try:
        compile_conditions(conditions, registry)
    except Exception as exc:
        return f"conditions are no longer accepted: {getattr(exc, 'message', exc)}"
    return None


def compile_action(row: Mapping[str, Any], registry: Registry) -> CompiledAction:
    view = action_view(row)
    conditions = row["conditions"] or []
    reason = inactive_reason(view.type, conditions, registry)
    try:
        delay = parse_duration(row["delay"]) if row["delay"] else NO_DELAY
    except ValueError as exc:  # stored before a stricter check: it acts at once
        delay, reason = NO_DELAY, reason or str(exc)
    active = reason is None
    return CompiledAction(
        view=view,
        delay=delay,
        after_previous=bool(row["after_previous"]),
        enabled=bool(row["enabled"]),
        position=int(row["position"]),
        conditions=compile_conditions(conditions, registry) if active else (),
        action_type=registry.action_types[view.type] if active else None,
        plugin=registry.owner("action_type", view.type) if active else None,
        inactive_reason=reason,
    )


class ActionIndex:
    """Every action by id, and each status's enabled actions in ``position`` order."""

    def __init__(self, actions: Sequence[CompiledAction]) -> None:
        self.by_id = {a.view.id: a for a in actions}
        by_status: dict[str, list[CompiledAction]] = {}
        for action in sorted(actions, key=lambda a: (a.position, a.view.id)):
            if action.enabled:
                by_status.setdefault(action.view.status, []).append(action)
        self.by_status = {k: tuple(v) for k, v in by_status.items()}
        self.types = {a.view.id: a.view.type for a in actions}

    @classmethod
    def build(cls, rows: Sequence[Mapping[str, Any]], registry: Registry) -> ActionIndex:
        return cls([compile_action(row, registry) for row in rows])


def due(counts_from: str, delay: timedelta) -> str:
    """When a run whose delay counts from ``counts_from`` (the stored form) is due."""
    if not delay:
        return counts_from
    return format_timestamp(parse_timestamp(counts_from) + delay)


def add_run(
    writes: GroupWrites,
    action: CompiledAction,
    order_id: str,
    epoch: int,
    at: str,
    after: CompiledAction | None = None,
    event_id: str | None = None,
) -> None:
    """One pending run of ``action`` for an order that entered its status at ``at``:
    due then plus the delay, or (``after``) waiting for the run of that action."""
    when = None if after is not None else due(at, action.delay)
    writes.add_run(
        [
            action.view.id,
            order_id,
            action.view.status,
            epoch,
            "pending",
            at,
            None if after is not None else at,
            when,
            when,
            after.view.id if after is not None else None,
            event_id,
            0,
            None,
            None,
        ]
    )


class RunPlanner:
    """Schedules and cancels runs for moves, in the writes of the move's transaction."""

    def __init__(self, index: ActionIndex) -> None:
        self.index = index

    def has_actions(self, status: str) -> bool:
        return status in self.index.by_status

    def leave(self, writes: GroupWrites, order_id: str, status: str, reason: str, at: str) -> None:
        """The order leaves ``status``: cancel its pending runs there."""
        actions = self.index.by_status.get(status)
        if actions:
            types = {a.view.id: a.view.type for a in actions}
            writes.cancel_runs(order_id, status, reason, at, types)

    def enter(
        self,
        writes: GroupWrites,
        order_id: str,
        status: str,
        epoch: int,
        at: str,
        event_id: str | None = None,
    ) -> None:
        """The order enters ``status`` at ``at`` (now at ``epoch``): one run per active
        enabled action there."""
        previous: CompiledAction | None = None
        for action in self.index.by_status.get(status, ()):
            if action.action_type is None:
                continue  # inactive: not scheduled (see inactive_reason)
            after = previous if action.after_previous else None
            add_run(writes, action, order_id, epoch, at, after, event_id)
            previous = action

    def move(
        self,
        writes: GroupWrites,
        order_id: str,
        from_status: str,
        to_status: str,
        epoch: int,
        at: str,
        cause: str,
        event_id: str | None = None,
    ) -> None:
        """A move: leave ``from_status`` (the reason names ``cause``), enter ``to_status``."""
        if from_status in self.index.by_status:
            reason = f"the order left status {from_status!r} for {to_status!r} ({cause})"
            self.leave(writes, order_id, from_status, reason, at)
        if to_status in self.index.by_status:
            self.enter(writes, order_id, to_status, epoch, at, event_id)


__all__ = ["ActionIndex", "CompiledAction", "RunPlanner", "add_run", "compile_action", "due"]
