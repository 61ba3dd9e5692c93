"""statusflow-twilio, installed, against a running statusflow.

Callbacks carry the parameters of Twilio's documented voice status callbacks, form-encoded,
signed the way Twilio signs them (``RequestValidator.compute_signature`` over the full
URL and the POST parameters, with the account's Auth Token). The app comes from
statusflow's pytest plugin (``statusflow_app``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from statusflow.errors import StartupError

AUTH_TOKEN = "12345678901234567890123456789012"
PUBLIC_URL = "https://shop.example.com/statusflow"
PATH = "/sources/twilio/calls"
CLIENT_PHONE = "+14155550100"
STORE_LINE = "+15005550006"


def callback(call_sid: str = "CA5f9b2c1e8d7a6b5c4d3e2f1a0b9c8d7e", **fields: str) -> dict[str, str]:
    """The parameters of an inbound call's status callback, as Twilio posts them."""
    params = {
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "completed",
        "CallDuration": "42",
        "Duration": "1",
        "Called": STORE_LINE,
        "CalledCity": "",
        "CalledCountry": "US",
        "CalledState": "",
        "CalledZip": "",
        "Caller": CLIENT_PHONE,
        "CallerCity": "SAN FRANCISCO",
        "CallerCountry": "US",
        "CallerState": "CA",
        "CallerZip": "94107",
        "CallbackSource": "call-progress-events",
        "Direction": "inbound",
        "From": CLIENT_PHONE,
        "FromCity": "SAN FRANCISCO",
        "FromCountry": "US",
        "FromState": "CA",
        "FromZip": "94107",
        "SequenceNumber": "3",
        "SipResponseCode": "200",
        "Timestamp": "Wed, 27 Nov 2024 09:33:20 +0000",
        "To": STORE_LINE,
        "ToCity": "",
        "ToCountry": "US",
        "ToState": "",
        "ToZip": "",
    }
    params.update(fields)
    return params


async def send(
    sf: Any,
    params: dict[str, str],
    *,
    token: str = AUTH_TOKEN,
    query: str = "",
    signed_url: str | None = None,
    signature: str | None = None,
    expect: int = 200,
) -> dict[str, Any]:
    """POST a callback as Twilio does, signed over ``PUBLIC_URL + PATH + query``."""
    url = signed_url or f"{PUBLIC_URL}{PATH}{query}"
    if signature is None:
        signature = RequestValidator(token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    response = await sf.client.post(f"{PATH}{query}", data=params, headers=headers)
    body = await response.json()
    assert response.status == expect, body
    return dict(body)


def config(**twilio: Any) -> dict[str, Any]:
    return {
        "server": {"public_url": PUBLIC_URL},
        "plugins": {"twilio": {"auth_token": AUTH_TOKEN, **twilio}},
    }


async def calls_app(statusflow_app: Any) -> Any:
    """The calls and twilio plugins; an open order of the client; missed calls go to P."""
    sf = await statusflow_app(plugins=["calls", "twilio"], config=config())
    await sf.create_order("1001", contact={"name": "Ada", "phones": ["+1 (415) 555-0100"]})
    await sf.create_trigger("call.missed", "P", settings={"line": STORE_LINE})
    return sf


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_a_missed_call_moves_the_callers_order_once(statusflow_app):
    sf = await calls_app(statusflow_app)
    result = await send(sf, callback(CallStatus="no-answer", CallDuration="0"))
    assert result["event_id"] == "twilio:CA5f9b2c1e8d7a6b5c4d3e2f1a0b9c8d7e:missed"
    assert result["order_ids"] == ["1001"]
    assert result["moves"] == [{"order_id": "1001", "from": "N", "to": "P", "trigger_id": 1}]
    entry = next(e for e in await sf.timeline("1001") if e["kind"] == "event")
    assert entry["type"] == "call.missed"
    assert entry["data"]["line"] == STORE_LINE and entry["data"]["call_status"] == "no-answer"
    assert entry["occurred_at"] == "2024-11-27T09:33:20.000000Z"
    # the caller, sent once in the data, is the contact that found the order
    stored = await sf.get_event(result["event_id"])
    assert stored["contact"] == {"phone": CLIENT_PHONE} and stored["data"]["caller"] == CLIENT_PHONE
    # the same callback again (a retried request): a duplicate, nothing moves again
    again = await send(sf, callback(CallStatus="no-answer", CallDuration="0"))
    assert again["duplicate"] is True and again["moves"] == result["moves"]
    assert await sf.event_count() == 1


async def test_call_statuses(statusflow_app):
    sf = await calls_app(statusflow_app)
    await sf.create_trigger("call.incoming", "S")
    ringing = await send(sf, callback("CA1", CallStatus="ringing"))
    assert ringing["received"] is True and "ringing" in ringing["ignored"]
    # answered: in-progress, then completed, is one call.incoming
    first = await send(sf, callback("CA1", CallStatus="in-progress"))
    assert first["event_id"] == "twilio:CA1:incoming" and [m["to"] for m in first["moves"]] == ["S"]
    assert (await send(sf, callback("CA1", CallStatus="completed")))["duplicate"] is True
    # each unanswered status is a call.missed, on another line it does not match the trigger
    for sid, status in enumerate(("busy", "failed", "canceled", "no-answer")):
        result = await send(sf, callback(f"CB{sid}", CallStatus=status, To="+15005550001"))
        assert result["event_id"] == f"twilio:CB{sid}:missed" and result["moves"] == []
    events = [e for e in await sf.timeline("1001") if e["kind"] == "event"]
    assert [e["type"] for e in events] == ["call.incoming"] + ["call.missed"] * 4
    # a <Dial> leg that rang the store's phone: the client's call, missed
    leg = callback("CD1", CallStatus="no-answer", Direction="outbound-dial", To=STORE_LINE)
    leg["ParentCallSid"] = "CA7"
    result = await send(sf, leg)
    assert result["event_id"] == "twilio:CD1:missed" and result["order_ids"] == ["1001"]
    assert result["moves"] == []  # the order is already past P
    # calls the store made, and callers without a number, are not the client calling
    outbound = callback("CA9", CallStatus="no-answer", Direction="outbound-api")
    assert "outbound-api" in (await send(sf, outbound))["ignored"]
    for caller in ("anonymous", "client:alice", "+266696687"):
        answer = await send(sf, callback("CA8", CallStatus="no-answer", From=caller))
        assert "not a phone number" in answer["ignored"], caller
    assert await sf.event_count() == 6


async def test_bad_signatures_are_403_and_store_nothing(statusflow_app):
    sf = await calls_app(statusflow_app)
    params = callback(CallStatus="busy")
    good = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_URL}{PATH}", params)
    cases = {
        "no signature": {"signature": ""},
        "another token": {"token": "00000000000000000000000000000000"},
        "another URL": {"signed_url": f"https://attacker.example.com{PATH}"},
        "a query the signature does not cover": {"signature": good, "query": "?x=1"},
        "a made-up signature": {"signature": "bm90IGEgc2lnbmF0dXJl"},
    }
    for name, kwargs in cases.items():
        answer = await send(sf, params, expect=403, **kwargs)
        assert answer["error"]["code"] == "bad_signature", name
    # a parameter changed after signing
    response = await sf.client.post(
        PATH, data={**params, "CallStatus": "completed"}, headers={"X-Twilio-Signature": good}
    )
    assert response.status == 403
    assert await sf.event_count() == 0
    assert await sf.status_of("1001") == "N"
    # the query string is part of what Twilio signs
    result = await send(sf, params, query="?store=eu")
    assert [m["to"] for m in result["moves"]] == ["P"]


async def test_installed_listed_disabled_and_configured(statusflow_app, statusflow_cli):
    sf = await statusflow_app(config=config())
    listed = (await sf.plugins())["twilio"]
    assert listed == {
        "name": "twilio",
        "distribution": "statusflow-twilio",
        "version": "0.1.0",
        "trigger_types": [],
        "enabled": True,
    }
    off = await statusflow_app(config={**config(), "plugins": {"disable": ["twilio"]}})
    assert (await off.plugins())["twilio"]["enabled"] is False
    await send(off, callback(CallStatus="busy"), expect=404)
    assert await off.event_count() == 0
    result = statusflow_cli("plugins", "--json", config={"plugins": {"disable": ["twilio"]}})
    assert result.returncode == 0, result.stderr
    assert {p["name"]: p for p in json.loads(result.stdout)}["twilio"]["enabled"] is False

    with pytest.raises(StartupError, match=r"'twilio'.*auth_token"):
        await statusflow_app(plugins=["twilio"], config=config(auth_token=""))
    bare = await statusflow_app(plugins=["calls", "twilio"])
    answer = await send(bare, callback(), expect=503)
    assert "auth_token" in answer["error"]["message"]
