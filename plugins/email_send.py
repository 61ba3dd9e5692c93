"""The ``email_send`` plugin: the ``email.send`` action type, an email to the customer.

A run sends one plain-text email through the ``[smtp]`` server of the configuration
(``host``, ``port``, ``username``, ``password``, ``from``, ``starttls``, ``tls``), with
``aiosmtplib``. ``to`` is ``"contact"`` (the first email of the order's contact) or an
address; ``subject`` and ``body`` are Jinja2 templates over the order (``{{ order.id }}``,
``{{ order.amount }}``, ``{{ order.fields.NAME }}``, ``{{ order.contact.name }}``),
rendered in Jinja2's sandbox with autoescaping off (it is plain text, not HTML). A
missing field renders as nothing.

Templates are compiled when the action is saved (a syntax error is a 422). A run whose
order has no contact email is skipped. A template that fails to render, an address the
server refuses for good (5xx) or no ``[smtp]`` table fail the run at once; a server that
cannot be reached or answers 4xx is a failed attempt, retried with backoff. The
``Message-ID`` is made from the run id, the same at every attempt, so that a retry after
an instance died mid-send can be recognised as the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from functools import cache
from typing import Any

import aiosmtplib
from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from statusflow import JSON, ActionContext, ActionFailed, ActionResult, ActionType, hookimpl

CONTACT = "contact"
DEFAULT_TIMEOUT = 30.0

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["to", "subject", "body"],
    "properties": {
        "to": {
            "type": "string",
            "minLength": 1,
            "maxLength": 320,
            "description": "\"contact\" (the order's contact's first email) or an address",
        },
        "subject": {"type": "string", "minLength": 1, "maxLength": 998},
        "body": {"type": "string", "maxLength": 100000},
    },
}


@cache
def environment() -> SandboxedEnvironment:
    """The sandbox templates render in: no autoescaping (plain text), undefined fields
    render as nothing."""
    return SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


def is_address(value: str) -> bool:
    """Whether ``value`` reads as one email address (``name@domain``)."""
    _, address = parseaddr(value)
    local, at, domain = address.partition("@")
    return bool(local and at and "." in domain and address == value.strip())


def check_settings(settings: Mapping[str, JSON], statuses: frozenset[str]) -> None:
    """``to`` is ``"contact"`` or an address; both templates compile."""
    to = settings["to"]
    if to != CONTACT and not is_address(to):
        raise ValueError(f"to must be {CONTACT!r} or an email address, not {to!r}")
    for key in ("subject", "body"):
        try:
            environment().parse(settings[key])
        except TemplateError as exc:
            raise ValueError(f"{key} is not a valid template: {exc}") from None


def render(template: str, order: Mapping[str, Any]) -> str:
    """``template`` rendered over ``order`` in the sandbox.

    :raises ActionFailed: (not retried) it cannot be rendered.
    """
    try:
        return environment().from_string(template).render(order=order)
    except Exception as exc:  # a sandbox refusal, a type error in an expression
        raise ActionFailed(f"the template cannot be rendered: {exc}", retry=False) from exc


def recipient(to: str, order: Mapping[str, Any]) -> str | None:
    """The address to send to (``None``: the order's contact has no email)."""
    if to != CONTACT:
        return to
    emails = (order.get("contact") or {}).get("emails") or []
    return str(emails[0]) if emails else None


def message(ctx: ActionContext, smtp: Mapping[str, Any], to: str) -> EmailMessage:
    """The email of a run: rendered subject and body, a ``Message-ID`` from the run id."""
    settings = ctx.action.settings
    sender = str(smtp["from"])
    domain = parseaddr(sender)[1].partition("@")[2] or "statusflow.invalid"
    email = EmailMessage()
    try:
        email["From"] = sender
        email["To"] = to
        email["Subject"] = render(settings["subject"], ctx.order).strip()
    except (ValueError, TypeError) as exc:  # a header with a line break, say
        raise ActionFailed(f"the email's headers are invalid: {exc}", retry=False) from exc
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = f"<statusflow-run-{ctx.run_id}@{domain}>"
    email.set_content(render(settings["body"], ctx.order))
    return email


async def send_email(ctx: ActionContext) -> ActionResult:
    smtp = ctx.kernel.config_table("smtp")
    if not smtp:
        raise ActionFailed("no [smtp] server is configured", retry=False)
    to = recipient(ctx.action.settings["to"], ctx.order)
    if to is None:
        return ActionResult(skipped=True, reason="the order's contact has no email")
    email = message(ctx, smtp, to)
    tls = bool(smtp.get("tls", False))
    starttls = bool(smtp.get("starttls", False))
    port = smtp.get("port") or (465 if tls else 587 if starttls else 25)
    try:
        await aiosmtplib.send(
            email,
            hostname=smtp["host"],
            port=port,
            username=smtp.get("username"),
            password=smtp.get("password"),
            use_tls=tls,
            start_tls=starttls,
            timeout=float(smtp.get("timeout_seconds", DEFAULT_TIMEOUT)),
        )
    except aiosmtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.code < 600
        raise ActionFailed(f"SMTP {exc.code}: {exc.message}", retry=not permanent) from exc
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [error.code for error in exc.recipients]
        permanent = all(500 <= code < 600 for code in codes)
        raise ActionFailed(f"recipient refused: {exc}", retry=not permanent) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ActionFailed(f"{type(exc).__name__}: {exc}") from exc
    return ActionResult(reason=f"sent to {to}")


@hookimpl
def register_action_types(register: Callable[[ActionType], None]) -> None:
    register(ActionType("email.send", "Send an email", send_email, SETTINGS_SCHEMA, check_settings))
