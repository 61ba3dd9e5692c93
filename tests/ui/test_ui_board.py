"""The board (``/ui/``) in a real browser: trigger cards added from a column's form,
moved by ``Move to`` and by drag and drop, disabled and deleted; actions with their
delays; live counts; read-only keys; inactive triggers; text shown as text."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession
from playwright.async_api import Locator, Page, expect

from tests.ui.conftest import TOKEN, Board, StartBoard, sign_in

PLUGINS = ("payment", "email", "orders", "order_actions", "webhook_call")


async def api(board: Board, method: str, path: str, body: Any = None) -> Any:
    """Call the API as a client would (with the board's token)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        ClientSession() as http,
        http.request(method, board.url(path), json=body, headers=headers) as response,
    ):
        assert response.status < 300, (method, path, response.status, await response.text())
        return None if response.status == 204 else await response.json()


def column(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name)


def card(page: Page, status: str, text: str) -> Locator:
    return column(page, status).get_by_role("listitem").filter(has_text=text)


async def test_a_trigger_added_from_a_column_form(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await sign_in(page, board)
    await column(page, "Shipped").get_by_role("button", name="Add trigger").click()
    await page.get_by_label("Type").select_option(label="Email link clicked")
    await page.get_by_label("url").fill("https://shop.example/track")
    await page.get_by_label("Name").fill("Tracking link clicked")
    await page.get_by_label("Allow switching to previous status").check()
    await page.get_by_role("button", name="Add trigger").click()
    await page.wait_for_url(board.url("/ui/"))
    await expect(card(page, "Shipped", "Tracking link clicked")).to_be_visible()
    (stored,) = await api(board, "GET", "/api/triggers")
    assert stored["status"] == "S" and stored["type"] == "email.link_clicked"
    assert stored["settings"] == {"url": "https://shop.example/track"}
    assert stored["allow_backwards"] is True and stored["enabled"] is True


async def test_cards_move_by_move_to_and_by_drag(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    made = await api(
        board,
        "POST",
        "/api/triggers",
        {"type": "payment.received", "status": "N", "name": "Paid up"},
    )
    await sign_in(page, board)
    first = card(page, "New", "Paid up")
    await first.get_by_label("Move to").select_option(label="Paid")
    await first.get_by_role("button", name="Move to", exact=True).click()
    await expect(card(page, "Paid", "Paid up")).to_be_visible()
    await expect(card(page, "New", "Paid up")).to_have_count(0)
    assert (await api(board, "GET", f"/api/triggers/{made['id']}"))["status"] == "P"

    target = column(page, "Shipped").get_by_role("list", name="Triggers to Shipped")
    await card(page, "Paid", "Paid up").get_by_text("Paid up").drag_to(target)
    await expect(card(page, "Shipped", "Paid up")).to_be_visible()
    await expect(card(page, "Paid", "Paid up")).to_have_count(0)
    assert (await api(board, "GET", f"/api/triggers/{made['id']}"))["status"] == "S"


async def test_a_trigger_disabled_then_deleted(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    made = await api(board, "POST", "/api/triggers", {"type": "email.viewed", "status": "P"})
    await sign_in(page, board)
    one = card(page, "Paid", "Email opened")
    await one.get_by_role("button", name="Disable").click()
    await expect(one.get_by_text("disabled", exact=True)).to_be_visible()
    assert (await api(board, "GET", f"/api/triggers/{made['id']}"))["enabled"] is False

    await one.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("heading", name="Delete this trigger?")).to_be_visible()
    await page.get_by_role("button", name="Delete").click()
    await page.wait_for_url(board.url("/ui/"))
    await expect(card(page, "Paid", "Email opened")).to_have_count(0)
    assert await api(board, "GET", "/api/triggers") == []


async def test_an_action_added_with_a_delay(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await sign_in(page, board)
    await column(page, "New").get_by_role("button", name="Add action").click()
    await page.get_by_label("Type").select_option(label="Change the status")
    await page.get_by_label("status", exact=True).fill("D")
    await page.get_by_label("Delay", exact=True).fill("3")
    await page.get_by_label("Unit").select_option("days")
    await page.get_by_role("button", name="Add action").click()
    await page.wait_for_url(board.url("/ui/"))
    actions = column(page, "New").get_by_role("list", name="Actions in New")
    await expect(actions).to_contain_text("Change the status")
    await expect(actions).to_contain_text("after 3 days")
    (stored,) = await api(board, "GET", "/api/actions")
    assert stored["delay"] == "P3D" and stored["settings"] == {"status": "D"}
    assert stored["status"] == "N"


async def test_a_read_only_key_sees_no_edit_controls(start_board: StartBoard, page: Page) -> None:
    from statusflow.serving.api_keys import keys_from_config

    keys = keys_from_config(({"name": "reader", "token": "reader-7c1", "scopes": ["read"]},))
    board = await start_board(tokens=(TOKEN,), keys=keys, enable=PLUGINS)
    made = await api(board, "POST", "/api/triggers", {"type": "payment.received", "status": "N"})
    await sign_in(page, board, "reader-7c1")
    await expect(card(page, "New", "Payment received")).to_be_visible()
    for name in ("Add trigger", "Add action", "Move", "Disable", "Delete"):
        assert await page.get_by_role("button", name=name).count() == 0, name
    assert await page.get_by_label("Move to").count() == 0
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    for path, form in (
        (f"/ui/triggers/{made['id']}/move", {"status": "P"}),
        (f"/ui/triggers/{made['id']}/delete", {}),
        ("/ui/triggers/new", {"type": "email.viewed", "status": "P"}),
    ):
        response = await page.request.post(
            board.url(path), form={"csrf_token": token, **form}, max_redirects=0
        )
        assert response.status == 403, path
    assert (await api(board, "GET", f"/api/triggers/{made['id']}"))["status"] == "N"
    assert len(await api(board, "GET", "/api/triggers")) == 1


async def test_counts_follow_a_move_without_reload(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await api(board, "POST", "/api/orders", {"id": "o-1"})
    await sign_in(page, board)
    await expect(column(page, "New")).to_contain_text("1 order")
    await expect(column(page, "Paid")).to_contain_text("0 orders")
    await page.evaluate("window.__same_page = true")
    await api(board, "PATCH", "/api/orders/o-1", {"status": "P"})
    await expect(column(page, "Paid")).to_contain_text("1 order", timeout=2000)
    await expect(column(page, "New")).to_contain_text("0 orders")
    assert await page.evaluate("window.__same_page") is True  # no reload


async def test_an_inactive_trigger_shows_its_reason(start_board: StartBoard, page: Page) -> None:
    first = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await api(first, "POST", "/api/triggers", {"type": "email.viewed", "status": "P"})
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    await sign_in(page, board)
    one = column(page, "Paid").get_by_role("listitem").filter(has_text="email.viewed")
    await expect(one).to_contain_text("inactive")
    await expect(one).to_contain_text("not provided by any loaded plugin")


async def test_names_are_shown_as_text(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    name = "<img src=x onerror=window.__xss=1>"
    await api(
        board, "POST", "/api/triggers", {"type": "payment.received", "status": "P", "name": name}
    )
    await sign_in(page, board)
    await expect(card(page, "Paid", name)).to_be_visible()
    assert await column(page, "Paid").locator("img").count() == 0
    assert await page.evaluate("window.__xss") is None


async def test_the_board_fits_a_phone(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await page.set_viewport_size({"width": 390, "height": 844})
    await sign_in(page, board)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    await expect(column(page, "Canceled")).to_be_attached()


async def test_move_to_works_by_keyboard(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    made = await api(board, "POST", "/api/triggers", {"type": "email.viewed", "status": "N"})
    await sign_in(page, board)
    select = card(page, "New", "Email opened").get_by_label("Move to")
    await select.focus()
    await select.select_option(label="Completed")
    await page.keyboard.press("Tab")  # to its Move button
    await page.keyboard.press("Enter")
    moved = card(page, "Completed", "Email opened")
    await expect(moved).to_be_visible()
    await expect(moved.get_by_label("Move to")).to_be_focused()  # the place is kept
    assert (await api(board, "GET", f"/api/triggers/{made['id']}"))["status"] == "F"


async def test_the_board_follows_other_changes(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await sign_in(page, board)
    await page.evaluate("window.__same_page = true")
    made = await api(board, "POST", "/api/triggers", {"type": "payment.received", "status": "P"})
    await expect(card(page, "Paid", "Payment received")).to_be_visible(timeout=2000)
    await api(board, "PATCH", f"/api/triggers/{made['id']}", {"status": "S"})
    await expect(card(page, "Shipped", "Payment received")).to_be_visible(timeout=2000)
    await api(board, "POST", "/api/orders", {"id": "o-2"})
    await expect(column(page, "New")).to_contain_text("1 order", timeout=2000)
    # the refreshed columns still work: Move to, then drag
    moved = card(page, "Shipped", "Payment received")
    await moved.get_by_label("Move to").select_option(label="Completed")
    await moved.get_by_role("button", name="Move to", exact=True).click()
    await expect(card(page, "Completed", "Payment received")).to_be_visible()
    assert await page.evaluate("window.__same_page") is True
