"""Live pages: a server-sent event stream that says ``changed`` when what a page shows
has changed, so that the page refreshes the part concerned (``static/app.js`` wires
``data-live`` elements to it).

Each stream reads a small *version* of what its page shows (for instance the newest
timeline entry of an order and its status) every ``interval`` seconds, from the
database: so it sees the changes of every instance on the same database, not only this
process's, and costs one indexed read per open page per interval. Streams end when the
server starts draining, so that they never hold up a graceful stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from statusflow.http.drain import IN_FLIGHT
from statusflow.ui.keys import PARENT

INTERVAL = 0.5
"""Seconds between two reads of a page's version (well within the two seconds promised)."""
KEEP_ALIVE = 15.0
"""Seconds between comments sent to keep proxies from closing an idle stream."""
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
}


async def stream_changes(
    request: web.Request,
    version: Callable[[], Awaitable[object]],
    interval: float = INTERVAL,
) -> web.StreamResponse:
    """Answer ``request`` with a stream that sends ``event: changed`` whenever
    ``version()`` returns something other than it did before."""
    in_flight = request.app[PARENT][IN_FLIGHT]
    response = web.StreamResponse(headers=HEADERS)
    await response.prepare(request)
    await response.write(b"retry: 1000\n\n")
    last = await version()
    quiet_since = time.monotonic()
    try:
        while not in_flight.draining:
            await asyncio.sleep(interval)
            current = await version()
            if current != last:
                last = current
                await response.write(b"event: changed\ndata: \n\n")
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEP_ALIVE:
                await response.write(b": keep-alive\n\n")
                quiet_since = time.monotonic()
    except (ConnectionResetError, ConnectionError):
        pass  # the page was closed
    return response
