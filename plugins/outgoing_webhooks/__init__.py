"""The ``outgoing_webhooks`` plugin: tell the store about every move, by signed webhook.

A status sink with a durable outbox (see ``docs/plugins/outgoing_webhooks.md``):

- ``prepare_moves`` writes one ``outgoing_webhooks_moves`` row per move, inside the
  move's own transaction: a committed move is never missed, and nothing is sent for a
  move that did not commit;
- a background worker (``startup`` / ``shutdown``) fans those rows out into one
  delivery per enabled endpoint and sends each, signed, with retries, in order per
  order and endpoint (:mod:`.worker`, :mod:`.outbox`);
- endpoints come from ``[plugins.outgoing_webhooks]`` and from
  ``/api/webhook-endpoints``; deliveries show at ``/api/deliveries`` (:mod:`.api`)
  and on the board's page ``/ui/deliveries`` (:mod:`.ui`, ``register_ui_pages``).

The plugin is a class, :class:`OutgoingWebhooks`, which the entry point names: the
kernel makes one object of it per app (tests run several apps in one process) and its
methods are the hooks, so each app's settings and worker live on that app's object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from statusflow import JSON, KernelServices, Outcome, Route, Transaction, UiPage, hookimpl
from statusflow.plugins.outgoing_webhooks import outbox
from statusflow.plugins.outgoing_webhooks.api import Handlers
from statusflow.plugins.outgoing_webhooks.settings import SETTINGS_SCHEMA, Settings
from statusflow.plugins.outgoing_webhooks.tables import MOVES
from statusflow.plugins.outgoing_webhooks.ui import DeliveriesPage
from statusflow.plugins.outgoing_webhooks.worker import Worker

NAME = "outgoing_webhooks"
MIGRATIONS = Path(__file__).resolve().with_name("migrations")


class OutgoingWebhooks:
    """The plugin in one app: its settings and its worker, and the hooks that use them.

    Made with no arguments by the kernel, once per app; ``register_routes``, the first
    hook that gets the app's services, reads and checks the settings.
    """

    def __init__(self) -> None:
        self.settings = Settings()
        self.worker: Worker | None = None

    def wake(self) -> None:
        """Look for due deliveries now."""
        if self.worker is not None:
            self.worker.wake()

    # --- hooks -------------------------------------------------------------------------

    @hookimpl
    def plugin_settings_schema(self) -> Mapping[str, JSON]:
        return SETTINGS_SCHEMA

    @hookimpl
    def migration_locations(self) -> str:
        return str(MIGRATIONS)

    @hookimpl
    def register_routes(self, register: Callable[[Route], None], kernel: KernelServices) -> None:
        settings = Settings.from_table(kernel.plugin_config(NAME))
        if settings.problems:
            raise ValueError(f"[plugins.{NAME}]: " + "; ".join(settings.problems))
        self.settings = settings
        for route in Handlers(self, kernel).routes():
            register(route)

    @hookimpl
    def register_ui_pages(self, register: Callable[[UiPage], None], kernel: KernelServices) -> None:
        """The board's deliveries page, with ``Retry`` for failed deliveries."""
        for page in DeliveriesPage(Handlers(self, kernel)).pages():
            register(page)

    @hookimpl
    async def startup(self, kernel: KernelServices) -> None:
        await outbox.sync_config_endpoints(kernel, self.settings.endpoints)
        self.worker = Worker(kernel, self.settings)
        self.worker.start()

    @hookimpl
    async def shutdown(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None

    @hookimpl
    def prepare_moves(self, outcome: Outcome, tx: Transaction) -> None:
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
                    "action_id": move.action_id,
                },
            )

    @hookimpl
    def moves_committed(self, outcome: Outcome) -> None:
        """Wake this app's worker: there is something to send."""
        if outcome.moves and self.worker is not None:
            self.worker.moves_queued()
