"""The pages plugins add to the board (``register_ui_pages``): mounted under ``/ui/``
behind the board's sign-in and cross-site protection, each checked against the scope it
needs, their templates found after the board's own, their labels in the navigation."""

from __future__ import annotations

from collections.abc import Sequence

import jinja2
import structlog
from aiohttp import web

from statusflow.errors import StartupError
from statusflow.http.keys import PLUGIN_MANAGER, SERVICES
from statusflow.registry import _collect
from statusflow.types import API_SCOPES, RouteHandler, UiPage
from statusflow.ui.keys import NAV, USER
from statusflow.ui.render import NAV as KERNEL_NAV
from statusflow.ui.render import message

log = structlog.get_logger("statusflow.ui")


def plugin_pages(parent: web.Application) -> list[tuple[str, UiPage]]:
    """Every page the plugins of ``parent`` add, with the plugin's name.

    :raises StartupError: a page outside ``/``, or with an unknown scope.
    """
    pages = _collect(parent[PLUGIN_MANAGER], "register_ui_pages", kernel=parent[SERVICES])
    for plugin, page in pages:
        if not isinstance(page, UiPage) or not page.path.startswith("/"):
            raise StartupError(f"plugin {plugin!r} registered a board page that is not a UiPage")
        if page.scope is not None and page.scope not in API_SCOPES:
            raise StartupError(f"plugin {plugin!r}: board page {page.path!r} needs no such scope")
    return pages


def _scope(page: UiPage) -> str:
    if page.scope is not None:
        return page.scope
    return "read" if page.method.upper() in ("GET", "HEAD") else "admin"


def _guarded(page: UiPage) -> RouteHandler:
    """``page``'s handler, called only for a user whose key holds the page's scope."""
    scope = _scope(page)

    async def handler(request: web.Request) -> web.StreamResponse:
        user = request[USER]
        if not user.may(scope):
            log.warning("ui.refused", path=request.path, key=user.key_name, scope=scope)
            text = f"This needs the {scope} scope, which your key lacks."
            return await message(request, "Not allowed", text, 403)
        response: web.StreamResponse = await page.handler(request)
        return response

    return handler


def mount_plugin_pages(
    ui: web.Application, environment: jinja2.Environment, pages: Sequence[tuple[str, UiPage]]
) -> None:
    """Route ``pages`` in the board's sub-application ``ui``, add their template folders
    to ``environment`` (after the board's) and their labels to the navigation."""
    folders = [page.templates for _, page in pages if page.templates]
    if folders:
        loaders: list[jinja2.BaseLoader] = [environment.loader] if environment.loader else []
        environment.loader = jinja2.ChoiceLoader([*loaders, jinja2.FileSystemLoader(folders)])
    for plugin, page in pages:
        ui.router.add_route(page.method, page.path, _guarded(page))
        log.debug("ui.plugin_page", plugin=plugin, path=page.path, method=page.method)
    labels = tuple(("/ui" + page.path, page.label) for _, page in pages if page.label)
    ui[NAV] = (*KERNEL_NAV, *labels)


__all__ = ["mount_plugin_pages", "plugin_pages"]
