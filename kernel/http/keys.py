"""Typed keys of everything the aiohttp application holds."""

from __future__ import annotations

import pluggy
from aiohttp import web

from statusflow.engine.pipeline import Engine
from statusflow.engine.scheduler import Clock, Scheduler
from statusflow.engine.services import Services
from statusflow.registry import Registry
from statusflow.serving.api_keys import ApiKey
from statusflow.serving.config import Settings
from statusflow.serving.plugin_catalog import PluginInfo
from statusflow.store.database import Database
from statusflow.types import Route

SETTINGS = web.AppKey("settings", Settings)
PLUGIN_MANAGER = web.AppKey("plugin_manager", pluggy.PluginManager)
REGISTRY = web.AppKey("registry", Registry)
SERVICES = web.AppKey("services", Services)
ENGINE = web.AppKey("engine", Engine)
DATABASE = web.AppKey("database", Database)
PLUGIN_ROUTES = web.AppKey("plugin_routes", list[tuple[str, Route]])
PLUGIN_INFOS = web.AppKey("plugin_infos", list[PluginInfo])
MIGRATION_LOCATIONS = web.AppKey("migration_locations", list[str])
"""The plugins' migration folders, found once at start-up (disabled plugins' included)."""
ACCEPTED_KEYS = web.AppKey("accepted_keys", tuple[ApiKey, ...])
"""The plain tokens and the named keys (empty: auth is off)."""
ROUTE_SCOPES = web.AppKey("route_scopes", dict[web.AbstractRoute, str])
"""The scope each mounted ``/api/*`` route needs."""
CLOCK = web.AppKey("clock", Clock)
"""The scheduler's time (a test's :class:`~statusflow.engine.scheduler.ManualClock`)."""
SCHEDULER = web.AppKey("scheduler", Scheduler)
