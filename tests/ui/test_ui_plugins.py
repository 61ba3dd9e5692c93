"""The plugins page (``/ui/plugins``): every plugin, enabled or not, with its types, and
each inactive trigger with its reason."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.ui.api import call
from tests.ui.conftest import TOKEN, StartBoard, sign_in

UNLABELLED = """[...document.querySelectorAll(
    'main input:not([type=hidden]), main select, main textarea, main button')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                 && !e.textContent.trim()).length"""
"""How many controls of the page's main part have no label."""


async def test_plugins_and_an_inactive_trigger_with_its_reason(
    start_board: StartBoard, page: Page
) -> None:
    first = await start_board(tokens=(TOKEN,), enable=("payment", "calls"))
    body = {"type": "call.missed", "status": "P", "name": "Missed <b>call</b>"}
    assert (await call(first, "POST", "/api/triggers", body))[0] == 201
    await first.server.close()

    board = await start_board(tokens=(TOKEN,), enable=("payment",))  # calls: not loaded
    await sign_in(page, board)
    await page.goto(board.url("/ui/plugins"))
    payment = page.get_by_role("region", name="payment", exact=True)
    await expect(payment).to_contain_text("enabled")
    await expect(payment).to_contain_text("payment.received")
    calls = page.get_by_role("region", name="calls", exact=True)
    await expect(calls).to_contain_text("disabled")
    await expect(calls).to_contain_text("call.missed")
    inactive = calls.locator(".inactive-triggers li")
    await expect(inactive).to_have_count(1)
    await expect(inactive).to_contain_text("Missed <b>call</b>")  # as text
    await expect(inactive).to_contain_text("inactive")
    await expect(inactive.locator(".reason")).to_contain_text("call.missed")
    await expect(inactive.get_by_role("link", name="See it on the board")).to_have_attribute(
        "href", "/ui/#trigger-1"
    )
    await expect(page.get_by_text("1 inactive trigger")).to_be_visible()


async def test_the_pages_fit_a_phone(start_board: StartBoard, page: Page) -> None:
    """At a phone's width, no page of these scrolls sideways, and every control is labelled."""
    board = await start_board(tokens=(TOKEN,), enable=("payment", "outgoing_webhooks"))
    assert (await call(board, "POST", "/api/orders", {"id": "o-" + "9" * 60}))[0] == 201
    event = {"type": "payment.received", "order_id": "o-" + "9" * 60, "data": {"method": "x" * 190}}
    assert (await call(board, "POST", "/api/events", event))[0] == 200
    await page.set_viewport_size({"width": 390, "height": 800})
    await sign_in(page, board)
    for path in ("/ui/events", "/ui/try", "/ui/statuses", "/ui/plugins", "/ui/deliveries"):
        await page.goto(board.url(path))
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        unlabelled = await page.evaluate(UNLABELLED)
        assert unlabelled == 0, path
