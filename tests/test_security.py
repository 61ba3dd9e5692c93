"""Security: every ``/api/*`` route refuses a missing or wrong token (found by walking the
app's route table, so a new route cannot slip through), the open routes stay open,
secrets never reach the logs, and public endpoints are rate-limited per client address.

Tracking tokens are unforgeable and the click redirect goes only to the signed URL (no
open redirect): see ``tests/test_tracking.py``,
``test_unknown_or_tampered_tokens_are_404_and_record_nothing`` and
``test_pixel_and_click_record_events_and_move_orders``. Tokens are compared in
constant time (``hmac.compare_digest`` of SHA-256 digests against every configured
token and key, ``kernel/serving/api_keys.py``); named keys and their scopes:
``tests/test_keys.py``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog

from statusflow.engine.services import Services
from statusflow.http.docs_page import is_docs_path
from statusflow.http.limits import TokenBuckets, is_public
from statusflow.http.middlewares import needs_token
from tests.helpers import Api, assert_error_shape, event, path_of

TOKEN = "tok-3f9a1c77e2b54d0c"
OTHER = "tok-other-0000000000"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OPEN = {"/healthz", "/readyz"}  # kernel routes anybody may call, and cheap to answer


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url  # auth and limits do not depend on the database


def concrete(path: str) -> str:
    """A route's pattern with each ``{name}`` (or ``{name:regex}``) filled in."""
    return re.sub(r"{[^}]+}", "x1", path)


def routes_of(app: Any) -> list[tuple[str, str]]:
    """``(method, pattern)`` of every route the app serves, plugins' included."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        pattern = info.get("formatter") or info.get("path") or info.get("prefix")
        assert pattern, f"a route without a path: {route!r}"
        found.append((route.method, pattern))
    return sorted(set(found))


def _board(path: str) -> bool:
    return path in ("/", "/ui") or path.startswith("/ui/")


BOARD_OPEN = ("/ui/sign-in", "/ui/static")
"""The board's paths that need no sign-in: the form, and the CSS and scripts."""


async def test_every_board_route_asks_for_a_sign_in(make_client):
    """With tokens, every board route but the sign-in form and the static files sends a
    browser without a session to the sign-in form (a GET) or refuses (anything else),
    whatever credentials the request carries: the API's bearer token is not a session."""
    client = await make_client(tokens=(TOKEN,))
    board = [(m, p) for m, p in routes_of(client.app) if _board(p) and m != "HEAD"]
    assert ("GET", "/ui/") in board
    for method, pattern in board:
        if pattern.startswith(BOARD_OPEN) or pattern in ("/", "/ui"):
            continue
        path = concrete(pattern)
        response = await client.request(method, path, headers=AUTH, allow_redirects=False)
        if method == "GET":
            assert response.status == 303, (method, path, response.status)
            assert response.headers["Location"].startswith("/ui/sign-in?next="), path
        else:
            assert response.status in (401, 403), (method, path, response.status)


BAD_CREDENTIALS: list[dict[str, str]] = [
    {},
    {"Authorization": f"Bearer {OTHER}"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer "},
    {"X-Api-Token": TOKEN},
]


async def test_every_token_route_refuses_missing_and_wrong_tokens(make_client):
    """Walks ``app.router.routes()``: every route is either behind the token
    (``needs_token``: ``/api/*``, ``/metrics``), a kernel probe (``/healthz``,
    ``/readyz``), a public, rate-limited endpoint (``/t/*``, ``/hooks/*``,
    ``/sources/*``) or the docs page (``/api/docs``, no data: it asks for the token).
    The board (``/``, ``/ui/*``) has its own guard: see the next test. A route that is
    none of these fails here until someone decides."""
    client = await make_client(tokens=(TOKEN, "another-configured-token"))
    routes = routes_of(client.app)
    assert ("POST", "/api/events") in routes and ("GET", "/api/moves") in routes
    unclassified = [
        (m, p)
        for m, p in routes
        if not (needs_token(p) or p in OPEN or is_public(p) or is_docs_path(p) or _board(p))
    ]
    assert not unclassified, f"routes that are neither behind the token nor public: {unclassified}"
    checked = 0
    for method, pattern in routes:
        if not needs_token(pattern):
            continue
        path = concrete(pattern)
        for headers in BAD_CREDENTIALS:
            response = await client.request(
                method, path, headers=headers, params={"token": TOKEN}, json={"id": "x"}
            )
            where = f"{method} {path} with {headers}"
            assert response.status == 401, f"{where}: {response.status} {await response.text()}"
            assert response.headers["WWW-Authenticate"] == "Bearer", where
            if method != "HEAD":
                assert_error_shape(await response.json(), "unauthorized")
        # with the right token the route is reached (whatever it then answers)
        response = await client.request(method, path, headers=AUTH, json={"id": "x"})
        assert response.status != 401, f"{method} {path}: the right token is refused"
        checked += 1
    assert checked >= 20


async def raw_get(client: Any, path: str) -> int:
    """The status of ``GET path`` sent byte for byte (no client-side normalisation)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


async def test_odd_spellings_of_api_paths_never_get_past_the_token(make_client):
    client = await make_client(enable=("payment",), tokens=(TOKEN,))
    for path in (
        "/api/statuses",
        "/api/statuses/",
        "//api/statuses",
        "/api//statuses",
        "/%61pi/statuses",
        "/api/%73tatuses",
        "/api/./statuses",
        "/x/../api/statuses",
        "/API/statuses",
        "/api/statuses%2F",
        "/api",
        "/api/",
    ):
        status = await raw_get(client, path)
        assert status in (401, 404), (path, status)


async def test_probes_tracking_and_hooks_are_open_and_metrics_needs_the_token(make_client):
    client = await make_client(tokens=(TOKEN,))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    for path in ("/t/o/bogus", "/t/c/bogus", "/t/c/%C3%A9.%C3%A9", "/t/o/a.%F0%9F%98%80"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 404, path  # reached, not refused: the token is unknown
    response = await client.post("/hooks/bogus", json={"order_id": "o1"})
    assert response.status == 404
    assert (await client.get("/metrics")).status == 401
    assert (
        await client.get("/metrics", headers={"Authorization": f"Bearer {OTHER}"})
    ).status == 401
    assert (await client.get("/metrics", headers=AUTH)).status == 200


# --- secrets never logged ------------------------------------------------------------------


@contextmanager
def rendered_logs() -> Iterator[io.StringIO]:
    """Every structlog event rendered as production renders it (tracebacks included)."""
    out = io.StringIO()
    old = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        yield out
    finally:
        structlog.configure(**old)


async def test_webhook_secrets_and_bearer_tokens_are_never_logged(make_client, caplog, monkeypatch):
    caplog.set_level(logging.WARNING)  # `statusflow serve` shows the stdlib's from WARNING
    with rendered_logs() as logs:
        client = await make_client(enable=("payment", "webhook"), tokens=(TOKEN,))
        api = Api(client)
        client.session.headers.update(AUTH)
        await api.create_order("o1")
        trigger = await api.create_trigger("P", "webhook.called")
        secret = path_of(trigger["webhook_url"]).rsplit("/", 1)[-1]
        assert len(secret) >= 16
        hook = f"/hooks/{secret}"
        assert (await client.post(hook, json={"order_id": "o1"})).status == 200
        assert (await client.post(hook, json={"order_id": "nobody"})).status == 404
        assert (await client.post(hook, json={"order_id": 7})).status == 422
        assert (await client.post(hook, data=b"{not json")).status == 400
        await api.post_events(event(order_id="o1"))
        wrong = {"Authorization": f"Bearer {TOKEN}-wrong"}
        assert (await client.get("/api/statuses", headers=wrong)).status == 401

        async def crash(self: Services, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the engine broke")

        monkeypatch.setattr(Services, "submit_event", crash)
        assert (await client.post(hook, json={"order_id": "o1"})).status == 500
    text = logs.getvalue()
    assert "http.unhandled_error" in text and "/hooks/{secret}" in text  # it was logged...
    assert secret not in text  # ...without the secret
    assert TOKEN not in text
    # the standard library's logs too (the access log is off in `statusflow serve`)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    stdlib = "\n".join(r.getMessage() + str(r.args or "") for r in records)
    assert secret not in stdlib and TOKEN not in stdlib


# --- rate limits ---------------------------------------------------------------------------


async def test_public_endpoints_get_a_429_per_client_address(make_client):
    client = await make_client(
        enable=("payment", "webhook", "email"),
        tokens=(TOKEN,),
        public_rate_per_second=0.5,
        public_burst=3,
    )
    statuses = [(await client.get("/t/o/bogus")).status for _ in range(3)]
    assert statuses == [404, 404, 404]
    for method, path in (("GET", "/t/o/bogus"), ("GET", "/t/c/bogus"), ("POST", "/hooks/x")):
        response = await client.request(method, path)
        assert response.status == 429, (path, response.status)
        assert_error_shape(await response.json(), "too_many_requests")
        assert int(response.headers["Retry-After"]) >= 1
    # the API, the probes and the metrics are not rate-limited
    for _ in range(5):
        assert (await client.get("/api/statuses", headers=AUTH)).status == 200
        assert (await client.get("/healthz")).status == 200


async def test_behind_a_trusted_proxy_the_client_is_read_from_x_forwarded_for(make_client):
    trusted = await make_client(
        enable=("email",),
        public_rate_per_second=0.5,
        public_burst=2,
        trusted_proxies=("127.0.0.1",),
    )

    async def pixel(client: Any, forwarded: str) -> int:
        response = await client.get("/t/o/bogus", headers={"X-Forwarded-For": forwarded})
        return int(response.status)

    # a spoofed first hop is ignored: the proxy appended the real client last
    assert [await pixel(trusted, "198.51.100.1, 203.0.113.5") for _ in range(3)] == [404, 404, 429]
    assert await pixel(trusted, "203.0.113.6") == 404  # another client, its own bucket
    assert await pixel(trusted, "198.51.100.9, 203.0.113.5") == 429
    untrusted = await make_client(enable=("email",), public_rate_per_second=0.5, public_burst=2)
    # without trusted proxies the header is ignored: one peer, one bucket
    assert [await pixel(untrusted, f"203.0.113.{i}") for i in range(3)] == [404, 404, 429]


async def test_a_zero_rate_turns_the_limit_off(make_client):
    client = await make_client(enable=("email",), public_rate_per_second=0, public_burst=1)
    assert {(await client.get("/t/o/bogus")).status for _ in range(10)} == {404}


def test_token_buckets_refill_at_the_rate_up_to_the_burst():
    now = [100.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # half a second to the next token
    assert buckets.take("b") == 0.0  # another client
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0.0
    now[0] += 60  # idle: refilled to the burst, not beyond
    assert [buckets.take("a") for _ in range(4)][-1] > 0.0
