"""The pipeline editor (``/ui/statuses``): add, rename, reorder and delete statuses with
the API's rules; read-only for a key without the admin scope."""

from __future__ import annotations

from playwright.async_api import Page, expect

from statusflow.serving.api_keys import keys_from_config
from tests.ui.api import call
from tests.ui.conftest import TOKEN, Board, StartBoard, sign_in

READER = "reader-token-5d1e"


async def _ids(board: Board) -> list[tuple[str, str]]:
    """The pipeline through the API: (id, name) in sort order."""
    return [(s["id"], s["name"]) for s in (await call(board, "GET", "/api/statuses"))[1]]


async def test_add_rename_reorder_and_the_rules(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    assert (await call(board, "POST", "/api/orders", {"id": "o-1"}))[0] == 201
    await sign_in(page, board)
    await page.goto(board.url("/ui/statuses"))

    await page.get_by_label("Id", exact=True).fill("R")
    await page.get_by_label("Name", exact=True).fill("Returned")
    await page.get_by_role("button", name="Add status").click()
    await expect(page.locator(".status-name").last).to_have_text("Returned")
    assert (await _ids(board))[-1] == ("R", "Returned")

    await page.get_by_label("Name of Paid").fill("Paid in full")
    await page.get_by_label("Name of Paid").press("Enter")
    await expect(page.locator(".status-name").nth(1)).to_have_text("Paid in full")
    assert ("P", "Paid in full") in await _ids(board)

    # By keyboard: focus "up" on Shipped and press Enter; the focus stays on the moved row.
    await page.get_by_role("button", name="Move Shipped up").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".status-name").nth(1)).to_have_text("Shipped")
    assert [i for i, _ in await _ids(board)] == ["N", "S", "P", "F", "D", "R"]
    await expect(page.get_by_role("button", name="Move Shipped up")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator(".status-name").first).to_have_text("Shipped")
    assert [i for i, _ in await _ids(board)] == ["S", "N", "P", "F", "D", "R"]
    await page.get_by_role("button", name="Move Shipped down").click()
    await expect(page.locator(".status-name").first).to_have_text("New")

    # The API's rules and messages: a repeated id, a status still in use.
    await page.get_by_label("Id", exact=True).fill("P")
    await page.get_by_label("Name", exact=True).fill("Again")
    await page.get_by_role("button", name="Add status").click()
    await expect(page.get_by_role("alert")).to_contain_text("duplicate ids 'P'")
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Again")
    await page.get_by_role("button", name="Delete New").click()
    await expect(page.get_by_role("alert")).to_contain_text("still in use")
    assert "N" in [i for i, _ in await _ids(board)]
    await page.get_by_role("button", name="Delete Returned").click()
    await expect(page.locator(".status-name")).to_have_count(5)
    assert "R" not in [i for i, _ in await _ids(board)]


async def test_a_read_only_key_sees_no_controls_and_cannot_post(
    start_board: StartBoard, page: Page
) -> None:
    keys = keys_from_config(({"name": "reader", "token": READER, "scopes": ["read"]},))
    board = await start_board(tokens=(TOKEN,), keys=keys, enable=("payment",))
    await sign_in(page, board, READER)
    await page.goto(board.url("/ui/statuses"))
    await expect(page.locator(".status-name")).to_have_count(5)
    assert await page.get_by_role("button", name="Add status").count() == 0
    assert await page.get_by_role("button", name="Rename").count() == 0
    await expect(page.get_by_text("Read-only: changing the pipeline")).to_be_visible()

    # A direct POST with the session and its CSRF token is refused all the same.
    token = await page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    form = {"csrf_token": token, "id": "X", "name": "Sneaky"}
    response = await page.request.post(board.url("/ui/statuses/add"), form=form)
    assert response.status == 403
    assert "needs the admin scope" in await response.text()
    form = {"csrf_token": token, "id": "P", "name": "Z"}
    response = await page.request.post(board.url("/ui/statuses/rename"), form=form)
    assert response.status == 403
    assert await _ids(board) == [
        ("N", "New"),
        ("P", "Paid"),
        ("S", "Shipped"),
        ("F", "Completed"),
        ("D", "Canceled"),
    ]
