"""The front door: the one middleware every request passes, in one coroutine frame.

In order, the cheap tests first: the access line's start time, the in-flight count
(graceful drain), a NUL in the path (a 404), the rate limit of the public endpoints
(``/t/``, ``/hooks/``, ``/sources/`` only), the bearer token and its scope (``/api/*``
and ``/metrics``, when keys are configured), the body read under
``request_timeout_seconds``, then the handler. One ``try`` turns every failure into the
contract's JSON error. Each part lives in the module that explains it; this one orders
them (it replaces six stacked middlewares, each a coroutine layer per request).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from statusflow.errors import ApiError
from statusflow.http.auth import key_refusal
from statusflow.http.drain import InFlight
from statusflow.http.keys import ACCEPTED_KEYS
from statusflow.http.limits import PublicRateLimit, answer_and_close, read_slow_body
from statusflow.http.middlewares import Handler, error_answer, needs_token
from statusflow.serving.access_log import mark_started
from statusflow.serving.config import Settings


def front_door(settings: Settings, in_flight: InFlight) -> Middleware:
    """The application's middleware (see the module docstring)."""
    rate_limit = PublicRateLimit(settings)
    limit = settings.max_body_bytes
    timeout = settings.request_timeout_seconds

    @web.middleware
    async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
        mark_started()
        in_flight.enter()
        try:
            try:
                path = request.path
                if "\x00" in path:  # no resource has one; PostgreSQL text cannot hold it
                    raise ApiError(404, "not_found", "no resource has a NUL character in its path")
                response: web.StreamResponse | None = None
                if rate_limit.applies(path):
                    response = rate_limit.refusal(request)
                elif request.app[ACCEPTED_KEYS] and needs_token(path):
                    response = key_refusal(request)  # a 401 is raised as an ApiError
                if response is None:
                    declared = request.content_length
                    if declared is not None and declared > limit:
                        # refused before any of it is read (or, with 100-continue, sent)
                        response = await answer_and_close(
                            request,
                            413,
                            "body_too_large",
                            f"the request body is larger than {limit} bytes",
                        )
                    elif request.can_read_body and not request.content_type.startswith(
                        "multipart/"  # left to their handlers' streaming readers
                    ):
                        if request.content.is_eof():  # the whole body came with the headers
                            await request.read()
                        else:
                            response = await read_slow_body(request, timeout)
                if response is None:
                    response = await handler(request)
            except Exception as exc:
                answer = error_answer(request, exc)
                if answer is None:  # a redirect: aiohttp sends it
                    raise
                response = answer
            if in_flight.draining:
                response.force_close()
            return response
        finally:
            in_flight.leave()

    return front_door
