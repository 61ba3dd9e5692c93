"""Group commit: a writer task commits, in one transaction, every request that waited.

While a transaction commits (an fsync on SQLite, a round trip on PostgreSQL), new
requests queue up; the writer takes them all for the next transaction. Each request is
answered only after the transaction holding it committed. SQLite has one writer;
PostgreSQL, where a group spends most of its time waiting for round trips and rows are
locked, can have a few, each taking what has queued when it is free.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

Job = TypeVar("Job")
Answer = TypeVar("Answer")

log = structlog.get_logger("statusflow.groupcommit")

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
                    log.warning("group.failed", size=len(live), error=" ".join(str(exc).split()))
                else:
                    log.exception("group.failed", size=len(live))
                answers = [exc] * len(live)
            for (_, future), answer in zip(live, answers, strict=True):
                if future.done():
                    continue
                if isinstance(answer, BaseException):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
