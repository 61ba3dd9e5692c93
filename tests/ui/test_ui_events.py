"""The event log (``/ui/events``) and ``Try an event`` (``/ui/try``)."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.ui.api import call
from tests.ui.conftest import TOKEN, Board, StartBoard, sign_in

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


async def _paid_trigger(board: Board) -> None:
    body = {"type": "payment.received", "status": "P"}
    assert (await call(board, "POST", "/api/triggers", body))[0] == 201


async def test_events_newest_first_and_the_moved_nothing_filter(
    start_board: StartBoard, page: Page
) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    await _paid_trigger(board)
    for order_id in ("o-1", "o-2"):
        assert (await call(board, "POST", "/api/orders", {"id": order_id}))[0] == 201
    first = {"id": "ev-first", "type": "payment.received", "order_id": "o-1"}
    second = {"id": "ev-second", "type": "payment.received", "order_id": "o-1"}  # already P
    third = {"id": "ev-third", "type": "payment.received", "order_id": "o-2"}
    for event in (first, second, third):
        assert (await call(board, "POST", "/api/events", event))[0] == 200

    await sign_in(page, board)
    await page.goto(board.url("/ui/events"))
    ids = await page.locator(".event .event-id").all_inner_texts()
    assert ids == ["ev-third", "ev-second", "ev-first"]

    await page.get_by_label("Moved nothing").check()
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator(".event")).to_have_count(1)
    event = page.locator(".event")
    await expect(event).to_contain_text("ev-second")
    await expect(event.locator(".trace")).to_be_visible()
    await expect(event.locator(".trace")).to_contain_text("skipped")
    await expect(event.locator(".trace")).to_contain_text("already")

    await page.get_by_label("Order id").fill("o-2")
    await page.get_by_label("Moved nothing").uncheck()
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator(".event")).to_have_count(1)
    await expect(page.locator(".event")).to_contain_text("ev-third")

    await page.get_by_label("Order id").fill("nobody")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("alert")).to_contain_text("unknown order 'nobody'")


async def test_events_are_paged(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    assert (await call(board, "POST", "/api/orders", {"id": "o-1"}))[0] == 201
    events = [
        {"id": f"ev-{n:02}", "type": "payment.received", "order_id": "o-1"} for n in range(30)
    ]
    assert (await call(board, "POST", "/api/events", events))[0] == 200
    await sign_in(page, board)
    await page.goto(board.url("/ui/events"))
    await expect(page.locator(".event")).to_have_count(25)
    await page.get_by_role("link", name="Older events").click()
    await expect(page.locator(".event")).to_have_count(5)
    assert await page.locator(".event .event-id").first.inner_text() == "ev-04"


async def test_an_events_text_is_shown_as_text(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    assert (await call(board, "POST", "/api/orders", {"id": "o-x"}))[0] == 201
    event = {
        "id": XSS,
        "type": "payment.received",
        "order_id": "o-x",
        "data": {"method": XSS},
    }
    assert (await call(board, "POST", "/api/events", event))[0] == 200
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await sign_in(page, board)
    await page.goto(board.url("/ui/events"))
    await expect(page.locator(".event-data").first).to_contain_text(XSS.replace('"', '\\"'))
    await expect(page.locator(".event .event-id")).to_have_text(XSS)
    assert await page.locator(".event img").count() == 0
    assert dialogs == []


async def _stored(board: Board) -> tuple[object, ...]:
    """What the database holds: events, orders and their statuses, the order's timeline."""
    events = (await call(board, "GET", "/api/events"))[1]
    orders = (await call(board, "GET", "/api/orders"))[1]
    timeline = (await call(board, "GET", "/api/orders/o-1/timeline"))[1]
    runs = (await call(board, "GET", "/api/orders/o-1/runs"))[1]
    return events, orders, timeline, runs


async def test_try_an_event_shows_what_it_would_do_and_stores_nothing(
    start_board: StartBoard, page: Page
) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment", "order_actions"))
    await _paid_trigger(board)
    action = {"status": "P", "type": "field.set", "settings": {"field": "paid", "value": "yes"}}
    assert (await call(board, "POST", "/api/actions", action))[0] == 201
    order = {"id": "o-1", "contact": {"phones": ["+14155550100"]}}
    assert (await call(board, "POST", "/api/orders", order))[0] == 201
    before = await _stored(board)

    await sign_in(page, board)
    await page.goto(board.url("/ui/try"))
    await page.get_by_label("Event type").select_option("payment.received")
    await page.get_by_label("Phone").fill("+1 415 555 0100")
    await page.get_by_label("Data (JSON)").fill('{"amount": 12.5}')
    await page.get_by_role("button", name="Try it").click()
    result = page.get_by_role("region", name="What it would do")
    await expect(result).to_contain_text("Order o-1 would move from N to P")
    await expect(result.locator(".trace")).to_contain_text("moved")
    await expect(result.locator(".runs")).to_contain_text("Set a field for order o-1 in P")
    assert await _stored(board) == before

    await page.get_by_label("Phone").fill("")
    await page.get_by_label("Order id").fill("o-1")
    await page.get_by_label("Data (JSON)").fill('{"amount": -1}')
    await page.get_by_role("button", name="Try it").click()
    await expect(page.get_by_role("alert")).to_contain_text("amount")
    await page.get_by_label("Data (JSON)").fill("{not json")
    await page.get_by_role("button", name="Try it").click()
    await expect(page.get_by_role("alert")).to_contain_text("Data is not valid JSON")
    await page.get_by_label("Order id").fill("nobody")
    await page.get_by_label("Data (JSON)").fill("")
    await page.get_by_role("button", name="Try it").click()
    await expect(page.get_by_role("alert")).to_contain_text("order 'nobody' not found")
    assert await _stored(board) == before


async def test_the_first_page_follows_new_events(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    assert (await call(board, "POST", "/api/orders", {"id": "o-1"}))[0] == 201
    await sign_in(page, board)
    await page.goto(board.url("/ui/events"))
    await expect(page.get_by_text("No events.")).to_be_visible()
    event = {"id": "ev-live", "type": "payment.received", "order_id": "o-1"}
    assert (await call(board, "POST", "/api/events", event))[0] == 200
    await expect(page.locator(".event .event-id")).to_have_text(["ev-live"], timeout=2_500)
    event = {"id": "ev-live-2", "type": "payment.received", "order_id": "o-1"}
    assert (await call(board, "POST", "/api/events", event))[0] == 200
    await expect(page.locator(".event .event-id")).to_have_text(
        ["ev-live-2", "ev-live"], timeout=2_500
    )
    assert await page.locator("[data-live]").count() == 1


async def test_ticking_moved_nothing_filters_at_once_and_stays_live(
    start_board: StartBoard, page: Page
) -> None:
    """The checkbox filters in place, without Filter and without a page load; the list
    then follows new events with the filter still applied."""
    board = await start_board(tokens=(TOKEN,), enable=("payment",))
    await _paid_trigger(board)
    assert (await call(board, "POST", "/api/orders", {"id": "o-1"}))[0] == 201
    for event_id in ("ev-moved", "ev-idle"):  # the second finds the order already in P
        event = {"id": event_id, "type": "payment.received", "order_id": "o-1"}
        assert (await call(board, "POST", "/api/events", event))[0] == 200

    await sign_in(page, board)
    await page.goto(board.url("/ui/events"))
    await expect(page.locator(".event .event-id")).to_have_text(["ev-idle", "ev-moved"])
    await page.evaluate("window.notReloaded = true")
    await page.get_by_label("Moved nothing").check()
    await expect(page.locator(".event .event-id")).to_have_text(["ev-idle"])
    assert await page.evaluate("window.notReloaded === true")
    assert "moved=false" in page.url

    later = {"id": "ev-idle-2", "type": "payment.received", "order_id": "o-1"}
    assert (await call(board, "POST", "/api/events", later))[0] == 200
    await expect(page.locator(".event .event-id")).to_have_text(
        ["ev-idle-2", "ev-idle"], timeout=2_500
    )
    await page.get_by_label("Moved nothing").uncheck()
    await expect(page.locator(".event .event-id")).to_have_text(
        ["ev-idle-2", "ev-idle", "ev-moved"]
    )
