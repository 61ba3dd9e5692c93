"""``mount_ui(app)``: the board as a sub-application at ``/ui/`` (and ``GET /`` to it).

The sub-application has its own middlewares (sessions, sign-in, cross-site protection),
so the API's requests never run them. Page modules each hold a ``routes`` table.
"""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from statusflow.ui import (
    access,
    board,
    editor,
    events,
    orders,
    plugins,
    statuses,
    try_event,
)
from statusflow.ui.assets import STATIC, asset
from statusflow.ui.csrf import csrf_protection
from statusflow.ui.keys import PARENT
from statusflow.ui.plugin_pages import mount_plugin_pages, plugin_pages
from statusflow.ui.session import Sessions

PAGES = (board, editor, orders, events, try_event, statuses, plugins)
"""The page modules, each with a ``routes`` :class:`aiohttp.web.RouteTableDef` (the
plugins' pages are added by :mod:`statusflow.ui.plugin_pages`)."""


def ui_application(parent: web.Application) -> web.Application:
    """The board's sub-application, reading what it shows from ``parent``."""
    ui = web.Application(
        middlewares=[Sessions().middleware, access.sign_in_required, csrf_protection]
    )
    ui[PARENT] = parent
    environment = aiohttp_jinja2.setup(
        ui,
        loader=jinja2.PackageLoader("statusflow.ui", "templates"),
        autoescape=True,  # text from orders, contacts and events is always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["asset"] = asset
    ui.router.add_get("/sign-in", access.sign_in_form)
    ui.router.add_post("/sign-in", access.sign_in)
    ui.router.add_post("/sign-out", access.sign_out)
    ui.router.add_static("/static/", STATIC, append_version=False)
    for page in PAGES:
        ui.router.add_routes(page.routes)
    mount_plugin_pages(ui, environment, plugin_pages(parent))
    return ui


async def _to_board(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


def mount_ui(app: web.Application) -> None:
    """Serve the board at ``/ui/``; ``GET /`` and ``GET /ui`` redirect there."""
    app.router.add_get("/", _to_board)
    app.router.add_get("/ui", _to_board)
    app.add_subapp("/ui/", ui_application(app))
