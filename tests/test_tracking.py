"""The plugins' own routes (contract §4): email tracking links, the pixel, the click redirect,
and the ``webhook.called`` triggers' URLs.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from helpers import Api, assert_trace, event_ids_in_timeline, move, path_of, tracking_links

SHOP = "https://shop.example"
PAY = f"{SHOP}/pay/1001?utm_source=mail&x=1#top"
CART = f"{SHOP}/cart"
MESSAGE = "<m1@shop.example>"
JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    """SQLite, then PostgreSQL: one database for the module, emptied before each test."""
    return reused_database_url


@pytest.fixture
async def api(make_client: Any) -> Api:
    """The API with every installed plugin."""
    return Api(await make_client())


def assert_gif_1x1(body: bytes) -> None:
    assert body[:6] in (b"GIF87a", b"GIF89a"), body[:6]
    assert struct.unpack("<HH", body[6:10]) == (1, 1)
    assert body.endswith(b";")


async def snapshot(api: Api, order_ids: list[str]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    """The stored event count and the orders' timelines: what a refused call must not change."""
    return await api.stored_event_count(), {o: await api.timeline(o) for o in order_ids}


# --- POST /api/tracking-links ------------------------------------------------------------------


BAD_TRACKING_REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "no-urls": ({"order_id": "o1"}, "urls"),
    "empty-urls": ({"order_id": "o1", "urls": []}, "urls"),
    "urls-not-a-list": ({"order_id": "o1", "urls": PAY}, "urls"),
    "url-not-a-string": ({"order_id": "o1", "urls": [PAY, 7]}, "urls/1"),
    "ftp": ({"order_id": "o1", "urls": ["ftp://shop.example/file"]}, "urls/0"),
    "javascript": ({"order_id": "o1", "urls": ["javascript:alert(1)"]}, "urls/0"),
    "data": ({"order_id": "o1", "urls": ["data:text/html,hi"]}, "urls/0"),
    "relative": ({"order_id": "o1", "urls": ["/pay/1001"]}, "urls/0"),
    "scheme-relative": ({"order_id": "o1", "urls": ["//evil.example/"]}, "urls/0"),
    "no-host": ({"order_id": "o1", "urls": ["https://"]}, "urls/0"),
    "not-a-url": ({"order_id": "o1", "urls": [PAY, "not a url"]}, "urls/1"),
    "space": ({"order_id": "o1", "urls": ["https://shop.example/a b"]}, "urls/0"),
    "newline": ({"order_id": "o1", "urls": ["https://shop.example/\r\nSet-Cookie: a=b"]}, "urls/0"),
    "too-long": ({"order_id": "o1", "urls": [SHOP + "/" + "a" * 2100]}, "urls/0"),
    "too-many-urls": ({"order_id": "o1", "urls": [f"{SHOP}/{i}" for i in range(101)]}, "urls"),
    "no-order-id": ({"urls": [PAY]}, "order_id"),
    "order-id-not-a-string": ({"order_id": 1, "urls": [PAY]}, "order_id"),
    "message-id-not-a-string": ({"order_id": "o1", "message_id": 5, "urls": [PAY]}, "message_id"),
    "message-id-too-long": (
        {"order_id": "o1", "message_id": "m" * 301, "urls": [PAY]},
        "message_id",
    ),
    "unknown-field": ({"order_id": "o1", "urls": [PAY], "colour": "red"}, "colour"),
}


async def test_tracking_links_are_minted_for_known_orders_and_http_urls(
    api: Api, subtests: Any
) -> None:
    await api.create_order("o1")
    links = await tracking_links(api, "o1", [PAY, CART, "http://plain.example/"], MESSAGE)
    assert set(links) == {"open_pixel_url", "links"}
    assert links["open_pixel_url"].startswith("http://testserver/t/o/")
    assert list(links["links"]) == [PAY, CART, "http://plain.example/"]
    tracked = list(links["links"].values())
    assert all(url.startswith("http://testserver/t/c/") for url in tracked), tracked
    assert len(set(tracked)) == 3
    # the URLs are only signed: the minting stores and records nothing
    assert await api.stored_event_count() == 0
    assert await api.timeline_kinds("o1") == ["created"]

    error = await api.error(
        "POST", "/api/tracking-links", {"order_id": "ghost", "urls": [PAY]}, expect=404
    )
    assert "ghost" in error["message"], error
    for name, (body, named) in BAD_TRACKING_REQUESTS.items():
        with subtests.test(msg=name):
            error = await api.error("POST", "/api/tracking-links", body, expect=422)
            assert [p["path"] for p in error["details"]] == [f"/{named}"], error
    with subtests.test(msg="malformed-json"):
        response = await api.client.post(
            "/api/tracking-links", data=b'{"order_id": "o1", "urls": [', headers=JSON_TYPE
        )
        assert response.status == 400, await response.text()
        assert (await response.json())["error"]["code"] == "malformed_json"
    # a hundred URLs are fine
    many = [f"{SHOP}/{i}" for i in range(100)]
    assert list((await tracking_links(api, "o1", many))["links"]) == many
    assert await api.stored_event_count() == 0


# --- GET /t/o/{token} and GET /t/c/{token} ----------------------------------------------------


async def test_pixel_and_click_record_events_and_move_orders(api: Api) -> None:
    await api.create_orders({"o1": {}, "o2": {}})
    clicked = await api.trigger_id("S", "email.link_clicked", settings={"url": f"{SHOP}/pay"})
    links = await tracking_links(api, "o1", [PAY, CART], MESSAGE)
    bare = await tracking_links(api, "o2", [CART])  # no message_id

    # the pixel: a 1x1 GIF, and email.viewed at every load
    for _ in range(3):
        response = await api.client.get(path_of(links["open_pixel_url"]))
        assert response.status == 200
        assert response.content_type == "image/gif"
        assert response.headers["Cache-Control"] == "no-store"
        assert_gif_1x1(await response.read())
    timeline = await api.timeline("o1")
    assert [(e["kind"], e.get("type"), e.get("data")) for e in timeline] == [
        ("created", None, None),
        *[("event", "email.viewed", {"message_id": MESSAGE})] * 3,
    ]
    assert len({e["event_id"] for e in timeline[1:]}) == 3
    assert await api.stored_event_count() == 3

    # a click on a link outside the trigger's prefix: recorded, redirected, no move
    response = await api.client.get(path_of(links["links"][CART]), allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == CART
    assert await api.status_of("o1") == "N"
    event_id = (await event_ids_in_timeline(api, "o1"))[-1]
    stored = await api.get_event(event_id)
    assert (stored["type"], stored["order_ids"], stored["data"]) == (
        "email.link_clicked",
        ["o1"],
        {"message_id": MESSAGE, "url": CART},
    )
    assert_trace(
        stored["trace"],
        {("o1", clicked): ("skipped", (f"url '{CART}' does not start with '{SHOP}/pay'",))},
    )

    # a click on the payment link: redirected to exactly that URL, the order moves
    response = await api.client.get(path_of(links["links"][PAY]), allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == PAY
    assert await api.status_of("o1") == "S"
    event_id = (await event_ids_in_timeline(api, "o1"))[-1]
    stored = await api.get_event(event_id)
    assert stored["data"] == {"message_id": MESSAGE, "url": PAY}
    assert stored["moves"] == [move("o1", "N", "S", clicked)]
    assert (await api.timeline("o1"))[-1]["kind"] == "status_changed"

    # a second click is recorded again; links without a message_id carry none
    response = await api.client.get(path_of(links["links"][PAY]), allow_redirects=False)
    assert response.status == 302
    assert len(await event_ids_in_timeline(api, "o1")) == 6
    response = await api.client.get(path_of(bare["links"][CART]), allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, CART)
    stored = await api.get_event((await event_ids_in_timeline(api, "o2"))[-1])
    assert stored["data"] == {"url": CART}
    response = await api.client.get(path_of(bare["open_pixel_url"]))
    assert response.status == 200
    stored = await api.get_event((await event_ids_in_timeline(api, "o2"))[-1])
    assert (stored["type"], stored["data"]) == ("email.viewed", {})
    assert await api.stored_event_count() == 8

    # a URL with non-ASCII characters: the redirect sends it percent-encoded, the event
    # records it as it was given
    cafe = f"{SHOP}/café?q=ü"
    links = await tracking_links(api, "o2", [cafe])
    response = await api.client.get(path_of(links["links"][cafe]), allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == f"{SHOP}/caf%C3%A9?q=%C3%BC"
    stored = await api.get_event((await event_ids_in_timeline(api, "o2"))[-1])
    assert stored["data"] == {"url": cafe}


def tampered(token: str, where: str) -> str:
    """``token`` with one character changed in its payload or its signature."""
    payload, _, signature = token.partition(".")
    part = payload if where.startswith("payload") else signature
    index = {"payload-first": 0, "payload-middle": len(part) // 2}.get(where, len(part) - 1)
    swapped = "B" if part[index] == "A" else "A"
    changed = part[:index] + swapped + part[index + 1 :]
    return f"{changed}.{signature}" if where.startswith("payload") else f"{payload}.{changed}"


async def test_unknown_or_tampered_tokens_are_404_and_record_nothing(
    api: Api, subtests: Any
) -> None:
    await api.create_orders({"o1": {}, "o2": {}})
    await api.trigger_id("P", "email.viewed")
    await api.trigger_id("P", "email.link_clicked")
    links = await tracking_links(api, "o1", [PAY], MESSAGE)
    pixel = path_of(links["open_pixel_url"]).removeprefix("/t/o/")
    click = path_of(links["links"][PAY]).removeprefix("/t/c/")
    before = await snapshot(api, ["o1", "o2"])

    paths = {
        "pixel-token-on-click-path": f"/t/c/{pixel}",
        "click-token-on-pixel-path": f"/t/o/{click}",
        "garbage": "/t/o/garbage",
        "no-signature": f"/t/o/{pixel.partition('.')[0]}",
        "no-signature-dot": f"/t/c/{click.partition('.')[0]}.",
        "signature-only": f"/t/c/.{click.partition('.')[2]}",
        "truncated-signature": f"/t/c/{click[:-3]}",
    }
    for where in ("payload-first", "payload-middle", "signature-middle", "signature-last"):
        paths[f"pixel-{where}"] = f"/t/o/{tampered(pixel, where)}"
        paths[f"click-{where}"] = f"/t/c/{tampered(click, where)}"
    for name, path in paths.items():
        with subtests.test(msg=name):
            response = await api.client.get(path, allow_redirects=False)
            text = await response.text()
            assert response.status == 404, (path, response.status, text)
            assert "Location" not in response.headers
            assert await snapshot(api, ["o1", "o2"]) == before

    # the genuine tokens still work
    response = await api.client.get(f"/t/c/{click}", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, PAY)
    assert await api.status_of("o1") == "P"


async def test_tokens_keep_working_after_a_restart(make_client: Any) -> None:
    first = Api(await make_client())
    await first.create_order("o1")
    links = await tracking_links(first, "o1", [PAY], MESSAGE)
    await first.client.close()

    second = Api(await make_client())  # a new app on the same database: the same key
    trigger = await second.trigger_id("S", "email.link_clicked")
    response = await second.client.get(path_of(links["open_pixel_url"]))
    assert response.status == 200
    response = await second.client.get(path_of(links["links"][PAY]), allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (302, PAY)
    assert await second.status_of("o1") == "S"
    timeline = await second.timeline("o1")
    assert [(e["kind"], e.get("type")) for e in timeline] == [
        ("created", None),
        ("event", "email.viewed"),
        ("event", "email.link_clicked"),
        ("status_changed", None),
    ]
    assert timeline[-1]["trigger_id"] == trigger


async def test_tracking_and_hooks_need_no_token_but_the_api_does(make_client: Any) -> None:
    client = await make_client(tokens=("t",))
    auth = {"Authorization": "Bearer t"}

    async def call(method: str, path: str, body: Any = None, **headers: str) -> Any:
        response = await client.request(
            method, path, json=body, headers=headers or None, allow_redirects=False
        )
        return response.status, response

    status, response = await call("POST", "/api/orders", {"id": "o1"}, **auth)
    assert status == 201
    status, response = await call(
        "POST", "/api/triggers", {"type": "webhook.called", "status": "P"}, **auth
    )
    assert status == 201
    hook = path_of((await response.json())["webhook_url"])
    body = {"order_id": "o1", "urls": [PAY]}
    status, response = await call("POST", "/api/tracking-links", body)
    assert status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    status, response = await call("POST", "/api/tracking-links", body, Authorization="Bearer x")
    assert status == 401
    status, response = await call("POST", "/api/tracking-links", body, **auth)
    assert status == 201
    links = await response.json()

    status, _ = await call("GET", path_of(links["open_pixel_url"]))
    assert status == 200
    status, response = await call("GET", path_of(links["links"][PAY]))
    assert (status, response.headers["Location"]) == (302, PAY)
    status, response = await call("POST", hook, {"order_id": "o1"})
    assert status == 200
    assert [m["to"] for m in (await response.json())["moves"]] == ["P"]


# --- POST /hooks/{secret} ---------------------------------------------------------------------


async def test_webhook_urls(api: Api) -> None:
    await api.create_orders({f"w{i}": {} for i in range(6)})
    # a webhook trigger on an earlier status, created first: never a candidate of the other
    earlier = await api.create_trigger("P", "webhook.called")
    hook = await api.create_trigger("S", "webhook.called", name="terminal")
    await api.trigger_id("P", "payment.received")  # no webhook: not a candidate either
    assert hook["webhook_url"].startswith("http://testserver/hooks/")
    assert hook["webhook_url"] != earlier["webhook_url"]
    path = path_of(hook["webhook_url"])
    assert (await api.call("GET", f"/api/triggers/{hook['id']}"))["webhook_url"] == hook[
        "webhook_url"
    ]

    # the order id in the body
    result = await api.call("POST", path, {"order_id": "w1", "data": {"terminal": "T-2"}})
    assert result == {
        "event_id": result["event_id"],
        "duplicate": False,
        "order_ids": ["w1"],
        "moves": [move("w1", "N", "S", hook["id"])],
    }
    stored = await api.get_event(result["event_id"])
    assert (stored["type"], stored["data"]) == ("webhook.called", {"terminal": "T-2"})
    assert_trace(stored["trace"], {("w1", hook["id"]): ("moved", ())})

    # no body: the order id in the query
    response = await api.client.post(path, params={"order_id": "w2"})
    assert response.status == 200, await response.text()
    result = await response.json()
    assert (result["order_ids"], result["moves"]) == (["w2"], [move("w2", "N", "S", hook["id"])])
    assert await api.statuses_of(["w1", "w2", "w0"]) == {"w1": "S", "w2": "S", "w0": "N"}

    # refused calls store nothing
    count = await api.stored_event_count()
    error = await api.error("POST", "/hooks/no-such-secret", {"order_id": "w3"}, expect=404)
    assert error["code"] == "webhook_not_found"
    error = await api.error("POST", path, {"order_id": "ghost"}, expect=404)
    assert "ghost" in error["message"], error
    for body in ({}, None, {"order_id": ""}, {"order_id": 5}, {"data": {"order_id": "w3"}}):
        error = await api.error("POST", path, body, expect=422)
        assert "order_id" in error["message"], (body, error)
    assert await api.stored_event_count() == count
    assert await api.status_of("w3") == "N"

    # a disabled trigger is called, records the event, and moves nothing
    await api.call("PATCH", f"/api/triggers/{hook['id']}", {"enabled": False})
    result = await api.call("POST", path, {"order_id": "w4"})
    assert (result["order_ids"], result["moves"]) == (["w4"], [])
    assert await api.status_of("w4") == "N"
    assert_trace(
        (await api.get_event(result["event_id"]))["trace"],
        {("w4", hook["id"]): ("skipped", ("disabled",))},
    )

    # a deleted trigger's URL is gone
    await api.call("DELETE", f"/api/triggers/{hook['id']}", expect=204)
    await api.error("POST", path, {"order_id": "w5"}, expect=404)
    assert await api.stored_event_count() == count + 1
    assert await api.status_of("w5") == "N"
