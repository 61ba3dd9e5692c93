"""What the board calls a trigger or an action: its own name, else its type's title
(else its type's code, when no loaded plugin registers the type)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from statusflow.http.keys import DATABASE, REGISTRY


def title_of(types: Mapping[str, Any], type_code: str) -> str:
    """The title of ``type_code`` among ``types`` (a registry's trigger or action types),
    or the code itself when it is not loaded."""
    known = types.get(type_code)
    return known.title if known is not None else type_code


def label(types: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    """A trigger's or an action's ``name``, else its type's title."""
    return row["name"] or title_of(types, row["type"])


async def trigger_names(app: web.Application) -> dict[int, str]:
    """What the board calls each trigger, by id."""
    types = app[REGISTRY].trigger_types
    async with app[DATABASE].read() as sql:
        rows = await sql.triggers()
    return {row["id"]: label(types, row) for row in rows}


async def action_names(app: web.Application) -> dict[int, str]:
    """What the board calls each action, by id."""
    types = app[REGISTRY].action_types
    async with app[DATABASE].read() as sql:
        rows = await sql.listed_actions()
    return {row["id"]: label(types, row) for row in rows}
