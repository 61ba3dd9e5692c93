"""``kernel.submit_event(..., store_unknown_order=True)``: a provider's event for an order
statusflow does not know is stored, resolved to no order, instead of a 404.

Provider webhooks (contract §10) answer such a delivery 200 so that the provider does not
retry it forever, and keep it: the event is listed, its id is taken (a retry is a
duplicate), and it moved nothing. Without the keyword, and at ``POST /api/events``, an
unknown order is still a 404 that stores nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from statusflow import KernelServices, Route, hookimpl, json_response, read_json_body


class Relay:
    """A plugin whose route hands its body to ``submit_event``, with or without the keyword."""

    @hookimpl
    def register_routes(self, register: Any, kernel: KernelServices) -> None:
        async def relay(request: web.Request) -> web.Response:
            store = request.query.get("store") == "1"
            event: Any = await read_json_body(request)
            return json_response(await kernel.submit_event(event, store_unknown_order=store))

        register(Route("POST", "/relay", relay))


async def relay(sf: Any, event: dict[str, Any], *, store: bool, expect: int = 200) -> Any:
    response = await sf.client.post(f"/relay?store={int(store)}", json=event)
    body = await response.json()
    assert response.status == expect, body
    return body


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_an_unknown_order_is_stored_with_no_moves_when_asked(statusflow_app):
    sf = await statusflow_app(plugins=["email", ("relay", Relay())])
    await sf.create_order("o1", contact={"emails": ["ada@example.com"]})
    await sf.create_trigger("email.viewed", "P")
    event = {
        "id": "provider:1",
        "type": "email.viewed",
        "order_id": "nope",
        "contact": {"email": "ada@example.com"},  # only data, as with any order_id
        "data": {"message_id": "m1"},
    }
    # without the keyword, as at POST /api/events: a 404 that stores nothing
    answer = await relay(sf, event, store=False, expect=404)
    assert answer["error"]["code"] == "order_not_found"
    await sf.post_event(event, expect=404)
    assert await sf.event_count() == 0

    result = await relay(sf, event, store=True)
    assert result == {"event_id": "provider:1", "duplicate": False, "order_ids": [], "moves": []}
    stored = await sf.get_event("provider:1")
    assert stored["order_ids"] == [] and stored["moves"] == [] and stored["trace"] == []
    assert await sf.status_of("o1") == "N"
    assert [e["kind"] for e in await sf.timeline("o1")] == ["created"]
    # a retry is a duplicate, wherever it comes from
    assert (await relay(sf, event, store=True))["duplicate"] is True
    assert (await sf.post_event(event))["duplicate"] is True
    assert await sf.event_count() == 1

    # a known order is processed as usual
    known = {**event, "id": "provider:2", "order_id": "o1"}
    moved = await relay(sf, known, store=True)
    assert moved["moves"] == [{"order_id": "o1", "from": "N", "to": "P", "trigger_id": 1}]
