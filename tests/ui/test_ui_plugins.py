"""The plugins page (``/ui/plugins``): every plugin, enabled or not, with its types, and
each inactive trigger with its reason."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.ui.api import call
from tests.ui.conftest import TOKEN, StartBoard, sign_in


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
