"""The ``webhook_call`` plugin: the ``webhook.call`` action type, another system told.

A run POSTs ``{"order": ..., "action_id", "run_id", "status"}`` as JSON to the action's
``url``, signed with its ``secret`` the way the ``outgoing_webhooks`` plugin signs its
deliveries (its signing helper, :mod:`statusflow.plugins.outgoing_webhooks.signing`);
unsigned without a secret. The run id is the delivery's id (the signature scheme's
message id), the same at every attempt: the receiver's idempotency key. A 2xx answer
is done; anything else (a non-2xx answer, a timeout, a refused connection) is a failed
attempt, retried with the scheduler's backoff up to ``[actions] max_attempts``.

Why not the outgoing webhooks' outbox itself: its deliveries are one per move and
configured endpoint, with an outbox of their own; a run already is a durable job (a
row written with the move, leased, retried with backoff, its end recorded), so the run
is this delivery's outbox, and the run's state tells whether it was delivered.

The plugin is a class (one object per app): its HTTP session is opened in ``startup``
and closed in ``shutdown``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import aiohttp
import orjson

from statusflow import JSON, ActionContext, ActionFailed, ActionResult, ActionType, hookimpl
from statusflow.plugins.outgoing_webhooks import signing
from statusflow.plugins.outgoing_webhooks.settings import SECRET, URL, url_problem

USER_AGENT = "statusflow-webhook-call/1"
ANSWER_SHOWN = 300
"""Characters of a failed answer's body kept in the run's reason."""

SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {**URL, "description": "where to POST (http or https)"},
        "secret": {**SECRET, "description": "signs the request; unsigned without one"},
    },
}


def check_settings(settings: Mapping[str, JSON], statuses: frozenset[str]) -> None:
    """The ``url`` must be one a request can be sent to (a host, a port in range), and a
    ``secret`` a Standard Webhooks one (``whsec_`` and base64)."""
    problem = url_problem(settings["url"])
    if problem is not None:
        raise ValueError(problem)
    secret = settings.get("secret")
    if isinstance(secret, str) and (problem := signing.secret_problem(secret)) is not None:
        raise ValueError(f"secret {problem}")


def body_of(ctx: ActionContext) -> bytes:
    """What a run sends: the same bytes at every attempt but for the order's state."""
    payload = {
        "order": ctx.order,
        "action_id": ctx.action.id,
        "run_id": ctx.run_id,
        "status": ctx.action.status,
    }
    return orjson.dumps(payload)


def headers_for(ctx: ActionContext, body: bytes) -> dict[str, str]:
    """The request's headers: the run id as the delivery's id, and the signature when
    the action has a secret (signed as outgoing webhooks are)."""
    headers = {"Content-Type": "application/json", signing.ATTEMPT_HEADER: str(ctx.attempt)}
    secret = ctx.action.settings.get("secret")
    if secret:  # a secret that is not a Standard Webhooks one fails the attempt (ValueError)
        headers.update(signing.sign(secret, str(ctx.run_id), int(time.time()), body))
    else:
        headers[signing.ID_HEADER] = str(ctx.run_id)
    return headers


class WebhookCall:
    """The plugin in one app: its HTTP session, and the action type that uses it."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def call(self, ctx: ActionContext) -> ActionResult:
        """POST the order to the action's URL (see the module docstring)."""
        if self.session is None:
            raise ActionFailed("the webhook_call plugin has not started")
        url = ctx.action.settings["url"]
        body = body_of(ctx)
        try:
            async with self.session.post(
                url, data=body, headers=headers_for(ctx, body), allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return ActionResult(reason=f"HTTP {response.status}")
                text = (await response.content.read(ANSWER_SHOWN)).decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ActionFailed(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            ) from exc
        raise ActionFailed(f"HTTP {response.status}: {text}".strip())

    @hookimpl
    def register_action_types(self, register: Callable[[ActionType], None]) -> None:
        register(
            ActionType("webhook.call", "Call a webhook", self.call, SETTINGS_SCHEMA, check_settings)
        )

    @hookimpl
    async def startup(self) -> None:
        self.session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})

    @hookimpl
    async def shutdown(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
