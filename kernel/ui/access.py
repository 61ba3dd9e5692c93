"""Signing in and out of the board, and the guard that asks for it.

With tokens configured (``[auth] tokens``, ``[[auth.keys]]``, ``STATUSFLOW_TOKENS``),
every board page first asks for a token; the token proves a key, and the session
remembers the key (see :mod:`statusflow.ui.session`). What the key's scopes do not
allow is shown read-only, and refused if tried. Without tokens no sign-in is asked.
"""

from __future__ import annotations

from urllib.parse import quote

import structlog
from aiohttp import web

from statusflow.http.keys import ACCEPTED_KEYS
from statusflow.http.middlewares import Handler
from statusflow.serving.api_keys import find
from statusflow.ui import session
from statusflow.ui.keys import PARENT, USER
from statusflow.ui.render import render

log = structlog.get_logger("statusflow.ui")

SIGN_IN = "/ui/sign-in"
OPEN_PATHS = (SIGN_IN, "/ui/static/")
"""What needs no sign-in: the form and the static files."""


def _next(raw: str | None) -> str:
    """Where to go after signing in: a board path, never another site."""
    if raw and raw.startswith("/ui/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/ui/"


def _is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


@web.middleware
async def sign_in_required(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Put the signed-in :class:`~statusflow.ui.user.User` on the request, or send the
    browser to the sign-in form."""
    if request.path.startswith(OPEN_PATHS):
        return await handler(request)
    user = await session.current_user(request)
    if user is None:
        target = f"{SIGN_IN}?next={quote(request.path_qs if request.method == 'GET' else '/ui/')}"
        if _is_htmx(request):  # htmx follows this header with a full page load
            return web.Response(status=401, headers={"HX-Redirect": target})
        if request.method == "GET":
            raise web.HTTPSeeOther(target)
        return web.Response(status=401, text="Sign in first.", content_type="text/plain")
    request[USER] = user
    return await handler(request)


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    next_path = _next(request.query.get("next"))
    if not request.app[PARENT][ACCEPTED_KEYS] or await session.current_user(request) is not None:
        raise web.HTTPSeeOther(next_path)
    context = {"title": "Sign in", "next": next_path, "error": None}
    return await render(request, "sign_in.html", context)


async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    next_path = _next(str(form.get("next", "")))
    accepted = request.app[PARENT][ACCEPTED_KEYS]
    if not accepted:
        raise web.HTTPSeeOther(next_path)
    token = form.get("token")
    key = find(token.strip(), accepted) if isinstance(token, str) and token.strip() else None
    if key is None:
        log.warning("ui.sign_in_refused", remote=request.remote)
        context = {
            "title": "Sign in",
            "next": next_path,
            "error": "That token is not accepted by this server.",
        }
        return await render(request, "sign_in.html", context, status=401)
    await session.sign_in(request, key)
    log.info("ui.signed_in", key=key.name)
    raise web.HTTPSeeOther(next_path)


async def sign_out(request: web.Request) -> web.StreamResponse:
    user = request.get(USER)
    await session.sign_out(request)
    log.info("ui.signed_out", key=user.key_name if user else None)
    raise web.HTTPSeeOther(SIGN_IN)
