"""The event path: validate -> resolve orders -> inspect -> match -> choose -> commit -> sinks.

Read top-down, this module is the whole life of an event. It talks to the database
with SQLAlchemy Core statements on one connection per batch (no ORM session on the
hot path) and keeps triggers and statuses in memory, indexed by event type and
invalidated whenever the admin API changes them.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy
import structlog
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from kernel.errors import ApiError, not_found
from kernel.events import ParsedEvent, parse_events
from kernel.matching import CompiledTrigger, compile_trigger, failed_condition
from kernel.models import (
    FINAL_SEMANTICS,
    EventRecord,
    MoveRecord,
    Order,
    OrderIdentifier,
    PluginMark,
    Status,
    TimelineEntry,
    Trigger,
)
from kernel.plugins import Registry
from kernel.storage import Database
from kernel.types import Event, KernelServices, Move, Outcome, TriggerView
from kernel.validation import utc_now

log = structlog.get_logger("statusflow.engine")

EVENTS = EventRecord.__table__  # type: ignore[attr-defined]
MOVES = MoveRecord.__table__  # type: ignore[attr-defined]
ORDERS = Order.__table__  # type: ignore[attr-defined]
IDENTIFIERS = OrderIdentifier.__table__  # type: ignore[attr-defined]
MARKS = PluginMark.__table__  # type: ignore[attr-defined]
STATUSES = Status.__table__  # type: ignore[attr-defined]
TIMELINE = TimelineEntry.__table__  # type: ignore[attr-defined]
TRIGGERS = Trigger.__table__  # type: ignore[attr-defined]

MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """A status as the engine needs it."""

    id: str
    sort: int
    final: bool


@dataclass(slots=True)
class OrderState:
    """An order as the engine reads it inside the transaction."""

    id: str
    status: str
    doc: Mapping[str, Any]


# --- plugin state and the transaction handed to sinks --------------------------------


class DatabaseStateStore:
    """:class:`kernel.StateStore` on the ``plugin_marks`` table, inside the event's transaction."""

    def __init__(self, conn: AsyncConnection, dry_run: bool) -> None:
        self._conn = conn
        self._dry_run = dry_run
        self._claimed_in_dry_run: set[tuple[str, str]] = set()

    async def seen(self, namespace: str, key: str) -> bool:
        if self._dry_run and (namespace, key) in self._claimed_in_dry_run:
            return True
        query = select(MARKS.c.id).where(MARKS.c.namespace == namespace, MARKS.c.key == key)
        return (await self._conn.execute(query.limit(1))).first() is not None

    async def claim(self, namespace: str, key: str) -> bool:
        if self._dry_run:
            first = not await self.seen(namespace, key)
            self._claimed_in_dry_run.add((namespace, key))
            return first
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(MARKS)
            .values(namespace=namespace, key=key, created_at=utc_now())
            .on_conflict_do_nothing(index_elements=["namespace", "key"])
        )
        result = await self._conn.execute(statement)
        return bool(result.rowcount == 1)


class BufferedTransaction:
    """:class:`kernel.Transaction`: rows that sinks add, written in one statement each."""

    def __init__(self) -> None:
        self.timeline: list[dict[str, Any]] = []

    def add_timeline(self, order_id: str, kind: str, data: Mapping[str, Any], at: str) -> None:
        self.timeline.append({"order_id": order_id, "kind": kind, "data": dict(data), "at": at})

    async def flush(self, conn: AsyncConnection) -> None:
        if self.timeline:
            await conn.execute(TIMELINE.insert(), self.timeline)
            self.timeline = []


# --- choosing a move ---------------------------------------------------------------------


def choose_move(
    order: OrderState,
    event: Event,
    triggers: Sequence[CompiledTrigger],
    statuses: Mapping[str, StatusInfo],
) -> tuple[CompiledTrigger | None, list[dict[str, Any]]]:
    """Apply contract §2 to one order: the winning trigger (or none) and the trace."""
    current = statuses.get(order.status)
    trace: dict[int, dict[str, Any]] = {}
    eligible: list[tuple[int, int, CompiledTrigger]] = []

    def skip(trigger: CompiledTrigger, reason: str) -> None:
        trace[trigger.view.id] = _entry(order.id, trigger.view.id, "skipped", reason)

    for trigger in triggers:
        view = trigger.view
        if not view.enabled:
            skip(trigger, "trigger is disabled")
            continue
        try:
            match = trigger.trigger_type.match(view.settings, event)
        except Exception as exc:  # a plugin's bug never stops the event
            log.exception("plugin.match_failed", plugin=trigger.plugin, trigger_id=view.id)
            skip(trigger, f"plugin {trigger.plugin!r} failed to match: {exc!r}")
            continue
        if not match.matched:
            skip(trigger, f"settings do not match: {match.reason}")
            continue
        failure = failed_condition(trigger.conditions, order.status, order.doc, event)
        if failure is not None:
            skip(trigger, failure)
            continue
        target = statuses.get(view.status)
        if target is None:
            skip(trigger, f"target status {view.status!r} does not exist")
            continue
        if view.status == order.status:
            skip(trigger, f"order is already in status {view.status!r}")
            continue
        if current is not None and target.sort < current.sort and not view.allow_backwards:
            skip(
                trigger,
                f"backwards not allowed: {view.status!r} (sort {target.sort}) comes before "
                f"{order.status!r} (sort {current.sort})",
            )
            continue
        eligible.append((target.sort, view.id, trigger))
    winner: CompiledTrigger | None = None
    if eligible:
        eligible.sort(key=lambda item: (item[0], item[1]))
        winner = eligible[0][2]
        trace[winner.view.id] = _entry(
            order.id,
            winner.view.id,
            "moved",
            f"moved from {order.status!r} to {winner.view.status!r}",
        )
        for _sort, trigger_id, _trigger in eligible[1:]:
            trace[trigger_id] = _entry(
                order.id,
                trigger_id,
                "skipped",
                f"lost to trigger {winner.view.id} (its target {winner.view.status!r} comes first)",
            )
    return winner, [trace[t.view.id] for t in triggers]


def _entry(order_id: str, trigger_id: int, outcome: str, reason: str) -> dict[str, Any]:
    return {"order_id": order_id, "trigger_id": trigger_id, "outcome": outcome, "reason": reason}


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
        self._triggers: dict[str, tuple[CompiledTrigger, ...]] | None = None
        self._statuses: dict[str, StatusInfo] | None = None
        self._has_inspectors = bool(pm.hook.inspect_event.get_hookimpls())

    # caches -----------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget cached triggers and statuses (call after changing either)."""
        self._generation += 1
        self._triggers = None
        self._statuses = None

    async def statuses(self, conn: AsyncConnection) -> dict[str, StatusInfo]:
        """The pipeline by status id (cached)."""
        cached = self._statuses
        if cached is not None:
            return cached
        generation = self._generation
        rows = (
            await conn.execute(select(STATUSES.c.id, STATUSES.c.sort, STATUSES.c.semantics))
        ).all()
        statuses = {r.id: StatusInfo(r.id, r.sort, r.semantics in FINAL_SEMANTICS) for r in rows}
        if generation == self._generation:
            self._statuses = statuses
        return statuses

    async def triggers_by_event(
        self, conn: AsyncConnection
    ) -> dict[str, tuple[CompiledTrigger, ...]]:
        """Active triggers by the event type they listen to, oldest first (cached)."""
        cached = self._triggers
        if cached is not None:
            return cached
        generation = self._generation
        rows = (await conn.execute(select(TRIGGERS).order_by(TRIGGERS.c.id))).mappings().all()
        by_event: dict[str, list[CompiledTrigger]] = {}
        for row in rows:
            compiled = compile_trigger(trigger_view(row), self.registry)
            if compiled is None:
                continue
            for event_type in compiled.trigger_type.events:
                by_event.setdefault(event_type, []).append(compiled)
        result = {k: tuple(v) for k, v in by_event.items()}
        if generation == self._generation:
            self._triggers = result
        return result

    # events -------------------------------------------------------------------------

    async def process(
        self,
        bodies: Sequence[Any],
        *,
        dry_run: bool = False,
        only_trigger_id: int | None = None,
        allow_private: bool = False,
    ) -> list[dict[str, Any]]:
        """Process a list of event bodies in one transaction; return their results.

        The list is validated whole first; a 422 or 404 stores nothing. Results are
        answered only after the commit; then the status sinks are told.
        """
        parsed = parse_events(list(bodies), self.registry, self.region, allow_private=allow_private)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if dry_run:
                    # A dry run applies its moves inside a write transaction, so that a later
                    # event of the list sees them as a real run would, then rolls back.
                    async with self.db.write() as conn:
                        results, outcomes = await self._run(conn, parsed, True, only_trigger_id)
                        await conn.rollback()
                else:
                    async with self.db.write() as conn:
                        results, outcomes = await self._run(conn, parsed, False, only_trigger_id)
                break
            except (IntegrityError, DBAPIError) as exc:
                # A concurrent duplicate event id or a deadlock on PostgreSQL: the
                # transaction rolled back whole; run it again (duplicates now answer as such).
                if attempt == MAX_ATTEMPTS or not _retryable(exc):
                    raise
                log.info("event.retry", attempt=attempt, error=type(exc.orig).__name__)
        for result in results:
            log.info(
                "event.processed",
                event_id=result["event_id"],
                type=result.get("type"),
                duplicate=result["duplicate"],
                order_ids=result["order_ids"],
                moves=[(m["order_id"], m["from"], m["to"]) for m in result["moves"]],
                dry_run=dry_run,
            )
            result.pop("type", None)
        for outcome in outcomes:
            await self.notify(outcome)
        return results

    async def _run(
        self,
        conn: AsyncConnection,
        parsed: Sequence[ParsedEvent],
        dry_run: bool,
        only_trigger_id: int | None,
    ) -> tuple[list[dict[str, Any]], list[Outcome]]:
        statuses = await self.statuses(conn)
        triggers = await self.triggers_by_event(conn)
        state = DatabaseStateStore(conn, dry_run)
        tx = BufferedTransaction()
        results: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        in_batch: dict[str, dict[str, Any]] = {}
        for item in parsed:
            event = item.event
            if item.client_id:
                earlier = in_batch.get(event.id) or await self._stored_result(conn, event.id)
                if earlier is not None:
                    repeated = {**public_result(earlier, True), "type": event.type}
                    if dry_run:  # a dry run's results carry their trace: the first one's
                        repeated.update(trace=list(earlier["trace"]), dry_run=True)
                    results.append(repeated)
                    continue
            at = utc_now()
            orders = await self._resolve(conn, event, item.lookup, statuses, lock=not dry_run)
            if self._has_inspectors:
                await self._inspect(event, state)
            candidates = triggers.get(event.type, ())
            if only_trigger_id is not None:
                candidates = tuple(t for t in candidates if t.view.id == only_trigger_id)
            trace: list[dict[str, Any]] = []
            moves: list[Move] = []
            for order in orders:
                winner, order_trace = choose_move(order, event, candidates, statuses)
                trace.extend(order_trace)
                if winner is not None:
                    moves.append(
                        Move(
                            order.id,
                            order.status,
                            winner.view.status,
                            winner.view.id,
                            event.id,
                            event.type,
                            at,
                        )
                    )
            order_ids = [o.id for o in orders]
            stored: dict[str, Any] = {
                "event_id": event.id,
                "order_ids": order_ids,
                "moves": [m.as_json() for m in moves],
                "trace": trace,
            }
            result = {**public_result(stored, False), "type": event.type}
            if dry_run:
                result["trace"] = trace
                result["dry_run"] = True
                await self._apply_moves(conn, moves, at)  # rolled back with the dry run
            else:
                outcome = Outcome(event, tuple(order_ids), tuple(moves), at)
                await self._write_event(conn, event, stored, at)
                await self._apply_moves(conn, moves, at)
                self.pm.hook.prepare_moves(outcome=outcome, tx=tx)
                await tx.flush(conn)
                outcomes.append(outcome)
            in_batch[event.id] = stored
            results.append(result)
        return results, outcomes

    async def _stored_result(self, conn: AsyncConnection, event_id: str) -> dict[str, Any] | None:
        row = (await conn.execute(select(EVENTS.c.result).where(EVENTS.c.id == event_id))).first()
        return None if row is None else dict(row[0])

    async def _resolve(
        self,
        conn: AsyncConnection,
        event: Event,
        lookup: Iterable[tuple[str, str]],
        statuses: Mapping[str, StatusInfo],
        lock: bool,
    ) -> list[OrderState]:
        """The orders an event is for: its ``order_id``, or contact fan-out."""
        query = select(ORDERS.c.id, ORDERS.c.status, ORDERS.c.doc)
        if event.order_id is not None:
            query = query.where(ORDERS.c.id == event.order_id)
        else:
            pairs = [and_(IDENTIFIERS.c.kind == k, IDENTIFIERS.c.value == v) for k, v in lookup]
            matching = select(IDENTIFIERS.c.order_id).where(or_(*pairs)).distinct()
            finals = [s.id for s in statuses.values() if s.final]
            query = query.where(ORDERS.c.id.in_(matching.scalar_subquery()))
            if finals:
                query = query.where(ORDERS.c.status.not_in(finals))
        query = query.order_by(ORDERS.c.id)
        if lock and not self.db.is_sqlite:
            query = query.with_for_update()
        rows = (await conn.execute(query)).all()
        if event.order_id is not None and not rows:
            raise not_found(f"order {event.order_id!r} not found", {"order_id": event.order_id})
        return [OrderState(r.id, r.status, r.doc) for r in rows]

    async def _inspect(self, event: Event, state: DatabaseStateStore) -> None:
        for impl in self.pm.hook.inspect_event.get_hookimpls():
            try:
                outcome = impl.function(event=event, state=state)
                if inspect.isawaitable(outcome):
                    await outcome
            except DBAPIError:
                raise
            except Exception as exc:
                log.exception("plugin.inspect_failed", plugin=impl.plugin_name, event_id=event.id)
                event.facts.setdefault("plugin_errors", []).append(
                    f"plugin {impl.plugin_name!r} failed to inspect the event: {exc!r}"
                )

    async def _write_event(
        self, conn: AsyncConnection, event: Event, stored: Mapping[str, Any], at: str
    ) -> None:
        await conn.execute(
            EVENTS.insert().values(
                id=event.id,
                type=event.type,
                order_id=event.order_id,
                contact=dict(event.contact),
                data=dict(event.data),
                occurred_at=event.occurred_at,
                received_at=at,
                result=dict(stored),
            )
        )

    async def _apply_moves(self, conn: AsyncConnection, moves: Sequence[Move], at: str) -> None:
        for move in moves:
            await conn.execute(
                update(ORDERS)
                .where(ORDERS.c.id == move.order_id)
                .values(status=move.to_status, updated_at=at)
            )
        if moves:
            await conn.execute(
                MOVES.insert(),
                [
                    {
                        "order_id": m.order_id,
                        "from_status": m.from_status,
                        "to_status": m.to_status,
                        "trigger_id": m.trigger_id,
                        "event_id": m.event_id,
                        "event_type": m.event_type,
                        "at": m.at,
                    }
                    for m in moves
                ],
            )

    # manual moves ---------------------------------------------------------------------

    async def record_manual_move(
        self, conn: AsyncConnection, order_id: str, from_status: str, to_status: str
    ) -> Outcome:
        """Record a move made through ``PATCH /api/orders`` in the caller's transaction.

        The caller has already changed the order's status; call :meth:`notify` with the
        returned outcome after the commit.
        """
        at = utc_now()
        move = Move(order_id, from_status, to_status, None, None, None, at)
        await self._apply_moves(conn, [move], at)
        outcome = Outcome(None, (order_id,), (move,), at)
        tx = BufferedTransaction()
        self.pm.hook.prepare_moves(outcome=outcome, tx=tx)
        await tx.flush(conn)
        return outcome

    async def notify(self, outcome: Outcome) -> None:
        """Tell the status sinks about a committed outcome; their failures are only logged."""
        for impl in self.pm.hook.moves_committed.get_hookimpls():
            try:
                result = impl.function(outcome=outcome, kernel=self.services)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("plugin.sink_failed", plugin=impl.plugin_name)

    async def event_count(self, conn: AsyncConnection) -> int:
        """How many events are stored (used by tests and health checks)."""
        return int((await conn.execute(select(func.count()).select_from(EVENTS))).scalar_one())


def trigger_view(row: Any) -> TriggerView:
    """A stored trigger row as plugins see it."""
    return TriggerView(
        id=row["id"],
        type=row["type"],
        status=row["status"],
        name=row["name"],
        allow_backwards=bool(row["allow_backwards"]),
        enabled=bool(row["enabled"]),
        settings=row["settings"] or {},
        conditions=tuple(row["conditions"] or ()),
        secret=row["secret"],
    )


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return "events" in str(exc.orig) or "unique" in str(exc.orig).lower()
    text = str(exc.orig).lower()
    return "deadlock" in text or "could not serialize" in text


__all__ = ["ApiError", "Engine", "choose_move", "public_result", "trigger_view"]
