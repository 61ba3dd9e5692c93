"""``GET /api/docs``: the interactive API docs (Swagger UI), from files in the package.

The page and its files need no token (they hold no data; the page asks for a token and
sends it with the calls it makes, ``/api/openapi.json`` included). Nothing is loaded
from elsewhere: Swagger UI is vendored in ``static/swagger-ui/`` (see its README).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

from statusflow.errors import not_found
from statusflow.types import Route

SWAGGER_UI_VERSION = "5.36.0"
PREFIX = "/api/docs"

FILES: dict[str, tuple[str, str]] = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css"),
    "LICENSE": ("swagger-ui/LICENSE", "text/plain"),
    "NOTICE": ("swagger-ui/NOTICE", "text/plain"),
    "docs.js": ("docs.js", "text/javascript"),
    "docs.css": ("docs.css", "text/css"),
}
"""The files served under ``/api/docs/``: name -> (path under ``static/``, media type)."""

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}


def is_docs_path(path: str) -> bool:
    """Whether ``path`` is the docs page or one of its files (public)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


@cache
def static_file(relative: str) -> bytes:
    """A file of ``statusflow/http/static/``, read once."""
    return resources.files("statusflow.http").joinpath("static", *relative.split("/")).read_bytes()


async def page(request: web.Request) -> web.Response:
    return web.Response(
        body=static_file("docs.html"), content_type="text/html", charset="utf-8", headers=HEADERS
    )


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = FILES.get(name)
    if found is None:
        raise not_found(f"the docs page has no file {name[:100]!r}")
    relative, media_type = found
    charset = "utf-8" if media_type.startswith("text/") else None
    return web.Response(
        body=static_file(relative), content_type=media_type, charset=charset, headers=HEADERS
    )


ROUTES = (
    Route("GET", PREFIX, page),
    Route("GET", PREFIX + "/{name}", asset),
)
"""Mounted beside the kernel's routes, and left out of the OpenAPI document (they are
a page, not the API)."""
