"""The deliveries page, a page the ``outgoing_webhooks`` plugin adds to the board through
``register_ui_pages``: failed deliveries listed with their last error, ``Retry`` queues one
again; a read-only key sees no ``Retry`` and its POST is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect

from statusflow import StartupError, UiPage, hookimpl
from statusflow.serving.api_keys import keys_from_config
from tests.ui.api import call
from tests.ui.conftest import TOKEN, Board, StartBoard, sign_in

READER = "reader-token-91c4"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = {
    "poll_interval": 0.05,
    "request_timeout": 2.0,
    "lease": 5.0,
    "retry_initial_delay": 0.05,
    "retry_max_delay": 0.1,
    "give_up_after": 0.5,
}


class Store:
    """A store's webhook endpoint answering each request with the next of ``answers``
    (the last one again when they run out)."""

    def __init__(self, *answers: int) -> None:
        self.answers = list(answers)
        self.received = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received += 1
        status = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return web.Response(status=status, text="store says <b>no</b>" if status >= 400 else "")


@pytest.fixture
async def store() -> AsyncIterator[tuple[Store, str]]:
    """A local endpoint that answers 500 until told otherwise; its URL."""
    receiver = Store(500)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield receiver, str(server.make_url("/hook"))
    finally:
        await server.close()


async def _failed_delivery(start_board: StartBoard, url: str, **settings: Any) -> Board:
    table = {**FAST, "endpoints": [{"id": "store", "url": url, "secret": SECRET}]}
    board = await start_board(
        tokens=(TOKEN,),
        enable=("payment", "outgoing_webhooks"),
        plugin_tables={"outgoing_webhooks": table},
        **settings,
    )
    assert (
        await call(board, "POST", "/api/triggers", {"type": "payment.received", "status": "P"})
    )[0] == 201
    assert (await call(board, "POST", "/api/orders", {"id": "o-1"}))[0] == 201
    event = {"type": "payment.received", "order_id": "o-1"}
    assert (await call(board, "POST", "/api/events", event))[0] == 200
    for _ in range(100):
        answer = (await call(board, "GET", "/api/deliveries?state=failed"))[1]
        if answer["deliveries"]:
            return board
        await asyncio.sleep(0.05)
    raise AssertionError("the delivery did not fail")


async def test_a_failed_delivery_is_listed_and_retried(
    start_board: StartBoard, page: Page, store: tuple[Store, str]
) -> None:
    receiver, url = store
    board = await _failed_delivery(start_board, url)
    await sign_in(page, board)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Deliveries").click()
    endpoint = page.get_by_role("region", name="Endpoint store")
    row = endpoint.locator("tr.delivery")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("failed")
    await expect(row).to_contain_text("o-1")
    await expect(row).to_contain_text("N → P")
    await expect(row.locator(".last-error")).to_contain_text("500")
    attempts = int(await row.locator("td").nth(4).inner_text())
    assert attempts >= 1

    receiver.answers = [200]
    await row.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("status")).to_contain_text("queued again")
    for _ in range(100):
        answer = (await call(board, "GET", "/api/deliveries?state=delivered"))[1]
        if answer["deliveries"]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the retried delivery was not delivered")
    await page.reload()
    await expect(endpoint.locator("tr.delivery")).to_contain_text("delivered")
    assert await endpoint.get_by_role("button", name="Retry").count() == 0


async def test_a_read_only_key_cannot_retry(
    start_board: StartBoard, page: Page, store: tuple[Store, str]
) -> None:
    _, url = store
    keys = keys_from_config(({"name": "reader", "token": READER, "scopes": ["read"]},))
    board = await _failed_delivery(start_board, url, keys=keys)
    await sign_in(page, board, READER)
    await page.goto(board.url("/ui/deliveries"))
    row = page.locator("tr.delivery")
    await expect(row).to_contain_text("failed")
    assert await page.get_by_role("button", name="Retry").count() == 0
    delivery = (await call(board, "GET", "/api/deliveries?state=failed"))[1]["deliveries"][0]
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    response = await page.request.post(
        board.url(f"/ui/deliveries/{delivery['id']}/retry"), form={"csrf_token": token}
    )
    assert response.status == 403
    assert "admin scope" in await response.text()
    after = (await call(board, "GET", f"/api/deliveries/{delivery['id']}"))[1]
    assert after["state"] == "failed"


async def test_without_the_plugin_there_is_no_deliveries_page(
    start_board: StartBoard, page: Page
) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    await sign_in(page, board)
    nav = page.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Plugins")).to_be_visible()
    assert await nav.get_by_role("link", name="Deliveries").count() == 0
    response = await page.goto(board.url("/ui/deliveries"))
    assert response is not None and response.status == 404


class _BadPage:
    """A plugin whose board page is not under ``/``."""

    @hookimpl
    def register_ui_pages(self, register: Callable[[UiPage], None]) -> None:
        register(UiPage("deliveries", _nothing))


async def _nothing(request: web.Request) -> web.Response:
    return web.Response(text="nothing")


async def test_a_page_outside_the_board_stops_start_up(start_board: StartBoard) -> None:
    with pytest.raises(StartupError, match="'bad' registered a board page"):
        await start_board(extra_plugins=[("bad", _BadPage())], enable=("payment",))
