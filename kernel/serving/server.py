"""Running the server: one process, or ``--workers N`` processes sharing one port.

With several workers, the parent applies the migrations once, then starts N processes
that each serve the same port (``SO_REUSEPORT``: the kernel spreads connections), and
supervises them: a worker that dies is started again; SIGTERM or SIGINT stops them all,
each draining its in-flight requests (:mod:`statusflow.http.drain`). The workers' metrics
are kept in ``prometheus_client``'s multiprocess mode, so any worker's ``/metrics``
reports them all (:mod:`statusflow.engine.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from types import FrameType

import asyncpg
import structlog
from aiohttp import web

from statusflow.engine import metrics
from statusflow.errors import StartupError
from statusflow.serving.access_log import AccessLogger
from statusflow.serving.announce import announce, database_label
from statusflow.serving.config import Settings
from statusflow.serving.logs import configure_logging
from statusflow.store.database import causes, database_unavailable
from statusflow.store.sqlite import sqlite_code

log = structlog.get_logger("statusflow.serve")


def cannot_connect(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be opened or reached at all (down, a
    wrong host, port, name or password, an SQLite file that cannot be opened), as
    opposed to a bug in a migration or a plugin's start-up, which keeps its traceback."""
    return database_unavailable(exc) or any(
        isinstance(cause, _REFUSED_LOGIN) or sqlite_code(cause) == sqlite3.SQLITE_CANTOPEN
        for cause in causes(exc)
    )


_REFUSED_LOGIN = (
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.InvalidAuthorizationSpecificationError,  # no such role, wrong password
)


@contextlib.contextmanager
def explained(what: str, when: Callable[[BaseException], bool]) -> Iterator[None]:
    """Turn an error that ``when`` recognises into a :class:`StartupError` saying
    ``what`` failed and why, in one line (no traceback); others go on as they are."""
    try:
        yield
    except Exception as exc:
        if not when(exc):
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StartupError(f"{what}: {reason}") from exc


def _is_os_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError)


def _database(settings: Settings) -> str:
    """The database URL without its credentials, for messages."""
    return database_label(settings.database_url)


SHUTDOWN_TIMEOUT = 30.0
KEEPALIVE_TIMEOUT = 75.0  # an idle keep-alive connection is closed after this


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # optional: the standard loop works too, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve_one(settings: Settings, reuse_port: bool = False) -> None:
    """Serve in this process until SIGTERM or SIGINT, then drain and stop."""
    from statusflow.http import init_app

    _use_uvloop()
    app = init_app(settings)
    asyncio.run(_run(app, settings, reuse_port))


async def _run(app: web.Application, settings: Settings, reuse_port: bool) -> None:
    """Serve until a stop signal; then stop listening, let the requests in flight finish
    (reading their bodies to the end: :mod:`statusflow.http.drain`), and shut down."""
    from statusflow.http.drain import IN_FLIGHT
    from statusflow.http.keys import PLUGIN_MANAGER

    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=AccessLogger,  # structlog's http.request lines, not aiohttp's
        access_log=logging.getLogger("statusflow.access"),
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
    )
    with explained(f"cannot open the database {_database(settings)}", cannot_connect):
        await runner.setup()  # the application's start-up: migrations, engine, plugins
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
        with explained(f"cannot listen on {settings.host}:{settings.port}", _is_os_error):
            await site.start()
        announce(settings, app[PLUGIN_MANAGER])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await site.stop()  # no new connections
        await app[IN_FLIGHT].drain(SHUTDOWN_TIMEOUT)
    finally:
        await runner.cleanup()  # idle connections, then plugins, engine and database
    log.info("server.stopped")


def _worker(settings: Settings, supervisor: int) -> None:
    configure_logging()
    _stop_with(supervisor)
    serve_one(settings, reuse_port=True)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _stop_with(supervisor: int) -> None:
    """Get SIGTERM (and drain, then stop) when the supervisor dies, even by SIGKILL:
    a worker left behind would keep serving the port with nobody to restart or stop it.
    Linux only (``prctl``); elsewhere the workers outlive a killed supervisor."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


async def migrate_database(settings: Settings) -> None:
    """Apply the kernel's and the enabled plugins' migrations (``statusflow migrate``)."""
    from statusflow.registry import make_plugin_manager
    from statusflow.serving.plugin_catalog import migration_locations
    from statusflow.store.database import migrate, seed

    pm = make_plugin_manager(settings.disable, settings.enable, dirs=settings.plugin_dirs)
    with explained(f"cannot migrate the database {_database(settings)}", cannot_connect):
        await migrate(settings.database_url, migration_locations(pm, settings.plugin_dirs))
        await seed(settings.database_url)


def serve(settings: Settings, workers: int = 1) -> int:
    """Serve with ``workers`` processes; return the exit code."""
    if workers <= 1:
        serve_one(settings)
        return 0
    from statusflow.http import init_app

    init_app(settings)  # fail fast on a bad plugin set, before any worker starts
    # ... and on an address the workers could not listen on (they would be restarted
    # for ever), or that something already listens on: the workers share the port
    # (SO_REUSEPORT), so they would silently share it with that, too
    with explained(f"cannot listen on {settings.host}:{settings.port}", _is_os_error):
        _check_listen(settings.host, settings.port)
    if settings.migrate_on_start:
        asyncio.run(migrate_database(settings))
    # The workers share one port: each /metrics must report them all (statusflow.engine.metrics).
    own_dir = None
    if not metrics.multiprocess_dir():
        own_dir = tempfile.mkdtemp(prefix="statusflow-metrics-")
        os.environ[metrics.MULTIPROCESS_ENV] = own_dir
    metrics.prepare_multiprocess_dir(os.environ[metrics.MULTIPROCESS_ENV])
    try:
        return _supervise(settings, workers)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _check_listen(host: str, port: int) -> None:
    """Listen for a moment on every address ``host`` stands for, as the server will
    (without SO_REUSEPORT, so that anything already listening there is found).

    :raises OSError: an address cannot be listened on.
    """
    for family, kind, proto, _, address in socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen()


def _supervise(settings: Settings, workers: int) -> int:
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(settings, os.getpid()), daemon=False)
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
                if process.pid is not None:
                    metrics.worker_exited(process.pid)
                processes[index] = start()
        time.sleep(0.2)
    for process in processes:
        process.join(SHUTDOWN_TIMEOUT + 5)
    # A worker stopped while still starting (before it could handle SIGTERM) had
    # nothing in flight: that is a clean stop too.
    clean = (0, -signal.SIGTERM)
    return 0 if all(p.exitcode in clean for p in processes) else 1
