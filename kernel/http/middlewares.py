"""Errors as the contract's JSON: :func:`error_answer` turns every failure of a request
into its JSON error (the front door, :mod:`statusflow.http.front_door`, calls it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from statusflow.errors import ApiError, problems
from statusflow.http.docs_page import is_docs_path
from statusflow.http.jsonio import json_response
from statusflow.http.keys import SETTINGS
from statusflow.store.database import database_unavailable

log = structlog.get_logger("statusflow.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: ("bad_request", "the request cannot be read"),
    401: ("unauthorized", "a valid 'Authorization: Bearer TOKEN' is required"),
    403: ("forbidden", "this token may not do that"),
    404: ("not_found", "there is nothing at this path"),
    405: ("method_not_allowed", "this method is not allowed on this path"),
    409: ("conflict", "the request conflicts with what is stored"),
    413: ("body_too_large", "the request body is too large"),
    415: ("unsupported_media_type", "this media type is not supported"),
    422: ("validation_failed", "the request breaks the rules"),
    429: ("too_many_requests", "too many requests; retry later"),
}
"""The code and message of aiohttp's own HTTP errors (an unknown path, a wrong method)."""


def error_response(status: int, code: str, message: str, details: object = None) -> web.Response:
    """The contract's JSON error envelope (``details`` always a list of ``{"path",
    "message"}``); a 401 says ``WWW-Authenticate: Bearer``."""
    body = {"error": {"code": code, "message": message, "details": problems(details)}}
    response = json_response(body, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def error_answer(request: web.Request, exc: Exception) -> web.Response | None:
    """The JSON error for ``exc`` (an :class:`ApiError`, aiohttp's HTTP errors, a
    crash), or ``None`` for a redirect, which the caller re-raises for aiohttp to send.
    Call it in the ``except`` block: a crash is logged with its traceback."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(
            413, "body_too_large", f"the request body is larger than {limit} bytes"
        )
    if isinstance(exc, web.RequestPayloadError):  # a Content-Encoding the body does not follow
        return error_response(
            400,
            "unreadable_body",
            "the request body cannot be read: it is not encoded as its Content-Encoding says",
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        response = error_response(
            405,
            "method_not_allowed",
            f"{request.method[:20]} is not allowed here; allowed: {', '.join(allowed)}",
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            return None
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        return error_response(exc.status, code, message)
    if database_unavailable(exc):  # down or restarting: nothing was stored, retry
        log.warning(
            "http.database_unavailable",
            method=request.method,
            route=_route(request),
            error=" ".join(str(exc).split())[:300],
        )
        response = error_response(
            503, "unavailable", "the database cannot be reached right now; retry later"
        )
        response.headers["Retry-After"] = "1"
        return response
    log.exception("http.unhandled_error", method=request.method, route=_route(request))
    return error_response(500, "internal", "internal server error")


def _route(request: web.Request) -> str:
    """The matched route's pattern (``/hooks/{secret}``): a path may carry a secret."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def needs_token(path: str) -> bool:
    """Whether ``path`` needs the bearer token (when tokens are configured).

    ``/api/*`` (the contract) and ``/metrics``; never ``/healthz``, ``/readyz``, ``/t/*``,
    ``/hooks/*``, ``/sources/*``, nor the docs page (``/api/docs``, which asks for a
    token and sends it with the calls it makes).
    """
    if is_docs_path(path):
        return False
    return path.startswith("/api/") or path in ("/api", "/metrics")
