"""Rendering a page: the template, what every page shows (the user, the navigation, the
CSRF token) and the headers that keep the page to itself."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from statusflow.ui.keys import NAV as NAV_KEY
from statusflow.ui.keys import USER
from statusflow.ui.session import csrf_token

NAV = (
    ("/ui/", "Board"),
    ("/ui/orders", "Orders"),
    ("/ui/events", "Events"),
    ("/ui/try", "Try an event"),
    ("/ui/statuses", "Pipeline"),
    ("/ui/plugins", "Plugins"),
)
"""The main navigation: path, label (the plugins' pages follow, see ``plugin_pages``)."""

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""No inline script runs, nothing is loaded from elsewhere, no site frames the board."""


async def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> web.Response:
    """``template`` rendered with ``context`` and what every page needs (HTML-escaped)."""
    base = {
        "user": request.get(USER),
        "csrf_token": await csrf_token(request),
        "nav": request.app.get(NAV_KEY, NAV),
        "current": context.pop("current", request.path),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    response.headers.update(PAGE_HEADERS)
    return response


async def message(request: web.Request, title: str, text: str, status: int) -> web.Response:
    """A page that says one thing (a refusal, something not found)."""
    return await render(request, "message.html", {"title": title, "message": text}, status)
