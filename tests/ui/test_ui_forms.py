"""Forms built from settings schemas (fast, no browser) and the board's forms refusing
what the API refuses (a browser): the API's message next to the form, nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

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
    await page.get_by_label("Conditions").fill('[{"field": "amount", "op": "bigger", "value": 1}]')
    await page.get_by_role("button", name="Add trigger").click()
    await expect(page.get_by_role("alert")).to_contain_text("unknown operator")
    await expect(page.get_by_label("Name")).to_have_value("Big payments")
    await page.get_by_label("Conditions").fill("[{not json")
    await page.get_by_role("button", name="Add trigger").click()
    await expect(page.get_by_role("alert")).to_contain_text("not valid JSON")
    assert await api(board, "GET", "/api/triggers") == []

    await page.get_by_label("Conditions").fill('[{"field": "amount", "op": "gte", "value": 100}]')
    await page.get_by_role("button", name="Add trigger").click()
    await page.wait_for_url(board.url("/ui/"))
    (stored,) = await api(board, "GET", "/api/triggers")
    assert stored["conditions"] == [{"field": "amount", "op": "gte", "value": 100}]
    assert stored["status"] == "N" and stored["name"] == "Big payments"


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
    await expect(page.get_by_label("value")).to_have_value("true")
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
