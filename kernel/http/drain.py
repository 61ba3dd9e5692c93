"""Graceful stop: count the requests in flight, and wait for them when stopping.

``statusflow serve`` stops on SIGTERM (or SIGINT) in this order: stop listening, wait
(at most ``SHUTDOWN_TIMEOUT``) until every request already in flight has been answered
(those still receiving their bodies keep receiving them), then close the idle
connections and shut the application down (plugins, engine, database). Answers given
while draining close their connection, so that keep-alive clients go elsewhere.

aiohttp's own graceful shutdown stops reading from every connection at once, so a
request whose body is still arriving would never complete: hence this count, kept by
the front door (:mod:`statusflow.http.front_door`).
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

log = structlog.get_logger("statusflow.drain")


class InFlight:
    """The number of requests being handled; :meth:`drain` waits for none."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A request came in (the front door calls it, and :meth:`leave` once answered;
        an answer given while draining closes its connection)."""
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        """A request was answered (or failed)."""
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight; ``False`` if ``timeout`` passed first."""
        self.draining = True
        log.info("server.draining", in_flight=self.count)
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("server.drain_timeout", in_flight=self.count, timeout=timeout)
            return False
        return True


IN_FLIGHT = web.AppKey("in_flight", InFlight)
