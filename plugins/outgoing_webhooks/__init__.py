"""The ``outgoing_webhooks`` plugin: tell the store about every move, by signed webhook.

A status sink with a durable outbox (see ``docs/plugins/outgoing_webhooks.md``):

- ``prepare_moves`` writes one ``outgoing_webhooks_moves`` row per move, inside the
  move's own transaction: a committed move is never missed, and nothing is sent for a
  move that did not commit;
- a background worker (``startup`` / ``shutdown``) fans those rows out into one
  delivery per enabled endpoint and sends each, signed, with retries, in order per
  order and endpoint (:mod:`.worker`, :mod:`.outbox`);
- endpoints come from ``[plugins.outgoing_webhooks]`` and from
  ``/api/webhook-endpoints``; deliveries show at ``/api/deliveries`` (:mod:`.api`).

The plugin is a module, shared by every app of the process (tests run several), while
its state (settings, worker) belongs to one app: it lives on an
:class:`OutgoingWebhooks` object per app, found from the ``kernel`` services object
that the hooks receive (held weakly, so a finished app takes its state with it).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

from statusflow import JSON, KernelServices, Outcome, Route, Transaction, hookimpl
from statusflow.plugins.outgoing_webhooks import outbox
from statusflow.plugins.outgoing_webhooks.api import Handlers
from statusflow.plugins.outgoing_webhooks.settings import SETTINGS_SCHEMA, Settings
from statusflow.plugins.outgoing_webhooks.tables import MOVES
from statusflow.plugins.outgoing_webhooks.worker import Worker

NAME = "outgoing_webhooks"
MIGRATIONS = Path(__file__).resolve().with_name("migrations")


class OutgoingWebhooks:
    """The plugin's state in one app: its settings, its worker."""

    def __init__(self, kernel: KernelServices) -> None:
        self.kernel = kernel
        self.settings = Settings.from_table(kernel.plugin_config(NAME))
        if self.settings.problems:
            raise ValueError(f"[plugins.{NAME}]: " + "; ".join(self.settings.problems))
        self.worker: Worker | None = None

    async def start(self) -> None:
        await outbox.sync_config_endpoints(self.kernel, self.settings.endpoints)
        self.worker = Worker(self.kernel, self.settings)
        self.worker.start()

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None

    def wake(self) -> None:
        """Look for due deliveries now."""
        if self.worker is not None:
            self.worker.wake()

    def moves_queued(self) -> None:
        """Moves committed in this process wait to be fanned out."""
        if self.worker is not None:
            self.worker.moves_queued()


_apps: weakref.WeakValueDictionary[int, OutgoingWebhooks] = weakref.WeakValueDictionary()
"""Each app's state by ``id(kernel)``. The app holds its state (its routes' handlers do),
and the state holds the kernel, so an id is never reused while its entry lives."""


def instance(kernel: KernelServices) -> OutgoingWebhooks:
    """The plugin's state in the app whose services ``kernel`` are."""
    found = _apps.get(id(kernel))
    if found is None or found.kernel is not kernel:
        found = _apps[id(kernel)] = OutgoingWebhooks(kernel)
    return found


# --- hooks -----------------------------------------------------------------------------


@hookimpl
def plugin_settings_schema() -> Mapping[str, JSON]:
    return SETTINGS_SCHEMA


@hookimpl
def migration_locations() -> str:
    return str(MIGRATIONS)


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    for route in Handlers(instance(kernel)).routes():
        register(route)


@hookimpl
async def startup(kernel: KernelServices) -> None:
    await instance(kernel).start()


@hookimpl
async def shutdown(kernel: KernelServices) -> None:
    await instance(kernel).stop()


@hookimpl
def prepare_moves(outcome: Outcome, tx: Transaction) -> None:
    """Queue every move in its own transaction; the worker fans it out after the commit."""
    for move in outcome.moves:
        tx.insert(
            MOVES,
            {
                "order_id": move.order_id,
                "from_status": move.from_status,
                "to_status": move.to_status,
                "trigger_id": move.trigger_id,
                "event_id": move.event_id,
                "event_type": move.event_type,
                "at": move.at,
            },
        )


@hookimpl
def moves_committed(outcome: Outcome, kernel: KernelServices) -> None:
    """Wake this app's worker: there is something to send."""
    if outcome.moves:
        state = _apps.get(id(kernel))
        if state is not None and state.kernel is kernel:
            state.moves_queued()
