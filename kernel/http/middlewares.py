"""The error middleware: every failure becomes the contract's JSON error (auth is
:mod:`statusflow.http.auth`'s)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from statusflow.errors import ApiError
from statusflow.http.jsonio import json_response
from statusflow.http.keys import SETTINGS
from statusflow.store.database import database_unavailable

log = structlog.get_logger("statusflow.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
}


def error_response(status: int, code: str, message: str, details: object = None) -> web.Response:
    """The contract's JSON error envelope."""
    return json_response({"error": {"code": code, "message": message, "details": details}}, status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn :class:`ApiError`, aiohttp's HTTP errors and crashes into JSON errors."""
    try:
        if "\x00" in request.path:  # no resource has one; PostgreSQL text cannot hold it
            raise ApiError(404, "not_found", "no resource has a NUL character in its path")
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body_bytes
        return error_response(413, "too_large", f"the request body is larger than {limit} bytes")
    except web.RequestPayloadError as exc:  # a Content-Encoding the body does not follow
        cause = exc.__cause__ or exc
        reason = " ".join(str(getattr(cause, "message", cause)).split())
        return error_response(400, "bad_request", f"the request body cannot be read: {reason}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)
    except Exception as exc:
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
    ``/hooks/*`` or ``/sources/*``.
    """
    return path.startswith("/api/") or path in ("/api", "/metrics")
