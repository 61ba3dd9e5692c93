"""What the application's middlewares cost per request, without network or database.

``python -m bench.middleware_cost`` builds the app (``init_app``, the default settings),
takes its middlewares, and sends ``POST /api/events`` requests (mocked, the JSON body
already received) through ``Application._handle`` to a handler that reads the body and
answers ``{}``: with those middlewares and with none, in alternate rounds. The difference
of the best rounds is the CPU the middlewares add to each request (``time.process_time``,
the garbage collector paused).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from unittest import mock

import structlog
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from aiohttp.typedefs import Middleware

from statusflow.http import init_app
from statusflow.http.keys import ACCEPTED_KEYS, ROUTE_SCOPES, SETTINGS
from statusflow.serving.config import Settings

BODY = b'{"type": "payment.received", "id": "e-1", "order_id": "o-1", "data": {"amount": 1}}'
HEADERS = {"Content-Type": "application/json", "Content-Length": str(len(BODY))}


async def answer(request: web.Request) -> web.Response:
    """The handler: read the body (from aiohttp's cache when a middleware read it)."""
    await request.read()
    return web.Response(body=b"{}", content_type="application/json")


def small_app(source: web.Application, middlewares: Sequence[Middleware]) -> web.Application:
    """An app with ``middlewares``, the keys they read, and ``POST /api/events``."""
    app = web.Application(middlewares=middlewares)
    for key in (SETTINGS, ACCEPTED_KEYS, ROUTE_SCOPES):
        app[key] = source[key]  # type: ignore[misc]
    app.router.add_post("/api/events", answer)
    app.freeze()
    return app


async def one_round(app: web.Application, requests: int) -> float:
    """Microseconds of CPU per request through ``app`` (garbage collection paused)."""
    loop = asyncio.get_running_loop()
    stub = mock.Mock()
    batch = []
    for _ in range(requests):
        payload = StreamReader(stub, 2**16, loop=loop)
        payload.feed_data(BODY)
        payload.feed_eof()
        batch.append(
            make_mocked_request(
                "POST",
                "/api/events",
                HEADERS,
                app=app,
                payload=payload,
                writer=stub,
                protocol=stub,
                transport=stub,
            )
        )
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        for request in batch:
            await app._handle(request)
        return (time.process_time() - started) / requests * 1e6
    finally:
        gc.enable()


async def measure(requests: int, rounds: int) -> None:
    """Print the middlewares' cost per request (rounds with and without alternate)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    source = init_app(Settings())  # its plugins' start-up warnings are not wanted here
    middlewares = list(source.middlewares)
    names = ", ".join(getattr(m, "__qualname__", repr(m)) for m in middlewares)
    apps = small_app(source, middlewares), small_app(source, [])
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, app in enumerate(apps):
            best[i] = min(best[i], await one_round(app, requests))
    print(f"{len(middlewares)} middleware(s): {names}")
    print(
        f"{best[0]:.2f} us per request with them, {best[1]:.2f} without: "
        f"{best[0] - best[1]:.2f} us in the middleware layers"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.middleware_cost [--requests N] [--rounds R]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.middleware_cost", description=__doc__)
    parser.add_argument("--requests", type=int, default=5000, help="requests per round (5000)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds; the best counts (9)")
    args = parser.parse_args(argv)
    asyncio.run(measure(args.requests, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
