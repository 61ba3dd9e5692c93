"""The access log: one structlog event per request, in place of aiohttp's own.

``http.request method='POST' path='/api/events' status=200 duration_ms=3.1 key='shop'``:
the path without its query string, and with the secret of a secret URL hidden
(``/hooks/***``, ``/t/o/***``); ``key`` is the name of the API key that authenticated
the request (the auth middleware leaves it on the request), ``None`` otherwise. Never
a body, a header or a token.

aiohttp calls :meth:`AccessLogger.log` once the answer is sent, outside the handler, so
the line costs one structlog call per request (no middleware frame); at a level above
``info`` it costs nothing.
"""

from __future__ import annotations

import logging

import structlog
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

KEY_NAME = "statusflow.key_name"
"""The request key under which the auth middleware leaves the authenticated key's name."""

SECRET_PREFIXES = ("/hooks/", "/t/")
"""Paths whose next segments are a secret: a webhook trigger's URL, a tracking token."""
SECRET_PARTS = frozenset({"secret", "token"})
"""Names of the route variables that hold a secret, in plugins' routes too."""
HIDDEN = "***"

log = structlog.get_logger("statusflow.access")


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
        """Write the request's line (``time``: seconds from its start to its answer)."""
        self._log.info(
            "http.request",
            method=request.method,
            path=shown_path(request),
            status=response.status,
            duration_ms=round(time * 1000, 2),
            key=request.get(KEY_NAME),
        )
