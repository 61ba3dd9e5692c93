"""``/api/webhook-endpoints`` and ``/api/deliveries``: the plugin's HTTP API.

Every route is under ``/api/``, so the API token applies as to the kernel's routes: the
reads need the ``read`` scope, the changes ``admin`` (the default scopes of a route).
Every change to an endpoint goes in the audit log, in its transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from statusflow import (
    ApiError,
    KernelServices,
    Route,
    api_key_name,
    format_timestamp,
    json_response,
    read_json_object,
    utc_now,
)
from statusflow.plugins.outgoing_webhooks import outbox
from statusflow.plugins.outgoing_webhooks.settings import (
    DESCRIPTION,
    ENDPOINT_ID,
    SECRET,
    URL,
    url_problem,
)
from statusflow.plugins.outgoing_webhooks.signing import new_secret, secret_problem
from statusflow.plugins.outgoing_webhooks.tables import DELIVERIES, ENDPOINTS, PENDING, STATES

if TYPE_CHECKING:
    from statusflow.plugins.outgoing_webhooks import OutgoingWebhooks

Handler = Callable[[web.Request], Any]

NEW_ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "id": ENDPOINT_ID,
        "url": URL,
        "secret": SECRET,
        "enabled": {"type": "boolean"},
        "description": DESCRIPTION,
    },
}
ENDPOINT_PATCH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "url": URL,
        "secret": SECRET,
        "enabled": {"type": "boolean"},
        "description": {"anyOf": [DESCRIPTION, {"type": "null"}]},
    },
}
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _check_url(body: Mapping[str, Any]) -> None:
    """422 for a ``url`` that matches the schema's shape but cannot be delivered to, or a
    ``secret`` that is not a Standard Webhooks secret."""
    problem = url_problem(body["url"]) if isinstance(body.get("url"), str) else None
    if problem is not None:
        raise ApiError(
            422, "validation_failed", f"url {problem}", [{"path": "/url", "message": problem}]
        )
    problem = secret_problem(body["secret"]) if isinstance(body.get("secret"), str) else None
    if problem is not None:
        raise ApiError(
            422, "validation_failed", f"secret {problem}", [{"path": "/secret", "message": problem}]
        )


def endpoint_json(row: Any, *, with_secret: bool = False) -> dict[str, Any]:
    """An endpoint as the API shows it; the secret only when it was just set."""
    shown = {
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "enabled": bool(row.enabled),
        "source": row.source,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if with_secret:
        shown["secret"] = row.secret
    return shown


def delivery_json(row: Any) -> dict[str, Any]:
    """A delivery as the API shows it, its body parsed as ``payload``."""
    return {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "order_id": row.order_id,
        "state": row.state,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "next_attempt_at": row.next_attempt_at if row.state == PENDING else None,
        "give_up_at": row.give_up_at,
        "last_attempt_at": row.last_attempt_at,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "delivered_at": row.delivered_at,
        "failed_at": row.failed_at,
        "payload": orjson.loads(row.body),
    }


def _not_found(what: str, ident: str, code: str) -> ApiError:
    return ApiError(404, code, f"{what} {ident[:200]!r} not found")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        problem = f"must be an integer from {low} to {high}"
        raise ApiError(
            422,
            "bad_query_parameter",
            f"{name} {problem}",
            [{"path": f"?{name}", "message": problem}],
        )
    return int(raw)


class Handlers:
    """The route handlers of one app."""

    def __init__(self, plugin: OutgoingWebhooks, kernel: KernelServices) -> None:
        self.plugin = plugin
        self.kernel = kernel

    # endpoints ------------------------------------------------------------------------

    async def _endpoint(self, conn: Any, endpoint_id: str) -> Any:
        query = sa.select(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id)
        row = (await conn.execute(query)).first()
        if row is None:
            raise _not_found("webhook endpoint", endpoint_id, "endpoint_not_found")
        return row

    async def list_endpoints(self, request: web.Request) -> web.Response:
        async with self.kernel.read() as conn:
            rows = (await conn.execute(sa.select(ENDPOINTS).order_by(ENDPOINTS.c.id))).all()
        return json_response([endpoint_json(r) for r in rows])

    async def create_endpoint(self, request: web.Request) -> web.Response:
        body = await read_json_object(request, "a webhook endpoint", NEW_ENDPOINT)
        _check_url(body)
        endpoint_id = body.get("id") or f"ep_{secrets.token_hex(8)}"
        at = utc_now()
        row = {
            "id": endpoint_id,
            "url": body["url"],
            "secret": body.get("secret") or new_secret(),
            "description": body.get("description", ""),
            "enabled": body.get("enabled", True),
            "source": "api",
            "created_at": at,
            "updated_at": at,
        }
        conflict = ApiError(
            409,
            "endpoint_exists",
            f"webhook endpoint {endpoint_id!r} already exists",
            [{"path": "/id", "message": "is the id of an endpoint that exists"}],
        )
        try:
            async with self.kernel.write() as conn:
                query = sa.select(ENDPOINTS.c.id).where(ENDPOINTS.c.id == endpoint_id)
                if (await conn.execute(query)).first() is not None:
                    raise conflict
                await conn.execute(ENDPOINTS.insert().values(**row))
                stored = await self._endpoint(conn, endpoint_id)
                await _audit(conn, request, "create", endpoint_id, None, stored)
        except IntegrityError:
            raise conflict from None
        return json_response(endpoint_json(stored, with_secret=True), 201)

    async def get_endpoint(self, request: web.Request) -> web.Response:
        async with self.kernel.read() as conn:
            row = await self._endpoint(conn, request.match_info["id"])
        return json_response(endpoint_json(row))

    async def patch_endpoint(self, request: web.Request) -> web.Response:
        patch = await read_json_object(request, "a merge patch of an endpoint", ENDPOINT_PATCH)
        _check_url(patch)
        endpoint_id = request.match_info["id"]
        async with self.kernel.write() as conn:
            before = await self._endpoint(conn, endpoint_id)
            _editable(before)
            values = dict(patch)
            if "description" in values and values["description"] is None:
                values["description"] = ""
            if values:
                values["updated_at"] = utc_now()
                await conn.execute(
                    sa.update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id).values(**values)
                )
            row = await self._endpoint(conn, endpoint_id)
            if row != before:
                await _audit(conn, request, "update", endpoint_id, before, row)
        self.plugin.wake()
        return json_response(endpoint_json(row, with_secret="secret" in patch))

    async def delete_endpoint(self, request: web.Request) -> web.Response:
        endpoint_id = request.match_info["id"]
        async with self.kernel.write() as conn:
            before = await self._endpoint(conn, endpoint_id)
            _editable(before)
            await conn.execute(sa.delete(DELIVERIES).where(DELIVERIES.c.endpoint_id == endpoint_id))
            await conn.execute(sa.delete(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id))
            await _audit(conn, request, "delete", endpoint_id, before, None)
        return web.Response(status=204)

    # deliveries -----------------------------------------------------------------------

    async def _delivery(self, conn: Any, delivery_id: str) -> Any:
        query = sa.select(DELIVERIES).where(DELIVERIES.c.id == delivery_id)
        row = (await conn.execute(query)).first()
        if row is None:
            raise _not_found("delivery", delivery_id, "delivery_not_found")
        return row

    async def list_deliveries(self, request: web.Request) -> web.Response:
        query = sa.select(DELIVERIES)
        state = request.query.get("state")
        if state is not None:
            if state not in STATES:
                problem = f"must be one of {', '.join(STATES)}"
                raise ApiError(
                    422,
                    "bad_query_parameter",
                    f"state {problem}",
                    [{"path": "?state", "message": problem}],
                )
            query = query.where(DELIVERIES.c.state == state)
        for name in ("endpoint_id", "order_id"):
            if name in request.query:
                query = query.where(DELIVERIES.c[name] == request.query[name])
        after = _int_param(request, "after", 0, 0, 2**62)
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        query = query.where(DELIVERIES.c.seq > after).order_by(DELIVERIES.c.seq).limit(limit)
        async with self.kernel.read() as conn:
            rows = (await conn.execute(query)).all()
        next_cursor = str(rows[-1].seq) if rows else str(after)
        return json_response({"deliveries": [delivery_json(r) for r in rows], "next": next_cursor})

    async def get_delivery(self, request: web.Request) -> web.Response:
        async with self.kernel.read() as conn:
            row = await self._delivery(conn, request.match_info["id"])
        return json_response(delivery_json(row))

    async def retry_delivery(self, request: web.Request) -> web.Response:
        return json_response(delivery_json(await self.retry(request.match_info["id"])))

    async def retry(self, delivery_id: str) -> Any:
        """Queue a delivered or failed delivery again, from its first attempt, and wake
        the worker (``POST /api/deliveries/{id}/retry`` and the board's ``Retry``); the
        delivery's row as it now stands.

        :raises ApiError: 404 for an unknown delivery, 409 for one still pending.
        """
        moment = outbox.now()
        give_up_at = moment + timedelta(seconds=self.plugin.settings.give_up_after)
        async with self.kernel.write() as conn:
            row = await self._delivery(conn, delivery_id)
            if row.state == PENDING:
                raise ApiError(
                    409,
                    "delivery_pending",
                    f"delivery {delivery_id!r} is still pending: it will be attempted anyway",
                )
            await conn.execute(
                sa.update(DELIVERIES)
                .where(DELIVERIES.c.seq == row.seq)
                .values(
                    state=PENDING,
                    attempts=0,
                    next_attempt_at=format_timestamp(moment),
                    give_up_at=format_timestamp(give_up_at),
                    lease_until=None,
                    lease_token=None,
                    delivered_at=None,
                    failed_at=None,
                )
            )
            row = await self._delivery(conn, delivery_id)
        self.plugin.wake()
        return row

    def routes(self) -> list[Route]:
        """Every route, with its OpenAPI operation."""
        return [
            Route(
                "GET",
                "/api/webhook-endpoints",
                self.list_endpoints,
                _op(
                    "list_webhook_endpoints",
                    "Outgoing webhook endpoints",
                    200,
                    {"type": "array", "items": ENDPOINT_SCHEMA},
                ),
            ),
            Route(
                "POST",
                "/api/webhook-endpoints",
                self.create_endpoint,
                _op(
                    "create_webhook_endpoint",
                    "Add an outgoing webhook endpoint (the answer shows its secret)",
                    201,
                    ENDPOINT_SCHEMA,
                    400,
                    409,
                    413,
                    422,
                    body=NEW_ENDPOINT,
                ),
            ),
            Route(
                "GET",
                "/api/webhook-endpoints/{id}",
                self.get_endpoint,
                _op(
                    "get_webhook_endpoint",
                    "An outgoing webhook endpoint",
                    200,
                    ENDPOINT_SCHEMA,
                    404,
                ),
            ),
            Route(
                "PATCH",
                "/api/webhook-endpoints/{id}",
                self.patch_endpoint,
                _op(
                    "patch_webhook_endpoint",
                    "Merge-patch an endpoint (not one of the configuration file)",
                    200,
                    ENDPOINT_SCHEMA,
                    400,
                    404,
                    409,
                    413,
                    422,
                    body=ENDPOINT_PATCH,
                ),
            ),
            Route(
                "DELETE",
                "/api/webhook-endpoints/{id}",
                self.delete_endpoint,
                _op(
                    "delete_webhook_endpoint",
                    "Delete an endpoint and its deliveries",
                    204,
                    None,
                    404,
                    409,
                ),
            ),
            Route(
                "GET",
                "/api/deliveries",
                self.list_deliveries,
                {
                    **_op(
                        "list_deliveries",
                        "Deliveries, oldest first, a page at a time",
                        200,
                        PAGE_SCHEMA,
                        422,
                    ),
                    "parameters": LIST_PARAMETERS,
                },
            ),
            Route(
                "GET",
                "/api/deliveries/{id}",
                self.get_delivery,
                _op("get_delivery", "A delivery", 200, DELIVERY_SCHEMA, 404),
            ),
            Route(
                "POST",
                "/api/deliveries/{id}/retry",
                self.retry_delivery,
                _op(
                    "retry_delivery",
                    "Send a failed (or delivered) delivery again",
                    200,
                    DELIVERY_SCHEMA,
                    404,
                    409,
                ),
            ),
        ]


async def _audit(
    conn: Any, request: web.Request, action: str, endpoint_id: str, before: Any, after: Any
) -> None:
    """The change in the audit log, in its transaction (the secret is never kept: a
    changed secret shows as ``secret_changed``)."""
    shown = [None if row is None else endpoint_json(row) for row in (before, after)]
    if before is not None and after is not None and before.secret != after.secret:
        shown[1] = {**(shown[1] or {}), "secret_changed": True}
    await conn.record_audit(
        action=action,
        kind="webhook_endpoint",
        resource_id=endpoint_id,
        before=shown[0],
        after=shown[1],
        key_name=api_key_name(request),
    )


def _editable(row: Any) -> None:
    if row.source == "config":
        raise ApiError(
            409,
            "endpoint_from_config",
            f"webhook endpoint {row.id!r} is defined in the configuration file: change it there",
        )


# --- OpenAPI -------------------------------------------------------------------------------

ENDPOINT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "description": {"type": "string"},
        "enabled": {"type": "boolean"},
        "source": {"enum": ["config", "api"]},
        "secret": {"type": "string", "description": "only in the answers that set it"},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}
DELIVERY_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "endpoint_id": {"type": "string"},
        "order_id": {"type": "string"},
        "state": {"enum": list(STATES)},
        "attempts": {"type": "integer"},
        "payload": {"type": "object"},
    },
}
PAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "deliveries": {"type": "array", "items": DELIVERY_SCHEMA},
        "next": {"type": "string", "description": "pass as `after` for the next page"},
    },
}
LIST_PARAMETERS = [
    {"name": "state", "in": "query", "required": False, "schema": {"enum": list(STATES)}},
    {"name": "endpoint_id", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "order_id", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
]
_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _op(
    operation_id: str,
    summary: str,
    ok: int,
    schema: dict[str, Any] | None,
    *errors: int,
    body: Any = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {str(ok): {"description": "done"}}
    if schema is not None:
        responses[str(ok)]["content"] = {"application/json": {"schema": schema}}
    for status in (401, *errors):
        responses[str(status)] = _ERROR
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": ["outgoing_webhooks"],
        "summary": summary,
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return operation
