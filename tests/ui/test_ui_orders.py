"""The orders pages in a real browser: search by id, phone and email; the order page with
its timeline and each event's trace, following new events live; ``Move to``; action
runs with ``Cancel`` and ``Run now``; escaping; timeline paging; read-only keys."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar
from playwright.async_api import Dialog, Page, expect

from statusflow.serving.api_keys import keys_from_config
from statusflow.ui import order_view
from tests.ui.conftest import TOKEN, Board, StartBoard, sign_in

READER = "orders-reader-4c2e"
CLERK = "orders-clerk-9d1a"
PLUGINS = ("payment", "chat", "order_actions")


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    return reused_database_url


async def api(board: Board, method: str, path: str, body: Any = None) -> Any:
    """Call the API as a client would (with the full token when the board has tokens)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        ClientSession() as http,
        http.request(method, board.url(path), json=body, headers=headers) as answer,
    ):
        assert answer.status < 300, (method, path, answer.status, await answer.text())
        return await answer.json() if answer.status != 204 else None


async def new_order(board: Board, order_id: str, **fields: Any) -> dict[str, Any]:
    order: dict[str, Any] = await api(board, "POST", "/api/orders", {"id": order_id, **fields})
    return order


async def test_search_by_id_phone_and_email(start_board: StartBoard, page: Page) -> None:
    board = await start_board(enable=PLUGINS)
    contact = {"name": "Ada", "phones": ["+1 415 555 0100"], "emails": ["Ada@Shop.example"]}
    await new_order(board, "A-100", contact=contact)
    await new_order(board, "B-200", contact={"name": "Bob", "phones": ["+1 415 555 0199"]})
    await page.goto(board.url("/ui/orders"))
    rows = page.get_by_role("row")
    await expect(rows).to_have_count(3)  # the header and two orders

    for query in ("A-100", "(415) 555-0100", "ada@shop.EXAMPLE"):
        await page.get_by_label("Search").fill(query)
        await page.get_by_role("button", name="Search").click()
        await expect(page.get_by_role("link", name="A-100")).to_be_visible()
        await expect(page.get_by_role("link", name="B-200")).to_have_count(0)

    await page.get_by_label("Search").fill("nobody@shop.example")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_text("No order found")).to_be_visible()

    await page.get_by_label("Search").fill("")
    await page.get_by_label("Status").select_option("N")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name="B-200").click()
    await expect(page.get_by_role("heading", name="Order B-200")).to_be_visible()


async def test_the_order_list_pages(start_board: StartBoard, page: Page) -> None:
    board = await start_board(enable=PLUGINS)
    for n in range(53):
        await new_order(board, f"P-{n:03d}")
    await page.goto(board.url("/ui/orders"))
    await expect(page.get_by_role("link", name=re.compile("^P-"))).to_have_count(50)
    await page.get_by_role("link", name="Older").click()
    await expect(page.get_by_role("link", name=re.compile("^P-"))).to_have_count(3)
    await expect(page.get_by_role("link", name="P-000")).to_be_visible()


async def test_an_event_shows_up_live_with_its_trace(start_board: StartBoard, page: Page) -> None:
    board = await start_board(enable=PLUGINS)
    await new_order(board, "L-1", amount=80)
    trigger = {
        "type": "payment.received",
        "status": "P",
        "name": "Paid in full",
        "conditions": [{"field": "amount", "op": "gte", "value": 100}],
    }
    await api(board, "POST", "/api/triggers", trigger)
    await api(board, "POST", "/api/triggers", {"type": "payment.received", "status": "S"})
    await page.goto(board.url("/ui/orders/L-1"))
    await expect(page.get_by_text("Status: New")).to_be_visible()
    await page.evaluate("window.notReloaded = true")

    event = {"type": "payment.received", "order_id": "L-1", "data": {"amount": 80}}
    await api(board, "POST", "/api/events", event)
    timeline = page.locator("#order-timeline")
    await expect(timeline.get_by_text("payment.received").first).to_be_visible(timeout=2500)
    await expect(page.get_by_text("Status: Shipped")).to_be_visible(timeout=2500)
    why = timeline.locator(".entry-event").first
    await expect(why).to_contain_text("Paid in full")
    await expect(why).to_contain_text("condition failed")
    await expect(why).to_contain_text("moved")
    await expect(timeline.locator(".entry-status_changed").first).to_contain_text("New → Shipped")
    assert await page.evaluate("window.notReloaded") is True


async def test_a_manual_move(start_board: StartBoard, page: Page) -> None:
    board = await start_board(enable=PLUGINS)
    await new_order(board, "M-1", status="S")
    await page.goto(board.url("/ui/orders/M-1"))
    await page.get_by_label("Move to").select_option("N")  # backwards: a manual move may
    await page.get_by_role("button", name="Move to").click()
    await expect(page.get_by_text("Status: New")).to_be_visible()
    assert (await api(board, "GET", "/api/orders/M-1"))["status"] == "N"
    await expect(page.locator(".entry-status_changed").first).to_contain_text("manual move")


async def test_runs_cancel_and_run_now(start_board: StartBoard, page: Page) -> None:
    board = await start_board(enable=PLUGINS)
    cancel = {"type": "status.change", "status": "P", "settings": {"status": "D"}, "delay": "P3D"}
    mark = {
        "type": "field.set",
        "status": "P",
        "name": "Mark as seen",
        "settings": {"field": "seen", "value": "yes"},
        "delay": "PT2H",
    }
    await api(board, "POST", "/api/actions", cancel)
    await api(board, "POST", "/api/actions", mark)
    await new_order(board, "R-1", status="P")
    runs = await api(board, "GET", "/api/orders/R-1/runs")
    assert [r["state"] for r in runs] == ["pending", "pending"]
    await page.goto(board.url("/ui/orders/R-1"))
    listed = page.locator(".run")
    await expect(listed).to_have_count(2)
    first = page.locator(f"#run-{runs[0]['id']}")
    await expect(first).to_contain_text(f"due {runs[0]['due_at']}")
    await expect(first).to_contain_text("in 3 days")
    await expect(page.locator(f"#run-{runs[1]['id']}")).to_contain_text("in 2 hours")

    await page.locator(f"#run-{runs[0]['id']}").get_by_role("button", name="Cancel").click()
    await expect(page.locator(f"#run-{runs[0]['id']}")).to_contain_text("canceled")
    await page.locator(f"#run-{runs[1]['id']}").get_by_role("button", name="Run now").click()
    await expect(page.locator(f"#run-{runs[1]['id']}")).to_contain_text("done", timeout=5000)
    states = {r["id"]: r["state"] for r in await api(board, "GET", "/api/orders/R-1/runs")}
    assert states == {runs[0]["id"]: "canceled", runs[1]["id"]: "done"}
    assert (await api(board, "GET", "/api/orders/R-1"))["fields"] == {"seen": "yes"}
    assert (await api(board, "GET", "/api/orders/R-1"))["status"] == "P"


async def test_text_is_never_markup(start_board: StartBoard, page: Page) -> None:
    board = await start_board(enable=PLUGINS)
    dialogs: list[str] = []

    async def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", seen)
    name = "<script>alert('name')</script>"
    text = "<img src=x onerror=alert('text')>"
    await new_order(board, "X-1", contact={"name": name}, fields={"note": text})
    await page.goto(board.url("/ui/orders/X-1"))
    event = {"type": "chat.message", "order_id": "X-1", "data": {"text": text}}
    await api(board, "POST", "/api/events", event)
    await expect(page.locator(".entry-event")).to_contain_text(text, timeout=2500)
    await expect(page.get_by_text(name)).to_be_visible()
    await expect(page.locator(".order-fields")).to_contain_text(text)
    assert await page.locator("img[src=x]").count() == 0
    await page.goto(board.url("/ui/orders?q=X-1"))
    await expect(page.get_by_text(name)).to_be_visible()
    assert dialogs == []


async def test_a_long_timeline_is_paged(start_board: StartBoard, page: Page) -> None:
    board = await start_board(enable=PLUGINS)
    await new_order(board, "T-1")
    events = [
        {"type": "chat.message", "order_id": "T-1", "data": {"text": f"message {n}"}}
        for n in range(120)
    ]
    await api(board, "POST", "/api/events", events)
    await page.goto(board.url("/ui/orders/T-1"))
    entries = page.locator("#order-timeline > li.entry")
    await expect(entries).to_have_count(50)
    await expect(entries.first).to_contain_text("message 119")  # newest first
    more = page.get_by_role("link", name="More")
    href = await more.get_attribute("href")
    await more.click()
    await expect(entries).to_have_count(100)
    await page.get_by_role("link", name="More").click()
    await expect(entries).to_have_count(121)  # and the created entry
    await expect(entries.last).to_contain_text("Created")
    await expect(page.get_by_role("link", name="More")).to_have_count(0)

    # a new event: the page follows it and keeps the pages loaded with More
    later = {"type": "chat.message", "order_id": "T-1", "data": {"text": "message 120"}}
    await api(board, "POST", "/api/events", later)
    await expect(entries.first).to_contain_text("message 120", timeout=2_500)
    await expect(entries).to_have_count(122)
    await expect(entries.last).to_contain_text("Created")

    assert href is not None  # the link works without JavaScript too
    await page.goto(board.url(href))
    await expect(entries).to_have_count(50)
    await expect(entries.first).to_contain_text("message 69")


async def test_long_traces_fold_and_unfold(
    start_board: StartBoard, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(order_view, "TRACE_BUDGET", 2)
    board = await start_board(enable=PLUGINS)
    await new_order(board, "W-1")
    for name in ("Hello", "Anything else"):
        trigger = {"type": "chat.message", "status": "P", "name": name}
        await api(board, "POST", "/api/triggers", trigger)
    for text in ("first", "second"):
        event = {"type": "chat.message", "order_id": "W-1", "data": {"text": text}}
        await api(board, "POST", "/api/events", event)
    await page.goto(board.url("/ui/orders/W-1"))
    newest, older = page.locator(".entry-event").nth(0), page.locator(".entry-event").nth(1)
    await expect(newest).to_contain_text("already in status")  # the newest: inline
    await expect(older).to_contain_text("2 triggers weighed: 1 moved, 1 skipped")
    await older.get_by_role("link", name="Show why").click()
    await expect(older.locator(".trace")).to_contain_text("Hello")
    await expect(older.locator(".trace")).to_contain_text("lost to trigger")


async def test_an_unknown_order_is_a_404(start_board: StartBoard) -> None:
    board = await start_board(enable=PLUGINS)
    async with ClientSession() as http:
        answer = await http.get(board.url("/ui/orders/nope"))
        assert answer.status == 404
        assert "not found" in await answer.text()


async def _signed_in_client(http: ClientSession, board: Board, token: str) -> str:
    """Sign ``http`` in with ``token``; the session's CSRF token."""
    page = await (await http.get(board.url("/ui/sign-in"))).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    form = {"csrf_token": csrf.group(1), "token": token, "next": "/ui/orders"}
    answer = await http.post(board.url("/ui/sign-in"), data=form)
    text = await answer.text()
    found = re.search(r'name="csrf-token" content="([^"]+)"', text)
    assert found is not None
    return found.group(1)


async def test_a_read_only_key_sees_no_controls(start_board: StartBoard, page: Page) -> None:
    keys = keys_from_config(
        (
            {"name": "reader", "token": READER, "scopes": ["read"]},
            {"name": "clerk", "token": CLERK, "scopes": ["read", "events"]},
        )
    )
    board = await start_board(tokens=(TOKEN,), keys=keys, enable=PLUGINS)
    cancel = {"type": "status.change", "status": "P", "settings": {"status": "D"}, "delay": "P3D"}
    await api(board, "POST", "/api/actions", cancel)
    await new_order(board, "K-1", status="P")
    (run,) = await api(board, "GET", "/api/orders/K-1/runs")

    await sign_in(page, board, READER)
    await page.goto(board.url("/ui/orders/K-1"))
    await expect(page.get_by_text("Status: Paid")).to_be_visible()
    await expect(page.get_by_label("Move to")).to_have_count(0)
    await expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    await expect(page.get_by_role("button", name="Run now")).to_have_count(0)
    await expect(page.get_by_text("Read-only").first).to_be_visible()

    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        csrf = await _signed_in_client(http, board, READER)
        form = {"csrf_token": csrf, "status": "N"}
        answer = await http.post(board.url("/ui/orders/K-1/move"), data=form)
        assert answer.status == 403
        answer = await http.post(board.url(f"/ui/runs/{run['id']}/cancel"), data=form)
        assert answer.status == 403
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        csrf = await _signed_in_client(http, board, CLERK)  # events: moves, not runs
        form = {"csrf_token": csrf, "status": "S"}
        answer = await http.post(board.url(f"/ui/runs/{run['id']}/run-now"), data=form)
        assert answer.status == 403
        answer = await http.post(board.url("/ui/orders/K-1/move"), data=form)
        assert answer.status == 200 and "Status: <span" in await answer.text()
    order = await api(board, "GET", "/api/orders/K-1")
    assert order["status"] == "S"
    runs = await api(board, "GET", "/api/orders/K-1/runs")
    assert runs[0]["state"] == "canceled"  # by leaving the status, not by the reader
