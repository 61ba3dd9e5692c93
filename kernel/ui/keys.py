"""Typed keys of what the UI's sub-application and its requests hold."""

from __future__ import annotations

from aiohttp import web

from statusflow.ui.user import User

PARENT = web.AppKey("ui_parent", web.Application)
"""The main application (its database, engine, registry and settings)."""
NAV = web.AppKey("ui_nav", tuple)
"""The main navigation of the board: ``(path, label)`` pairs, the plugins' pages last."""
USER = web.RequestKey("statusflow.ui.user", User)
"""The request's item holding the signed-in :class:`User`."""

__all__ = ["NAV", "PARENT", "USER", "User"]
