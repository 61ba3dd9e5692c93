"""Helpers for the tests of actions: apps with a manual clock, and waiting for runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp.test_utils import TestClient

from statusflow import ActionContext, ActionFailed, ActionResult, ActionType, hookimpl
from statusflow.engine.scheduler import ManualClock
from statusflow.http import init_app
from statusflow.serving.config import ActionSettings
from statusflow.testing import settings_for
from tests.helpers import Api, until


class ActionsApi(Api):
    """The API, with the calls of actions and runs."""

    def __init__(self, client: TestClient, clock: ManualClock) -> None:
        super().__init__(client)
        self.clock = clock

    async def create_action(self, status: str, type: str, **fields: Any) -> dict[str, Any]:
        body = {"status": status, "type": type, **fields}
        return dict(await self.call("POST", "/api/actions", body, expect=201))

    async def runs(self, order_id: str) -> list[dict[str, Any]]:
        return list(await self.call("GET", f"/api/orders/{order_id}/runs"))

    async def runs_of(self, order_id: str, action_id: int) -> list[dict[str, Any]]:
        return [r for r in await self.runs(order_id) if r["action_id"] == action_id]

    async def wait_run(
        self, order_id: str, action_id: int, states: Iterable[str] = ("done",)
    ) -> dict[str, Any]:
        """Wait until the order's (latest) run of the action is in one of ``states``."""
        wanted = set(states)

        async def ended() -> dict[str, Any] | None:
            runs = await self.runs_of(order_id, action_id)
            return runs[-1] if runs and runs[-1]["state"] in wanted else None

        return dict(await until(ended, f"run of action {action_id} for {order_id} in {wanted}"))

    async def wait_status(self, order_id: str, status: str) -> None:
        async def there() -> bool:
            return await self.status_of(order_id) == status

        await until(there, f"order {order_id} in {status}")


class ProbeActions:
    """Action types for tests: ``test.fail`` (always fails), ``test.count`` (records each
    call), ``test.wait`` (waits until released, then records)."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def fail(self, ctx: ActionContext) -> None:
        raise ActionFailed(f"the far side is down (attempt {ctx.attempt})")

    async def count(self, ctx: ActionContext) -> ActionResult:
        self.calls.append(ctx.run_id)
        return ActionResult(reason=f"counted run {ctx.run_id}")

    async def wait(self, ctx: ActionContext) -> None:
        self.started.set()
        await self.release.wait()
        self.calls.append(ctx.run_id)

    @hookimpl
    def register_action_types(self, register: Callable[[ActionType], None]) -> None:
        register(ActionType("test.fail", "Always fails", self.fail))
        register(ActionType("test.count", "Counts", self.count))
        register(ActionType("test.wait", "Waits", self.wait))


PLUGINS = ("payment", "order_actions", "responsible")


async def start(
    aiohttp_client: Any,
    database_url: str,
    *,
    clock: ManualClock | None = None,
    probe: ProbeActions | None = None,
    plugins: tuple[str, ...] = PLUGINS,
    tables: dict[str, Any] | None = None,
    **actions: Any,
) -> ActionsApi:
    """An app on ``database_url`` with a manual clock (and the test action types);
    ``actions`` are ``[actions]`` settings, ``tables`` top-level tables (``smtp``)."""
    clock = clock or ManualClock()
    settings = settings_for(
        database_url, enable=plugins, actions=ActionSettings(**actions), tables=tables or {}
    )
    extra = [("probe", probe)] if probe is not None else []
    client = await aiohttp_client(init_app(settings, extra_plugins=extra, clock=clock))
    return ActionsApi(client, clock)
