"""The board's deliveries page (``/ui/deliveries``), added through ``register_ui_pages``:
each endpoint with its recent deliveries (state, attempts, last answer, last error), and
``Retry`` for a failed one, through the code of ``POST /api/deliveries/{id}/retry``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web

from statusflow import ApiError, UiPage
from statusflow.plugins.outgoing_webhooks.api import Handlers, delivery_json, endpoint_json
from statusflow.plugins.outgoing_webhooks.settings import shown_url
from statusflow.plugins.outgoing_webhooks.tables import DELIVERIES, ENDPOINTS, FAILED
from statusflow.ui.keys import USER
from statusflow.ui.render import render

log = structlog.get_logger("statusflow.plugins.outgoing_webhooks")

TEMPLATES = Path(__file__).resolve().with_name("templates")
RECENT = 20
"""Deliveries shown per endpoint, newest first."""


class DeliveriesPage:
    """The page and its ``Retry`` form of one app's plugin."""

    def __init__(self, handlers: Handlers) -> None:
        self.handlers = handlers

    def pages(self) -> list[UiPage]:
        """What the plugin registers: the page (in the navigation) and the retry form."""
        return [
            UiPage("/deliveries", self.show, label="Deliveries", templates=str(TEMPLATES)),
            UiPage("/deliveries/{id}/retry", self.retry, method="POST", scope="admin"),
        ]

    async def _endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint (its URL without credentials or query) with its recent deliveries."""
        async with self.handlers.kernel.read() as conn:
            rows = (await conn.execute(sa.select(ENDPOINTS).order_by(ENDPOINTS.c.id))).all()
            shown = []
            for row in rows:
                query = (
                    sa.select(DELIVERIES)
                    .where(DELIVERIES.c.endpoint_id == row.id)
                    .order_by(DELIVERIES.c.seq.desc())
                    .limit(RECENT)
                )
                deliveries = [delivery_json(d) for d in (await conn.execute(query)).all()]
                endpoint = endpoint_json(row)
                endpoint["url"] = shown_url(endpoint["url"])
                shown.append({**endpoint, "deliveries": deliveries})
        return shown

    async def _page(
        self, request: web.Request, error: str | None = None, status: int = 200
    ) -> web.Response:
        context = {
            "title": "Deliveries",
            "current": "/ui/deliveries",
            "endpoints": await self._endpoints(),
            "failed": FAILED,
            "error": error,
            "retried": request.query.get("retried"),
        }
        return await render(request, "deliveries.html", context, status)

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /ui/deliveries``."""
        return await self._page(request)

    async def retry(self, request: web.Request) -> web.StreamResponse:
        """``POST /ui/deliveries/{id}/retry``: queue it again, then back to the page."""
        delivery_id = request.match_info["id"]
        try:
            await self.handlers.retry(delivery_id)
        except ApiError as exc:
            return await self._page(request, exc.message, exc.status)
        log.info("delivery.retried", delivery_id=delivery_id, key=request[USER].key_name)
        raise web.HTTPSeeOther(f"/ui/deliveries?retried={delivery_id}")
