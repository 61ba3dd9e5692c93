"""The event path: validate -> resolve orders -> inspect -> match -> choose -> commit -> sinks.

Read top-down, this module is the whole life of an event:

1. :meth:`Engine.process` validates the posted events (:mod:`statusflow.engine.intake`; every 422
   happens before anything is stored) and hands them to the group committer
   (:class:`GroupCommitter`, at the end of this module), which gathers every request
   waiting while the previous transaction committed.
2. :meth:`Engine._evaluate` reads what the whole group needs in a few statements
   (:func:`statusflow.store.statements.load_snapshot`: stored results for idempotency, the orders
   named or found by contact, locked on PostgreSQL), then per event: resolve the orders,
   let plugins inspect it (durable state such as chat dialogs), match and choose the
   moves (:func:`choose_move`, contract §2), and record what to write.
3. The group's rows are written in one statement per table and committed; only then is
   each request answered and the status sinks told.

On SQLite a group is decided on a read snapshot, outside the write lock, and written in
a short transaction that first checks that what it read still reads the same
(:meth:`Engine._decide_then_write`): the write lock is held for the writes only. On
PostgreSQL the group's orders are locked instead.

Triggers and statuses are held in memory, triggers indexed by event type, and rebuilt
after any change through the API. Plugin failures never stop an event: they show in the
trace and the log (fault isolation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy
import structlog

from statusflow.engine import metrics
from statusflow.engine.actions import ActionIndex, RunPlanner, add_run
from statusflow.engine.decide import (
    INSPECT_ERRORS,
    CompiledTrigger,
    TraceGroup,
    TriggerClass,
    choose_move,
    classify,
    compile_trigger,
    expand,
    trace_of,
    trigger_view,
)
from statusflow.engine.intake import ParsedEvent, at_index, parse_events
from statusflow.errors import ApiError, not_found
from statusflow.hooks import runner
from statusflow.registry import Registry
from statusflow.store.database import Database, database_unavailable
from statusflow.store.schema import FINAL_SEMANTICS
from statusflow.store.statements import (
    DEFINITIONS_VERSION,
    DRIVER_ERRORS,
    DatabaseStateStore,
    GroupWrites,
    OrderState,
    Snapshot,
    StorageConflict,
    StoreSQL,
    load_snapshot,
)
from statusflow.timestamps import utc_now
from statusflow.types import Event, KernelServices, Match, Move, Outcome

log = structlog.get_logger("statusflow.engine")

MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """A status as the engine needs it."""

    id: str
    sort: int
    final: bool
    name: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    """One ``POST /api/events`` (or a plugin's ``submit_event``): events in order."""

    events: Sequence[ParsedEvent]
    only_trigger_id: int | None = None
    store_unknown_order: bool = False
    """An unknown ``order_id`` resolves to no order instead of a 404 (plugin routes)."""
    listed: bool = True
    """The events came as a list: an error's paths start with the event's index."""


@dataclass(slots=True)
class Processed:
    """A request's results, and the outcomes to tell the sinks after the commit."""

    results: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Listening:
    """The triggers listening to one event type, oldest first, and their classes."""

    triggers: tuple[CompiledTrigger, ...]
    classes: tuple[TriggerClass, ...]


NOBODY = Listening((), ())


class SnapshotChanged(Exception):
    """What a group was decided on changed before it could be written: roll it back."""


@dataclass(frozen=True, slots=True)
class Decided:
    """A group decided: its answers, and what they rest on."""

    answers: list[Processed | ApiError]
    snapshot: Snapshot
    state: DatabaseStateStore
    definitions: str | None
    """The definitions version the triggers, statuses and actions were read at."""

    async def write_if_unchanged(self, sql: StoreSQL, writes: GroupWrites, alone: bool) -> bool:
        """In the write transaction ``sql``: write ``writes`` if everything the decision
        read reads the same now (definitions, events, orders, plugins' marks); whether
        it did. ``alone``: nothing was written since the decision's snapshot began, so
        nothing needs reading again."""
        if not alone:
            if await sql.setting(DEFINITIONS_VERSION) != self.definitions:
                return False
            if not await self.snapshot.still_holds(sql):
                return False
        if not await self.state.settle(sql, check=not alone):
            return False
        await writes.write_to(sql)
        return True


def public_result(stored: Mapping[str, Any], duplicate: bool) -> dict[str, Any]:
    """An event's result as ``POST /api/events`` answers it."""
    return {
        "event_id": stored["event_id"],
        "duplicate": duplicate,
        "order_ids": list(stored["order_ids"]),
        "moves": list(stored["moves"]),
    }


# --- the engine --------------------------------------------------------------------------


class Engine:
    """Processes events and manual moves; owns the trigger and status caches."""

    def __init__(
        self,
        db: Database,
        pm: pluggy.PluginManager,
        registry: Registry,
        region: str,
        services: KernelServices,
    ) -> None:
        self.db = db
        self.pm = pm
        self.registry = registry
        self.region = region
        self.services = services
        self._generation = 0
        self._definitions_version: str | None = None
        self._triggers: dict[str, Listening] | None = None
        self._statuses: dict[str, StatusInfo] | None = None
        self._status_names: dict[str, str] = {}  # as last read: kept when caches are dropped
        self._actions: ActionIndex | None = None
        self.runs_written: Callable[[str], None] | None = None
        """Told the soonest ``next_at`` of the runs a transaction wrote, after its commit
        (the scheduler wakes early for it)."""
        self._hooks = runner(pm)  # the call plans, made once per plugin manager
        self._inspectors = self._hooks.plan("inspect_event")
        self._preparers = self._hooks.plan("prepare_moves")
        self._lock_orders = not db.is_sqlite
        self._committer: GroupCommitter[Request, Processed] = GroupCommitter(
            self._commit_group, writers=db.event_writers, transient=database_unavailable
        )

    async def close(self) -> None:
        """Finish queued work and stop the group committer."""
        await self._committer.close()

    # caches -----------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget cached triggers, statuses and actions."""
        self._generation += 1
        self._triggers = None
        self._statuses = None
        self._actions = None

    async def definitions_changed(self, sql: StoreSQL) -> None:
        """Record, in the caller's transaction, that triggers, actions or statuses changed.

        Every instance on the database compares this version at the start of each
        group and rebuilds its caches when it differs, so a change made on one instance
        acts on all of them from their next transaction on.
        """
        await sql.set_setting(DEFINITIONS_VERSION, uuid.uuid4().hex)
        self.invalidate()

    async def _check_definitions(self, sql: StoreSQL) -> None:
        version = await sql.setting(DEFINITIONS_VERSION)
        if version != self._definitions_version:
            self.invalidate()
            self._definitions_version = version

    async def statuses(self, sql: StoreSQL) -> dict[str, StatusInfo]:
        """The pipeline by status id (cached)."""
        cached = self._statuses
        if cached is not None:
            return cached
        generation = self._generation
        statuses = {
            id_: StatusInfo(id_, sort, semantics in FINAL_SEMANTICS, name)
            for id_, sort, semantics, name in await sql.statuses()
        }
        self._status_names = {id_: status.name for id_, status in statuses.items()}
        if generation == self._generation:
            self._statuses = statuses
        return statuses

    def status_name(self, status_id: str) -> str | None:
        """The name of the status ``status_id`` as last read, ``None`` if unknown."""
        return self._status_names.get(status_id)

    async def triggers_by_event(self, sql: StoreSQL) -> dict[str, Listening]:
        """Active triggers by the event type they listen to, oldest first, and their
        classes (cached)."""
        cached = self._triggers
        if cached is not None:
            return cached
        generation = self._generation
        rows = await sql.triggers()
        by_event: dict[str, list[CompiledTrigger]] = {}
        for row in rows:
            compiled = compile_trigger(trigger_view(row), self.registry)
            if compiled is None:
                continue
            for event_type in compiled.trigger_type.events:
                by_event.setdefault(event_type, []).append(compiled)
        result = {k: Listening(tuple(v), classify(v)) for k, v in by_event.items()}
        if generation == self._generation:
            self._triggers = result
        return result

    async def actions(self, sql: StoreSQL) -> ActionIndex:
        """Every action, compiled, and each status's enabled ones (cached)."""
        cached = self._actions
        if cached is not None:
            return cached
        generation = self._generation
        index = ActionIndex.build(await sql.action_rows(), self.registry)
        if generation == self._generation:
            self._actions = index
        return index

    async def planner(self, sql: StoreSQL) -> RunPlanner:
        """The run planner of the current actions (checks the definitions version)."""
        await self._check_definitions(sql)
        return RunPlanner(await self.actions(sql))

    def ran(self, writes: GroupWrites) -> None:
        """After a commit: tell the scheduler about the runs written."""
        if writes.earliest_run is not None and self.runs_written is not None:
            self.runs_written(writes.earliest_run)

    # events -------------------------------------------------------------------------

    async def process(
        self,
        bodies: Sequence[Any],
        *,
        dry_run: bool = False,
        only_trigger_id: int | None = None,
        allow_private: bool = False,
        check_storable: bool = True,
        store_unknown_order: bool = False,
        listed: bool = True,
    ) -> list[dict[str, Any]]:
        """Process a list of event bodies atomically; return their results, in order.

        The list is validated whole first; a 422 or 404 stores nothing. Results are
        answered only after the commit; then the status sinks are told. With
        ``store_unknown_order``, an unknown ``order_id`` resolves to no order (no 404).

        :param listed: the bodies came as a list (an error names the event's index);
            ``False`` for one event sent alone.
        """
        started = time.perf_counter()
        try:
            parsed = parse_events(
                list(bodies),
                self.registry,
                self.region,
                allow_private=allow_private,
                check_storable=check_storable,
                listed=listed,
            )
            request = Request(parsed, only_trigger_id, store_unknown_order, listed)
            if dry_run:
                processed = await self._dry_run(request)
            else:
                processed = await self._committer.submit(request)
        except ApiError:
            if not dry_run:
                metrics.count_rejected(bodies, self.registry.event_types)
            raise
        if not dry_run:
            metrics.LATENCY.observe(time.perf_counter() - started)
        debug = log.is_enabled_for(logging.DEBUG)
        for result, item in zip(processed.results, parsed, strict=True):
            if not dry_run:
                metrics.count_event(item.event.type, result)
            if not debug:
                continue
            log.debug(  # the stored event has it all; moves are logged by the sink
                "event.processed",
                event_id=result["event_id"],
                type=item.event.type,
                duplicate=result["duplicate"],
                order_ids=result["order_ids"],
                moves=[(m["order_id"], m["from"], m["to"]) for m in result["moves"]],
                dry_run=dry_run,
            )
        for outcome in processed.outcomes:
            await self.notify(outcome)
        return processed.results

    async def _dry_run(self, request: Request) -> Processed:
        async with self.db.read() as sql:
            answer = (await self._evaluate(sql, [request], None, defer=True)).answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def _commit_group(self, requests: Sequence[Request]) -> list[Processed | ApiError]:
        """Decide and write a group of requests in one transaction (retried on conflicts).

        On SQLite the group is first decided outside the write lock
        (:meth:`_decide_then_write`); only when what it read changed meanwhile is it
        decided again inside the lock, as on PostgreSQL, whose orders are locked instead.
        """
        if self.db.is_sqlite:
            answers = await self._decide_then_write(requests)
            if answers is not None:
                return answers
            metrics.GROUPS_DECIDED_AGAIN.inc()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self.db.write() as sql:
                    writes = GroupWrites()
                    answers = (await self._evaluate(sql, requests, writes)).answers
                    await writes.write_to(sql)
                self.ran(writes)
                return answers
            except StorageConflict as exc:
                # A concurrent duplicate event id, or a deadlock, on PostgreSQL: the
                # transaction rolled back whole; run it again (duplicates now answer as such).
                if attempt == MAX_ATTEMPTS:
                    raise
                log.info("group.retry", attempt=attempt, error=str(exc))
        raise AssertionError("unreachable")

    async def _decide_then_write(
        self, requests: Sequence[Request]
    ) -> list[Processed | ApiError] | None:
        """SQLite: decide the group on a read snapshot, without the write lock, then write
        it in a short transaction that first checks that nothing the decision read has
        changed (another process's groups, the admin API, the scheduler's moves), so that
        the write lock is held for the writes only. ``None``: something had changed,
        nothing was written."""
        writes = GroupWrites()
        async with self.db.read() as sql:  # begun after this writer's last commit
            decided = await self._evaluate(sql, requests, writes, defer=True)
        writes.encode()
        try:
            async with self.db.write_checked() as (sql, alone):
                if not await decided.write_if_unchanged(sql, writes, alone):
                    raise SnapshotChanged
        except SnapshotChanged:
            log.debug("group.decided_again", size=len(requests))
            return None
        self.ran(writes)
        return decided.answers

    async def _evaluate(
        self,
        sql: StoreSQL,
        requests: Sequence[Request],
        writes: GroupWrites | None,
        defer: bool = False,
    ) -> Decided:
        """Decide every event of ``requests``; with ``writes`` (not a dry run), record rows.

        :param defer: plugins' claims are remembered, not written (a dry run, or a
            decision written later by :meth:`Decided.write_if_unchanged`).
        """
        await self._check_definitions(sql)
        statuses = await self.statuses(sql)
        triggers = await self.triggers_by_event(sql)
        planner = RunPlanner(await self.actions(sql))
        items = [item for request in requests for item in request.events]
        snapshot = await load_snapshot(
            sql,
            (i.event.id for i in items if i.client_id),
            (i.event.order_id for i in items if i.event.order_id is not None),
            (pair for i in items for pair in i.lookup),
            lock=writes is not None and self._lock_orders,
            keep_reads=defer and writes is not None,  # written later: checked then
        )
        state = DatabaseStateStore(sql, defer=defer)
        done: dict[str, Mapping[str, Any]] = dict(snapshot.stored_results)
        answers: list[Processed | ApiError] = []
        for request in requests:
            problem = _unknown_order(request, snapshot, done)
            if problem is not None:
                answers.append(problem)
                continue
            processed = Processed()
            for item in request.events:
                result, outcome = await self._decide(
                    item, request, snapshot, statuses, triggers, state, done, writes, planner
                )
                processed.results.append(result)
                if outcome is not None:
                    processed.outcomes.append(outcome)
            answers.append(processed)
        return Decided(answers, snapshot, state, self._definitions_version)

    async def _decide(
        self,
        item: ParsedEvent,
        request: Request,
        snapshot: Snapshot,
        statuses: Mapping[str, StatusInfo],
        triggers: Mapping[str, Listening],
        state: DatabaseStateStore,
        done: dict[str, Mapping[str, Any]],
        writes: GroupWrites | None,
        planner: RunPlanner,
    ) -> tuple[dict[str, Any], Outcome | None]:
        """One event: its result, and (in a real run) the outcome for the sinks."""
        event = item.event
        earlier = done.get(event.id) if item.client_id else None
        if earlier is not None:
            repeated = public_result(earlier, True)
            if writes is None:  # a dry run's results carry their trace: the first one's
                repeated.update(trace=trace_of(earlier), dry_run=True)
            return repeated, None
        at = utc_now()
        orders = _resolve(event, item, snapshot, statuses)
        if self._inspectors:
            await self._inspect(event, state)
        listening = triggers.get(event.type, NOBODY)
        classes = listening.classes
        if request.only_trigger_id is not None:
            only = request.only_trigger_id
            classes = classify([t for t in listening.triggers if t.view.id == only])
        trace: list[TraceGroup] = []
        memo: dict[tuple[str, bytes], Match | str] = {}
        moves: list[Move] = []
        for order in orders:
            winner, order_trace = choose_move(order, event, classes, statuses, memo)
            trace.extend(order_trace)
            if winner is not None:
                target = winner.view.status
                moves.append(
                    Move(
                        order.id,
                        order.status,
                        target,
                        winner.view.id,
                        event.id,
                        event.type,
                        at,
                        winner.view.type,
                    )
                )
                order.status = target  # later events of the group see the move
        order_ids = [o.id for o in orders]
        stored: dict[str, Any] = {
            "event_id": event.id,
            "order_ids": order_ids,
            "moves": [m.as_json() for m in moves],
            "trace_groups": trace,
        }
        done[event.id] = stored
        result = public_result(stored, False)
        if writes is None:
            result.update(trace=expand(trace), dry_run=True)
            if moves:  # the runs the moves would schedule, and when
                result["runs"] = _planned_runs(planner, moves, snapshot, event.id)
            return result, None
        outcome = Outcome(event, tuple(order_ids), tuple(moves), at)
        sink_errors = self.prepare(outcome, writes)
        if sink_errors:
            stored["errors"] = sink_errors
        epochs = {m.order_id: snapshot.orders[m.order_id].epoch + 1 for m in moves}
        writes.add_moves(moves, epochs)
        for m in moves:
            if planner.has_actions(m.from_status) or planner.has_actions(m.to_status):
                cause = f"trigger {m.trigger_id}, event {event.id!r}"
                planner.move(
                    writes,
                    m.order_id,
                    m.from_status,
                    m.to_status,
                    epochs[m.order_id],
                    at,
                    cause,
                    event.id,
                )
        writes.add_event(event, stored, at)
        return result, outcome

    async def _inspect(self, event: Event, state: DatabaseStateStore) -> None:
        """Call every ``inspect_event``; a failing plugin is noted, never fatal."""
        kwargs = {"event": event, "state": state, "kernel": self.services}
        for impl in self._inspectors:
            try:
                await impl.acall(kwargs)
            except DRIVER_ERRORS:
                raise  # the transaction is broken: the group fails (or is retried)
            except Exception as exc:
                log.exception("plugin.inspect_failed", plugin=impl.plugin_name, event_id=event.id)
                metrics.plugin_error(impl.plugin_name, "inspect_event")
                errors = event.facts.setdefault(INSPECT_ERRORS, {})
                errors[impl.plugin_name] = (
                    f"plugin {impl.plugin_name!r} failed to inspect the event: {exc!r}"
                )

    def prepare(self, outcome: Outcome, writes: GroupWrites) -> list[str]:
        """Call every ``prepare_moves``; a failing sink's rows are dropped, and noted."""
        errors = []
        kwargs = {"outcome": outcome, "tx": writes, "kernel": self.services}
        for impl in self._preparers:
            mark = writes.mark()
            try:
                impl.call(kwargs)
            except Exception as exc:
                writes.rewind(mark)
                log.exception("plugin.sink_failed", plugin=impl.plugin_name, hook="prepare_moves")
                metrics.plugin_error(impl.plugin_name, "prepare_moves")
                errors.append(f"plugin {impl.plugin_name!r} failed in prepare_moves: {exc!r}")
        return errors

    # manual moves ---------------------------------------------------------------------

    async def record_manual_move(
        self, sql: StoreSQL, order_id: str, from_status: str, to_status: str, epoch: int
    ) -> tuple[Outcome, GroupWrites]:
        """Record a move made through ``PATCH /api/orders`` in the caller's transaction
        (the order locked, at ``status_epoch`` ``epoch``): its runs too.

        After the commit, call :meth:`committed` with what this answers.
        """
        await self._check_definitions(sql)
        await self.statuses(sql)  # the names the status sinks show
        at = utc_now()
        move = Move(order_id, from_status, to_status, None, None, None, at)
        outcome = Outcome(None, (order_id,), (move,), at)
        writes = GroupWrites()
        writes.add_moves([move], {order_id: epoch + 1})
        planner = await self.planner(sql)
        planner.move(writes, order_id, from_status, to_status, epoch + 1, at, "a manual move")
        self.prepare(outcome, writes)
        await writes.write_to(sql)
        return outcome, writes

    async def record_new_order(
        self, sql: StoreSQL, order_id: str, status: str, at: str
    ) -> GroupWrites:
        """Schedule the runs of an order created in ``status``, in the caller's transaction."""
        writes = GroupWrites()
        planner = await self.planner(sql)
        if planner.has_actions(status):
            planner.enter(writes, order_id, status, 0, at)
            await writes.write_to(sql)
        return writes

    async def schedule_existing(self, sql: StoreSQL, action_id: int, writes: GroupWrites) -> None:
        """A new action applies to the orders already in its status: one run each, its
        delay counted from when the order entered the status (it waits for no run
        before it); written in the caller's transaction."""
        planner = await self.planner(sql)
        action = planner.index.by_id.get(action_id)
        if action is None or action.action_type is None or not action.enabled:
            return
        for row in await sql.orders_entered(action.view.status):
            add_run(writes, action, row["id"], int(row["status_epoch"]), row["entered_at"])
        await writes.write_to(sql)

    async def committed(self, outcome: Outcome | None, writes: GroupWrites) -> None:
        """After a manual move's (or a new order's) commit: tell the sinks and the scheduler."""
        self.ran(writes)
        if outcome is not None:
            await self.notify(outcome)

    async def notify(self, outcome: Outcome) -> None:
        """Tell the status sinks about a committed outcome; their failures are only logged."""
        if outcome.event is None:  # a manual or an action's move (process counts the others)
            for move in outcome.moves:
                metrics.count_manual_move(move.to_status, move.action_id is not None)
        kwargs = {"outcome": outcome, "kernel": self.services}
        await self._hooks.acall("moves_committed", kwargs, _sink_failed)


def _sink_failed(plugin: str, exc: Exception) -> None:
    """A ``moves_committed`` sink's failure: logged and counted, never undoing the commit."""
    log.error("plugin.sink_failed", plugin=plugin, hook="moves_committed", exc_info=exc)
    metrics.plugin_error(plugin, "moves_committed")


def _planned_runs(
    planner: RunPlanner, moves: Sequence[Move], snapshot: Snapshot, event_id: str
) -> list[dict[str, Any]]:
    """A dry run's answer: the runs its moves would schedule (``due_at`` ``None`` for one
    that waits for the run before it)."""
    scratch = GroupWrites()
    for m in moves:
        epoch = snapshot.orders[m.order_id].epoch + 1
        planner.move(scratch, m.order_id, m.from_status, m.to_status, epoch, m.at, "", event_id)
    return [
        {"order_id": row[1], "action_id": row[0], "status": row[2], "due_at": row[7]}
        for row in scratch.runs
        if row[4] == "pending"
    ]


def _unknown_order(
    request: Request, snapshot: Snapshot, done: Mapping[str, Any]
) -> ApiError | None:
    """The 404 of a request naming an unknown order (duplicates excepted), checked first."""
    if request.store_unknown_order:
        return None
    ids: set[str] = set()
    for index, item in enumerate(request.events):
        event = item.event
        if item.client_id and (event.id in done or event.id in ids):
            continue
        ids.add(event.id)
        if event.order_id is not None and event.order_id not in snapshot.orders:
            message = f"order {event.order_id[:200]!r} not found"
            problem = {"path": "/order_id", "message": "is not a known order"}
            error = not_found(message, [problem], "order_not_found")
            return at_index(error, index) if request.listed else error
    return None


def _resolve(
    event: Event, item: ParsedEvent, snapshot: Snapshot, statuses: Mapping[str, StatusInfo]
) -> list[OrderState]:
    """The orders an event is for: its ``order_id`` (none when it is unknown, which only
    a request with ``store_unknown_order`` lets through), or its contact's open orders."""
    if event.order_id is not None:
        named = snapshot.orders.get(event.order_id)
        return [] if named is None else [named]
    ids: set[str] = set()
    for pair in item.lookup:
        ids.update(snapshot.orders_by_identifier.get(pair, ()))
    found = []
    for order_id in sorted(ids):
        order = snapshot.orders.get(order_id)
        if order is None:
            continue
        status = statuses.get(order.status)
        if status is not None and status.final:
            continue
        found.append(order)
    return found


__all__ = ["Engine", "GroupCommitter", "Listening", "public_result"]


# --- group commit --------------------------------------------------------------------
# While a transaction commits (an fsync on SQLite, a round trip on PostgreSQL), new
# requests queue up; a writer task takes them all for the next transaction. Each request
# is answered only after the transaction holding it committed. SQLite has one writer;
# PostgreSQL, where a group spends most of its time waiting for round trips and rows are
# locked, can have a few, each taking what has queued when it is free.

Job = TypeVar("Job")
Answer = TypeVar("Answer")

group_log = structlog.get_logger("statusflow.groupcommit")

MAX_GROUP = 256


class GroupCommitter(Generic[Job, Answer]):
    """Runs ``run_group(jobs)`` for batches of submitted jobs, one batch at a time.

    ``run_group`` returns one answer per job: a value, or an exception to raise in that
    job's submitter. If ``run_group`` itself raises, every job of the batch gets it, and
    the failure is logged: with its traceback, unless ``transient(exc)`` says it is
    expected now and then (the database restarting), then in one line.
    """

    def __init__(
        self,
        run_group: Callable[[Sequence[Job]], Awaitable[Sequence[Answer | BaseException]]],
        writers: int = 1,
        transient: Callable[[BaseException], bool] = lambda exc: False,
    ) -> None:
        self._run_group = run_group
        self._transient = transient
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[Answer]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._writers = writers

    async def submit(self, job: Job) -> Answer:
        """Queue ``job`` and wait until the transaction holding it has committed."""
        if len(self._tasks) < self._writers or any(task.done() for task in self._tasks):
            self._tasks = [task for task in self._tasks if not task.done()]
            while len(self._tasks) < self._writers:
                name = f"statusflow-group-commit-{len(self._tasks)}"
                self._tasks.append(asyncio.create_task(self._writer(), name=name))
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))
        return await future

    async def close(self) -> None:
        """Finish the queued jobs, then stop the writer."""
        while not self._queue.empty() and any(not task.done() for task in self._tasks):
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_GROUP and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            live = [(job, fut) for job, fut in batch if not fut.cancelled()]
            if not live:
                continue
            try:
                answers = await self._run_group([job for job, _ in live])
            except asyncio.CancelledError:
                for _, future in live:
                    if not future.done():
                        future.set_exception(RuntimeError("the server is shutting down"))
                raise
            except BaseException as exc:  # every job of the batch learns of it
                if self._transient(exc):  # expected now and then: a line, no traceback
                    error = " ".join(str(exc).split())
                    group_log.warning("group.failed", size=len(live), error=error)
                else:
                    group_log.exception("group.failed", size=len(live))
                answers = [exc] * len(live)
            for (_, future), answer in zip(live, answers, strict=True):
                if future.done():
                    continue
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
