"""``sms.send``, installed, against a running statusflow and a local stand-in for Twilio's
Messages API (``api_base_url`` points the plugin at it): the request Twilio documents
(form-encoded ``To``, ``From``, ``Body``, HTTP Basic auth with the account SID and auth
token), its answers (201 accepted, 400 with a Twilio error code), and the runs' ends.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest
from aiohttp import web

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "12345678901234567890123456789012"
SENDER = "+15005550006"
HANG_GUARD = 60.0


class FakeTwilio:
    """Answers ``POST /2010-04-01/Accounts/{sid}/Messages.json`` as Twilio does."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self.auth: list[str] = []

    async def create(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization", ""))
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if request.match_info["sid"] != ACCOUNT:
            return web.json_response({"code": 20404, "message": "not found"}, status=404)
        if form["To"] == "+15005550001":  # Twilio's magic number: an invalid To
            return web.json_response(
                {"code": 21211, "message": "The 'To' number is not a valid phone number."},
                status=400,
            )
        self.messages.append(form)
        sid = f"SM{len(self.messages):032x}"
        return web.json_response({"sid": sid, "status": "queued", **form}, status=201)


@pytest.fixture
async def twilio(aiohttp_server: Any) -> tuple[FakeTwilio, str]:
    fake = FakeTwilio()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", fake.create)
    server = await aiohttp_server(app)
    return fake, str(server.make_url("")).rstrip("/")


def config(base: str) -> dict[str, Any]:
    return {
        "plugins": {
            "twilio": {
                "auth_token": TOKEN,
                "account_sid": ACCOUNT,
                "from_number": SENDER,
                "api_base_url": base,
            }
        }
    }


async def wait_run(sf: Any, order_id: str, states: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        runs = await sf.call("GET", f"/api/orders/{order_id}/runs")
        if runs and runs[-1]["state"] in states:
            return dict(runs[-1])
        await asyncio.sleep(0.02)
    raise AssertionError(f"gave up waiting for a run of {order_id} in {states}")


async def test_sms_send_texts_the_contact_through_twilio(statusflow_app, twilio):
    fake, base = twilio
    sf = await statusflow_app(plugins=["twilio"], config=config(base))
    types = {t["type"]: t for t in await sf.call("GET", "/api/action-types")}
    assert types["sms.send"]["plugin"] == "twilio"
    body = {
        "status": "N",
        "type": "sms.send",
        "settings": {"to": "contact", "body": "Order {{ order.id }}: {{ order.amount }} received"},
    }
    await sf.call("POST", "/api/actions", body, expect=201)
    await sf.create_order("1001", amount=20, contact={"phones": ["(415) 555-0100"]})
    await sf.create_order("nophone", contact={"name": "Bo"})
    done = await wait_run(sf, "1001", {"done"})
    assert done["reason"].startswith("sent to +14155550100 (Twilio SM")
    skipped = await wait_run(sf, "nophone", {"skipped"})
    assert skipped["reason"] == "the order's contact has no phone"
    [message] = fake.messages
    assert message == {"To": "+14155550100", "From": SENDER, "Body": "Order 1001: 20 received"}
    expected = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert fake.auth == [f"Basic {expected}"]


async def test_a_number_twilio_refuses_fails_the_run_at_once(statusflow_app, twilio):
    fake, base = twilio
    sf = await statusflow_app(plugins=["twilio"], config=config(base))
    body = {"status": "N", "type": "sms.send", "settings": {"to": "+15005550001", "body": "hi"}}
    await sf.call("POST", "/api/actions", body, expect=201)
    await sf.create_order("1001")
    failed = await wait_run(sf, "1001", {"failed"})
    assert failed["attempts"] == 1
    assert failed["reason"] == "Twilio 400: 21211 The 'To' number is not a valid phone number."
    assert fake.messages == []


async def test_sms_send_settings_are_checked(statusflow_app, twilio):
    _fake, base = twilio
    sf = await statusflow_app(plugins=["twilio"], config=config(base))
    for settings in ({"to": "0800 nope", "body": "x"}, {"to": "contact", "body": "{{ order.id"}):
        answer = await sf.call(
            "POST",
            "/api/actions",
            {"status": "N", "type": "sms.send", "settings": settings},
            expect=422,
        )
        assert answer["error"]["code"] == "validation_failed"


async def test_without_an_account_a_run_fails_with_the_reason(statusflow_app):
    sf = await statusflow_app(
        plugins=["twilio"], config={"plugins": {"twilio": {"auth_token": TOKEN}}}
    )
    body = {"status": "N", "type": "sms.send", "settings": {"to": "+14155550100", "body": "hi"}}
    await sf.call("POST", "/api/actions", body, expect=201)
    await sf.create_order("1001")
    failed = await wait_run(sf, "1001", {"failed"})
    assert "account_sid" in failed["reason"]
