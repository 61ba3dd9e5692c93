"""The helpers statusflow exports for plugins: JSON bodies and answers, and times.

The built-in plugins' routes (email's tracking links, webhook's URLs, the outgoing
webhooks' API) read their bodies with the helper the kernel's routes use, so a bad body
gets the same answer wherever it is sent; their stored times have the kernel's form.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from statusflow import format_timestamp, parse_timestamp, utc_now
from tests.helpers import Api, assert_error_shape, path_of

STORED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
JSON_TYPE = {"Content-Type": "application/json"}


async def _answer(api: Api, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    response = await api.client.request(method, path, data=raw, headers=JSON_TYPE)
    return response.status, await response.json()


async def test_plugin_routes_answer_bad_bodies_as_the_kernels_routes_do(make_client):
    api = Api(await make_client(enable=("payment", "email", "webhook", "outgoing_webhooks")))
    await api.create_order("o1")
    hook = await api.create_trigger("P", "webhook.called")
    kernel_route = ("POST", "/api/orders")
    plugin_routes = [
        ("POST", "/api/tracking-links"),
        ("POST", path_of(hook["webhook_url"])),
        ("POST", "/api/webhook-endpoints"),
        ("PATCH", "/api/webhook-endpoints/nope"),  # the body is read before the lookup
    ]
    bad_bodies = {
        b'{"order_id": "o1", ': (400, "malformed_json"),
        b"\xff": (400, "malformed_json"),
        b'{"order_id": 18446744073709551616}': (422, "validation_failed"),  # beyond 64 bits
        b'["o1"]': (422, "validation_failed"),
    }
    for raw, (status, code) in bad_bodies.items():
        expected_status, expected = await _answer(api, *kernel_route, raw)
        assert expected_status == status, (raw, expected)
        message = assert_error_shape(expected, code)["message"]
        for method, path in plugin_routes:
            got_status, answer = await _answer(api, method, path, raw)
            assert got_status == status, (raw, path, answer)
            got = assert_error_shape(answer, code)["message"]
            if raw.startswith(b"["):  # each names its own body
                assert got.endswith("must be a JSON object"), (path, got)
            else:
                assert got == message, (raw, path, got)
    # an empty body: the webhook URL takes the order from the query instead
    empty = assert_error_shape((await _answer(api, *kernel_route, b""))[1], "malformed_json")
    for method, path in plugin_routes:
        status, answer = await _answer(api, method, path, b" ")
        if "/hooks/" in path:
            assert status == 422 and "order_id" in answer["error"]["message"], answer
        else:
            assert (status, answer["error"]) == (400, empty), (path, answer)
    # a NUL character where the body is stored as it is: the kernel's message
    nul = b'{"url": "https://shop.example/x", "description": "a\\u0000b"}'
    status, answer = await _answer(api, "POST", "/api/webhook-endpoints", nul)
    assert status == 422
    assert "NUL character" in assert_error_shape(answer, "validation_failed")["message"]
    assert await api.call("GET", "/api/webhook-endpoints") == []
    assert await api.stored_event_count() == 0
    assert await api.status_of("o1") == "N"


async def test_plugin_answers_and_stored_times_have_the_kernels_form(make_client):
    api = Api(await make_client(enable=("payment", "webhook", "outgoing_webhooks")))
    await api.create_order("o1")
    hook = await api.create_trigger("P", "webhook.called")
    response = await api.client.post(path_of(hook["webhook_url"]), json={"order_id": "o1"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert (await response.json())["moves"][0]["to"] == "P"
    endpoint = await api.call(
        "POST", "/api/webhook-endpoints", {"url": "https://shop.example/x"}, expect=201
    )
    for at in (endpoint["created_at"], endpoint["updated_at"]):
        assert STORED.fullmatch(at), at
        assert abs(parse_timestamp(at) - datetime.now(UTC)) < timedelta(minutes=5)


def test_import_statusflow_leaves_the_http_layer_until_a_helper_is_used():
    """``import statusflow`` (the command line, a plugin's types) stays light; the HTTP
    helpers are imported when first asked for."""
    code = (
        "import sys, statusflow\n"
        "assert 'statusflow.http' not in sys.modules, 'http imported'\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
        "from statusflow import read_json_body, read_json_object, json_response\n"
        "from statusflow.http import jsonio\n"
        "assert read_json_body is jsonio.read_json_body\n"
        "assert json_response is jsonio.json_response\n"
        "try:\n"
        "    statusflow.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_utc_now_is_the_stored_form_of_now():
    before = datetime.now(UTC)
    now = utc_now()
    assert STORED.fullmatch(now), now
    assert before - timedelta(seconds=1) <= parse_timestamp(now) <= datetime.now(UTC)


def test_format_timestamp_writes_the_stored_form_in_utc():
    plus_two = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2026, 11, 27, 12, tzinfo=plus_two)) == (
        "2026-11-27T10:00:00.000000Z"
    )
    assert format_timestamp(datetime(2026, 11, 27, 10, 0, 0, 7, tzinfo=UTC)) == (
        "2026-11-27T10:00:00.000007Z"
    )
    assert format_timestamp(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00.000000Z"
    with pytest.raises(ValueError, match="no time zone"):
        format_timestamp(datetime(2026, 11, 27, 10))


def test_parse_timestamp_reads_any_iso_8601_time_with_a_zone():
    expected = datetime(2026, 11, 27, 10, tzinfo=UTC)
    for text in (
        "2026-11-27T10:00:00.000000Z",
        "2026-11-27T10:00:00Z",
        "2026-11-27T10:00:00z",
        "2026-11-27T12:00:00+02:00",
        " 2026-11-27T05:00:00-05:00 ",
    ):
        parsed = parse_timestamp(text)
        assert parsed == expected and parsed.tzinfo == UTC, text
    stored = "2026-11-27T10:00:00.123456Z"
    assert format_timestamp(parse_timestamp(stored)) == stored
    for bad in ("2026-11-27T10:00:00", "2026-13-01T00:00:00.000000Z", "yesterday", ""):
        with pytest.raises(ValueError):
            parse_timestamp(bad)
    with pytest.raises(OverflowError):
        parse_timestamp("0001-01-01T00:00:00+01:00")
