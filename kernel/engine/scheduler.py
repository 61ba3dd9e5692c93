"""The scheduler: claims due runs, carries them out, ends them; durable, never polling.

Runs are rows (``action_runs``), written in the transaction of the move that scheduled
them, so a committed move's runs are never lost and an undone move has none. One
scheduler per server process:

* **claim**: the due runs (``next_at`` passed), in ``next_at`` order, up to the free
  slots (``[actions] concurrency``), in one write transaction: ``running``, the attempt
  counted, leased until ``now + lease_seconds`` (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, the single writer on SQLite), so that several instances run each run
  once. A run whose instance died (a crash, a kill) is due again when its lease ends,
  and claimed by whichever instance comes first. Runs that fell due while nothing ran
  are claimed at the next start; their lateness (``started_at - due_at``) is recorded.
* **run**: the batch's orders are read in one snapshot, each run checked and carried
  out by its type's ``run`` concurrently (:func:`statusflow.engine.runs.attempt`);
* **end**: results are ended in groups (the group committer of the event path), many
  runs per transaction (:func:`statusflow.engine.runs.finish`); a result whose lease
  was taken over meanwhile is dropped (the other claim's wins).
* **sleep** until the soonest ``next_at``, or until woken: by a run written in this
  process that is due sooner (the engine tells it after each commit), by ``NOTIFY`` of
  a run written by another instance on PostgreSQL, by a slot freed; and at least every
  :data:`~statusflow.store.statements.WAKE_HORIZON` seconds, which covers runs written
  by other processes on SQLite. Idle it makes no query in between.

On stop it claims nothing more and waits up to :data:`STOP_GRACE` seconds for the runs
it carries out; the leases of those still running then lapse, and another instance (or
the next start) takes them over.

The time comes from a :class:`Clock`: tests give a :class:`ManualClock` and move it
forward by days instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from statusflow.engine import metrics
from statusflow.engine.runs import Attempt, Batch, Finished, OrderView, attempt, finish, lateness
from statusflow.serving.config import ActionSettings
from statusflow.store.database import database_unavailable
from statusflow.store.statements import WAKE_HORIZON, StorageConflict
from statusflow.timestamps import format_timestamp, parse_timestamp
from statusflow.types import KernelServices

if TYPE_CHECKING:
    from statusflow.engine.actions import ActionIndex
    from statusflow.engine.pipeline import Engine

log = structlog.get_logger("statusflow.scheduler")

STOP_GRACE = 10.0
"""Seconds a stopping scheduler waits for the runs it is carrying out."""
BUSY_PAUSE = 0.05
"""Seconds before looking again when runs are due but none could be claimed (another
instance holds them in its claiming transaction)."""
FAILURE_PAUSE = 1.0
"""Seconds before trying again after the database failed (it restarts, say)."""
FINISH_ATTEMPTS = 5


class Clock:
    """The scheduler's time: the system's."""

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        """Return after ``seconds``, or as soon as ``wake`` is set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=max(seconds, 0.0))


class ManualClock(Clock):
    """A clock that tests move by hand: the system's time plus an offset that only
    :meth:`advance` changes. Advancing it wakes every scheduler sleeping on it, so "three
    days later" takes no time at all."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._sleepers: set[asyncio.Event] = set()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, by: timedelta) -> None:
        """Move the time forward by ``by`` (and wake the schedulers)."""
        self.offset += by
        for wake in list(self._sleepers):
            wake.set()

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        self._sleepers.add(wake)
        try:
            await super().sleep(seconds, wake)
        finally:
            self._sleepers.discard(wake)


class Scheduler:
    """Runs the due runs of one app (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        settings: ActionSettings,
        kernel: KernelServices,
        order_view: OrderView,
        clock: Clock | None = None,
    ) -> None:
        from statusflow.engine.pipeline import GroupCommitter  # the engine imports this module

        self.engine = engine
        self.db = engine.db
        self.settings = settings
        self.kernel = kernel
        self.order_view = order_view
        self.clock = clock or Clock()
        self._wake = asyncio.Event()
        self._sleeping_until: str | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._finisher: Any = GroupCommitter(
            self._finish_group, writers=self.db.event_writers, transient=database_unavailable
        )
        self.listener = self.db.runs_listener(self._notified)
        """(PostgreSQL) the ``LISTEN`` for other instances' runs; ``None`` on SQLite."""
        self.ended = 0
        """Runs this scheduler ended (tests and logs)."""
        self.notified = 0
        """Notifications of runs written by other instances (PostgreSQL), received."""

    # lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop (and, on PostgreSQL, listen for other instances' runs)."""
        self._task = asyncio.create_task(self._run(), name="statusflow-scheduler")
        if self.listener is not None:
            self.listener.start()

    async def stop(self) -> None:
        """Claim nothing more; let the runs in flight end (up to :data:`STOP_GRACE`)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight:
            _, late = await asyncio.wait(self._inflight, timeout=STOP_GRACE)
            for task in late:  # their leases lapse; another instance takes them over
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._finisher.close()
        if self.listener is not None:
            await self.listener.stop()

    def hint(self, next_at: str) -> None:
        """A run was written that is due at ``next_at``: wake if that is sooner than the
        loop sleeps for."""
        until = self._sleeping_until
        if until is None or next_at < until:
            self._wake.set()

    def _notified(self, payload: str | None) -> None:
        if payload is None:  # (re)connected: notifications may have been missed
            self._wake.set()
        else:
            self.notified += 1
            self.hint(payload)

    def register_gauges(self) -> None:
        """The scheduler's gauges at ``/metrics`` (computed at scrape time)."""
        gauges = self.kernel.register_gauge
        gauges(
            "statusflow_action_runs_scheduled",
            "Action runs pending or running (all instances)",
            self._scheduled,
        )
        gauges(
            "statusflow_action_runs_due",
            "Action runs whose time has come and that no instance carries out yet",
            self._due,
        )
        gauges(
            "statusflow_action_runs_oldest_due_seconds",
            "How long the oldest due run has waited (0: none waits)",
            self._oldest_due,
        )

    async def _scheduled(self) -> int:
        async with self.db.read() as sql:
            return await sql.scheduled_run_count()

    async def _due(self) -> int:
        async with self.db.read() as sql:
            return await sql.due_run_count(format_timestamp(self.clock.now()))

    async def _oldest_due(self) -> float:
        async with self.db.read() as sql:
            next_at = await sql.next_run_at()
        if next_at is None:
            return 0.0
        return max((self.clock.now() - parse_timestamp(next_at)).total_seconds(), 0.0)

    # the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                delay = await self._step()
            except Exception as exc:
                if database_unavailable(exc):
                    log.warning("scheduler.step_failed", error=" ".join(str(exc).split()))
                else:
                    log.exception("scheduler.step_failed")
                delay = FAILURE_PAUSE
            if delay is None or self._stopping:
                continue
            now = self.clock.now()
            self._sleeping_until = format_timestamp(now + timedelta(seconds=delay))
            await self.clock.sleep(delay, self._wake)
            self._sleeping_until = None

    async def _step(self) -> float | None:
        """Claim what is due; how long to sleep (``None``: go again at once)."""
        now = self.clock.now()
        async with self.db.read() as sql:
            next_at = await sql.next_run_at()
        stamp = format_timestamp(now)
        free = self.settings.concurrency - len(self._inflight)
        if next_at is not None and next_at <= stamp:
            if free <= 0:
                return WAKE_HORIZON  # a run that ends frees a slot, and wakes the loop
            claimed = await self._claim(now, free)
            return None if claimed else BUSY_PAUSE
        if next_at is None:
            return WAKE_HORIZON
        wait = (parse_timestamp(next_at) - now).total_seconds()
        return min(max(wait, 0.0), WAKE_HORIZON)

    async def _claim(self, now: datetime, limit: int) -> int:
        """Lease up to ``limit`` due runs and start carrying them out; how many."""
        token = uuid.uuid4().hex
        lease_until = format_timestamp(now + timedelta(seconds=self.settings.lease_seconds))
        async with self.db.write() as sql:
            runs = await sql.claim_runs(format_timestamp(now), limit, token, lease_until)
        if not runs:
            return 0
        orders: dict[str, Mapping[str, Any]] = {}
        events: dict[str, dict[str, Any] | None] = {}
        index = await self._index()
        async with self.db.read() as sql:
            for row in await sql.orders_by_ids([run["order_id"] for run in runs]):
                orders[row["id"]] = row
            for run in runs:
                event_id = run["event_id"]
                action = index.by_id.get(run["action_id"])
                reads_event = action is not None and any(
                    c.source == "event" for c in action.conditions
                )
                if event_id is not None and reads_event and event_id not in events:
                    events[event_id] = await sql.event_data(event_id)
        for run in runs:
            self._observe_start(run)
            event = events.get(run["event_id"]) if run["event_id"] is not None else None
            order = orders.get(run["order_id"])
            task = asyncio.create_task(self._carry_out(run, token, order, event, index))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(runs)

    def _observe_start(self, run: Mapping[str, Any]) -> None:
        started = run["started_at"]
        if run["attempts"] == 1 and started is not None:
            late = lateness(run, started)
            metrics.RUN_LATENESS.observe(max(late, 0.0))
            if late > 60:
                log.info("run.late", run_id=run["id"], lateness_seconds=round(late, 3))

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("run.crashed", exc_info=task.exception())  # its lease lapses
        self._wake.set()

    async def _index(self) -> ActionIndex:
        async with self.db.read() as sql:
            planner = await self.engine.planner(sql)
        return planner.index

    # one run ----------------------------------------------------------------------------

    async def _carry_out(
        self,
        run: Mapping[str, Any],
        token: str,
        order: Mapping[str, Any] | None,
        event: dict[str, Any] | None,
        index: ActionIndex,
    ) -> None:
        result = await attempt(
            run,
            token,
            order,
            index,
            self.settings,
            self.kernel,
            self.order_view,
            self.clock.now,
            event,
        )
        try:
            await self._finisher.submit(result)
        except Exception:
            log.warning("run.end_retried_alone", run_id=run["id"])
            await self._finish_group([result])  # a group's failure: this one alone

    async def _finish_group(self, results: Sequence[Attempt]) -> list[None]:
        """End a group of runs in one transaction (retried when it lost a race)."""
        round_ = 1
        while True:
            try:
                finished = await self._finish_once(results)
                break
            except StorageConflict as exc:
                if round_ == FINISH_ATTEMPTS:
                    raise
                log.info("runs.end_retry", attempt=round_, error=str(exc))
                round_ += 1
        await self._after(finished)
        return [None] * len(results)

    async def _finish_once(self, results: Sequence[Attempt]) -> Finished:
        async with self.db.write() as sql:
            planner = await self.engine.planner(sql)
            statuses = frozenset((await self.engine.statuses(sql)).keys())
            batch = Batch(planner, statuses, self.settings, self.clock.now, self.engine.prepare)
            return await finish(sql, results, batch)

    async def _after(self, finished: Finished) -> None:
        """After the commit: metrics, logs, the sinks told of moves, the scheduler of runs."""
        for item in finished.lost:
            log.warning("run.lease_lost", run_id=item.run["id"], state=item.state)
        for item in finished.ended:
            self.ended += 1
            metrics.count_run(item.state)
            log.info(
                "run.ended",
                run_id=item.run["id"],
                action_id=item.run["action_id"],
                order_id=item.run["order_id"],
                state=item.state,
                attempts=item.run["attempts"],
                reason=item.reason,
            )
        self.engine.ran(finished.writes)
        for outcome in finished.outcomes:
            await self.engine.notify(outcome)


__all__ = ["Clock", "ManualClock", "Scheduler"]
