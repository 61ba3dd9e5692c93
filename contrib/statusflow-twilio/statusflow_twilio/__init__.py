"""statusflow-twilio: Twilio voice calls move statusflow orders; orders text customers.

The action type ``sms.send`` (:mod:`statusflow_twilio.sms`) sends a text message through
Twilio's Messages API when an order enters a status.

Set ``{public_url}/sources/twilio/calls`` as the *call status changes* URL of a Twilio
phone number (``StatusCallback``, HTTP POST). Each callback is checked against its
``X-Twilio-Signature`` header with the ``twilio`` library's ``RequestValidator``, over
``[server] public_url`` + the request's path and query, with ``[plugins.twilio]
auth_token``; then the call becomes an event of the built-in ``calls`` plugin:

* ``CallStatus`` ``in-progress``, ``answered`` or ``completed``: ``call.incoming``;
* ``no-answer``, ``busy``, ``failed`` or ``canceled``: ``call.missed``;
* ``queued``, ``initiated``, ``ringing``: answered 200 and ignored (the call is not over).

The caller (``From``) is the event's ``caller``, which the ``calls`` event types take as
the contact's phone, so the call reaches every open order of that client; the number
called (``To``) is its ``line``. The legs that a
``<Dial>`` rings (``Direction`` ``outbound-dial``) count too: their ``From`` is still the
client and ``no-answer`` there means nobody picked up. Calls the store made through the
API (``outbound-api``, where ``From`` is the store) and callers with no phone number
(``anonymous``, ``client:...``, ``sip:...``) are answered 200 and ignored.

The event's id is ``twilio:{CallSid}:incoming`` or ``twilio:{CallSid}:missed``: a call
that reports ``in-progress`` and then ``completed`` is one ``call.incoming``, and a
repeated callback is answered ``"duplicate": true``.

Answers: 403 for a missing or wrong signature (nothing stored), 503 while no auth token
is configured, 200 otherwise.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import phonenumbers
import structlog
from aiohttp import web
from twilio.request_validator import RequestValidator

from statusflow import (
    JSON,
    ApiError,
    KernelServices,
    Route,
    format_timestamp,
    hookimpl,
    json_response,
)
from statusflow_twilio.sms import (  # the plugin's action type, sms.send
    register_action_types as register_action_types,
)

NAME = "twilio"
PATH = "/sources/twilio/calls"
SIGNATURE_HEADER = "X-Twilio-Signature"

log = structlog.get_logger("statusflow.twilio")

SETTINGS_SCHEMA: dict[str, JSON] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "auth_token": {
            "type": "string",
            "minLength": 1,
            "description": "the Twilio account's Auth Token, which signs the callbacks",
        },
        "account_sid": {
            "type": "string",
            "pattern": "^AC[0-9a-fA-F]{32}$",
            "description": "the account that sends text messages (sms.send)",
        },
        "from_number": {
            "type": "string",
            "pattern": "^\\+[1-9][0-9]{4,14}$",
            "description": "the Twilio number text messages come from",
        },
        "messaging_service_sid": {
            "type": "string",
            "pattern": "^MG[0-9a-fA-F]{32}$",
            "description": "or the Messaging Service that picks the number",
        },
        "api_base_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "Twilio's API (default https://api.twilio.com)",
        },
    },
}

INCOMING = frozenset({"in-progress", "answered", "completed"})
MISSED = frozenset({"no-answer", "busy", "failed", "canceled"})
KINDS = {**dict.fromkeys(INCOMING, "incoming"), **dict.fromkeys(MISSED, "missed")}

E164 = re.compile(r"^\+[1-9][0-9]{4,14}$")

ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

OPENAPI: dict[str, JSON] = {
    "summary": "Twilio voice status callbacks",
    "description": (
        "A Twilio call status callback, signed in X-Twilio-Signature. Answered calls "
        "become call.incoming, unanswered ones call.missed, for the caller's orders."
    ),
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["CallSid", "CallStatus", "From", "To"],
                    "properties": {
                        "CallSid": {"type": "string"},
                        "CallStatus": {"type": "string"},
                        "From": {"type": "string"},
                        "To": {"type": "string"},
                        "Direction": {"type": "string"},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "the event's result, or why the callback was ignored",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "403": ERROR,
        "413": ERROR,
        "422": ERROR,
        "503": ERROR,
    },
}


def is_phone(value: str) -> bool:
    """Whether a ``From`` is a phone number that contact fan-out can look up."""
    if not E164.match(value):
        return False
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        return False


def call_event(form: Mapping[str, str]) -> dict[str, JSON] | str:
    """The ``call.incoming``/``call.missed`` event body for a callback, or why it is ignored."""
    status = form.get("CallStatus", "")
    kind = KINDS.get(status)
    if kind is None:
        return f"CallStatus {status!r} is not a finished or answered call"
    direction = form.get("Direction", "inbound")
    if direction == "outbound-api":
        return "Direction 'outbound-api': a call the store made, not the client's call"
    call_sid = form.get("CallSid", "")
    if not call_sid:
        return "the callback has no CallSid"
    caller = form.get("From", "")
    if not is_phone(caller):
        return f"the caller {caller!r} is not a phone number"
    data: dict[str, JSON] = {"call_sid": call_sid, "call_status": status, "caller": caller}
    if form.get("To"):
        data["line"] = form["To"]
    if form.get("CallDuration", "").isdigit():
        data["duration"] = int(form["CallDuration"])
    body: dict[str, JSON] = {
        "id": f"twilio:{call_sid}:{kind}",
        "type": f"call.{kind}",
        "data": data,  # its caller is the contact's phone (EventType.contact_from)
    }
    with contextlib.suppress(KeyError, TypeError, ValueError):
        body["occurred_at"] = format_timestamp(parsedate_to_datetime(form["Timestamp"]))
    return body


def make_handler(kernel: KernelServices) -> Callable[[web.Request], Any]:
    """The handler of ``POST /sources/twilio/calls``, with the plugin's checked settings."""
    token = kernel.plugin_config(NAME).get("auth_token")
    validator = RequestValidator(token) if token else None
    if validator is None:
        log.warning("twilio.not_configured", missing="[plugins.twilio] auth_token")

    async def receive(request: web.Request) -> web.Response:
        if validator is None:
            raise ApiError(503, "not_configured", "[plugins.twilio] auth_token is not configured")
        form = await request.post()
        url = kernel.public_url + request.raw_path
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature or not validator.validate(url, form, signature):
            log.warning("twilio.bad_signature", url=url)
            raise ApiError(
                403,
                "bad_signature",
                f"{SIGNATURE_HEADER} does not sign this request for {url} "
                "(check [server] public_url and [plugins.twilio] auth_token)",
            )
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        event = call_event(fields)
        if isinstance(event, str):
            return json_response({"received": True, "ignored": event})
        return json_response(await kernel.submit_event(event))

    return receive


@hookimpl
def plugin_settings_schema() -> Mapping[str, JSON]:
    return SETTINGS_SCHEMA


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    register(Route("POST", PATH, make_handler(kernel), OPENAPI))
