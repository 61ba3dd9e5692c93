"""statusflow-whatsapp, installed, against a running statusflow.

Deliveries are shaped like the WhatsApp Cloud API's documented webhooks (``field``
``messages``: messages with the sender's ``contacts``, and status updates) and signed the
way Meta signs them, here in the test itself: ``X-Hub-Signature-256: sha256=`` + the hex
HMAC-SHA256 of the raw body with the app's App Secret. The app comes from statusflow's
pytest plugin (``statusflow_app``: an aiohttp test server with the installed entry
points); the last test runs the real ``statusflow serve``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from statusflow.errors import StartupError

APP_SECRET = "6ef2a1c3b5d4e7f8091a2b3c4d5e6f70"
VERIFY_TOKEN = "meatyhamhock"
PATH = "/sources/whatsapp"
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_PHONE = "15550783881"
CLIENT = "16505551234"  # the client's WhatsApp id: +1 650-555-1234
OTHER_CLIENT = "447700900123"
TIMESTAMP = "1749416383"  # 2025-06-08T20:59:43Z


def message(
    message_id: str, body: str = "Does it come in another color?", sender: str = CLIENT
) -> dict[str, Any]:
    """A text message as the Cloud API delivers it."""
    return {
        "from": sender,
        "id": message_id,
        "timestamp": TIMESTAMP,
        "type": "text",
        "text": {"body": body},
    }


def media(message_id: str, kind: str, **content: Any) -> dict[str, Any]:
    """A media message (``image``, ``document``, ...) with its media object."""
    base = {"mime_type": "image/jpeg", "sha256": "S2hBN0U3Z0F1dGg=", "id": "1003383421387256"}
    return {
        "from": CLIENT,
        "id": message_id,
        "timestamp": TIMESTAMP,
        "type": kind,
        kind: {**base, **content},
    }


def delivery(
    *messages: dict[str, Any],
    contacts: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A webhook delivery of the ``messages`` field, with the senders as its contacts."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_PHONE, "phone_number_id": PHONE_NUMBER_ID},
    }
    if messages:
        senders = dict.fromkeys(m["from"] for m in messages)
        value["contacts"] = (
            contacts
            if contacts is not None
            else [{"profile": {"name": "Sheena Nelson"}, "wa_id": s} for s in senders]
        )
        value["messages"] = list(messages)
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def status_update(message_id: str, status: str) -> dict[str, Any]:
    """A message status update (``sent``, ``delivered``, ``read``) as delivered."""
    update: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": TIMESTAMP,
        "recipient_id": CLIENT,
        "pricing": {"billable": True, "pricing_model": "PMP", "category": "utility"},
    }
    if status == "sent":
        update["conversation"] = {
            "id": "a3bc54b2f8e4a0bd6b3e6b6c2a1c3d4e",
            "expiration_timestamp": "1749502783",
            "origin": {"type": "utility"},
        }
    return update


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    """The ``X-Hub-Signature-256`` header Meta sends with ``raw``."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def encode(payload: Any, *, escaped: bool = False) -> bytes:
    """The body's bytes: UTF-8, or (``escaped``) written as Meta's servers write JSON,
    non-ASCII characters as ``\\uXXXX`` and slashes as ``\\/``."""
    if escaped:
        return json.dumps(payload, ensure_ascii=True).replace("/", "\\/").encode()
    return json.dumps(payload, ensure_ascii=False).encode()


async def send(
    sf: Any, payload: Any, *, header: str | None = None, expect: int = 200
) -> dict[str, Any]:
    """POST a delivery as Meta does; ``payload`` as bytes is sent as it is; signed with
    ``APP_SECRET`` unless ``header`` is given (``""``: no header)."""
    raw = payload if isinstance(payload, bytes) else encode(payload)
    headers = {"Content-Type": "application/json"}
    signature = sign(raw) if header is None else header
    if signature:
        headers["X-Hub-Signature-256"] = signature
    response = await sf.client.post(PATH, data=raw, headers=headers)
    body = await response.json()
    assert response.status == expect, body
    return dict(body)


def config(**whatsapp: Any) -> dict[str, Any]:
    return {
        "plugins": {
            "whatsapp": {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, **whatsapp}
        }
    }


async def chat_app(statusflow_app: Any, **kwargs: Any) -> Any:
    """The chat and whatsapp plugins and an open order of the client's."""
    sf = await statusflow_app(plugins=["chat", "whatsapp"], config=config(), **kwargs)
    await sf.create_order("1001", contact={"name": "Sheena", "phones": ["+1 (650) 555-1234"]})
    return sf


async def test_the_verification_handshake(statusflow_app):
    sf = await chat_app(statusflow_app)
    good = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": VERIFY_TOKEN,
    }
    response = await sf.client.get(PATH, params=good)
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == "1158201444"

    refused = {
        "another token": {**good, "hub.verify_token": "meatyhamhocks"},
        "no token": {k: v for k, v in good.items() if k != "hub.verify_token"},
        "another mode": {**good, "hub.mode": "unsubscribe"},
    }
    for name, params in refused.items():
        response = await sf.client.get(PATH, params=params)
        assert response.status == 403, name
        body = await response.json()
        assert body["error"]["code"] == "verification_failed", name
        assert VERIFY_TOKEN not in json.dumps(body)
    # the token is what counts: Meta always sends hub.mode=subscribe, but without it...
    no_mode = {k: v for k, v in good.items() if k != "hub.mode"}
    response = await sf.client.get(PATH, params=no_mode)
    assert response.status == 200 and await response.text() == "1158201444"
    no_challenge = {k: v for k, v in good.items() if k != "hub.challenge"}
    assert (await sf.client.get(PATH, params=no_challenge)).status == 400

    # without a verify_token configured no request is verified
    bare = await statusflow_app(plugins=["chat", "whatsapp"], config={"plugins": {"whatsapp": {}}})
    assert (await bare.client.get(PATH, params={**good, "hub.verify_token": ""})).status == 403
    assert (await bare.client.get(PATH, params=good)).status == 403


@pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
async def test_a_signed_message_moves_the_clients_order_once(statusflow_app):
    sf = await chat_app(statusflow_app)
    await sf.create_trigger("chat.message", "P", settings={"channel_id": PHONE_NUMBER_ID})
    wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    answer = await send(sf, delivery(message(wamid)))
    assert answer["received"] is True and "ignored" not in answer
    [result] = answer["results"]
    assert result["event_id"] == f"whatsapp:{wamid}"
    assert result["duplicate"] is False
    assert result["order_ids"] == ["1001"]
    assert result["moves"] == [{"order_id": "1001", "from": "N", "to": "P", "trigger_id": 1}]
    assert await sf.status_of("1001") == "P"

    stored = await sf.get_event(f"whatsapp:{wamid}")
    assert stored["type"] == "chat.message"
    assert stored["contact"] == {"phone": "+16505551234"}
    assert stored["data"] == {
        "channel_id": PHONE_NUMBER_ID,
        "dialog_id": CLIENT,
        "text": "Does it come in another color?",
        "message_type": "text",
        "profile_name": "Sheena Nelson",
    }
    entry = next(e for e in await sf.timeline("1001") if e["kind"] == "event")
    assert entry["occurred_at"] == "2025-06-08T20:59:43.000000Z"

    # Meta retries the delivery (it did not see the 200): a duplicate, nothing again
    again = await send(sf, delivery(message(wamid)))
    assert again["results"][0]["duplicate"] is True
    assert again["results"][0]["moves"] == result["moves"]
    assert await sf.event_count() == 1
    assert [e["kind"] for e in await sf.timeline("1001")].count("event") == 1


async def test_the_client_is_the_dialog_so_first_message_fires_once(statusflow_app):
    sf = await chat_app(statusflow_app)
    first = await sf.create_trigger(
        "chat.first_message", "P", settings={"channel_id": PHONE_NUMBER_ID}
    )
    opened = await send(sf, delivery(message("wamid.A1", "Hi! Is order 1001 on its way?")))
    assert [m["to"] for m in opened["results"][0]["moves"]] == ["P"]
    await sf.call("PATCH", "/api/orders/1001", {"status": "N"})  # a manual move back

    later = await send(sf, delivery(message("wamid.A2", "Any news?")))
    assert later["results"][0]["moves"] == []
    trace = (await sf.get_event("whatsapp:wamid.A2"))["trace"]
    assert [(t["trigger_id"], t["outcome"]) for t in trace] == [(first["id"], "skipped")]
    assert "not the first message of dialog_id" in trace[0]["reason"]

    # another client writing first, before any order of theirs exists: that opens their
    # dialog, so their next message, once the order exists, is not a first one
    await send(sf, delivery(message("wamid.B1", "Hello", sender=OTHER_CLIENT)))
    await sf.create_order("1002", contact={"phones": ["+44 7700 900123"]})
    after = await send(sf, delivery(message("wamid.B2", "About my order", sender=OTHER_CLIENT)))
    assert after["results"][0]["order_ids"] == ["1002"] and after["results"][0]["moves"] == []
    assert await sf.status_of("1002") == "N"


async def test_non_ascii_text_is_signed_over_the_raw_bytes(statusflow_app):
    sf = await chat_app(statusflow_app)
    await sf.create_trigger("chat.message", "P", settings={"text": "ещё один"})
    text = "Можно ещё один, синий? 👍 café / naïve"
    payload = delivery(message("wamid.U1", text))
    utf8, escaped = encode(payload), encode(payload, escaped=True)
    assert utf8 != escaped and b"\\u0435" in escaped and b"\\/" in escaped

    # Meta's own form (escapes), signed over exactly those bytes
    result = (await send(sf, escaped))["results"][0]
    assert [m["to"] for m in result["moves"]] == ["P"]
    assert (await sf.get_event("whatsapp:wamid.U1"))["data"]["text"] == text
    # the same text as raw UTF-8, signed over those bytes
    other = delivery(message("wamid.U2", text))
    assert (await send(sf, encode(other)))["results"][0]["event_id"] == "whatsapp:wamid.U2"
    # a signature over the text re-encoded another way does not sign these bytes
    third = delivery(message("wamid.U3", text))
    refused = await send(sf, encode(third), header=sign(encode(third, escaped=True)), expect=403)
    assert refused["error"]["code"] == "bad_signature"
    assert await sf.event_count() == 2


async def test_bad_signatures_are_403_store_nothing_and_are_logged(statusflow_app):
    sf = await chat_app(statusflow_app)
    await sf.create_trigger("chat.message", "P")
    raw = encode(delivery(message("wamid.S1")))
    good = sign(raw)
    cases = {
        "no header": "",
        "another secret": sign(raw, "0" * 32),
        "another body": sign(raw.replace(b"color", b"colour")),
        "sha1 scheme": "sha1=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha1).hexdigest(),
        "no scheme": good.removeprefix("sha256="),
        "truncated": good[:-2],
        "garbage": "sha256=not-hex-at-all",
    }
    with capture_logs() as logs:
        for name, header in cases.items():
            answer = await send(sf, raw, header=header, expect=403)
            assert answer["error"]["code"] == "bad_signature", name
            assert APP_SECRET not in json.dumps(answer)
        # a body changed after signing, and a signed body that is not even JSON
        answer = await send(sf, raw.replace(b"color", b"colour"), header=good, expect=403)
        await send(sf, b"{not json", header=good, expect=403)
    refusals = [e for e in logs if e["event"] == "whatsapp.bad_signature"]
    assert len(refusals) == len(cases) + 2
    assert all(e["log_level"] == "warning" for e in refusals)
    assert APP_SECRET not in repr(logs)
    assert await sf.event_count() == 0
    assert await sf.status_of("1001") == "N"
    # the right signature is accepted
    assert (await send(sf, raw, header=good))["results"][0]["moves"] != []


async def test_signed_bad_json_and_malformed_deliveries_are_400(statusflow_app):
    sf = await chat_app(statusflow_app)
    await sf.create_trigger("chat.message", "P")
    for raw in (b'{"object": "whatsapp_business_account", "entry": [', b"", b"\xff\xfe"):
        answer = await send(sf, raw, expect=400)
        assert set(answer) == {"error"} and set(answer["error"]) == {"code", "message", "details"}
        assert answer["error"]["code"] == "malformed_json"

    def broken(change: Any) -> dict[str, Any]:
        payload = delivery(message("wamid.M1"), message("wamid.M2", "second"))
        change(payload["entry"][0]["changes"][0]["value"])
        return payload

    malformed = {
        "/": [],
        "/entry": {"object": "whatsapp_business_account"},
        "/entry/0/changes/0/value/messages/1/id": broken(lambda v: v["messages"][1].pop("id")),
        "/entry/0/changes/0/value/messages/1/text": broken(lambda v: v["messages"][1].pop("text")),
        "/entry/0/changes/0/value/messages/0/from": broken(
            lambda v: v["messages"][0].update({"from": "+1 650"})
        ),
        "/entry/0/changes/0/value/metadata/phone_number_id": broken(
            lambda v: v["metadata"].update({"phone_number_id": 106540352242922})
        ),
        "/entry/0/changes/0/value/messages/1/from": broken(  # digits, but not a phone
            lambda v: (v["messages"][1].update({"from": "12"}), v.pop("contacts"))
        ),
    }
    for path, payload in malformed.items():
        answer = await send(sf, payload, expect=400)
        assert answer["error"]["code"] == "malformed_payload", path
        assert answer["error"]["details"][0]["path"] == path, answer
    # a delivery is checked whole: its first, good message was not stored either
    assert await sf.event_count() == 0
    assert await sf.status_of("1001") == "N"


async def test_status_updates_and_other_fields_are_ignored(statusflow_app):
    sf = await chat_app(statusflow_app)
    await sf.create_trigger("chat.message", "P")
    statuses = [status_update("wamid.OUT1", s) for s in ("sent", "delivered", "read")]
    answer = await send(sf, delivery(statuses=statuses))
    assert answer == {
        "received": True,
        "results": [],
        "ignored": ["3 status update(s) post nothing"],
    }
    account = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "field": "account_update",
                        "value": {"phone_number": DISPLAY_PHONE, "event": "VERIFIED_ACCOUNT"},
                    }
                ],
            }
        ],
    }
    assert (await send(sf, account))["ignored"] == ["field 'account_update' posts nothing"]
    # a Messenger delivery, if the app sends one here too
    page = {
        "object": "page",
        "entry": [{"id": "1", "time": 1749416383, "messaging": [{"sender": {"id": "2"}}]}],
    }
    assert (await send(sf, page))["ignored"] == ["object 'page' is not 'whatsapp_business_account'"]
    assert await sf.event_count() == 0
    # a message and a status update in one delivery: the message counts
    mixed = delivery(message("wamid.X1"), statuses=[status_update("wamid.OUT1", "read")])
    answer = await send(sf, mixed)
    assert [r["event_id"] for r in answer["results"]] == ["whatsapp:wamid.X1"]
    assert answer["ignored"] == ["1 status update(s) post nothing"]
    assert await sf.status_of("1001") == "P"


async def test_media_and_other_messages_carry_their_type_as_text(statusflow_app):
    sf = await chat_app(statusflow_app)
    await sf.create_trigger("chat.message", "P", settings={"text": "blue one"})
    messages = [
        media("wamid.I1", "image", caption="Is this the blue one?"),
        media("wamid.D1", "document", mime_type="application/pdf", filename="invoice-1001.pdf"),
        media("wamid.V1", "audio", mime_type="audio/ogg; codecs=opus", voice=True),
        media("wamid.W1", "video", mime_type="video/mp4", caption="unboxing"),
        media("wamid.K1", "sticker", mime_type="image/webp", animated=False),
        {
            "from": CLIENT,
            "id": "wamid.L1",
            "timestamp": TIMESTAMP,
            "type": "location",
            "location": {
                "latitude": 38.9,
                "longitude": -77.0,
                "name": "Home",
                "address": "1 Main St",
            },
        },
        {
            "from": CLIENT,
            "id": "wamid.R1",
            "timestamp": TIMESTAMP,
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}},
        },
        {
            "from": CLIENT,
            "id": "wamid.E1",
            "timestamp": TIMESTAMP,
            "type": "reaction",
            "reaction": {"message_id": "wamid.OUT1", "emoji": "\U0001f44d"},
        },
        {
            "from": CLIENT,
            "id": "wamid.Z1",
            "timestamp": TIMESTAMP,
            "type": "unsupported",
            "errors": [{"code": 131051, "title": "Message type unknown"}],
        },
    ]
    answer = await send(sf, delivery(*messages))
    results = answer["results"]
    assert [r["event_id"] for r in results] == [f"whatsapp:{m['id']}" for m in messages]
    assert [m["to"] for m in results[0]["moves"]] == ["P"]  # the caption matched
    texts = {}
    for m in messages:
        stored = await sf.get_event(f"whatsapp:{m['id']}")
        assert stored["data"]["message_type"] == m["type"]
        assert stored["data"]["dialog_id"] == CLIENT
        texts[m["type"]] = stored["data"]["text"]
    assert texts == {
        "image": "[image] Is this the blue one?",
        "document": "[document] invoice-1001.pdf",
        "audio": "[audio]",
        "video": "[video] unboxing",
        "sticker": "[sticker]",
        "location": "[location] Home, 1 Main St",
        "interactive": "Yes",
        "reaction": "[reaction] \U0001f44d",
        "unsupported": "[unsupported]",
    }
    image = await sf.get_event("whatsapp:wamid.I1")
    assert image["data"]["caption"] == "Is this the blue one?"


async def test_parts_meta_always_sends_are_not_required(statusflow_app):
    sf = await chat_app(statusflow_app)
    await sf.create_trigger("chat.message", "P")
    # no object, field, metadata, contacts or type; a "+" before the number
    bare = {
        "entry": [
            {"changes": [{"value": {"messages": [{"from": "+" + CLIENT, "id": "wamid.T1"}]}}]}
        ]
    }
    bare["entry"][0]["changes"][0]["value"]["messages"][0]["text"] = {"body": "hi"}
    [result] = (await send(sf, bare))["results"]
    assert result["order_ids"] == ["1001"] and [m["to"] for m in result["moves"]] == ["P"]
    stored = await sf.get_event("whatsapp:wamid.T1")
    assert stored["contact"] == {"phone": "+16505551234"}
    assert stored["data"] == {"dialog_id": CLIENT, "text": "hi", "message_type": "text"}


async def test_unknown_contacts_are_stored_with_no_moves(statusflow_app):
    sf = await chat_app(statusflow_app)
    await sf.create_trigger("chat.message", "P")
    answer = await send(sf, delivery(message("wamid.N1", "Hi", sender=OTHER_CLIENT)))
    [result] = answer["results"]
    assert result["order_ids"] == [] and result["moves"] == [] and result["duplicate"] is False
    stored = await sf.get_event("whatsapp:wamid.N1")
    assert stored["contact"] == {"phone": "+447700900123"} and stored["moves"] == []
    assert await sf.event_count() == 1
    assert await sf.status_of("1001") == "N"


async def test_the_contacts_wa_id_names_the_client(statusflow_app):
    sf = await chat_app(statusflow_app)
    # the contact's wa_id may be written otherwise than the message's from (numbers of
    # some countries): the wa_id is the phone and the dialog
    moved = await send(
        sf,
        delivery(
            message("wamid.C1", sender="165055512340"),
            contacts=[{"profile": {"name": "Sheena"}, "wa_id": CLIENT}],
        ),
    )
    assert moved["results"][0]["order_ids"] == ["1001"]
    stored = await sf.get_event("whatsapp:wamid.C1")
    assert stored["contact"] == {"phone": "+16505551234"}
    assert stored["data"]["dialog_id"] == CLIENT
    # with no contacts at all, the message's from
    alone = await send(sf, delivery(message("wamid.C2"), contacts=[]))
    assert alone["results"][0]["order_ids"] == ["1001"]
    assert "profile_name" not in (await sf.get_event("whatsapp:wamid.C2"))["data"]
    # two senders in one delivery, each matched to their own contact
    two = delivery(message("wamid.C3"), message("wamid.C4", sender=OTHER_CLIENT))
    answer = await send(sf, two)
    assert [r["order_ids"] for r in answer["results"]] == [["1001"], []]
    stored = await sf.get_event("whatsapp:wamid.C4")
    assert stored["contact"] == {"phone": "+447700900123"}


async def test_installed_listed_disabled_and_configured(
    statusflow_app, statusflow_cli, monkeypatch
):
    sf = await statusflow_app(config=config())
    listed = (await sf.plugins())["whatsapp"]
    assert listed == {
        "name": "whatsapp",
        "distribution": "statusflow-whatsapp",
        "version": "0.1.0",
        "trigger_types": [],
        "enabled": True,
    }
    spec = await sf.call("GET", "/api/openapi.json")
    assert set(spec["paths"][PATH]) == {"get", "post"}

    off = await statusflow_app(config={**config(), "plugins": {"disable": ["whatsapp"]}})
    assert (await off.plugins())["whatsapp"]["enabled"] is False
    await send(off, delivery(message("wamid.O1")), expect=404)
    result = statusflow_cli("plugins", "--json", config={"plugins": {"disable": ["whatsapp"]}})
    assert result.returncode == 0, result.stderr
    assert {p["name"]: p for p in json.loads(result.stdout)}["whatsapp"]["enabled"] is False

    # settings are checked at start-up, naming the key and never the value
    with pytest.raises(StartupError, match=r"'whatsapp'.*app_secret") as caught:
        await statusflow_app(plugins=["whatsapp"], config=config(app_secret="pasted with spaces"))
    assert "pasted with spaces" not in str(caught.value)
    with pytest.raises(StartupError, match=r"'whatsapp'.*verify_token"):
        await statusflow_app(plugins=["whatsapp"], config=config(verify_token=""))
    with pytest.raises(StartupError, match=r"'whatsapp'.*access_token"):
        await statusflow_app(plugins=["whatsapp"], config=config(access_token="EAAG"))
    from_env = {"plugins": {"whatsapp": {"app_secret": {"$env": "WHATSAPP_APP_SECRET"}}}}
    with pytest.raises(StartupError, match="WHATSAPP_APP_SECRET"):
        await statusflow_app(plugins=["whatsapp"], config=from_env)
    monkeypatch.setenv("WHATSAPP_APP_SECRET", APP_SECRET)
    env_app = await statusflow_app(plugins=["chat", "whatsapp"], config=from_env)
    assert (await send(env_app, delivery(message("wamid.E1"))))["results"][0]["order_ids"] == []

    # without an app secret deliveries are 503 (Meta retries until it is set)
    bare = await statusflow_app(plugins=["chat", "whatsapp"])
    answer = await send(bare, delivery(message("wamid.B1")), expect=503)
    assert "app_secret" in answer["error"]["message"]
    assert await bare.event_count() == 0


# --- the real server -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``/healthz`` answers 200; a hang guard of 60 s."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("statusflow serve did not answer /healthz within 60 s")


async def test_through_statusflow_serve(tmp_path):
    port = _free_port()
    config_file = tmp_path / "statusflow.toml"
    config_file.write_text(
        f'database_url = "sqlite:///{tmp_path / "statusflow.db"}"\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        '[plugins]\nenable = ["chat", "whatsapp"]\n'
        f'[plugins.whatsapp]\napp_secret = "{APP_SECRET}"\nverify_token = "{VERIFY_TOKEN}"\n'
    )
    log = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "statusflow.cli", "serve", "--config", str(config_file)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        await _wait_healthy(base, process, log)
        async with aiohttp.ClientSession(base) as http:
            order = {"id": "1001", "contact": {"phones": ["+16505551234"]}}
            async with http.post("/api/orders", json=order) as response:
                assert response.status == 201
            trigger = {"type": "chat.first_message", "status": "P"}
            async with http.post("/api/triggers", json=trigger) as response:
                assert response.status == 201
            params = {
                "hub.mode": "subscribe",
                "hub.challenge": "987654321",
                "hub.verify_token": VERIFY_TOKEN,
            }
            async with http.get(PATH, params=params) as response:
                assert response.status == 200 and await response.text() == "987654321"
            raw = encode(delivery(message("wamid.REAL1", "Привет")), escaped=True)
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw)}
            async with http.post(PATH, data=raw, headers=headers) as response:
                assert response.status == 200
                moves = (await response.json())["results"][0]["moves"]
            assert [m["to"] for m in moves] == ["P"]
            headers["X-Hub-Signature-256"] = sign(raw, "f" * 32)
            async with http.post(PATH, data=raw, headers=headers) as response:
                assert response.status == 403
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    output_text = log.read_text()
    assert process.returncode == 0, output_text[-3000:]
    assert "whatsapp.bad_signature" in output_text
    assert APP_SECRET not in output_text and VERIFY_TOKEN not in output_text
