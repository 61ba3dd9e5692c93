"""The ``sms.send`` action type: a text message to the customer, through Twilio.

A run POSTs to Twilio's Messages API (``{api_base_url}/2010-04-01/Accounts/{account_sid}
/Messages.json``, HTTP Basic auth with the account SID and auth token, form-encoded
``To``, ``From`` or ``MessagingServiceSid``, ``Body``) and is done when Twilio accepts
the message (201). ``to`` is ``"contact"`` (the first phone of the order's contact) or
a phone number in E.164 form; ``body`` is a Jinja2 template over the order, rendered in
the sandbox (``{{ order.id }}``, ``{{ order.fields.NAME }}`` ...).

A run whose order's contact has no phone is skipped. Twilio's refusals of a message
itself (a 400 such as error 21211, an invalid ``To``; 401 and 403, wrong credentials)
fail the run at once; 429, 5xx and network errors are failed attempts, retried with the
scheduler's backoff. Twilio's Messages API takes no idempotency key: an instance that
dies between Twilio's answer and the run's end sends the text again on the retry.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import aiohttp
import phonenumbers
from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from statusflow import JSON, ActionContext, ActionFailed, ActionResult, ActionType, hookimpl

NAME = "twilio"
CONTACT = "contact"
DEFAULT_API = "https://api.twilio.com"
MAX_BODY = 1600
"""Twilio's limit on a message's characters."""

SETTINGS_SCHEMA: dict[str, JSON] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["to", "body"],
    "properties": {
        "to": {
            "type": "string",
            "minLength": 1,
            "maxLength": 32,
            "description": "\"contact\" (the order's contact's first phone) or +E.164",
        },
        "body": {"type": "string", "minLength": 1, "maxLength": 5000},
    },
}


@cache
def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=False)


def check_settings(settings: Mapping[str, JSON], statuses: frozenset[str]) -> None:
    """``to`` is ``"contact"`` or a phone in E.164 form; ``body`` compiles."""
    to = settings["to"]
    if to != CONTACT and not _is_e164(to):
        raise ValueError(f"to must be {CONTACT!r} or a phone in E.164 form (+14155550100)")
    try:
        environment().parse(settings["body"])
    except TemplateError as exc:
        raise ValueError(f"body is not a valid template: {exc}") from None


def _is_e164(value: str) -> bool:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return False
    return value.startswith("+") and phonenumbers.is_possible_number(number)


def recipient(to: str, order: Mapping[str, Any]) -> str | None:
    """The number to text (``None``: the order's contact has no phone)."""
    if to != CONTACT:
        return to
    phones = (order.get("contact") or {}).get("phones") or []
    if not phones:
        return None
    try:
        number = phonenumbers.parse(
            str(phones[0]), None if str(phones[0]).startswith("+") else "US"
        )
    except phonenumbers.NumberParseException as exc:
        raise ActionFailed(f"the contact's phone cannot be read: {exc}", retry=False) from exc
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def render(template: str, order: Mapping[str, Any]) -> str:
    try:
        return environment().from_string(template).render(order=order)
    except Exception as exc:
        raise ActionFailed(f"the body cannot be rendered: {exc}", retry=False) from exc


async def send_sms(ctx: ActionContext) -> ActionResult:
    config = ctx.kernel.plugin_config(NAME)
    sid, token = config.get("account_sid"), config.get("auth_token")
    sender = config.get("from_number")
    service = config.get("messaging_service_sid")
    if not (sid and token and (sender or service)):
        raise ActionFailed(
            "[plugins.twilio] needs account_sid, auth_token and from_number (or "
            "messaging_service_sid) to send text messages",
            retry=False,
        )
    to = recipient(ctx.action.settings["to"], ctx.order)
    if to is None:
        return ActionResult(skipped=True, reason="the order's contact has no phone")
    text = render(ctx.action.settings["body"], ctx.order)[:MAX_BODY]
    form = {"To": to, "Body": text}
    if service:
        form["MessagingServiceSid"] = str(service)
    else:
        form["From"] = str(sender)
    base = str(config.get("api_base_url", DEFAULT_API)).rstrip("/")
    url = f"{base}/2010-04-01/Accounts/{sid}/Messages.json"
    credentials = base64.b64encode(f"{sid}:{token}".encode()).decode("ascii")
    headers = {"Authorization": f"Basic {credentials}"}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=form, headers=headers) as response,
        ):
            answer = await response.json(content_type=None) if response.content_length != 0 else {}
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise ActionFailed(f"{type(exc).__name__}: {exc}") from exc
    answer = answer if isinstance(answer, dict) else {}
    if status in (200, 201):
        return ActionResult(reason=f"sent to {to} (Twilio {answer.get('sid', '?')})")
    error = f"Twilio {status}: {answer.get('code', '')} {answer.get('message', '')}".strip()
    raise ActionFailed(error, retry=status == 429 or status >= 500)


@hookimpl
def register_action_types(register: Callable[[ActionType], None]) -> None:
    register(
        ActionType("sms.send", "Send a text message", send_sms, SETTINGS_SCHEMA, check_settings)
    )
