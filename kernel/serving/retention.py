"""``[retention] events_days``: events older than that are deleted in the background.

Every :data:`EVERY` seconds (and at start), each process deletes the events received
more than ``events_days`` ago, with their traces (kept in the event) and their ``event``
timeline entries, :data:`BATCH` events per transaction: on SQLite each transaction
takes the one write gate like any writer and lets the queued event groups go between
two batches, so the event path waits for one small batch at most. A run is one audit
entry (``expire``, kind ``events``), its totals updated in each batch's transaction.
Several processes may run it at once: a batch deletes what is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog

from statusflow.store.database import Database
from statusflow.store.privacy import expire_events
from statusflow.timestamps import format_timestamp

log = structlog.get_logger("statusflow.retention")

BATCH = 500
"""Events deleted per transaction."""
EVERY = 3600.0
"""Seconds between two runs."""
PAUSE = 0.01
"""Seconds between two batches of a run."""


def cutoff_for(days: int, now: datetime | None = None) -> str:
    """The stored time before which events are expired."""
    return format_timestamp((now or datetime.now(UTC)) - timedelta(days=days))


async def expire_old_events(
    db: Database, days: int, batch: int = BATCH, pause: float = PAUSE
) -> tuple[int, int]:
    """One run: delete every event older than ``days`` days, ``batch`` per transaction;
    ``(events, timeline entries)`` deleted."""
    cutoff = cutoff_for(days)
    events = entries = 0
    entry_id: int | None = None
    more = True
    while more:
        async with db.write() as sql:
            done_events, done_entries, more = await expire_events(sql, cutoff, batch)
            if done_events or done_entries:
                events += done_events
                entries += done_entries
                totals = {
                    "events": events,
                    "timeline_entries": entries,
                    "received_before": cutoff,
                }
                if entry_id is None:
                    entry_id = await sql.record_audit(action="expire", kind="events", after=totals)
                else:
                    await sql.update_audit_after(entry_id, totals)
        if more:
            await asyncio.sleep(pause)  # the writers queued meanwhile go first
    if events or entries:
        log.info(
            "retention.expired", events=events, timeline_entries=entries, received_before=cutoff
        )
    return events, entries


class Retention:
    """The background task of one app (started and stopped with its database)."""

    def __init__(self, db: Database, days: int, every: float = EVERY) -> None:
        self.db = db
        self.days = days
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="retention")

    async def _run(self) -> None:
        while True:
            try:
                await expire_old_events(self.db, self.days)
            except Exception:  # the database away, a conflict: the next run tries again
                log.exception("retention.failed")
            await asyncio.sleep(self.every)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
