"""The statements of actions and their runs: the admin API's and the scheduler's.

:class:`RunsSQL` holds the methods, each running statements of
:mod:`statusflow.store.queries` inside the caller's transaction (the runs that moves
schedule and cancel are written with the move's other rows, by
:class:`~statusflow.store.statements.GroupWrites`).

A run's ``next_at`` is the one column the scheduler reads: when a ``pending`` run is
due (or retried), when a ``running`` run's lease ends; ``NULL`` once it ended or while
it waits for the run before it. Claiming takes the due ones in ``next_at`` order and
leases them (``FOR UPDATE SKIP LOCKED`` on PostgreSQL); ending one checks that the
lease is still the claimer's.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from statusflow.store import queries as q
from statusflow.store.admin import AdminSQL, Row, _v

PENDING = "pending"
RUNNING = "running"


class RunsSQL(AdminSQL):
    """Actions and runs, in one transaction (see the module docstring)."""

    @abstractmethod
    async def execute(self, statement: Any, params: Any = None) -> Any:
        """Run a Core statement; its result (``rowcount`` included)."""

    async def _count(self, statement: Any, params: Mapping[str, Any]) -> int:
        found = await self._column(statement, params)
        return int(found[0] or 0) if found else 0

    # actions ------------------------------------------------------------------------

    async def action_rows(self) -> list[Row]:
        """Every action, oldest first (the engine's cache)."""
        return await self.rows(q.ACTION_ROWS)

    async def listed_actions(self, status: str | None = None) -> list[Row]:
        """Actions by their status's ``sort``, then ``position``; of one status or all."""
        if status is None:
            return await self.rows(q.ACTIONS_IN_ORDER)
        return await self.rows(q.ACTIONS_OF_STATUS, {"status": status})

    async def action(self, action_id: int) -> Row | None:
        return await self._first(q.ACTION_BY_ID, {"id": action_id})

    async def last_position(self, status: str) -> int | None:
        found = await self._column(q.LAST_POSITION, {"status": status})
        return None if not found or found[0] is None else int(found[0])

    async def insert_action(self, values: Mapping[str, Any]) -> int:
        """Store a new action (every column but ``id``); its id."""
        columns = (*q.ACTION_FIELDS, "created_at")
        return int((await self._column(q.INSERT_ACTION, _v(values, columns)))[0])

    async def update_action(self, action_id: int, values: Mapping[str, Any]) -> None:
        await self.run(q.UPDATE_ACTION, {"w_id": action_id, **_v(values, q.ACTION_FIELDS)})

    async def delete_action(self, action_id: int) -> None:
        await self.run(q.DELETE_ACTION, {"id": action_id})

    async def statuses_with_actions(self, status_ids: Iterable[str]) -> list[str]:
        """Those of ``status_ids`` that actions are attached to, sorted."""
        used = []
        for status in sorted(set(status_ids)):
            if await self._first(q.ACTIONS_AT, {"status": status}) is not None:
                used.append(status)
        return used

    # runs: the API's ----------------------------------------------------------------

    async def run_row(self, run_id: int) -> Row | None:
        return await self._first(q.RUN_BY_ID, {"id": run_id})

    async def listed_runs(self, order_id: str | None, state: str | None, limit: int) -> list[Row]:
        """Runs, newest first, of one order and in one state when given."""
        statement = q.LISTED_RUNS
        if order_id is not None:
            statement = statement.where(q.RUNS.c.order_id == order_id)
        if state is not None:
            statement = statement.where(q.RUNS.c.state == state)
        return await self.rows(statement, {"limit": limit})

    async def runs_of_order(self, order_id: str) -> list[Row]:
        return await self.rows(q.RUNS_OF_ORDER, {"order_id": order_id})

    async def cancel_run(self, run_id: int, reason: str, at: str) -> bool:
        """Cancel a pending run; whether it was pending."""
        params = {"w_id": run_id, "w_state": PENDING, "v_state": "canceled"}
        return await self._changed(
            q.CANCEL_RUN, {**params, "v_finished_at": at, "v_reason": reason}
        )

    async def run_now(self, run_id: int, at: str, due_at: str | None) -> bool:
        """Make a pending run due at ``at`` (recorded as due at ``due_at``: ``at``,
        unless it was attempted before); whether it was pending."""
        params = {"w_id": run_id, "w_state": PENDING, "v_due_at": due_at, "v_next_at": at}
        return await self._changed(q.RUN_NOW, {**params, "v_counts_from": at})

    async def orders_entered(self, status: str) -> list[Row]:
        """The orders in ``status``: ``id``, ``status_epoch`` and ``entered_at`` (their
        last move into it, or their creation)."""
        return await self.rows(q.ORDERS_ENTERED, {"status": status})

    async def pending_runs_of(self, action_id: int) -> list[Row]:
        return await self.rows(q.PENDING_OF_ACTION, {"action_id": action_id, "state": PENDING})

    async def reschedule(self, run_id: int, due_at: str) -> None:
        """Move a pending run's due time (its action's delay changed)."""
        params = {"w_id": run_id, "w_state": PENDING, "v_due_at": due_at, "v_next_at": due_at}
        await self.run(q.RESCHEDULE_RUN, params)

    async def _changed(self, statement: Any, params: Mapping[str, Any]) -> bool:
        result = await self.execute(statement, params)
        return bool(result.rowcount == 1)

    # runs: the scheduler's ----------------------------------------------------------

    async def next_run_at(self) -> str | None:
        """The soonest ``next_at`` of any run (``None``: nothing to wait for)."""
        found = await self._column(q.NEXT_RUN)
        return None if not found or found[0] is None else str(found[0])

    async def due_run_count(self, now: str) -> int:
        """Runs whose time has come at ``now`` (due, or their lease expired)."""
        return await self._count(q.DUE_RUN_COUNT, {"now": now})

    async def scheduled_run_count(self) -> int:
        """Runs pending or running (waiting for their time or their lease's end)."""
        return await self._count(q.SCHEDULED_RUN_COUNT, {})

    async def claim_runs(self, now: str, limit: int, token: str, lease_until: str) -> list[Row]:
        """Lease up to ``limit`` runs due at ``now``: ``running``, their attempt counted,
        ``started_at`` set at their first claim, looked at again at ``lease_until``."""
        params = {
            "now": now,
            "limit": limit,
            "v_state": RUNNING,
            "v_token": token,
            "v_lease_until": lease_until,
            "v_started_at": now,
        }
        return await self.rows(q.CLAIM_RUNS[self.dialect_name], params)

    async def end_run(
        self,
        run_id: int,
        token: str,
        state: str,
        at: str | None,
        reason: str | None,
        next_at: str | None = None,
    ) -> bool:
        """Record a claimed run's end (or, ``pending`` with ``next_at``, its retry);
        whether the lease was still ``token``'s (else another claim's result wins)."""
        params = {
            "w_id": run_id,
            "w_token": token,
            "v_state": state,
            "v_finished_at": at,
            "v_reason": None if reason is None else reason[:1000],
            "v_next_at": next_at,
        }
        return await self._changed(q.END_RUN, params)

    async def leased(self, claims: Sequence[tuple[int, str]]) -> set[int]:
        """Those of the ``(run id, lease token)`` claims that still hold their run's
        lease (locked until the transaction ends, on PostgreSQL)."""
        if not claims:
            return set()
        statement = q.LEASES_LOCKED if self.dialect_name == "postgresql" else q.LEASES
        rows = await self.rows(statement, {"ids": [i for i, _ in claims], "state": RUNNING})
        tokens = {row["id"]: row["lease_token"] for row in rows}
        return {run_id for run_id, token in claims if tokens.get(run_id) == token}

    async def waiting_after(self, order_id: str, epoch: int, action_id: int) -> list[Row]:
        """The runs of the order (at ``epoch``) that wait for ``action_id``'s run."""
        params = {
            "order_id": order_id,
            "epoch": epoch,
            "after_action_id": action_id,
            "state": PENDING,
        }
        return await self.rows(q.WAITING_AFTER, params)

    async def release(self, run_id: int, counts_from: str, due_at: str) -> None:
        """A waiting run's previous one ended at ``counts_from``: due at ``due_at``."""
        params = {"w_id": run_id, "w_state": PENDING, "v_due_at": due_at, "v_next_at": due_at}
        await self.run(q.RUN_NOW, {**params, "v_counts_from": counts_from})

    async def orders_by_ids(self, order_ids: Sequence[str], lock: bool = False) -> list[Row]:
        """The orders of ``order_ids``; with ``lock``, locked in id order (PostgreSQL)."""
        if not order_ids:
            return []
        locked = lock and self.dialect_name == "postgresql"
        statement = q.ORDERS_BY_IDS_LOCKED if locked else q.ORDERS_BY_IDS
        return await self.rows(statement, {"ids": sorted(set(order_ids))})

    async def action_moves_since(self, order_id: str, since: str) -> int:
        """How many moves actions made of the order since ``since``."""
        return await self._count(q.ACTION_MOVES_SINCE, {"order_id": order_id, "since": since})

    async def event_data(self, event_id: str) -> dict[str, Any] | None:
        found = await self._column(q.EVENT_DATA, {"id": event_id})
        return dict(found[0] or {}) if found else None

    async def save_order_doc(self, order_id: str, doc: Mapping[str, Any], at: str) -> None:
        await self.run(q.SAVE_ORDER_DOC, {"w_id": order_id, "v_doc": dict(doc), "v_updated_at": at})


__all__ = ["PENDING", "RUNNING", "RunsSQL"]
