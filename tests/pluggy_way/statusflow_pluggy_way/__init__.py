"""Plugins written as pluggy's docs teach: a marker of their own, and implementations
that take only the arguments they use (``def startup(): ...``).

This module is the plugin ``pw_b_plain``; ``first``, ``last`` and ``app`` are the others.
Each ``inspect_event`` notes its plugin's name in the event's facts, so that the order in
which they ran can be read back (the ``pw_app`` object keeps it per app).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from aiohttp import web
from pluggy import HookimplMarker

from statusflow import Event, EventType, Route, TriggerType

hookimpl = HookimplMarker("statusflow")
log = structlog.get_logger("statusflow_pluggy_way")

PING = "pluggy.ping"
ORDER = "pluggy_way.order"


def note(event: Event, name: str) -> None:
    """Add ``name`` to the event's list of the implementations that inspected it."""
    ran = event.facts.setdefault(ORDER, [])
    assert isinstance(ran, list)
    ran.append(name)


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "pluggy"})


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    register(EventType(PING, "Ping"))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    register(TriggerType(PING, "Ping", (PING,)))


@hookimpl
def register_routes(register: Callable[[Route], None]) -> None:
    register(Route("GET", "/sources/pluggy-way/hello", hello))


@hookimpl
def startup() -> None:
    log.info("pluggy_way.started")


@hookimpl
def inspect_event(event: Event) -> None:
    note(event, "pw_b_plain")
