"""The background worker: fan out queued moves, claim due deliveries, send them.

One worker per app (started by ``startup``, stopped by ``shutdown``). It runs when a
move commits in this process (``moves_committed`` wakes it), when one of its own
deliveries finishes (the next move of that order may now go), when a delivery is due,
and at least every ``poll_interval`` seconds (moves committed by other processes,
leases of dead processes running out).

Retries are scheduled in the database (``next_attempt_at``), not in memory: they
survive restarts, any process may make the next attempt, and a waiting retry holds no
task. That is why the delay comes from :func:`backoff_delay` below rather than from
``tenacity`` or ``backoff``: both run the retry loop around a call inside one process,
and their wait strategies need their own retry-state objects; here the loop is the
database row, and the formula is two lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from statusflow import KernelServices, parse_timestamp
from statusflow.plugins.outgoing_webhooks import outbox
from statusflow.plugins.outgoing_webhooks.settings import Settings
from statusflow.plugins.outgoing_webhooks.signing import ATTEMPT_HEADER, sign

log = structlog.get_logger("statusflow.outgoing_webhooks")

USER_AGENT = "statusflow-outgoing-webhooks/1"
MIN_SLEEP = 0.005
STOP_TIMEOUT = 5.0
PRUNE_EVERY = 60.0
"""Seconds between two clean-ups of old delivered deliveries (at most, while running)."""
FAN_OUT_EVERY = 0.2
"""Seconds between two fan-outs prompted by commits in this process (they coalesce: a
busy server pays one fan-out transaction for hundreds of moves, and a delivery starts
at most this much later)."""


def backoff_delay(
    attempt: int,
    initial: float,
    maximum: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

    Exponential backoff with "equal jitter": the ceiling doubles with each failed
    attempt, ``initial * 2 ** (attempt - 1)``, up to ``maximum``; the delay is half the
    ceiling plus a uniformly random part of the other half. Retries of many deliveries
    that failed together spread out, and none comes sooner than half its ceiling.
    """
    ceiling = min(maximum, initial * 2.0 ** min(max(attempt - 1, 0), 60))
    return ceiling / 2 + rand() * ceiling / 2


def retry_after_seconds(value: str | None, moment: datetime) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from ``moment``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - moment).total_seconds())


class Worker:
    """Delivers the outbox of one app; see the module docstring."""

    def __init__(self, kernel: KernelServices, settings: Settings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.sent = 0  # attempts made by this worker (tests and logs)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._inflight: dict[asyncio.Task[None], outbox.Claimed] = {}
        self._stopping = False
        self._kicked = False
        self._queued = True  # moves may wait from before this start
        self._fanned_out_at = 0.0
        self._pruned_at: float | None = None

    # lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop (in ``startup``)."""
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout),
        )
        self._task = asyncio.create_task(self._run(), name="statusflow-outgoing-webhooks")

    async def stop(self) -> None:
        """Stop the loop; attempts in flight are cancelled and their leases given back.

        The loop is asked to stop between two steps (so that it never dies between
        claiming deliveries and starting their attempts), and cancelled only if it
        does not within a few seconds.
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=STOP_TIMEOUT)
            except TimeoutError:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        attempts = dict(self._inflight)
        for task in attempts:
            task.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)
        # leases of attempts that did not record a result (a task cancelled before it
        # even started included) are given back, so that the next process goes at once
        try:
            await outbox.release(self.kernel, list(attempts.values()))
        except Exception:
            log.exception("worker.release_failed")
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        """Look for due deliveries now (one was retried, an endpoint enabled ...)."""
        self._kicked = True
        self._wake.set()

    def moves_queued(self) -> None:
        """Moves committed in this process: fan them out soon (see :data:`FAN_OUT_EVERY`)."""
        self._queued = True
        self._wake.set()

    # the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        """Fan out and claim when there is reason to, then sleep until the next reason.

        Reasons: moves committed here (fanned out at most every :data:`FAN_OUT_EVERY`
        seconds, so that a busy server pays one fan-out transaction for many commits),
        a kick (an attempt finished, a retry through the API), or the deadline: the next
        due delivery, or ``poll_interval`` (moves committed by other processes, leases
        of dead ones running out).
        """
        deadline = 0.0  # monotonic time of the next round, whatever happens
        while not self._stopping:
            self._wake.clear()
            now = time.monotonic()
            kicked, self._kicked = self._kicked, False
            try:
                fan_out = now >= deadline or (
                    self._queued and now - self._fanned_out_at >= FAN_OUT_EVERY
                )
                if fan_out:
                    self._queued = False
                    self._fanned_out_at = now
                    await self._fan_out()
                if fan_out or kicked:
                    if await self._claim():
                        deadline = now  # there may be more: go again at once
                    elif len(self._inflight) >= self.settings.concurrency:
                        # every slot is busy: a finishing attempt kicks the loop
                        deadline = time.monotonic() + self.settings.poll_interval
                    else:
                        deadline = time.monotonic() + await self._idle_time()
            except Exception:
                log.exception("worker.step_failed")
                deadline = time.monotonic() + min(self.settings.poll_interval, 1.0)
            await self._prune_now_and_then()
            wake_at = deadline
            if self._queued:
                wake_at = min(wake_at, self._fanned_out_at + FAN_OUT_EVERY)
            delay = wake_at - time.monotonic()
            if delay > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _prune_now_and_then(self) -> None:
        """Delete deliveries delivered more than ``keep_delivered`` ago, once every
        :data:`PRUNE_EVERY` seconds (or ``keep_delivered``, if shorter)."""
        now = time.monotonic()
        if self._pruned_at is None:
            self._pruned_at = now
        if now - self._pruned_at < min(PRUNE_EVERY, self.settings.keep_delivered):
            return
        self._pruned_at = now
        try:
            while (deleted := await outbox.prune(self.kernel, self.settings.keep_delivered)) > 0:
                log.info("deliveries.pruned", count=deleted)
                if deleted < 1000:
                    break
        except Exception:
            log.exception("deliveries.prune_failed")

    async def _fan_out(self) -> None:
        settings = self.settings
        while await outbox.fan_out(self.kernel, settings.batch_size, settings.give_up_after) == (
            settings.batch_size
        ):
            pass

    async def _claim(self) -> bool:
        """Claim what the free slots allow and start the attempts; whether slots were full."""
        settings = self.settings
        free = settings.concurrency - len(self._inflight)
        if free <= 0:
            return False
        claimed = await outbox.claim(self.kernel, free, settings.lease)
        for delivery in claimed:
            task = asyncio.create_task(self._attempt(delivery))
            self._inflight[task] = delivery
            task.add_done_callback(self._attempt_done)
        return len(claimed) == free

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        delivery = self._inflight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "delivery.attempt_crashed",
                delivery_id=delivery.id if delivery else None,
                exc_info=task.exception(),
            )  # its lease runs out, and the delivery is attempted again
        self.wake()  # a slot is free, and the order's next move may go now

    async def _idle_time(self) -> float:
        """Seconds until the next due delivery, at most ``poll_interval``."""
        due = await outbox.next_due(self.kernel)
        wait = self.settings.poll_interval
        if due is not None:
            wait = min(wait, (due - outbox.now()).total_seconds())
        return max(wait, MIN_SLEEP)

    # one attempt --------------------------------------------------------------------

    async def _attempt(self, delivery: outbox.Claimed) -> None:
        status, error, retry_after = await self._send(delivery)
        moment = outbox.now()
        retry_at = None
        if error is not None:
            give_up_at = parse_timestamp(delivery.give_up_at)
            if moment < give_up_at:
                delay = backoff_delay(
                    delivery.attempts,
                    self.settings.retry_initial_delay,
                    self.settings.retry_max_delay,
                )
                delay = max(delay, retry_after or 0.0)
                retry_at = min(moment + timedelta(seconds=delay), give_up_at)
        try:
            ours = await outbox.finish(
                self.kernel, delivery, status=status, error=error, retry_at=retry_at
            )
        except Exception:
            log.exception("delivery.finish_failed", delivery_id=delivery.id)
            return  # the lease runs out and the delivery is attempted again
        log.info(
            "delivery.attempted",
            delivery_id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            order_id=delivery.order_id,
            attempt=delivery.attempts,
            status=status,
            error=error,
            outcome="delivered" if error is None else ("retry" if retry_at else "failed"),
            lease_kept=ours,
        )

    async def _send(self, delivery: outbox.Claimed) -> tuple[int | None, str | None, float | None]:
        """POST the delivery; ``(HTTP status, error or None, Retry-After seconds)``."""
        assert self._session is not None
        try:  # the delivery's id is the message id: the same at every attempt
            signed = sign(delivery.secret, delivery.id, int(time.time()), delivery.body)
        except ValueError as exc:  # a secret stored before it was checked: never sendable
            return None, str(exc), None
        headers = {
            "Content-Type": "application/json",
            **signed,
            ATTEMPT_HEADER: str(delivery.attempts),
        }
        self.sent += 1
        try:
            async with self._session.post(
                delivery.url, data=delivery.body, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return response.status, None, None
                text = (await response.content.read(300)).decode("utf-8", "replace")
                retry_after = retry_after_seconds(response.headers.get("Retry-After"), outbox.now())
                return response.status, f"HTTP {response.status}: {text}".strip(), retry_after
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, None
