"""The pipeline editor (``/ui/statuses``): add, rename, reorder and delete statuses.

Every change builds the whole new pipeline from the current one and hands it to
:func:`statusflow.http.statuses.replace_pipeline`, the code of ``PUT /api/statuses``:
the same rules (ids and sorts unique, known semantics, a status in use is kept) and the
same messages, shown next to the form. Changes need the ``admin`` scope; other keys see
the pipeline read-only, and a change they post is refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import structlog
from aiohttp import web

from statusflow.errors import ApiError
from statusflow.http.statuses import pipeline, replace_pipeline
from statusflow.store.schema import SEMANTICS
from statusflow.ui.keys import PARENT, USER
from statusflow.ui.render import message, render

log = structlog.get_logger("statusflow.ui")

routes = web.RouteTableDef()

SORT_STEP = 50
"""How far after the last status a new one goes when no sort is given."""
DIRECTIONS = ("up", "down")


class Refused(Exception):
    """The user's key may not change the pipeline."""


async def _page(
    request: web.Request,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
    at: str | None = None,
) -> web.Response:
    context = {
        "title": "Pipeline",
        "current": "/ui/statuses",
        "statuses": await pipeline(request.app[PARENT]),
        "semantics": SEMANTICS,
        "may_edit": request[USER].may_edit,
        "error": error,
        "error_at": at,
        "form": form or {"id": "", "name": "", "sort": "", "semantics": "process"},
        "focus": (request.query.get("focus"), request.query.get("dir")),
    }
    return await render(request, "statuses.html", context, status)


@routes.get("/statuses")
async def statuses(request: web.Request) -> web.StreamResponse:
    """The pipeline in ``sort`` order, with its forms for an admin key."""
    return await _page(request)


def _sort(raw: str, current: list[dict[str, Any]]) -> Any:
    """The new status's sort: the given number (a text the API then refuses, if not
    one), or after the last status."""
    raw = raw.strip()
    if not raw:
        return max((s["sort"] for s in current), default=0) + SORT_STEP
    try:
        return int(raw)
    except ValueError:
        return raw


def _moved(current: list[dict[str, Any]], status_id: str, direction: str) -> list[dict[str, Any]]:
    """The pipeline with ``status_id`` swapped with its neighbour (their sorts swapped)."""
    index = next(i for i, s in enumerate(current) if s["id"] == status_id)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(current):
        return current
    changed = [dict(s) for s in current]
    changed[index]["sort"], changed[other]["sort"] = current[other]["sort"], current[index]["sort"]
    return changed


async def _change(request: web.Request, status_id: str | None) -> list[dict[str, Any]]:
    """The pipeline the posted form asks for (from the current one)."""
    form = await request.post()
    current = await pipeline(request.app[PARENT])
    action = request.match_info["action"]
    if action != "add" and (status_id is None or all(s["id"] != status_id for s in current)):
        raise web.HTTPNotFound()
    if action == "add":
        added = {
            "id": str(form.get("id", "")).strip(),
            "name": str(form.get("name", "")).strip(),
            "sort": _sort(str(form.get("sort", "")), current),
            "semantics": str(form.get("semantics", "process")),
        }
        return [*current, added]
    if action == "rename":
        name = str(form.get("name", "")).strip()
        return [{**s, "name": name} if s["id"] == status_id else s for s in current]
    if action == "move" and form.get("direction") in DIRECTIONS:
        return _moved(current, str(status_id), str(form["direction"]))
    if action == "delete":
        return [s for s in current if s["id"] != status_id]
    raise web.HTTPNotFound()


@routes.post("/statuses/{action:add|rename|move|delete}")
async def change(request: web.Request) -> web.StreamResponse:
    """Add, rename, move or delete a status through ``PUT /api/statuses``'s code; then
    back to the page (a rule broken: the page with the API's message)."""
    user = request[USER]
    if not user.may_edit:
        log.warning("ui.refused", path=request.path, key=user.key_name)
        return await message(
            request, "Not allowed", "Changing the pipeline needs the admin scope.", 403
        )
    posted = await request.post()
    status_id = (
        str(posted["id"]) if "id" in posted and request.match_info["action"] != "add" else None
    )
    new = await _change(request, status_id)
    try:
        await replace_pipeline(request.app[PARENT], new, user.key_name)
    except ApiError as exc:
        form = {key: str(posted.get(key, "")) for key in ("id", "name", "sort", "semantics")}
        at = status_id or "add"
        return await _page(request, exc.message, exc.status, form if at == "add" else None, at)
    action = request.match_info["action"]
    log.info("ui.pipeline_changed", action=action, status=status_id, key=user.key_name)
    query = {}
    if action == "move":
        query = {"focus": str(status_id), "dir": str(posted["direction"])}
    raise web.HTTPSeeOther("/ui/statuses" + (f"?{urlencode(query)}" if query else ""))
