"""Cross-site request protection for every change the board makes.

A request that changes something (any method but GET, HEAD and OPTIONS) passes only
when all of these hold:

- the browser does not say it comes from another site (``Sec-Fetch-Site`` is absent,
  ``same-origin`` or ``none``), and its ``Origin``, when sent, is this server's;
- it carries the session's CSRF token, as the form field ``csrf_token`` or the header
  ``X-CSRF-Token`` (htmx sends the header, see ``static/board.js``), compared in
  constant time.

The session cookie is ``SameSite=Lax`` too, so a cross-site POST carries no session.
"""

from __future__ import annotations

import hmac

import structlog
from aiohttp import web
from aiohttp_session import get_session

from statusflow.http.middlewares import Handler
from statusflow.ui.session import CSRF

log = structlog.get_logger("statusflow.ui")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def _same_origin(request: web.Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    own = f"{request.scheme}://{request.host}"
    return origin == own


async def _given_token(request: web.Request) -> str:
    header = request.headers.get(HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()  # cached: the handler reads it again for free
        value = form.get(FIELD)
        if isinstance(value, str):
            return value
    return ""


async def refused(request: web.Request) -> str | None:
    """Why ``request`` is refused as cross-site, or ``None`` when it may go on."""
    if request.method in SAFE_METHODS:
        return None
    if not _same_origin(request):
        return "it came from another site"
    expected = (await get_session(request)).get(CSRF)
    given = await _given_token(request)
    if not isinstance(expected, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        return "its form is stale or came from elsewhere"
    return None


@web.middleware
async def csrf_protection(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (403) a change that may come from another site; see the module docstring."""
    reason = await refused(request)
    if reason is not None:
        log.warning("ui.csrf_refused", method=request.method, path=request.path, reason=reason)
        return web.Response(
            status=403,
            text=f"Refused: {reason}. Reload the page and try again.",
            content_type="text/plain",
        )
    return await handler(request)
