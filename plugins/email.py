"""The ``email`` plugin: an order moves when an email is received, sent, opened or clicked.

Event and trigger types ``email.received``, ``email.sent``, ``email.viewed`` and
``email.link_clicked``; the last one may be narrowed to clicks on URLs that start with
the trigger's ``url`` setting.

Besides events posted by the store, the plugin tracks emails itself:

* ``POST /api/tracking-links`` turns an email's links into tracked links and gives an
  open pixel, all signed with the kernel's key (nothing is stored);
* ``GET /t/o/{token}`` (the pixel) answers a 1x1 GIF and records ``email.viewed``, at
  every open;
* ``GET /t/c/{token}`` (a tracked link) records ``email.link_clicked`` with the link's
  ``url`` and redirects there. The redirect only ever goes to the URL that was signed.

A token that is unknown or was tampered with gets a 404 and records nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from statusflow import (
    JSON,
    ApiError,
    EventType,
    KernelServices,
    Route,
    TriggerType,
    hookimpl,
    json_response,
    read_json_body,
)
from statusflow.plugins._matchers import (
    MAX_URL_LENGTH,
    data_schema,
    settings_schema,
    starts_with,
    string_field,
    string_setting,
)

EMAIL_RECEIVED = "email.received"
EMAIL_SENT = "email.sent"
EMAIL_VIEWED = "email.viewed"
EMAIL_LINK_CLICKED = "email.link_clicked"

EMAIL_TYPES = (
    (EMAIL_RECEIVED, "Email received"),
    (EMAIL_SENT, "Email sent"),
    (EMAIL_VIEWED, "Email opened"),
    (EMAIL_LINK_CLICKED, "Email link clicked"),
)

MESSAGE_ID_FIELD = string_field("the email's message id")
DATA_SCHEMA = data_schema(message_id=MESSAGE_ID_FIELD)
CLICK_DATA_SCHEMA = data_schema(
    message_id=MESSAGE_ID_FIELD,
    url=string_field("the URL of the link clicked"),
)

CLICK_SETTINGS_SCHEMA = settings_schema(
    url=string_setting("only clicks on URLs that start with this", MAX_URL_LENGTH),
)

MAX_URLS = 100
MAX_MESSAGE_ID_LENGTH = 300
MAX_ORDER_ID_LENGTH = 200

OPEN = "o"
CLICK = "c"

NUL = "\x00"
"""Refused in ids: the database cannot store it (and no id needs it)."""

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
"""A 1x1 transparent GIF."""

NO_STORE = {"Cache-Control": "no-store"}

# --- OpenAPI --------------------------------------------------------------------------------

ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

TRACKING_LINKS_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "required": ["order_id", "urls"],
    "properties": {
        "order_id": {"type": "string", "minLength": 1, "maxLength": MAX_ORDER_ID_LENGTH},
        "message_id": {"type": "string", "maxLength": MAX_MESSAGE_ID_LENGTH},
        "urls": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_URLS,
            "items": {"type": "string", "format": "uri", "maxLength": MAX_URL_LENGTH},
        },
    },
}

TRACKING_LINKS_RESPONSE = {
    "type": "object",
    "required": ["open_pixel_url", "links"],
    "properties": {
        "open_pixel_url": {"type": "string", "format": "uri"},
        "links": {
            "type": "object",
            "description": "each original URL and its tracked URL",
            "additionalProperties": {"type": "string", "format": "uri"},
        },
    },
}

TRACKING_LINKS_OPENAPI = {
    "operationId": "create_tracking_links",
    "summary": "Tracked links and an open pixel for an email",
    "description": (
        "Signs each URL of an email for an order: clicks on the tracked URLs record "
        "email.link_clicked, loading the pixel records email.viewed. Nothing is stored."
    ),
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": TRACKING_LINKS_REQUEST}},
    },
    "responses": {
        "201": {
            "description": "the tracked URLs",
            "content": {"application/json": {"schema": TRACKING_LINKS_RESPONSE}},
        },
        "400": ERROR,
        "401": ERROR,
        "404": ERROR,
        "413": ERROR,
        "422": ERROR,
    },
}

OPEN_PIXEL_OPENAPI = {
    "operationId": "email_open_pixel",
    "summary": "Email open pixel",
    "description": "Records email.viewed (at every load) and answers a 1x1 transparent GIF.",
    "responses": {
        "200": {
            "description": "a 1x1 transparent GIF",
            "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
        },
        "404": ERROR,
    },
}

CLICK_OPENAPI = {
    "operationId": "email_link_click",
    "summary": "Tracked email link",
    "description": "Records email.link_clicked with the link's url and redirects to it.",
    "responses": {
        "302": {
            "description": "redirect to the original URL",
            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
        },
        "404": ERROR,
    },
}

# --- tracking links -------------------------------------------------------------------------


def _invalid(message: str, field: str) -> ApiError:
    """A 422 whose message starts with the field's name; ``field`` a path without its
    leading slash (``urls/2``)."""
    problem = message[len(field) :].strip() if message.startswith(field) else message
    return ApiError(422, "validation_failed", message, [{"path": f"/{field}", "message": problem}])


def location(url: str) -> str:
    """``url`` fit for a ``Location`` header: non-ASCII characters percent-encoded."""
    return "".join(c if ord(c) < 0x80 else quote(c) for c in url)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be tracked, or ``None`` when it is an absolute http(s) URL."""
    if len(location(url)) > MAX_URL_LENGTH:
        return (
            f"is longer than {MAX_URL_LENGTH} characters "
            "(non-ASCII characters count percent-encoded)"
        )
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return "contains spaces or control characters"
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        return "is not an absolute http or https URL"
    return None


def check_tracking_request(body: Any) -> tuple[str, str | None, list[str]]:
    """The order id, message id and URLs of a ``POST /api/tracking-links`` body, or a 422."""
    if not isinstance(body, dict):
        raise ApiError(
            422,
            "validation_failed",
            "the request body must be a JSON object",
            [{"path": "", "message": "must be a JSON object"}],
        )
    for key in body:
        if key not in ("order_id", "message_id", "urls"):
            unknown = "is not a known field; known: order_id, message_id, urls"
            path = "/" + key.replace("~", "~0").replace("/", "~1")
            raise ApiError(
                422,
                "validation_failed",
                f"{key[:100]} {unknown}",
                [{"path": path, "message": unknown}],
            )
    order_id = body.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise _invalid("order_id must be a non-empty string", "order_id")
    if len(order_id) > MAX_ORDER_ID_LENGTH:
        raise _invalid(
            f"order_id must be at most {MAX_ORDER_ID_LENGTH} characters long", "order_id"
        )
    if NUL in order_id:
        raise _invalid("order_id must not contain the NUL character", "order_id")
    message_id = body.get("message_id")
    if message_id is not None and not isinstance(message_id, str):
        raise _invalid("message_id must be a string", "message_id")
    if message_id is not None and len(message_id) > MAX_MESSAGE_ID_LENGTH:
        raise _invalid(
            f"message_id must be at most {MAX_MESSAGE_ID_LENGTH} characters long", "message_id"
        )
    if message_id is not None and NUL in message_id:
        raise _invalid("message_id must not contain the NUL character", "message_id")
    urls = body.get("urls")
    if not isinstance(urls, list) or not urls or len(urls) > MAX_URLS:
        raise _invalid(f"urls must be a list of 1 to {MAX_URLS} URLs", "urls")
    for index, url in enumerate(urls):
        if not isinstance(url, str):
            raise _invalid(f"urls/{index} must be a string", f"urls/{index}")
        problem = url_problem(url)
        if problem is not None:
            raise _invalid(f"urls/{index} {problem}", f"urls/{index}")
    return order_id, message_id, urls


def tracking_links(
    kernel: KernelServices, order_id: str, message_id: str | None, urls: list[str]
) -> dict[str, JSON]:
    """The open pixel URL and the tracked URL of each of ``urls``."""
    base = kernel.public_url
    pixel = kernel.sign({"k": OPEN, "o": order_id, "m": message_id})
    links = {
        url: f"{base}/t/c/{kernel.sign({'k': CLICK, 'o': order_id, 'm': message_id, 'u': url})}"
        for url in urls
    }
    return {"open_pixel_url": f"{base}/t/o/{pixel}", "links": links}


def token_payload(kernel: KernelServices, token: str, kind: str) -> dict[str, JSON]:
    """The payload of a tracking token of ``kind``; a 404 when it is unknown or tampered."""
    payload = kernel.unsign(token)
    if (
        payload is None
        or payload.get("k") != kind
        or not isinstance(payload.get("o"), str)
        or not isinstance(payload.get("m"), str | None)
        or (kind == CLICK and not isinstance(payload.get("u"), str))
    ):
        raise ApiError(404, "tracking_link_not_found", "unknown tracking link")
    return payload


def _event_data(payload: Mapping[str, JSON]) -> dict[str, JSON]:
    message_id = payload.get("m")
    return {} if message_id is None else {"message_id": message_id}


def make_handlers(
    kernel: KernelServices,
) -> tuple[Callable[[web.Request], Any], ...]:
    """The handlers of the plugin's three routes, bound to the kernel's services."""

    async def create_tracking_links(request: web.Request) -> web.Response:
        # nothing of the body is stored: check_tracking_request names the field with a NUL
        body = await read_json_body(request, check_storable=False)
        order_id, message_id, urls = check_tracking_request(body)
        if not await kernel.order_exists(order_id):
            raise ApiError(
                404,
                "order_not_found",
                f"order {order_id!r} not found",
                [{"path": "/order_id", "message": "is not a known order"}],
            )
        return json_response(tracking_links(kernel, order_id, message_id, urls), status=201)

    async def open_pixel(request: web.Request) -> web.Response:
        payload = token_payload(kernel, request.match_info["token"], OPEN)
        await kernel.submit_event(
            {"type": EMAIL_VIEWED, "order_id": payload["o"], "data": _event_data(payload)}
        )
        return web.Response(body=PIXEL, content_type="image/gif", headers=NO_STORE)

    async def click(request: web.Request) -> web.Response:
        payload = token_payload(kernel, request.match_info["token"], CLICK)
        url = payload["u"]
        await kernel.submit_event(
            {
                "type": EMAIL_LINK_CLICKED,
                "order_id": payload["o"],
                "data": {**_event_data(payload), "url": url},
            }
        )
        return web.Response(status=302, headers={**NO_STORE, "Location": location(url)})

    return create_tracking_links, open_pixel, click


@hookimpl
def register_event_types(register: Callable[[EventType], None]) -> None:
    for code, title in EMAIL_TYPES:
        schema = CLICK_DATA_SCHEMA if code == EMAIL_LINK_CLICKED else DATA_SCHEMA
        register(EventType(code, title, schema))


@hookimpl
def register_trigger_types(register: Callable[[TriggerType], None]) -> None:
    for code, title in EMAIL_TYPES:
        if code == EMAIL_LINK_CLICKED:
            register(TriggerType(code, title, (code,), CLICK_SETTINGS_SCHEMA, starts_with("url")))
        else:
            register(TriggerType(code, title, (code,), settings_schema()))


@hookimpl
def register_routes(register: Callable[[Route], None], kernel: KernelServices) -> None:
    create_tracking_links, open_pixel, click = make_handlers(kernel)
    register(
        Route(
            "POST",
            "/api/tracking-links",
            create_tracking_links,
            TRACKING_LINKS_OPENAPI,
            scope="events",  # the store's backend makes links for the emails it sends
        )
    )
    register(Route("GET", "/t/o/{token}", open_pixel, OPEN_PIXEL_OPENAPI))
    register(Route("GET", "/t/c/{token}", click, CLICK_OPENAPI))
