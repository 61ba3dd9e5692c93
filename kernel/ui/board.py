"""The board (``/ui/``): one column per status, its triggers on top, its actions below."""

from __future__ import annotations

from aiohttp import web

from statusflow.http.keys import DATABASE
from statusflow.ui.keys import PARENT
from statusflow.ui.render import render

routes = web.RouteTableDef()


@routes.get("/")
async def board(request: web.Request) -> web.StreamResponse:
    async with request.app[PARENT][DATABASE].read() as sql:
        statuses = await sql.pipeline()
    return await render(request, "board.html", {"title": "Board", "statuses": statuses})
