"""Typed keys of what the UI's sub-application and its requests hold."""

from __future__ import annotations

from aiohttp import web

from statusflow.ui.user import User

PARENT = web.AppKey("ui_parent", web.Application)
"""The main application (its database, engine, registry and settings)."""
USER = web.RequestKey("statusflow.ui.user", User)
"""The request's item holding the signed-in :class:`User`."""

__all__ = ["PARENT", "USER", "User"]
