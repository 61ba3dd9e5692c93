"""A test plugin with a table of its own and background work: the lifecycle hooks.

``notes`` keeps a ledger of moves in its own table ``notes_moves``, created by its own
Alembic migration (``migration_locations``) and written inside the event's transaction
(``prepare_moves`` with ``tx.insert``). A background worker, started at ``startup`` and
stopped at ``shutdown``, counts the moves it is told about after they committed
(``moves_committed``). State lives on the plugin object, never in a module global.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from statusflow import KernelServices, Outcome, Transaction, hookimpl

MIGRATIONS = Path(__file__).resolve().with_name("migrations")

metadata = sa.MetaData()
NOTES = sa.Table(
    "notes_moves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(200), nullable=False),
    sa.Column("to_status", sa.String(50), nullable=False),
    sa.Column("event_id", sa.String(200), nullable=True),
)


class NotesPlugin:
    """Register an instance: ``statusflow_app(plugins=[..., ("notes", NotesPlugin())])``."""

    def __init__(self) -> None:
        self.dialect: str | None = None
        self.counted = 0
        self.stopped = False
        self._queue: asyncio.Queue[str] | None = None
        self._worker: asyncio.Task[None] | None = None

    @hookimpl
    def migration_locations(self) -> str:
        return str(MIGRATIONS)

    @hookimpl
    def prepare_moves(self, outcome: Outcome, tx: Transaction) -> None:
        for move in outcome.moves:
            row = {"order_id": move.order_id, "to_status": move.to_status}
            tx.insert(NOTES, {**row, "event_id": move.event_id})

    @hookimpl
    async def startup(self, kernel: KernelServices) -> None:
        self.dialect = kernel.dialect
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._count())

    @hookimpl
    def moves_committed(self, outcome: Outcome, kernel: KernelServices) -> None:
        if self._queue is not None:
            for move in outcome.moves:
                self._queue.put_nowait(move.order_id)

    @hookimpl
    async def shutdown(self, kernel: KernelServices) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self.stopped = True

    async def _count(self) -> None:
        assert self._queue is not None
        while True:
            await self._queue.get()
            self.counted += 1
            self._queue.task_done()

    async def drained(self) -> None:
        """Wait until the worker has counted every move it was told about."""
        if self._queue is not None:
            await self._queue.join()
