"""Who calls: the bearer token checked against the plain tokens and the named keys, and
the scope each ``/api/*`` route needs.

With ``[auth] tokens`` or ``[[auth.keys]]`` configured, every ``/api/*`` call (and
``/metrics``) needs ``Authorization: Bearer TOKEN``: no token or an unknown one is a 401,
a key without the route's scope a 403 ``missing_scope`` naming it (with
``WWW-Authenticate: Bearer error="insufficient_scope", scope="..."``, RFC 6750). The
key's name is put on the request under :data:`KEY_NAME` (``"token"`` for a plain token,
``None`` when auth is off or the path needs no token), for the access log and the audit
log: :func:`api_key_name` reads it. The front door (:mod:`statusflow.http.front_door`)
calls :func:`key_refusal` for the requests that need a token.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from statusflow.errors import ApiError, StartupError
from statusflow.http.keys import ACCEPTED_KEYS, ROUTE_SCOPES
from statusflow.http.middlewares import error_response
from statusflow.serving.access_log import KEY_NAME
from statusflow.serving.api_keys import find
from statusflow.types import API_SCOPES, Route

"""The request's item holding the calling key's name, or ``None`` (see the module
docstring): ``request.get(KEY_NAME)``."""


def api_key_name(request: web.Request) -> str | None:
    """The name of the API key that made ``request``: a ``[[auth.keys]]`` name,
    ``"token"`` for a plain ``[auth] tokens`` token, or ``None`` when auth is off (or
    the route needs no token). Plugins pass it to the audit log
    (``conn.record_audit(..., key_name=api_key_name(request))``)."""
    return request.get(KEY_NAME)


def route_scope(route: Route) -> str:
    """The scope ``route`` needs: its own, or ``read`` for a ``GET`` and ``admin`` for
    any other method."""
    if route.scope is not None:
        return route.scope
    return "read" if route.method.upper() in ("GET", "HEAD") else "admin"


def check_scopes(routes: Iterable[tuple[str, Route]]) -> None:
    """:raises StartupError: a route declares a scope that does not exist."""
    for plugin, route in routes:
        if route.scope is not None and route.scope not in API_SCOPES:
            raise StartupError(
                f"plugin {plugin!r}: route {route.method} {route.path} needs the scope "
                f"{route.scope!r}; scopes are {', '.join(API_SCOPES)}"
            )


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def key_refusal(request: web.Request) -> web.Response | None:
    """Check the bearer token of a request that needs one (keys configured): ``None``
    when its key has the route's scope (its name is then on the request), else a 403.

    :raises ApiError: no token, or an unknown one (a 401).
    """
    accepted = request.app[ACCEPTED_KEYS]
    key = find(_bearer(request), accepted)
    if key is None:
        raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer TOKEN' is required")
    request[KEY_NAME] = key.name
    scope = request.app[ROUTE_SCOPES].get(request.match_info.route)
    if scope is None or key.allows(scope):  # None: no such route (404, 405)
        return None
    response = error_response(
        403,
        "missing_scope",
        f"the API key {key.name!r} lacks the scope {scope!r}, which "
        f"{request.method} {request.match_info.route.resource.canonical} needs",  # type: ignore[union-attr]
    )
    response.headers["WWW-Authenticate"] = f'Bearer error="insufficient_scope", scope="{scope}"'
    return response
