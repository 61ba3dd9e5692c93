"""The built-in action types beyond order_actions: task.create, webhook.call, email.send.

Each through a real app and what it talks to: a local HTTP server for webhooks (an
aiohttp server on a loopback port), a real SMTP server for email (aiosmtpd on a
loopback port).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook

from statusflow.plugins.outgoing_webhooks import signing
from tests.actions_helpers import start, until
from tests.processes import free_port

SECRET = signing.new_secret()


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    return reused_database_url


# --- task.create -------------------------------------------------------------------------


async def test_task_create_stores_a_task_to_complete(
    aiohttp_client: Any, database_url: str
) -> None:
    api = await start(aiohttp_client, database_url, plugins=("tasks",))
    action = await api.create_action(
        "N", "task.create", settings={"title": "Call the customer", "deadline": "PT4H"}
    )
    other = await api.create_action(
        "N", "task.create", settings={"title": "Check stock", "responsible_id": 42}
    )
    await api.create_order("o1", responsible_id="u7")
    await api.create_order("o2")
    for order_id in ("o1", "o2"):
        for action_id in (action["id"], other["id"]):
            await api.wait_run(order_id, action_id)
    tasks = await api.call("GET", "/api/tasks", params={"order_id": "o1"})
    by_title = {task["title"]: task for task in tasks}  # the two runs ran concurrently
    call, stock = by_title["Call the customer"], by_title["Check stock"]
    assert (call["title"], call["responsible_id"], call["open"]) == (
        "Call the customer",
        "u7",
        True,
    )
    assert stock["responsible_id"] == "42" and stock["deadline_at"] is None
    [run] = await api.runs_of("o1", action["id"])
    assert call["run_id"] == run["id"] and call["action_id"] == action["id"]
    hours = (_t(call["deadline_at"]) - _t(call["created_at"])).total_seconds() / 3600
    assert hours == 4
    assert run["reason"] == "task 'Call the customer' created for u7"

    done = await api.call("POST", f"/api/tasks/{call['id']}/complete")
    assert done["open"] is False and done["completed_at"] is not None
    error = await api.error("POST", f"/api/tasks/{call['id']}/complete", expect=409)
    assert "completed already" in error["message"]
    await api.error("POST", "/api/tasks/99999/complete", expect=404)
    still_open = await api.call("GET", "/api/tasks", params={"order_id": "o1", "open": "true"})
    assert [t["id"] for t in still_open] == [stock["id"]]
    closed = await api.call("GET", "/api/tasks", params={"open": "false"})
    assert [t["id"] for t in closed] == [call["id"]]
    assert len(await api.call("GET", "/api/tasks")) == 4
    await api.error("GET", "/api/tasks", params={"open": "maybe"}, expect=422)
    error = await api.error(
        "POST",
        "/api/actions",
        {"status": "N", "type": "task.create", "settings": {"title": "x", "deadline": "tomorrow"}},
        expect=422,
    )
    assert "deadline" in error["message"] or "duration" in error["message"]


def _t(value: str) -> Any:
    from statusflow import parse_timestamp

    return parse_timestamp(value)


# --- webhook.call ------------------------------------------------------------------------


class Receiver:
    """A local HTTP server that answers the statuses it is given, in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="no" if status >= 300 else "ok")


@pytest.fixture
async def receiver(aiohttp_server: Any) -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver([503])
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    server = await aiohttp_server(app)
    yield found, str(server.make_url("/hook"))


async def test_webhook_call_posts_the_order_signed_and_retries_until_2xx(
    aiohttp_client: Any, database_url: str, receiver: tuple[Receiver, str]
) -> None:
    found, url = receiver
    api = await start(aiohttp_client, database_url, plugins=("webhook_call",))
    action = await api.create_action("N", "webhook.call", settings={"url": url, "secret": SECRET})
    await api.create_order("o1", amount=12.5)

    async def attempts(n: int) -> dict[str, Any] | None:
        [run] = await api.runs("o1")
        return run if run["attempts"] == n and run["state"] == "pending" else None

    first = await until(lambda: attempts(1), "the first attempt")
    assert first["reason"] == "attempt 1 failed: HTTP 503: no"
    api.clock.advance(timedelta(hours=1))
    done = await api.wait_run("o1", action["id"])
    assert done["attempts"] == 2 and done["reason"] == "HTTP 200"
    assert len(found.requests) == 2
    for attempt, (headers, body) in enumerate(found.requests, 1):
        assert headers[signing.ID_HEADER] == str(done["id"])  # the idempotency key
        assert headers[signing.ATTEMPT_HEADER] == str(attempt)
        assert Webhook(SECRET).verify(
            body, {name: headers[name] for name in signing.SIGNED_HEADERS}
        )
        payload = __import__("json").loads(body)
        assert payload["run_id"] == done["id"] and payload["action_id"] == action["id"]
        assert payload["status"] == "N" and payload["order"]["id"] == "o1"
        assert payload["order"]["amount"] == 12.5


async def test_webhook_call_without_a_secret_is_unsigned(
    aiohttp_client: Any, database_url: str, receiver: tuple[Receiver, str]
) -> None:
    found, url = receiver
    found.statuses.clear()
    api = await start(aiohttp_client, database_url, plugins=("webhook_call",))
    action = await api.create_action("N", "webhook.call", settings={"url": url})
    await api.create_order("o1")
    await api.wait_run("o1", action["id"])
    [(headers, _body)] = found.requests
    assert signing.SIGNATURE_HEADER not in headers
    assert signing.ID_HEADER in headers
    for bad in ({"url": "ftp://example.com"}, {"url": "http://:0/x"}, {"url": url, "secret": "x"}):
        await api.error(
            "POST",
            "/api/actions",
            {"status": "N", "type": "webhook.call", "settings": bad},
            expect=422,
        )


# --- email.send, through a real SMTP server ------------------------------------------------


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Any:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield (
            mailbox,
            {"host": "127.0.0.1", "port": controller.port, "from": "Shop <shop@example.com>"},
        )
    finally:
        controller.stop()


async def test_email_send_renders_the_templates_and_sends_through_smtp(
    aiohttp_client: Any, database_url: str, smtp: Any
) -> None:
    mailbox, server = smtp
    api = await start(
        aiohttp_client, database_url, plugins=("email_send",), tables={"smtp": server}
    )
    action = await api.create_action(
        "N",
        "email.send",
        settings={
            "to": "contact",
            "subject": "Order {{ order.id }} received",
            "body": "Hello {{ order.contact.name }}, your total is {{ order.amount }} "
            "{{ order.currency }}.{{ order.fields.missing }} <b>{{ order.fields.note }}</b>\n",
        },
    )
    await api.create_order(
        "1001",
        amount=59.9,
        currency="USD",
        fields={"note": "<gift>"},
        contact={"name": "Ada", "emails": ["ada@example.com", "other@example.com"]},
    )
    await api.create_order("nomail", contact={"name": "Bo"})
    run = await api.wait_run("1001", action["id"])
    assert run["reason"] == "sent to ada@example.com"
    skipped = await api.wait_run("nomail", action["id"], ("skipped",))
    assert skipped["reason"] == "the order's contact has no email"
    [(sender, recipients, raw)] = mailbox.messages
    assert sender == "shop@example.com" and recipients == ["ada@example.com"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "Order 1001 received"
    assert message["Message-ID"] == f"<statusflow-run-{run['id']}@example.com>"
    body = message.get_content().replace("\r\n", "\n")
    assert body == "Hello Ada, your total is 59.9 USD. <b><gift></b>\n"  # no escaping


async def test_email_send_refuses_bad_templates_and_fails_without_smtp(
    aiohttp_client: Any, database_url: str
) -> None:
    api = await start(aiohttp_client, database_url, plugins=("email_send",))
    for settings, fragment in (
        (
            {"to": "contact", "subject": "{{ order.id", "body": "x"},
            "subject is not a valid template",
        ),
        ({"to": "nobody", "subject": "s", "body": "b"}, "email address"),
        ({"to": "contact", "subject": "s"}, "body"),
    ):
        error = await api.error(
            "POST",
            "/api/actions",
            {"status": "N", "type": "email.send", "settings": settings},
            expect=422,
        )
        assert fragment in error["message"], error
    action = await api.create_action(
        "N", "email.send", settings={"to": "a@example.com", "subject": "s", "body": "b"}
    )
    await api.create_order("o1")
    failed = await api.wait_run("o1", action["id"], ("failed",))
    assert failed["attempts"] == 1 and failed["reason"] == "no [smtp] server is configured"


async def test_email_send_templates_run_in_a_sandbox(
    aiohttp_client: Any, database_url: str, smtp: Any
) -> None:
    mailbox, server = smtp
    api = await start(
        aiohttp_client, database_url, plugins=("email_send",), tables={"smtp": server}
    )
    action = await api.create_action(
        "N",
        "email.send",
        settings={"to": "a@example.com", "subject": "s", "body": "{{ order.__class__.__mro__ }}"},
    )
    await api.create_order("o1")
    failed = await api.wait_run("o1", action["id"], ("failed",))
    assert failed["attempts"] == 1  # a template the sandbox refuses is not retried
    assert "cannot be rendered" in failed["reason"] and "unsafe" in failed["reason"]
    assert mailbox.messages == []


async def test_an_action_move_reaches_outgoing_webhooks_as_an_action_move(
    aiohttp_client: Any, database_url: str, receiver: tuple[Receiver, str]
) -> None:
    found, url = receiver
    found.statuses.clear()
    api = await start(aiohttp_client, database_url, plugins=("order_actions", "outgoing_webhooks"))
    await api.call(
        "POST", "/api/webhook-endpoints", {"id": "store", "url": url, "secret": SECRET}, expect=201
    )
    action = await api.create_action("N", "status.change", settings={"status": "P"})
    await api.create_order("o1")
    await api.wait_run("o1", action["id"])

    async def delivered() -> list[Any]:
        return [__import__("json").loads(body) for _, body in found.requests]

    [payload] = await until(delivered, "the move's delivery")
    assert (payload["from"], payload["to"]) == ("N", "P")
    assert payload["action_id"] == action["id"] and payload["manual"] is False
