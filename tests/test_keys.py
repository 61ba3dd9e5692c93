"""Named API keys with scopes (``[[auth.keys]]``) beside the plain ``[auth] tokens``: the
configuration checked at start-up without ever showing a token, each route's scope (the
table of docs/api.md, checked against the route table), 403 ``missing_scope`` naming the
scope, the key's name on the request, and plugin routes declaring their scope."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from statusflow import Route, api_key_name, hookimpl, json_response
from statusflow.errors import StartupError
from statusflow.http.keys import ROUTE_SCOPES
from statusflow.serving.api_keys import ApiKey
from statusflow.serving.config import load_settings, settings_from_mapping
from tests.helpers import event

DOCS = Path(__file__).resolve().parents[1] / "docs"

BACKEND = "backend-tok-7d1e0b9c44a2"
READER = "reader-tok-1f2e3d4c5b6a"
ADMIN = "admin-tok-a1b2c3d4e5f6"
PLAIN = "plain-tok-0a9b8c7d6e5f"
KEYS = (
    ApiKey.from_token("shop-backend", BACKEND, ["events"]),
    ApiKey.from_token("dashboard", READER, ["read"]),
    ApiKey.from_token("ops", ADMIN, ["admin"]),
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url  # keys and scopes do not depend on the database


# --- the configuration -------------------------------------------------------------------


def keys_config(*keys: dict[str, Any], tokens: list[str] | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"keys": list(keys)}
    if tokens is not None:
        auth["tokens"] = tokens
    return {"auth": auth}


def test_keys_come_from_the_configuration_with_a_token_or_its_digest() -> None:
    digest = hashlib.sha256(READER.encode()).hexdigest()
    settings = settings_from_mapping(
        keys_config(
            {"name": "shop-backend", "token": BACKEND, "scopes": ["events"]},
            {"name": "dashboard", "token_sha256": digest.upper(), "scopes": ["read"]},
            tokens=[PLAIN],
        )
    )
    assert settings.auth_enabled
    by_name = {key.name: key for key in settings.accepted_keys()}
    assert set(by_name) == {"token", "shop-backend", "dashboard"}
    assert by_name["dashboard"].digest == hashlib.sha256(READER.encode()).digest()
    assert by_name["token"].scopes == {"events", "read", "admin"}
    assert BACKEND not in repr(settings) and digest not in repr(settings).lower()
    assert not settings_from_mapping({}).auth_enabled


BAD_KEYS = [
    (
        [{"name": "a", "token": BACKEND, "scopes": ["events", "write"]}],
        "auth.keys.0.scopes.1: must be one of 'events', 'read', 'admin'",
    ),
    ([{"token": BACKEND, "scopes": ["read"]}], "auth.keys.0: missing required key(s) 'name'"),
    ([{"name": "a", "token": BACKEND}], "auth.keys.0: missing required key(s) 'scopes'"),
    ([{"name": "a", "token": BACKEND, "scopes": []}], "auth.keys.0.scopes: must have at least"),
    (
        [{"name": "a", "token": BACKEND, "scopes": ["read"], "role": "x"}],
        "auth.keys.0: unknown key(s) 'role'",
    ),
    (
        [{"name": "a", "token_sha256": "ab" + BACKEND, "scopes": ["read"]}],
        "auth.keys.0.token_sha256: does not match the pattern",
    ),
    (
        [
            {"name": "a", "token": BACKEND, "scopes": ["read"]},
            {"name": "a", "token": READER, "scopes": ["read"]},
        ],
        "auth.keys.1 (key 'a'): another key has the same name",
    ),
    (
        [
            {
                "name": "a",
                "token": BACKEND,
                "token_sha256": hashlib.sha256(BACKEND.encode()).hexdigest(),
                "scopes": ["read"],
            }
        ],
        "auth.keys.0 (key 'a'): give exactly one of token and token_sha256",
    ),
    (
        [{"name": "a", "scopes": ["read"]}],
        "auth.keys.0 (key 'a'): give exactly one of token and token_sha256",
    ),
    (
        [{"name": "token", "token": BACKEND, "scopes": ["read"]}],
        "the name 'token' stands for the plain tokens",
    ),
    (
        [
            {"name": "a", "token": BACKEND, "scopes": ["read"]},
            {
                "name": "b",
                "token_sha256": hashlib.sha256(BACKEND.encode()).hexdigest(),
                "scopes": ["events"],
            },
        ],
        "key 'b' has the same token as key 'a'",
    ),
]


@pytest.mark.parametrize(("keys", "message"), BAD_KEYS)
def test_a_bad_key_stops_start_up_naming_it_never_its_token(keys, message) -> None:
    with pytest.raises(StartupError) as caught:
        settings_from_mapping(keys_config(*keys))
    text = str(caught.value)
    assert text.startswith("configuration error at auth.keys"), text
    assert message in text, text
    for secret in (BACKEND, READER, hashlib.sha256(BACKEND.encode()).hexdigest()):
        assert secret not in text and secret[2:] not in text


def test_a_plain_token_from_the_environment_may_not_be_a_keys_token(tmp_path, monkeypatch):
    config = tmp_path / "statusflow.toml"
    config.write_text(f'[[auth.keys]]\nname = "b"\ntoken = "{BACKEND}"\nscopes = ["events"]\n')
    monkeypatch.setenv("STATUSFLOW_TOKENS", f"{PLAIN},{BACKEND}")
    with pytest.raises(StartupError, match="key 'b' has the same token as a plain token") as e:
        load_settings(config)
    assert BACKEND not in str(e.value)
    monkeypatch.setenv("STATUSFLOW_TOKENS", PLAIN)
    settings = load_settings(config)
    assert settings.tokens == (PLAIN,) and [k.name for k in settings.keys] == ["b"]


def test_retention_days_are_checked_at_start_up() -> None:
    assert settings_from_mapping({"retention": {"events_days": 30}}).events_days == 30
    assert settings_from_mapping({}).events_days is None
    for bad, message in ((0, "must be at least 1"), ("30", "must be of type integer")):
        with pytest.raises(StartupError, match=f"retention.events_days: {message}"):
            settings_from_mapping({"retention": {"events_days": bad}})
    with pytest.raises(StartupError, match=r"retention: unknown key\(s\) 'event_days'"):
        settings_from_mapping({"retention": {"event_days": 30}})


# --- scopes ------------------------------------------------------------------------------


def documented_scopes() -> dict[str, set[tuple[str, str]]]:
    """``{scope: {(method, path), ...}}`` of the scopes table of docs/api.md."""
    text = (DOCS / "api.md").read_text()
    section = text.split("## Keys and scopes", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[tuple[str, str]]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"`(events|read|admin)`", cells[0]):
            continue
        routes = re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`", cells[1])
        table[cells[0].strip("`")] = set(routes)
    assert set(table) == {"events", "read", "admin"}, table
    return table


async def test_every_route_needs_the_scope_docs_api_md_gives_it(make_client) -> None:
    """Every mounted route under /api/ (kernel and built-in plugins): a GET needs ``read``,
    any other method the scope whose row of the table names it."""
    client = await make_client(keys=KEYS)
    table = documented_scopes()
    listed = {route: scope for scope, routes in table.items() for route in routes}
    mounted = 0
    for route, scope in client.app[ROUTE_SCOPES].items():
        path = route.resource.canonical  # type: ignore[union-attr]
        if not path.startswith("/api/"):
            continue
        mounted += 1
        if route.method == "GET":
            assert scope == "read", (route.method, path, scope)
        else:
            assert listed.get((route.method, path)) == scope, (route.method, path, scope)
    non_get = {r for r, s in listed.items() if s != "read" and r[0] != "GET"}
    shown = {
        (r.method, r.resource.canonical)  # type: ignore[union-attr]
        for r in client.app[ROUTE_SCOPES]
    }
    assert non_get <= shown, f"docs/api.md lists routes that are not mounted: {non_get - shown}"
    assert mounted >= 25


async def test_a_key_calls_what_its_scopes_allow_and_gets_a_403_naming_the_scope(
    make_client,
) -> None:
    client = await make_client(keys=KEYS, tokens=(PLAIN,))

    async def call(token: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return await client.request(method, path, json=body, headers=bearer(token), **kw)

    # the store's backend: events and its orders
    assert (await call(BACKEND, "POST", "/api/orders", {"id": "o1"})).status == 201
    assert (await call(BACKEND, "PATCH", "/api/orders/o1", {"amount": 5})).status == 200
    ev = event(order_id="o1", data={"amount": 5})
    assert (await call(BACKEND, "POST", "/api/events", ev)).status == 200
    dry = await call(BACKEND, "POST", "/api/events", ev, params={"dry_run": "true"})
    assert dry.status == 200
    refused = await call(BACKEND, "GET", "/api/triggers")
    assert refused.status == 403
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope", scope="read"'
    error = (await refused.json())["error"]
    assert error["code"] == "missing_scope"
    assert "'shop-backend'" in error["message"] and "'read'" in error["message"]
    assert "GET /api/triggers" in error["message"]
    refused = await call(BACKEND, "PUT", "/api/statuses", [])
    assert refused.status == 403 and "'admin'" in (await refused.json())["error"]["message"]
    assert (await call(BACKEND, "DELETE", "/api/orders/o1")).status == 403

    # a dashboard: every GET, nothing else
    assert (await call(READER, "GET", "/api/orders/o1")).status == 200
    assert (await call(READER, "GET", "/api/audit")).status == 200
    assert (await call(READER, "GET", "/api/openapi.json")).status == 200
    refused = await call(READER, "POST", "/api/events", ev)
    assert refused.status == 403 and "'events'" in (await refused.json())["error"]["message"]
    assert (await call(READER, "POST", "/api/triggers", {"type": "x"})).status == 403

    # admin changes the definitions and reads (admin includes read), posts no events
    trigger = {"type": "payment.received", "status": "P"}
    assert (await call(ADMIN, "POST", "/api/triggers", trigger)).status == 201
    assert (await call(ADMIN, "GET", "/api/triggers")).status == 200
    assert (await call(ADMIN, "POST", "/api/events", ev)).status == 403
    assert (await call(ADMIN, "POST", "/api/orders", {"id": "o2"})).status == 403

    # a plain token may do everything; an unknown token is a 401, whatever the route
    assert (await call(PLAIN, "POST", "/api/events", ev)).status == 200
    assert (await call(PLAIN, "DELETE", "/api/orders/o1")).status == 204
    assert (await call("nope-" + PLAIN, "GET", "/api/statuses")).status == 401
    assert (await call(BACKEND[:-1], "POST", "/api/events", ev)).status == 401
    # an unknown route answers 404 to any valid key, never a 403
    assert (await call(BACKEND, "GET", "/api/nothing-here")).status == 404

    # the open routes stay open
    assert (await client.get("/healthz")).status == 200
    keys_only = await make_client(keys=KEYS)  # keys alone turn auth on
    assert (await keys_only.get("/api/statuses")).status == 401
    assert (await keys_only.get("/api/statuses", headers=bearer(PLAIN))).status == 401
    assert (await keys_only.get("/api/statuses", headers=bearer(READER))).status == 200
    assert (await client.get("/metrics", headers=bearer(BACKEND))).status == 403
    assert (await client.get("/metrics", headers=bearer(READER))).status == 200


async def test_the_openapi_document_names_each_operations_scope(make_client) -> None:
    client = await make_client(keys=KEYS)
    document = await (await client.get("/api/openapi.json", headers=bearer(READER))).json()
    paths = document["paths"]
    assert paths["/api/events"]["post"]["security"] == [{"bearer": ["events"]}]
    assert paths["/api/statuses"]["put"]["security"] == [{"bearer": ["admin"]}]
    assert paths["/api/statuses"]["get"]["security"] == [{"bearer": ["read"]}]
    assert "403" in paths["/api/triggers"]["post"]["responses"]
    assert paths["/healthz"]["get"]["security"] == []  # public: no token asked


class WhoAmI:
    """A plugin with routes of each kind of scope, answering the calling key's name."""

    @hookimpl
    def register_routes(self, register: Callable[[Route], None]) -> None:
        async def whoami(request: web.Request) -> web.Response:
            return json_response({"key_name": api_key_name(request)})

        register(Route("GET", "/api/whoami", whoami))
        register(Route("POST", "/api/whoami", whoami))
        register(Route("POST", "/api/whoami/events", whoami, scope="events"))
        register(Route("POST", "/sources/whoami", whoami))


async def test_plugin_routes_need_their_scope_and_see_the_keys_name(make_client) -> None:
    client = await make_client(extra_plugins=[("whoami", WhoAmI())], keys=KEYS, tokens=(PLAIN,))

    async def name(method: str, path: str, token: str | None, status: int = 200) -> Any:
        headers = bearer(token) if token else {}
        response = await client.request(method, path, headers=headers)
        assert response.status == status, (method, path, await response.text())
        return (await response.json()).get("key_name") if status == 200 else None

    assert await name("GET", "/api/whoami", READER) == "dashboard"
    assert await name("GET", "/api/whoami", ADMIN) == "ops"
    assert await name("GET", "/api/whoami", PLAIN) == "token"
    await name("GET", "/api/whoami", BACKEND, 403)
    await name("POST", "/api/whoami", READER, 403)  # a POST needs admin by default
    assert await name("POST", "/api/whoami", ADMIN) == "ops"
    assert await name("POST", "/api/whoami/events", BACKEND) == "shop-backend"
    await name("POST", "/api/whoami/events", ADMIN, 403)
    assert await name("POST", "/sources/whoami", None) is None  # public: no key, no name

    open_client = await make_client(extra_plugins=[("whoami", WhoAmI())])
    response = await open_client.get("/api/whoami")
    assert (await response.json()) == {"key_name": None}  # auth off


async def test_a_plugin_route_with_an_unknown_scope_stops_start_up(make_client) -> None:
    class Bad:
        @hookimpl
        def register_routes(self, register: Callable[[Route], None]) -> None:
            async def handler(request: web.Request) -> web.Response:
                return json_response({})

            register(Route("POST", "/api/bad", handler, scope="write"))

    with pytest.raises(StartupError, match=r"plugin 'bad': route POST /api/bad needs the scope"):
        await make_client(extra_plugins=[("bad", Bad())])
