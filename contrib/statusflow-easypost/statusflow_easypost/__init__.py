"""statusflow-easypost: EasyPost tracker webhooks move statusflow orders.

Point an EasyPost webhook at ``{public_url}/sources/easypost`` with a webhook secret.
Each delivery is checked against its ``X-Hmac-Signature`` header by the ``easypost``
library's ``validate_webhook`` with ``[plugins.easypost] webhook_secret``; then a
tracker Event becomes events of the built-in ``shipment`` plugin:

* ``tracker.created``: ``shipment.tracking_number_added``;
* ``tracker.updated``: ``shipment.updated`` with the tracker's ``status``, and also
  ``shipment.shipped`` the first time a tracker reports ``in_transit`` for an order;
* any other kind (``batch.created``, ``scan_form.updated``, ...): answered 200, ignored.

The event ids are ``easypost:{Event id}`` and ``easypost:{Event id}:shipped``: EasyPost's
retries are duplicates. The order is the one its tracking number is on record for
(:mod:`statusflow_easypost.lookup`): a stored event's ``data.tracking_number``, which
this plugin records in its own table as events are stored (``prepare_moves``), or the
order's ``fields.tracking_number``. An Event whose order is not found is stored with no
moves and answered 200.

Answers: 403 for a missing or wrong signature (nothing read or stored), 400 for a signed
body that is not JSON or not an EasyPost Event, 503 while no secret is configured, 200
otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from statusflow import JSON, KernelServices, Outcome, Route, Transaction, hookimpl
from statusflow_easypost.lookup import record
from statusflow_easypost.webhook import NAME, OPENAPI, PATH, make_handler

MIGRATIONS = Path(__file__).resolve().with_name("migrations")

SETTINGS_SCHEMA: dict[str, JSON] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "webhook_secret": {
            "type": "string",
            "minLength": 1,
            "maxLength": 1000,
            "description": "the webhook secret given to EasyPost for this URL, which signs "
            "each delivery",
        },
    },
}


@hookimpl
def plugin_settings_schema() -> Mapping[str, JSON]:
    return SETTINGS_SCHEMA


@hookimpl
def migration_locations() -> str:
    return str(MIGRATIONS)


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    register(Route("POST", PATH, make_handler(kernel), OPENAPI))


@hookimpl
def prepare_moves(outcome: Outcome, tx: Transaction) -> None:
    """Put a stored event's ``data.tracking_number`` on record for its orders."""
    record(outcome, tx)


__all__ = ["NAME", "PATH", "SETTINGS_SCHEMA"]
