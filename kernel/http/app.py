"""``init_app(settings)``: the aiohttp application, its plugins and its database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from statusflow.engine.pipeline import Engine
from statusflow.engine.scheduler import Clock, Scheduler
from statusflow.engine.services import Services
from statusflow.http.drain import IN_FLIGHT, InFlight
from statusflow.http.front_door import front_door
from statusflow.http.keys import (
    ACCEPTED_KEYS,
    CLOCK,
    DATABASE,
    ENGINE,
    MIGRATION_LOCATIONS,
    PLUGIN_INFOS,
    PLUGIN_MANAGER,
    REGISTRY,
    SCHEDULER,
    SERVICES,
    SETTINGS,
)
from statusflow.http.orders import order_json
from statusflow.http.routes import setup_routes
from statusflow.registry import (
    build_registry,
    call_lifecycle,
    collect_routes,
    make_plugin_manager,
)
from statusflow.serving.config import Settings
from statusflow.serving.plugin_catalog import list_plugins, migration_locations
from statusflow.serving.plugin_settings import plugin_settings
from statusflow.serving.retention import Retention
from statusflow.store.database import Database, prepare
from statusflow.ui.mount import mount_ui


def init_app(
    settings: Settings,
    extra_plugins: Iterable[tuple[str, object]] = (),
    clock: Clock | None = None,
) -> web.Application:
    """Build the application: plugins load and routes mount now, the database at start.

    :param extra_plugins: ``(name, plugin)`` pairs registered besides entry points (tests).
    :param clock: the scheduler's time (tests move a ``ManualClock`` by days).
    :raises StartupError: the plugins or the configuration do not allow starting.
    """
    pm = make_plugin_manager(
        settings.disable, settings.enable, extra_plugins, dirs=settings.plugin_dirs
    )
    registry = build_registry(pm)
    services = Services(settings, plugin_settings(pm, settings.plugin_tables))
    in_flight = InFlight()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[front_door(settings, in_flight)],  # one layer: statusflow.http.front_door
    )
    app[SETTINGS] = settings
    app[ACCEPTED_KEYS] = settings.accepted_keys()
    app[CLOCK] = clock or Clock()
    app[IN_FLIGHT] = in_flight
    app[PLUGIN_MANAGER] = pm
    app[REGISTRY] = registry
    app[SERVICES] = services
    app[PLUGIN_INFOS] = list_plugins(settings.disable, settings.enable, settings.plugin_dirs)
    setup_routes(app, collect_routes(pm, services))
    if settings.ui_enabled:
        mount_ui(app)
    app.on_response_prepare.append(_server_header)
    app.cleanup_ctx.append(_database)
    if settings.events_days is not None:
        app.cleanup_ctx.append(_retention)
    return app


async def _retention(app: web.Application) -> AsyncIterator[None]:
    """``[retention] events_days``: expire old events in the background."""
    retention = Retention(app[DATABASE], app[SETTINGS].events_days or 0)
    retention.start()
    try:
        yield
    finally:
        await retention.stop()


SERVER = "statusflow"


async def _server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """``Server: statusflow``: no versions of Python, aiohttp or statusflow to scan for."""
    response.headers["Server"] = SERVER


async def _database(app: web.Application) -> AsyncIterator[None]:
    """Open the database, migrate, seed, start the engine; dispose on the way out."""
    settings = app[SETTINGS]
    db = Database(settings.database_url)
    try:
        locations = app[MIGRATION_LOCATIONS] = migration_locations(
            app[PLUGIN_MANAGER], settings.plugin_dirs
        )
        key = await prepare(
            settings.database_url, locations, settings.migrate_on_start, settings.secret
        )
        engine = Engine(
            db, app[PLUGIN_MANAGER], app[REGISTRY], settings.default_region, app[SERVICES]
        )
        app[SERVICES].bind(engine, key)
        app[DATABASE] = db
        app[ENGINE] = engine
        await call_lifecycle(app[PLUGIN_MANAGER], "startup", app[SERVICES])
        scheduler = app[SCHEDULER] = Scheduler(
            engine, settings.actions, app[SERVICES], order_json, app[CLOCK]
        )
        engine.runs_written = scheduler.hint
        scheduler.register_gauges()
        if settings.actions.run:
            scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()  # before the plugins whose action types it runs
            await call_lifecycle(app[PLUGIN_MANAGER], "shutdown", app[SERVICES])
            await engine.close()
    finally:
        await db.dispose()
