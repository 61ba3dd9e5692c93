"""One run of an action: checked when due, carried out by its type's ``run``, ended.

:func:`attempt` decides what a claimed run comes to without writing anything: canceled
(its order left the status it was scheduled for, or its action went), skipped (a
condition failed, or ``run`` said so), done (with the changes ``run`` asked the order,
:class:`RunContext`), a failed attempt to retry with backoff, or failed.

:func:`finish` writes what a batch of attempts came to, in one transaction: the runs'
ends (only where the lease is still the claimer's), their ``action`` timeline entries,
the changes to orders (a move a run asks for is a move like any other: recorded, in the
timeline, handed to the ``prepare_moves`` sinks, cancelling and scheduling runs, with
no trigger fired), and the release of the runs that wait for them (``after_previous``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from statusflow.engine import metrics
from statusflow.engine.actions import ActionIndex, CompiledAction, RunPlanner, due
from statusflow.engine.decide import failed_condition
from statusflow.engine.validation import schema_errors
from statusflow.serving.config import ActionSettings
from statusflow.store.schema import ENDED_STATES
from statusflow.store.statements import GroupWrites, StoreSQL, run_entry
from statusflow.timestamps import format_timestamp, parse_timestamp
from statusflow.types import (
    JSON,
    ActionFailed,
    ActionResult,
    ActionView,
    Event,
    KernelServices,
    Move,
    Outcome,
)

log = structlog.get_logger("statusflow.actions")

PATCHABLE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "responsible_id": {"type": ["string", "integer", "null"], "maxLength": 200},
        "amount": {"type": ["number", "null"]},
        "currency": {"type": ["string", "null"], "maxLength": 16},
        "fields": {"type": ["object", "null"]},
    },
}
"""What an action may change of an order (:meth:`RunContext.update_order`)."""

DAY = timedelta(hours=24)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: ``patch`` applied to ``target`` (neither is changed)."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Seconds before the retry of failed attempt ``attempt`` (1 for the first): the
    ceiling doubles each time up to ``maximum``; half of it, plus a random part of the
    other half ("equal jitter"), so that runs that failed together spread out."""
    ceiling = min(maximum, initial * 2.0 ** min(max(attempt - 1, 0), 60))
    return ceiling / 2 + random.random() * ceiling / 2


class RunContext:
    """:class:`statusflow.ActionContext`: what a run hands its type's ``run``."""

    def __init__(
        self,
        run: Mapping[str, Any],
        action: ActionView,
        order: Mapping[str, JSON],
        kernel: KernelServices,
        now: str,
    ) -> None:
        self.run_id: int = run["id"]
        self.attempt: int = run["attempts"]
        self.action = action
        self.order = order
        self.due_at: str = run["due_at"] or run["entered_at"]
        self.now = now
        self.kernel = kernel
        self.moves_to: str | None = None
        self.patch: dict[str, Any] = {}
        self.inserts: list[tuple[Any, dict[str, Any]]] = []

    def move_to(self, status: str) -> None:
        if not isinstance(status, str) or not status:
            raise ValueError(f"move_to needs a status id, not {status!r}")
        self.moves_to = status

    def update_order(self, patch: Mapping[str, JSON]) -> None:
        errors = schema_errors(PATCHABLE, dict(patch))
        if errors:
            raise ValueError(
                f"update_order: {errors[0]['path']}: {errors[0]['message']} (an action may "
                "change responsible_id, amount, currency and fields)"
            )
        self.patch = merge_patch(self.patch, dict(patch)) if self.patch else dict(patch)

    def insert(self, table: Any, row: Mapping[str, JSON]) -> None:
        self.inserts.append((table, dict(row)))

    @property
    def changes(self) -> bool:
        return self.moves_to is not None or bool(self.patch) or bool(self.inserts)


@dataclass
class Attempt:
    """What a claimed run came to (not written yet)."""

    run: Mapping[str, Any]
    token: str
    state: str
    """``done``, ``skipped``, ``canceled``, ``failed``, or ``pending`` (a retry)."""
    reason: str | None
    at: str
    retry_at: str | None = None
    context: RunContext | None = None
    """The changes to make (a ``done`` run's)."""
    action_type: str | None = None
    moves: list[Move] = field(default_factory=list)


OrderView = Callable[[Mapping[str, Any]], dict[str, Any]]
"""An order row as the API shows it (``http.orders.order_json``)."""


def _gone(action: CompiledAction | None, run: Mapping[str, Any]) -> str | None:
    """Why the run's action no longer applies, or ``None``."""
    action_id = run["action_id"]
    if action is None:
        return f"action {action_id} was deleted"
    if not action.enabled:
        return f"action {action_id} is disabled"
    if action.view.status != run["status"]:
        return f"action {action_id} now belongs to status {action.view.status!r}"
    return None


def left_status(run: Mapping[str, Any], order: Mapping[str, Any] | None) -> str | None:
    """Why the order is no longer where the run was scheduled for, or ``None``."""
    if order is None:
        return f"order {run['order_id']!r} no longer exists"
    if order["status"] != run["status"] or int(order["status_epoch"]) != run["epoch"]:
        if order["status"] == run["status"]:
            return f"the order left status {run['status']!r} and entered it again since"
        return f"the order left status {run['status']!r} (it is in {order['status']!r})"
    return None


async def attempt(
    run: Mapping[str, Any],
    token: str,
    order: Mapping[str, Any] | None,
    index: ActionIndex,
    settings: ActionSettings,
    kernel: KernelServices,
    order_view: OrderView,
    now: Callable[[], datetime],
    event_data: Mapping[str, Any] | None = None,
) -> Attempt:
    """Check a claimed run and carry it out (see the module docstring)."""
    action = index.by_id.get(run["action_id"])
    action_type = action.view.type if action is not None else None

    def ended(state: str, reason: str | None, **more: Any) -> Attempt:
        at = format_timestamp(now())
        return Attempt(run, token, state, reason, at, action_type=action_type, **more)

    reason = _gone(action, run) or left_status(run, order)
    if reason is not None:
        return ended("canceled", reason)
    assert action is not None and order is not None
    if run["attempts"] > settings.max_attempts:  # its last attempt's instance died
        return ended("failed", f"{_stopped(run)}; no attempts left")
    if action.action_type is None:
        return _retry_or_fail(ended, run, settings, now, action.inactive_reason or "inactive")
    if action.conditions:
        event = Event("", "", None, {}, None, event_data or {})
        failed = failed_condition(action.conditions, order["status"], order["doc"] or {}, event)
        if failed is not None:
            return ended("skipped", failed)
    context = RunContext(run, action.view, order_view(order), kernel, format_timestamp(now()))
    try:
        async with asyncio.timeout(settings.run_timeout_seconds):
            answer = await action.action_type.run(context)
    except ActionFailed as exc:
        if not exc.retry:
            return ended("failed", str(exc) or type(exc).__name__)
        return _retry_or_fail(ended, run, settings, now, str(exc) or type(exc).__name__)
    except TimeoutError:
        timeout = f"the run took longer than {settings.run_timeout_seconds:g} s"
        return _retry_or_fail(ended, run, settings, now, timeout)
    except Exception as exc:
        log.exception("plugin.action_failed", plugin=action.plugin, run_id=run["id"])
        metrics.plugin_error(action.plugin or "?", "run")
        error = f"plugin {action.plugin!r} failed: {exc!r}"
        return _retry_or_fail(ended, run, settings, now, error)
    if answer is not None and not isinstance(answer, ActionResult):
        error = f"plugin {action.plugin!r} answered {type(answer).__name__}, not an ActionResult"
        return ended("failed", error)
    if answer is not None and answer.skipped:
        return ended("skipped", answer.reason or "skipped by the action")
    reason = answer.reason if answer is not None else ""
    return ended("done", reason, context=context)


def _stopped(run: Mapping[str, Any]) -> str:
    return (
        f"attempt {run['attempts'] - 1} did not finish: the instance running it stopped "
        "before its lease ran out"
    )


def _retry_or_fail(
    ended: Callable[..., Attempt],
    run: Mapping[str, Any],
    settings: ActionSettings,
    now: Callable[[], datetime],
    error: str,
) -> Attempt:
    """A failed attempt: retried with backoff, or ``failed`` after the last one."""
    attempts = run["attempts"]
    if attempts >= settings.max_attempts:
        return ended("failed", f"after {attempts} attempts: {error}")
    delay = backoff(attempts, settings.retry_initial_seconds, settings.retry_max_seconds)
    retry_at = format_timestamp(now() + timedelta(seconds=delay))
    return ended("pending", f"attempt {attempts} failed: {error}", retry_at=retry_at)


# --- ending runs ---------------------------------------------------------------------------


Prepare = Callable[[Outcome, GroupWrites], list[str]]
"""The engine's call of the ``prepare_moves`` sinks (their errors as strings)."""


@dataclass
class Finished:
    """What a batch's transaction did, for after its commit."""

    outcomes: list[Outcome] = field(default_factory=list)
    writes: GroupWrites = field(default_factory=GroupWrites)
    ended: list[Attempt] = field(default_factory=list)
    lost: list[Attempt] = field(default_factory=list)
    """Attempts whose lease another claim had taken over: their result was dropped."""


class LockedOrder:
    """An order locked for a batch's changes, as the batch leaves it."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.status: str = row["status"]
        self.epoch = int(row["status_epoch"])
        self.doc: dict[str, Any] = dict(row["doc"] or {})
        self.doc_changed = False
        self.moves_today: int | None = None


@dataclass(frozen=True)
class Batch:
    """What ending a batch of runs needs besides the runs."""

    planner: RunPlanner
    statuses: frozenset[str]
    settings: ActionSettings
    now: Callable[[], datetime]
    prepare: Prepare


async def finish(sql: StoreSQL, attempts: Sequence[Attempt], batch: Batch) -> Finished:
    """Write what ``attempts`` came to, in ``sql``'s transaction (see the module docstring)."""
    done = Finished()
    writes = done.writes
    ours = await sql.leased([(a.run["id"], a.token) for a in attempts])
    changing = [a for a in attempts if a.run["id"] in ours and a.context and a.context.changes]
    orders = {
        row["id"]: LockedOrder(row)
        for row in await sql.orders_by_ids([a.run["order_id"] for a in changing], lock=True)
    }
    for item in attempts:
        run = item.run
        if run["id"] not in ours:
            done.lost.append(item)
            continue
        if item.context is not None and item.context.changes:
            await _apply(sql, item, orders.get(run["order_id"]), writes, batch)
            if item.moves:
                outcome = Outcome(None, (run["order_id"],), tuple(item.moves), item.at)
                done.outcomes.append(outcome)
                batch.prepare(outcome, writes)
        if item.state in ENDED_STATES:
            entry = run_entry(
                run["id"], run["action_id"], item.action_type, item.state, item.reason
            )
            writes.add_timeline(run["order_id"], "action", entry, item.at)
            await release_waiting(sql, run, batch.planner.index, item.at)
            done.ended.append(item)
        next_at = item.retry_at if item.state == "pending" else None
        finished_at = item.at if item.state in ENDED_STATES else None
        await sql.end_run(run["id"], item.token, item.state, finished_at, item.reason, next_at)
    for order_id, order in orders.items():
        if order.doc_changed:
            await sql.save_order_doc(order_id, order.doc, format_timestamp(batch.now()))
    await writes.write_to(sql)
    return done


async def _apply(
    sql: StoreSQL, item: Attempt, order: LockedOrder | None, writes: GroupWrites, batch: Batch
) -> None:
    """Make a done run's changes to its (locked) order, or say why they cannot be made."""
    run, context = item.run, item.context
    assert context is not None
    if order is None or order.status != run["status"] or order.epoch != run["epoch"]:
        item.state = "canceled"
        item.reason = f"the order left status {run['status']!r} while the action ran"
        return
    target = context.moves_to
    if target is not None:
        problem = await _move_problem(sql, run["order_id"], order, target, batch)
        if problem is not None:
            item.state, item.reason = problem
            return
    if context.patch:
        order.doc = merge_patch(order.doc, context.patch)
        order.doc_changed = True
    for table, row in context.inserts:
        writes.insert(table, row)
    if target is not None:
        move = Move(
            run["order_id"],
            order.status,
            target,
            None,
            None,
            None,
            item.at,
            action_id=run["action_id"],
        )
        order.epoch += 1
        order.status = target
        item.moves.append(move)
        item.reason = item.reason or f"moved the order from {move.from_status!r} to {target!r}"
        writes.add_moves([move], {move.order_id: order.epoch})
        cause = f"action {run['action_id']}, run {run['id']}"
        batch.planner.move(
            writes, move.order_id, move.from_status, target, order.epoch, item.at, cause
        )


async def _move_problem(
    sql: StoreSQL, order_id: str, order: LockedOrder, target: str, batch: Batch
) -> tuple[str, str] | None:
    """``(state, reason)`` when the move to ``target`` cannot be made, else ``None``
    (and the move is counted against the day's limit)."""
    if target not in batch.statuses:
        return "failed", f"status {target!r} does not exist"
    if target == order.status:
        return "skipped", f"the order is already in status {target!r}"
    if order.moves_today is None:
        since = format_timestamp(batch.now() - DAY)
        order.moves_today = await sql.action_moves_since(order_id, since)
    limit = batch.settings.max_moves_per_order_per_day
    if order.moves_today >= limit:
        return "failed", (
            f"actions already moved this order {order.moves_today} times in the last 24 "
            f"hours ([actions] max_moves_per_order_per_day = {limit})"
        )
    order.moves_today += 1
    return None


async def release_waiting(
    sql: StoreSQL, run: Mapping[str, Any], index: ActionIndex, at: str
) -> None:
    """The runs waiting for ``run`` (``after_previous``) count their delay from ``at``."""
    for waiting in await sql.waiting_after(run["order_id"], run["epoch"], run["action_id"]):
        action = index.by_id.get(waiting["action_id"])
        delay = action.delay if action is not None else timedelta(0)
        await sql.release(waiting["id"], at, due(at, delay))


async def cancel_one(
    sql: StoreSQL,
    run: Mapping[str, Any],
    reason: str,
    index: ActionIndex,
    at: str,
    writes: GroupWrites,
) -> bool:
    """Cancel a pending run (its timeline entry in ``writes``, the runs waiting for it
    released); whether it was still pending."""
    if not await sql.cancel_run(run["id"], reason, at):
        return False
    action_type = index.types.get(run["action_id"])
    entry = run_entry(run["id"], run["action_id"], action_type, "canceled", reason)
    writes.add_timeline(run["order_id"], "action", entry, at)
    await release_waiting(sql, run, index, at)
    return True


async def cancel_pending(
    sql: StoreSQL,
    action_id: int,
    reason: str,
    index: ActionIndex,
    at: str,
    writes: GroupWrites,
) -> int:
    """Cancel every pending run of an action (disabled, moved, deleted); how many."""
    canceled = 0
    for run in await sql.pending_runs_of(action_id):
        canceled += await cancel_one(sql, run, reason, index, at, writes)
    return canceled


def lateness(run: Mapping[str, Any], started_at: str) -> float:
    """Seconds between when a run was due and when it first started."""
    due_at = run["due_at"] or run["entered_at"]
    return (parse_timestamp(started_at) - parse_timestamp(due_at)).total_seconds()


__all__ = [
    "Attempt",
    "Batch",
    "Finished",
    "RunContext",
    "attempt",
    "backoff",
    "cancel_one",
    "cancel_pending",
    "finish",
    "lateness",
    "merge_patch",
]
