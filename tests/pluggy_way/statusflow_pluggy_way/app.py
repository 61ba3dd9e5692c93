"""The plugin ``pw_app``: its entry point names the class :class:`PluggyWay`, so each app
gets an object of its own, which keeps what it saw and serves it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from statusflow import JSON, Event, KernelServices, Outcome, Route
from statusflow_pluggy_way import ORDER, hookimpl, note

NAME = "pw_app"


class PluggyWay:
    """One object per app; its settings (``label``) are read at event time."""

    def __init__(self) -> None:
        self.started = 0
        self.orders: list[Any] = []

    @hookimpl
    def plugin_settings_schema(self) -> Mapping[str, JSON]:
        return {"type": "object", "properties": {"label": {"type": "string"}}}

    @hookimpl
    def register_routes(self, register: Callable[[Route], None]) -> None:
        register(Route("GET", "/sources/pluggy-way", self.seen))

    @hookimpl
    def startup(self) -> None:
        self.started += 1

    @hookimpl
    def inspect_event(self, event: Event, kernel: KernelServices) -> None:
        note(event, str(kernel.plugin_config(NAME).get("label", NAME)))

    @hookimpl
    def moves_committed(self, outcome: Outcome) -> None:
        if outcome.event is not None:
            self.orders.append(outcome.event.facts.get(ORDER))

    async def seen(self, request: web.Request) -> web.Response:
        return web.json_response({"started": self.started, "orders": self.orders})
