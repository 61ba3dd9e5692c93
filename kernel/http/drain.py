"""Graceful stop: count the requests in flight, and wait for them when stopping.

``statusflow serve`` stops on SIGTERM (or SIGINT) in this order: stop listening, wait
(at most ``SHUTDOWN_TIMEOUT``) until every request already in flight has been answered
(those still receiving their bodies keep receiving them), then close the idle
connections and shut the application down (plugins, engine, database). Answers given
while draining close their connection, so that keep-alive clients go elsewhere.

aiohttp's own graceful shutdown stops reading from every connection at once, so a
request whose body is still arriving would never complete: hence this middleware.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from statusflow.http.middlewares import Handler

log = structlog.get_logger("statusflow.drain")


class InFlight:
    """The number of requests being handled; :meth:`drain` waits for none."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            response = await handler(request)
            if self.draining:
                response.force_close()
            return response
        finally:
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
