"""Running the server: one process, or ``--workers N`` processes sharing one port.

With several workers, the parent applies the migrations once, then starts N processes
that each serve the same port (``SO_REUSEPORT``: the kernel spreads connections), and
supervises them: a worker that dies is started again; SIGTERM or SIGINT stops them all,
each draining its in-flight requests (aiohttp's graceful shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from types import FrameType

import structlog
from aiohttp import web

from kernel.config import Settings
from kernel.logs import configure_logging

log = structlog.get_logger("statusflow.serve")

SHUTDOWN_TIMEOUT = 30.0


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # optional: the standard loop works too, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve_one(settings: Settings, reuse_port: bool = False) -> None:
    """Serve in this process until SIGTERM or SIGINT."""
    from kernel.web import init_app

    _use_uvloop()
    app = init_app(settings)
    log.info(
        "server.starting", host=settings.host, port=settings.port, public_url=settings.base_url
    )
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port or None,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        print=None,
        access_log=None,
    )


def _worker(settings: Settings) -> None:
    configure_logging()
    serve_one(settings, reuse_port=True)


async def migrate_database(settings: Settings) -> None:
    """Apply the kernel's and the enabled plugins' migrations (``statusflow migrate``)."""
    from kernel.plugins import make_plugin_manager, migration_locations
    from kernel.storage import make_engine, migrate, seed

    pm = make_plugin_manager(settings.disable, settings.enable)
    engine = make_engine(settings.database_url)
    try:
        await migrate(engine, migration_locations(pm))
        await seed(engine)
    finally:
        await engine.dispose()


def serve(settings: Settings, workers: int = 1) -> int:
    """Serve with ``workers`` processes; return the exit code."""
    if workers <= 1:
        serve_one(settings)
        return 0
    from kernel.web import init_app

    init_app(settings)  # fail fast on a bad plugin set, before any worker starts
    asyncio.run(migrate_database(settings))
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(settings,), daemon=False)
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    log.info("server.workers", count=workers, pids=[p.pid for p in processes])

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for index, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                log.warning("server.worker_died", pid=process.pid, exitcode=process.exitcode)
                processes[index] = start()
        time.sleep(0.2)
    for process in processes:
        process.join(SHUTDOWN_TIMEOUT + 5)
    return 0 if all(p.exitcode == 0 for p in processes) else 1
