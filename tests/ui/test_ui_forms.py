"""Forms built from settings schemas (fast, no browser) and the board's forms refusing
what the API refuses (a browser): the API's message next to the form, nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from statusflow.ui.conditions_form import (
    NOT_EXISTS,
    ConditionRow,
    conditions_from_rows,
    operator_options,
    place_condition_errors,
    rows_from_conditions,
    rows_from_form,
)
from statusflow.ui.delays import delay_words, join_delay, split_delay
from statusflow.ui.forms import fields_for, place_errors, settings_from_form
from tests.ui.conftest import TOKEN, StartBoard, sign_in
from tests.ui.test_ui_board import PLUGINS, api, column

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "title": "Address", "description": "where to POST"},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "retries": {"type": "integer"},
        "ratio": {"type": "number"},
        "verbose": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "limits": {
            "type": "object",
            "properties": {"max": {"type": "integer"}, "unit": {"type": "string"}},
        },
        "extra": {"type": "array", "items": {"type": "object"}},
        "value": {"description": "any JSON value"},
        "who": {"type": ["string", "integer", "null"]},
        "body": {"type": "string", "maxLength": 100000},
    },
}


def test_each_schema_type_gets_its_control() -> None:
    fields = {f.name: f for f in fields_for(SCHEMA)}
    kinds = {name.removeprefix("settings."): f.kind for name, f in fields.items()}
    assert kinds == {
        "url": "text",
        "mode": "select",
        "retries": "integer",
        "ratio": "number",
        "verbose": "checkbox",
        "tags": "list",
        "limits": "group",
        "extra": "json",
        "value": "text",
        "who": "text",
        "body": "textarea",
    }
    url = fields["settings.url"]
    assert (url.label, url.description, url.required) == ("Address", "where to POST", True)
    assert fields["settings.mode"].options == [("fast", "fast"), ("slow", "slow")]
    assert [c.name for c in fields["settings.limits"].children] == [
        "settings.limits.max",
        "settings.limits.unit",
    ]
    assert fields["settings.retries"].label == "retries"  # no title: the property's name


def test_stored_values_fill_the_controls() -> None:
    values = {"url": "https://x", "verbose": True, "tags": ["a", "b"], "limits": {"max": 3}}
    fields = {f.name: f for f in fields_for(SCHEMA, values)}
    assert fields["settings.url"].value == "https://x"
    assert fields["settings.verbose"].value == "on"
    assert fields["settings.tags"].value == "a\nb"
    assert fields["settings.limits"].children[0].value == "3"


def test_a_form_reads_back_into_settings() -> None:
    form = {
        "settings.url": " https://x ",
        "settings.mode": "slow",
        "settings.retries": "3",
        "settings.ratio": "0.5",
        "settings.verbose": "on",
        "settings.tags": "a\nb\n\n",
        "settings.limits.max": "7",
        "settings.limits.unit": "",
        "settings.extra": '[{"k": 1}]',
        "settings.value": "42",
        "settings.who": "",
        "settings.body": "",
    }
    assert settings_from_form(SCHEMA, form) == {
        "url": "https://x",
        "mode": "slow",
        "retries": 3,
        "ratio": 0.5,
        "verbose": True,
        "tags": ["a", "b"],
        "limits": {"max": 7},
        "extra": [{"k": 1}],
        "value": 42,
        "who": None,
    }


def test_what_the_form_cannot_read_is_left_for_the_api_to_judge() -> None:
    form = {"settings.retries": "three", "settings.tags": "a, b", "settings.value": "plain"}
    settings = settings_from_form(SCHEMA, form)
    assert settings == {"retries": "three", "tags": ["a", "b"], "verbose": False, "value": "plain"}


def test_a_schema_without_properties_has_no_fields() -> None:
    assert fields_for({"type": "object", "additionalProperties": False}) == []
    assert settings_from_form({"type": "object"}, {"settings.x": "1"}) == {}


def test_errors_go_next_to_their_fields() -> None:
    fields = fields_for(SCHEMA)
    place_errors(
        fields,
        [
            {"path": "/settings/url", "message": "is too short"},
            {"path": "/settings/limits/max", "message": "is not an integer"},
        ],
    )
    by_name = {f.name: f for f in fields}
    assert by_name["settings.url"].error == "is too short"
    assert by_name["settings.limits"].children[0].error == "is not an integer"


ALL_KINDS: list[dict[str, Any]] = [
    {"field": "amount", "op": "gte", "value": 100},
    {"field": "amount", "op": "lt", "value": 99.5},
    {"field": "currency", "op": "eq", "value": "EUR"},
    {"field": "currency", "op": "in", "value": ["EUR", "USD"]},
    {"field": "status", "op": "ne", "value": "N"},
    {"field": "responsible_id", "op": "eq", "value": 7},
    {"field": "responsible_id", "op": "eq", "value": "7"},
    {"field": "fields.vip", "op": "eq", "value": True},
    {"field": "fields.note", "op": "eq", "value": "true"},
    {"field": "fields.note", "op": "ne", "value": None},
    {"field": "fields.sku", "op": "contains", "value": "AB-1"},
    {"field": "fields.sku", "op": "gt", "value": " spaced"},
    {"field": "fields.sku", "op": "eq", "value": ""},
    {"field": "event.channel", "op": "not_in", "value": ["web", 3, False, "4"]},
    {"field": "event.channel", "op": "in", "value": ["a, b", "c"]},
    {"field": "event.channel", "op": "in", "value": []},
    {"field": "event.note", "op": "eq", "value": '"quoted"'},
    {"field": "event.note", "op": "eq", "value": "[x"},
    {"field": "event.paid", "op": "exists", "value": True},
    {"field": "fields.gone", "op": "exists", "value": False},
]


def test_conditions_make_rows_and_come_back_unchanged() -> None:
    rows = rows_from_conditions(ALL_KINDS)
    assert [(r.field, r.key, r.op, r.value) for r in rows[:8]] == [
        ("amount", "", "gte", "100"),
        ("amount", "", "lt", "99.5"),
        ("currency", "", "eq", "EUR"),
        ("currency", "", "in", "EUR, USD"),
        ("status", "", "ne", "N"),
        ("responsible_id", "", "eq", "7"),
        ("responsible_id", "", "eq", '"7"'),
        ("fields", "vip", "eq", "true"),
    ]
    assert rows[13].value == 'web, 3, false, "4"'
    assert rows[-2:] == [
        ConditionRow("event", "paid", "exists"),
        ConditionRow("fields", "gone", NOT_EXISTS),
    ]
    conditions, where = conditions_from_rows(rows)
    assert conditions == ALL_KINDS
    assert where == list(range(len(ALL_KINDS)))


def test_the_form_reads_rows_in_order_and_ignores_blank_ones() -> None:
    form = {
        "conditions-10-field": "event",
        "conditions-10-key": " paid ",
        "conditions-10-op": "exists",
        "conditions-10-value": "",
        "conditions-2-field": "",
        "conditions-2-key": "",
        "conditions-2-op": "gt",
        "conditions-2-value": " ",
        "conditions-3-field": "amount",
        "conditions-3-op": "in",
        "conditions-3-value": "1, 2.5,, 3",
        "conditions-x-field": "amount",
        "name": "ignored",
    }
    rows = rows_from_form(form)
    assert [r.field for r in rows] == ["", "amount", "event"]
    conditions, where = conditions_from_rows(rows)
    assert conditions == [
        {"field": "amount", "op": "in", "value": [1, 2.5, 3]},
        {"field": "event.paid", "op": "exists", "value": True},
    ]
    assert where == [1, 2]


def test_what_the_rows_cannot_read_is_left_for_the_api_to_judge() -> None:
    rows = [
        ConditionRow("amount", "", "gt", "lots"),
        ConditionRow("", "", "eq", "5"),
        ConditionRow("amount", "", "in", "[1, 2"),
    ]
    conditions, _ = conditions_from_rows(rows)
    assert conditions == [
        {"field": "amount", "op": "gt", "value": "lots"},
        {"field": "", "op": "eq", "value": 5},
        {"field": "amount", "op": "in", "value": "[1, 2"},
    ]


def test_the_api_message_goes_on_its_row() -> None:
    rows = [ConditionRow(), ConditionRow("amount", "", "gt", "x"), ConditionRow()]
    details = [{"path": "/conditions/0/value", "message": "amount is a number"}]
    assert place_condition_errors(rows, [1], details)
    assert (rows[1].error, rows[1].error_part) == ("amount is a number", "value")
    assert not rows[0].error and not rows[2].error
    assert not place_condition_errors(rows, [1], [{"path": "/status", "message": "x"}])


def test_operators_read_as_words_and_a_missing_one_is_kept() -> None:
    options = operator_options(["eq", "exists", "gte", "in", "near"], ["eq", "gone"])
    assert options == [
        ("eq", "is"),
        ("gte", "at least"),
        ("in", "is one of"),
        ("exists", "exists"),
        (NOT_EXISTS, "does not exist"),
        ("near", "near"),
        ("gone", "gone (not loaded)"),
    ]


@pytest.mark.parametrize(
    ("delay", "words", "split"),
    [
        (None, "at once", ("", "minutes")),
        ("PT30M", "after 30 minutes", ("30", "minutes")),
        ("PT2H", "after 2 hours", ("2", "hours")),
        ("P3D", "after 3 days", ("3", "days")),
        ("P1D", "after 1 day", ("1", "days")),
        ("P1DT12H", "after 1 day 12 hours", ("36", "hours")),
        ("P1W", "after 1 week", ("7", "days")),
    ],
)
def test_delays_in_words_and_back(delay: str | None, words: str, split: tuple[str, str]) -> None:
    assert delay_words(delay) == words
    assert split_delay(delay) == split
    number, unit = split
    back = join_delay(number, unit)
    assert (back is None) == (delay is None)


def test_the_form_delay_becomes_a_duration() -> None:
    assert join_delay("3", "days") == "P3D"
    assert join_delay("90", "minutes") == "PT90M"
    assert join_delay("1.5", "hours") == "PT1.5H"
    assert join_delay("", "hours") is None
    assert join_delay("0", "days") is None
    assert join_delay("soon", "days") == "soon"  # the API's 422 names it


async def test_a_refused_action_shows_the_api_message(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await sign_in(page, board)
    await column(page, "Paid").get_by_role("button", name="Add action").click()
    await page.get_by_label("Type").select_option(label="Call a webhook")
    await page.get_by_label("url").fill("not a web address")
    await page.get_by_role("button", name="Add action").click()
    await expect(page.get_by_role("alert")).to_contain_text("settings of webhook.call")
    await expect(page.get_by_label("url")).to_have_value("not a web address")  # kept
    assert await api(board, "GET", "/api/actions") == []


async def test_a_refused_trigger_shows_the_api_message(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await sign_in(page, board)
    await column(page, "New").get_by_role("button", name="Add trigger").click()
    await page.get_by_label("Type").select_option(label="Payment received")
    await page.get_by_label("Name").fill("Big payments")
    await page.get_by_label("Field").select_option(label="Amount")
    await page.get_by_label("Operator").select_option(label="greater than")
    await page.get_by_label("Value").fill("lots")
    await page.get_by_label("Value").press("Enter")  # saves (not the row's Remove)
    await expect(page.get_by_role("alert")).to_contain_text("amount is a number")
    await expect(page.get_by_label("Name")).to_have_value("Big payments")
    value = page.get_by_label("Value of condition 1")
    await expect(value).to_have_value("lots")  # kept, and marked
    await expect(value).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".condition .error")).to_contain_text("amount is a number")
    assert await api(board, "GET", "/api/triggers") == []

    await page.get_by_label("Value").fill("100")
    await page.get_by_role("button", name="Add trigger").click()
    await page.wait_for_url(board.url("/ui/"))
    (stored,) = await api(board, "GET", "/api/triggers")
    assert stored["conditions"] == [{"field": "amount", "op": "gt", "value": 100}]
    assert stored["status"] == "N" and stored["name"] == "Big payments"


async def test_a_trigger_with_two_conditions_added_then_edited(
    start_board: StartBoard, page: Page
) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    await sign_in(page, board)
    await column(page, "New").get_by_role("button", name="Add trigger").click()
    await page.get_by_label("Type").select_option(label="Payment received")
    await page.get_by_label("Field of condition 1").select_option(label="Amount")
    await page.get_by_label("Operator of condition 1").select_option(label="at least")
    await page.get_by_label("Value of condition 1").fill("50.5")
    await page.get_by_role("button", name="Add condition").click()  # in place (JavaScript)
    await page.get_by_label("Field of condition 2").select_option(label="Order field…")
    await page.get_by_label("Key of condition 2").fill("channel")
    await page.get_by_label("Operator of condition 2").select_option(label="is one of")
    await page.get_by_label("Value of condition 2").fill("web, app, 7")
    await page.get_by_role("button", name="Add trigger").click()
    await page.wait_for_url(board.url("/ui/"))
    (stored,) = await api(board, "GET", "/api/triggers")
    assert stored["conditions"] == [
        {"field": "amount", "op": "gte", "value": 50.5},
        {"field": "fields.channel", "op": "in", "value": ["web", "app", 7]},
    ]

    await column(page, "New").get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("Value of condition 1")).to_have_value("50.5")
    await expect(page.get_by_label("Field of condition 2")).to_have_value("fields")
    await expect(page.get_by_label("Key of condition 2")).to_have_value("channel")
    await expect(page.get_by_label("Value of condition 2")).to_have_value("web, app, 7")
    await page.get_by_role("button", name="Remove condition 1").click()
    await expect(page.get_by_label("Key of condition 1")).to_have_value("channel")  # renumbered
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url(board.url("/ui/"))
    (stored,) = await api(board, "GET", "/api/triggers")
    assert stored["conditions"] == [
        {"field": "fields.channel", "op": "in", "value": ["web", "app", 7]}
    ]


async def test_without_javascript_a_condition_row_is_added_and_saved(
    start_board: StartBoard, browser: Browser
) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    context = await browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(10_000)
    page = await context.new_page()
    try:
        await sign_in(page, board)
        await page.goto(board.url("/ui/triggers/new?status=P"))
        await page.get_by_label("Trigger type").select_option(label="Payment received")
        await page.get_by_role("button", name="Show this type's settings").click()
        await page.get_by_label("Name").fill("Euro")
        await page.get_by_label("Field of condition 1").select_option(label="Currency")
        await page.get_by_label("Value of condition 1").fill("EUR")
        await page.get_by_role("button", name="Add condition").click()
        await expect(page.get_by_label("Value of condition 1")).to_have_value("EUR")  # kept
        await expect(page.get_by_label("Name")).to_have_value("Euro")
        assert await api(board, "GET", "/api/triggers") == []  # nothing saved yet
        await page.get_by_label("Field of condition 2").select_option(label="Event data…")
        await page.get_by_label("Key of condition 2").fill("paid")
        await page.get_by_label("Value of condition 2").fill("true")
        await page.get_by_role("button", name="Add condition").click()
        await page.get_by_role("button", name="Remove condition 3").click()
        await expect(page.get_by_label("Field of condition 3")).to_have_count(0)
        await page.get_by_role("button", name="Add trigger").click()
        await page.wait_for_url(board.url("/ui/"))
        (stored,) = await api(board, "GET", "/api/triggers")
        assert stored["conditions"] == [
            {"field": "currency", "op": "eq", "value": "EUR"},
            {"field": "event.paid", "op": "eq", "value": True},
        ]
        assert stored["name"] == "Euro" and stored["status"] == "P"
    finally:
        await context.close()


async def test_a_trigger_edited_with_the_same_form(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    made = await api(
        board,
        "POST",
        "/api/triggers",
        {"type": "email.link_clicked", "status": "P", "settings": {"url": "https://a"}},
    )
    await sign_in(page, board)
    await column(page, "Paid").get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("url")).to_have_value("https://a")
    await page.get_by_label("url").fill("")
    await page.get_by_label("Name").fill("Any link")
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url(board.url("/ui/"))
    stored = await api(board, "GET", f"/api/triggers/{made['id']}")
    assert stored["settings"] == {} and stored["name"] == "Any link"


async def test_a_webhook_trigger_shows_its_url(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=(*PLUGINS, "webhook"))
    made = await api(board, "POST", "/api/triggers", {"type": "webhook.called", "status": "F"})
    await sign_in(page, board)
    await column(page, "Completed").get_by_role("link", name="Edit").click()
    await expect(page.get_by_text(made["webhook_url"])).to_be_visible()


async def test_an_action_edited_disabled_and_deleted(start_board: StartBoard, page: Page) -> None:
    board = await start_board(tokens=(TOKEN,), enable=PLUGINS)
    body = {"type": "field.set", "status": "P", "settings": {"field": "paid", "value": True}}
    made = await api(board, "POST", "/api/actions", {**body, "delay": "P1D"})
    await sign_in(page, board)
    actions = column(page, "Paid").get_by_role("list", name="Actions in Paid")
    await expect(actions).to_contain_text("after 1 day")
    await actions.get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("Delay", exact=True)).to_have_value("1")
    await expect(page.get_by_label("Unit")).to_have_value("days")
    await expect(page.get_by_label("value", exact=True)).to_have_value("true")
    await page.get_by_label("Delay", exact=True).fill("2")
    await page.get_by_label("Unit").select_option("hours")
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url(board.url("/ui/"))
    await expect(actions).to_contain_text("after 2 hours")
    stored = await api(board, "GET", f"/api/actions/{made['id']}")
    assert stored["delay"] == "PT2H" and stored["settings"] == {"field": "paid", "value": True}

    await actions.get_by_role("button", name="Disable").click()
    await expect(actions.get_by_text("disabled", exact=True)).to_be_visible()
    assert (await api(board, "GET", f"/api/actions/{made['id']}"))["enabled"] is False
    await actions.get_by_role("button", name="Delete").click()
    await page.get_by_role("button", name="Delete").click()
    await page.wait_for_url(board.url("/ui/"))
    assert await api(board, "GET", "/api/actions") == []


async def test_without_javascript_the_type_is_chosen_by_a_button(start_board: StartBoard) -> None:
    import re

    from aiohttp import ClientSession, CookieJar

    board = await start_board(enable=PLUGINS)  # no tokens: no sign-in asked
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        form = await (await http.get(board.url("/ui/triggers/new?status=P"))).text()
        found = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert found is not None
        chosen = {
            "csrf_token": found.group(1),
            "type": "email.link_clicked",
            "status": "P",
            "name": "kept",
            "step": "choose",
        }
        response = await http.post(board.url("/ui/triggers/new"), data=chosen)
        page = await response.text()
        assert response.status == 200
        assert 'name="settings.url"' in page and 'value="kept"' in page
        assert await api(board, "GET", "/api/triggers") == []


async def test_an_action_takes_its_conditions_from_rows(start_board: StartBoard) -> None:
    import re

    from aiohttp import ClientSession, CookieJar

    board = await start_board(enable=PLUGINS)  # no tokens: no sign-in asked
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        form = await (await http.get(board.url("/ui/actions/new?status=P"))).text()
        found = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert found is not None
        assert 'aria-label="Field of condition 1"' in form and 'id="condition-template"' in form
        posted = {
            "csrf_token": found.group(1),
            "type": "field.set",
            "status": "P",
            "settings.field": "paid",
            "settings.value": "true",
            "conditions-0-field": "fields",
            "conditions-0-key": "vip",
            "conditions-0-op": "!exists",
            "conditions-1-field": "amount",
            "conditions-1-op": "lte",
            "conditions-1-value": "<b>1e3</b>",
        }
        refused = await http.post(board.url("/ui/actions/new"), data=posted)
        page = await refused.text()
        assert refused.status == 422
        assert 'value="&lt;b&gt;1e3&lt;/b&gt;"' in page  # kept as typed, escaped
        assert "<b>1e3</b>" not in page
        assert await api(board, "GET", "/api/actions") == []
        response = await http.post(
            board.url("/ui/actions/new"), data={**posted, "conditions-1-value": "1e3"}
        )
        assert response.status == 200  # the board, after the redirect
    (stored,) = await api(board, "GET", "/api/actions")
    assert stored["conditions"] == [
        {"field": "fields.vip", "op": "exists", "value": False},
        {"field": "amount", "op": "lte", "value": 1000.0},
    ]
