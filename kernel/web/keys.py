"""Typed keys of everything the aiohttp application holds."""

from __future__ import annotations

import pluggy
from aiohttp import web

from kernel.config import Settings
from kernel.engine import Engine
from kernel.plugins import PluginInfo, Registry
from kernel.services import Services
from kernel.storage import Database
from kernel.types import Route

SETTINGS = web.AppKey("settings", Settings)
PLUGIN_MANAGER = web.AppKey("plugin_manager", pluggy.PluginManager)
REGISTRY = web.AppKey("registry", Registry)
SERVICES = web.AppKey("services", Services)
ENGINE = web.AppKey("engine", Engine)
DATABASE = web.AppKey("database", Database)
PLUGIN_ROUTES = web.AppKey("plugin_routes", list[tuple[str, Route]])
PLUGIN_INFOS = web.AppKey("plugin_infos", list[PluginInfo])
