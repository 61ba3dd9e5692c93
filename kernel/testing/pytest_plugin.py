"""statusflow's pytest plugin: start an app with chosen plugins on a temporary database.

pytest loads it wherever statusflow is installed, through the entry point
``statusflow = statusflow.testing.pytest_plugin`` in the group ``pytest11``. Every name it
adds starts with ``statusflow`` so that it never clashes with a project's own fixtures.

Fixtures (they need ``pytest-aiohttp``, which brings ``pytest-asyncio``):

``statusflow_app``
    A factory: ``client = await statusflow_app(plugins=["payment", "stripe"], config={...})``
    starts a fresh app on a fresh database and answers a :class:`StatusflowClient` with
    helpers (``create_order``, ``create_trigger``, ``post_event``, ...). Each call gets a
    database of its own unless ``database_url=`` names an earlier client's.
``statusflow_database``
    ``"sqlite"`` (a file in ``tmp_path``, the default) or ``"postgres"`` (a database
    created on ``$STATUSFLOW_TEST_POSTGRES`` and dropped after the test). Change the
    default with ``--statusflow-db=postgres`` or the ini option ``statusflow_db``, or
    parametrize the fixture to run a test on both::

        @pytest.mark.parametrize("statusflow_database", ["sqlite", "postgres"])
        async def test_both(statusflow_app): ...

``statusflow_cli``
    Runs the ``statusflow`` command (``plugins --json``, ``serve``...) in a subprocess of
    this interpreter, with an optional configuration written to a temporary file.

Without a reachable PostgreSQL a ``postgres`` test is skipped, except when the
environment has ``CI=true``, where it fails.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

try:  # pytest-aiohttp depends on it; without it the fixtures below cannot run anyway
    import pytest_asyncio

    _async_fixture: Any = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - only without pytest-asyncio
    _async_fixture = pytest.fixture

DATABASES = ("sqlite", "postgres")
DEFAULT_PUBLIC_URL = "http://testserver"

PluginSpec = str | tuple[str, object]
"""An entry-point name to enable, or a ``(name, plugin_object)`` pair to register."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("statusflow")
    group.addoption(
        "--statusflow-db",
        dest="statusflow_db",
        choices=DATABASES,
        default=None,
        help="database of the statusflow_app fixture: sqlite (default) or postgres",
    )
    parser.addini("statusflow_db", "default database of statusflow_app: sqlite or postgres")


class StatusflowClient:
    """A running statusflow app and an HTTP client to it, with helpers for tests.

    Every helper checks the HTTP status it expects (``expect=``) and answers the decoded
    JSON; a mismatch fails the test with the answer's body.

    :param client: the ``aiohttp`` test client (``.client``): use it for anything else,
        e.g. ``await sf.client.post("/sources/stripe", data=..., headers=...)``.
    :param database_url: the app's database, to start another app on the same one.
    :param token: sent as ``Authorization: Bearer`` with ``/api/*`` calls when the
        configuration has ``[auth] tokens``.
    """

    def __init__(self, client: Any, database_url: str, token: str | None = None) -> None:
        self.client = client
        self.database_url = database_url
        self.token = token

    @property
    def app(self) -> Any:
        """The ``aiohttp.web.Application``."""
        return self.client.server.app

    async def close(self) -> None:
        """Stop the app (the fixture does it at the end of the test anyway)."""
        await self.client.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int | None = 200,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send ``body`` as JSON (``None``: no body); check the status; the JSON answer."""
        headers = {}
        if self.token is not None and path.startswith("/api/"):
            headers["Authorization"] = f"Bearer {self.token}"
        response = await self.client.request(
            method, path, json=body, params=params, headers=headers
        )
        text = await response.text()
        if expect is not None:
            assert response.status == expect, f"{method} {path} -> {response.status}: {text}"
        return json.loads(text) if text else None

    async def create_order(self, order_id: str, **fields: Any) -> dict[str, Any]:
        """``POST /api/orders`` with ``{"id": order_id, **fields}``; 201 expected."""
        return dict(await self.call("POST", "/api/orders", {"id": order_id, **fields}, expect=201))

    async def order(self, order_id: str) -> dict[str, Any]:
        """``GET /api/orders/{id}``."""
        return dict(await self.call("GET", f"/api/orders/{order_id}"))

    async def status_of(self, order_id: str) -> str:
        """The order's current status id."""
        return str((await self.order(order_id))["status"])

    async def timeline(self, order_id: str) -> list[dict[str, Any]]:
        """``GET /api/orders/{id}/timeline``, oldest first."""
        return list(await self.call("GET", f"/api/orders/{order_id}/timeline"))

    async def create_trigger(self, type: str, status: str, **fields: Any) -> dict[str, Any]:
        """``POST /api/triggers`` (``settings=``, ``conditions=``...); 201 expected."""
        body = {"type": type, "status": status, **fields}
        return dict(await self.call("POST", "/api/triggers", body, expect=201))

    async def post_event(
        self,
        event: Mapping[str, Any] | list[Mapping[str, Any]] | None = None,
        *,
        expect: int = 200,
        dry_run: bool = False,
        **fields: Any,
    ) -> Any:
        """``POST /api/events`` with ``event`` (or a list), or with the keyword fields.

        ``await sf.post_event(type="payment.received", order_id="o1", data={...})``.
        """
        body: Any = [dict(e) for e in event] if isinstance(event, list) else dict(event or {})
        if fields:
            body = {**body, **fields}
        params = {"dry_run": "true"} if dry_run else None
        return await self.call("POST", "/api/events", body, expect=expect, params=params)

    async def get_event(self, event_id: str, *, expect: int = 200) -> Any:
        """``GET /api/events/{id}``: the event's moves and trace."""
        return await self.call("GET", f"/api/events/{event_id}", expect=expect)

    async def plugins(self) -> dict[str, dict[str, Any]]:
        """``GET /api/plugins`` keyed by plugin name."""
        return {p["name"]: p for p in await self.call("GET", "/api/plugins")}

    async def event_count(self) -> int:
        """How many events the database holds (to check that a request stored nothing)."""
        from sqlalchemy import func, select

        from statusflow.http.keys import DATABASE
        from statusflow.store.schema import EventRecord

        events = EventRecord.__table__  # type: ignore[attr-defined]
        async with self.app[DATABASE].read() as conn:
            return int((await conn.execute(select(func.count()).select_from(events))).scalar())


StartApp = Callable[..., Awaitable[StatusflowClient]]


def _config_mapping(config: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, str):
        return tomllib.loads(config)
    return json.loads(json.dumps(config))  # a deep copy, and JSON-only values


def _require_postgres() -> None:
    from statusflow.testing import postgres_reachable

    if not postgres_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable, and CI=true requires it")
        pytest.skip("PostgreSQL is not reachable")


@pytest.fixture
def statusflow_database(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgres"``: where ``statusflow_app`` puts its databases."""
    chosen = request.config.getoption("statusflow_db") or request.config.getini("statusflow_db")
    chosen = str(chosen or "sqlite")
    if chosen not in DATABASES:
        raise pytest.UsageError(f"statusflow_db must be one of {DATABASES}, not {chosen!r}")
    return chosen


@_async_fixture
async def statusflow_app(
    aiohttp_client: Any, tmp_path: Path, statusflow_database: str
) -> AsyncIterator[StartApp]:
    """``await statusflow_app(plugins=None, *, config=None, database=None, database_url=None)``.

    :param plugins: entry-point names to enable (the others are not loaded) and
        ``(name, object)`` pairs registered as plugins directly, under a name no
        installed plugin has (a taken one raises ``StartupError`` naming its
        distribution, rather than leave the object out); ``None``: every installed
        plugin, as the configuration says.
    :param config: the configuration as the TOML file would hold it, a mapping or TOML
        text (``{"plugins": {"stripe": {"signing_secrets": [...]}}}``), validated as the
        file is. ``[server] public_url`` defaults to ``http://testserver``.
    :param database: ``"sqlite"`` or ``"postgres"``; default: ``statusflow_database``.
    :param database_url: start on this database instead of a fresh one (e.g. another
        client's ``database_url``, to restart with other plugins).
    :param clock: the action scheduler's time: a ``statusflow.testing.ManualClock``,
        moved forward with ``clock.advance(timedelta(days=3))`` instead of waiting.
    :raises statusflow.errors.StartupError: as ``statusflow serve`` would refuse to start.
    """
    from statusflow.http import init_app
    from statusflow.serving.config import settings_from_mapping
    from statusflow.testing import temporary_postgres_database

    stack = AsyncExitStack()
    clients: list[StatusflowClient] = []
    counter = itertools.count(1)

    async def start(
        plugins: Iterable[PluginSpec] | None = None,
        *,
        config: Mapping[str, Any] | str | None = None,
        database: str | None = None,
        database_url: str | None = None,
        clock: Any = None,
    ) -> StatusflowClient:
        raw = _config_mapping(config)
        raw.setdefault("server", {}).setdefault("public_url", DEFAULT_PUBLIC_URL)
        settings = settings_from_mapping(raw)
        extra: list[tuple[str, object]] = []
        if plugins is not None:
            names = []
            for spec in plugins:
                if isinstance(spec, str):
                    names.append(spec)
                else:
                    extra.append((spec[0], spec[1]))
            settings = replace(settings, enable=tuple(names))
        if database_url is None:
            kind = database or statusflow_database
            if kind == "sqlite":
                database_url = f"sqlite:///{tmp_path / f'statusflow-{next(counter)}.db'}"
            elif kind == "postgres":
                _require_postgres()
                database_url = await stack.enter_async_context(temporary_postgres_database())
            else:
                raise ValueError(f"database must be one of {DATABASES}, not {kind!r}")
        settings = replace(settings, database_url=database_url)
        app = init_app(settings, extra_plugins=extra, clock=clock)
        client = await aiohttp_client(app)
        token = settings.tokens[0] if settings.tokens else None
        started = StatusflowClient(client, database_url, token)
        clients.append(started)
        return started

    try:
        yield start
    finally:
        for started in clients:  # close the apps before their databases are dropped
            await started.close()
        await stack.aclose()


@pytest.fixture
def statusflow_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``statusflow_cli("plugins", "--json", config={...}, env={...}, timeout=60)``.

    Runs ``python -m statusflow.cli ARGS`` with this interpreter; ``config`` (a mapping or
    TOML text) is written to a file passed as ``--config``. Answers the completed
    process, with ``stdout`` and ``stderr`` as text.
    """
    counter = itertools.count(1)

    def run(
        *args: str,
        config: Mapping[str, Any] | str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "statusflow.cli", *args]
        if config is not None:
            path = tmp_path / f"statusflow-cli-{next(counter)}.toml"
            path.write_text(config if isinstance(config, str) else _to_toml(config))
            command += ["--config", str(path)]
        full_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("STATUSFLOW_CONFIG", "STATUSFLOW_DATABASE_URL", "STATUSFLOW_TOKENS")
        }
        full_env.update(env or {})
        return subprocess.run(
            command, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
        )

    return run


def _to_toml(config: Mapping[str, Any]) -> str:
    """A small TOML writer for configuration mappings (tables of scalars and lists)."""
    lines: list[str] = []

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item)
        if isinstance(item, list | tuple):
            return "[" + ", ".join(value(v) for v in item) + "]"
        if isinstance(item, Mapping):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(v)}" for k, v in item.items()) + "}"
        raise TypeError(f"cannot write {item!r} as TOML")

    def table(name: str, body: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, Mapping) or "$env" in v}
        if name:
            lines.append(f"[{name}]")
        lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in scalars.items())
        for key, sub in body.items():
            if key not in scalars:
                table(f"{name}.{json.dumps(key)}" if name else json.dumps(key), sub)

    table("", config)
    return "\n".join(lines) + "\n"


__all__ = ["StatusflowClient", "statusflow_app", "statusflow_cli", "statusflow_database"]
