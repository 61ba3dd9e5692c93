"""The access log: one structlog event per request, in place of aiohttp's own.

``http.request method='POST' path='/api/events' status=200 duration_ms=3.1 key='shop'``:
the path without its query string, and with the secret of a secret URL hidden
(``/hooks/***``, ``/t/o/***``); ``key`` is the name of the API key that authenticated
the request (the auth middleware leaves it on the request), ``None`` otherwise. Never
a body, a header or a token.

aiohttp calls :meth:`AccessLogger.log` once the answer is sent; the line costs one
structlog call per request, and nothing at a level above ``info``. The duration is
measured from :func:`mark_started` (the front door's first step) with ``time.perf_counter``:
aiohttp's own figure comes from the event loop's clock, which under uvloop ticks in
whole milliseconds.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

SECRET_PREFIXES = ("/hooks/", "/t/")
"""Paths whose next segments are a secret: a webhook trigger's URL, a tracking token."""
SECRET_PARTS = frozenset({"secret", "token"})
"""Names of the route variables that hold a secret, in plugins' routes too."""
HIDDEN = "***"

KEY_NAME = web.RequestKey("statusflow.key_name", str)
"""Where the auth middleware leaves the name of the key that made the request."""

log = structlog.get_logger("statusflow.access")
_started: ContextVar[float | None] = ContextVar("statusflow_request_started", default=None)
"""When the request being answered in this task entered the app (aiohttp answers it and
logs it in one task)."""


def mark_started() -> None:
    """Note that the request being handled entered the app now (the front door calls it
    first), for its access line's ``duration_ms``."""
    _started.set(time.perf_counter())


def shown_path(request: BaseRequest) -> str:
    """``request``'s path with the secret in it replaced by ``***`` (no query string)."""
    path = request.path
    if path.startswith(SECRET_PREFIXES):
        head, _, rest = path[1:].partition("/")
        if head == "t":  # /t/o/TOKEN, /t/c/TOKEN: the kind of link stays visible
            kind, _, rest = rest.partition("/")
            return f"/t/{kind}/{HIDDEN}" if rest else f"/t/{HIDDEN}"
        return f"/{head}/{HIDDEN}"
    match_info = getattr(request, "match_info", None)  # None before routing (a bad request)
    if match_info and not SECRET_PARTS.isdisjoint(match_info):
        for name, value in match_info.items():
            if name in SECRET_PARTS and value:
                path = path.replace(value, HIDDEN)
    return path


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access logger, writing the ``http.request`` structlog event.

    Give it to the runner: ``web.AppRunner(app, access_log_class=AccessLogger,
    access_log=logging.getLogger("statusflow.access"))`` (the standard library logger
    is aiohttp's switch; the lines go through structlog).
    """

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._log = log.bind()  # made per connection: the configured logger, looked up once

    @property
    def enabled(self) -> bool:
        """Whether ``info`` lines are written at the configured level."""
        enabled_for = getattr(self._log, "is_enabled_for", None)  # structlog's filtering loggers
        return True if enabled_for is None else bool(enabled_for(logging.INFO))

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the request's line (``time``: aiohttp's seconds from its start to its
        answer, used when the request never entered the app)."""
        started = _started.get()
        if started is not None:
            _started.set(None)  # the connection's next request starts its own
            time = _elapsed(started)
        self._log.info(
            "http.request",
            method=request.method,
            path=shown_path(request),
            status=response.status,
            duration_ms=round(time * 1000, 2),
            key=request.get(KEY_NAME),
        )


def _elapsed(started: float) -> float:
    return time.perf_counter() - started
