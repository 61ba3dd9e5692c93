"""Operations: ``/readyz``, ``/metrics`` (with plugin gauges), and the request limits
that the configuration sets (body read timeout; rate limits are in test_security.py)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from statusflow import hookimpl
from statusflow.errors import StartupError
from statusflow.http.keys import DATABASE
from statusflow.serving.config import settings_from_mapping
from statusflow.store.database import Database, alembic_config
from statusflow.store.schema import Order
from tests.helpers import Api, assert_error_shape, event


def kernel_head() -> str:
    """The kernel's newest migration revision."""
    from alembic.script import ScriptDirectory

    from statusflow.store.database import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


ORDERS = Order.__table__  # type: ignore[attr-defined]
KERNEL_HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def database_url(reused_database_url: str) -> str:
    return reused_database_url


# --- /readyz ---------------------------------------------------------------------------


async def test_readyz_answers_without_a_token_when_the_database_is_at_head(make_client):
    client = await make_client(enable=("payment",), tokens=(TOKEN,))
    response = await client.get("/readyz")
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["status"] == "ready"
    # the database's heads: the kernel's among them
    assert kernel_head() in body["migrations"]


async def test_readyz_is_503_while_migrations_are_behind(make_client):
    client = await make_client(enable=("payment",))
    db = client.app[DATABASE]
    async with db.write() as conn:
        saved = [
            row[0] for row in await conn.execute(text("SELECT version_num FROM alembic_version"))
        ]
        await conn.execute(text("DELETE FROM alembic_version"))
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        error = assert_error_shape(await response.json(), "not_ready")
        assert "statusflow migrate" in error["message"]
        assert kernel_head() in error["message"]  # the kernel's head, among the missing
        assert (await client.get("/healthz")).status == 200  # alive, only not ready
    finally:
        async with db.write() as conn:
            for version in saved:
                await conn.execute(
                    text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version}
                )
    assert (await client.get("/readyz")).status == 200


async def test_readyz_is_503_when_the_database_does_not_answer(make_client, monkeypatch):
    client = await make_client(enable=("payment",))

    @asynccontextmanager
    async def refused(self: Database) -> Any:
        raise ConnectionRefusedError("connection refused")
        yield

    monkeypatch.setattr(Database, "read", refused)
    response = await client.get("/readyz")
    assert response.status == 503
    error = assert_error_shape(await response.json(), "not_ready")
    assert error["message"] == "the database does not answer (ConnectionRefusedError)"
    assert error["details"] == []


# --- /metrics --------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=AUTH)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(await response.text())


def delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


class FailingSink:
    """A status sink whose ``moves_committed`` always fails (isolated by the kernel)."""

    @hookimpl
    def moves_committed(self, outcome: Any, kernel: Any) -> None:
        raise RuntimeError("the sink is down")


async def test_metrics_count_events_by_outcome_moves_latency_and_plugin_errors(make_client):
    client = await make_client(
        extra_plugins=[("failing_sink", FailingSink())], enable=("payment",), tokens=(TOKEN,)
    )
    assert (await client.get("/metrics")).status == 401  # the token protects it
    api = Api(client)
    client.session.headers.update(AUTH)
    await api.create_order("o1")
    await api.create_order("o2")
    await api.create_trigger("P")
    before = await scrape(client)
    await api.post_events(event(order_id="o1", id="m1"))  # moved
    await api.post_events(event(order_id="o1", id="m2"))  # not moved (already in P)
    await api.post_events(event(order_id="o1", id="m1"))  # duplicate
    await api.post_events(event(order_id="o2"), dry_run=True)  # dry runs are not counted
    await api.post_events([event(order_id="o2"), event(type="no.such")], expect=422)
    await api.post_events(event(order_id="nobody"), expect=404)
    await api.patch_order("o2", {"status": "S"})  # a manual move
    after = await scrape(client)

    def events(outcome: str, type_: str = "payment.received") -> float:
        return delta(before, after, "statusflow_events_total", type=type_, outcome=outcome)

    assert events("moved") == 1
    assert events("not_moved") == 1
    assert events("duplicate") == 1
    assert events("rejected") == 2  # the list's good event and the unknown order's
    assert events("rejected", "unknown") == 1
    assert delta(before, after, "statusflow_moves_total", to="P", cause="trigger") == 1
    assert delta(before, after, "statusflow_moves_total", to="S", cause="manual") == 1
    assert delta(before, after, "statusflow_event_request_seconds_count") == 3
    errors = delta(
        before,
        after,
        "statusflow_plugin_errors_total",
        plugin="failing_sink",
        hook="moves_committed",
    )
    assert errors == 3  # after each committed outcome: m1, m2 and the manual move


class GaugePlugin:
    """Registers two gauges at start-up: the number of orders, and a broken one."""

    @hookimpl
    def startup(self, kernel: Any) -> None:
        async def orders() -> float:
            async with kernel.read() as conn:
                return float(
                    (await conn.execute(select(func.count()).select_from(ORDERS))).scalar()
                )

        def broken() -> float:
            raise RuntimeError("no backlog today")

        kernel.register_gauge("statusflow_test_orders", "Orders stored", orders)
        kernel.register_gauge("statusflow_test_broken", "Always fails", broken)
        with pytest.raises(ValueError):
            kernel.register_gauge("statusflow_test_orders", "twice", orders)
        with pytest.raises(ValueError):
            kernel.register_gauge("not a name", "bad", orders)


async def test_plugins_report_gauges_computed_at_scrape_time(make_client):
    client = await make_client(extra_plugins=[("gauges", GaugePlugin())], enable=("payment",))
    api = Api(client)
    await api.create_order("o1")
    await api.create_order("o2")
    found = samples(await (await client.get("/metrics")).text())
    assert found[("statusflow_test_orders", ())] == 2.0
    assert not any(name == "statusflow_test_broken" for name, _ in found)


# --- limits ------------------------------------------------------------------------------


async def test_a_body_sent_too_slowly_gets_a_408_and_the_connection_is_closed(make_client):
    client = await make_client(enable=("payment",), request_timeout_seconds=0.3)
    await Api(client).create_order("o1")
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    body = b'{"type": "payment.received", "order_id": "o1", "id": "slow"}'
    writer.write(
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)  # read() returns at close
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    import json

    assert_error_shape(json.loads(payload), "request_timeout")
    assert await Api(client).stored_event_count() == 0


async def test_a_body_within_the_timeout_is_served(make_client):
    client = await make_client(enable=("payment",), request_timeout_seconds=2)
    await Api(client).create_order("o1")
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    body = b'{"type": "payment.received", "order_id": "o1", "id": "slowish"}'
    writer.write(
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body[:10]
    )
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.write(body[10:])
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert await Api(client).stored_event_count() == 1


def test_the_limits_are_configurable_and_checked():
    settings = settings_from_mapping(
        {
            "server": {
                "request_timeout_seconds": 5,
                "public_rate_per_second": 2.5,
                "public_burst": 10,
                "trusted_proxies": ["10.0.0.1", "192.168.0.0/16", "::1"],
            }
        }
    )
    assert settings.request_timeout_seconds == 5.0
    assert (settings.public_rate_per_second, settings.public_burst) == (2.5, 10)
    assert settings.trusted_proxies == ("10.0.0.1", "192.168.0.0/16", "::1")
    defaults = settings_from_mapping({})
    assert (defaults.public_rate_per_second, defaults.public_burst) == (50.0, 100)
    assert defaults.request_timeout_seconds == 30.0
    for bad in (
        {"request_timeout_seconds": 0},
        {"public_rate_per_second": -1},
        {"public_burst": 0},
        {"trusted_proxies": ["not-an-address"]},
    ):
        with pytest.raises(StartupError, match="server"):
            settings_from_mapping({"server": bad})


# --- migrations as a deployment step -------------------------------------------------------


async def test_without_migrate_on_start_an_instance_is_ready_only_once_migrated(
    aiohttp_client, sqlite_url
):
    """A newer release (here: one more plugin, with a migration of its own) started with
    ``migrate_on_start = false`` serves, but is not ready until the migrations ran."""
    from notes_plugin import NotesPlugin

    from statusflow.http import init_app
    from statusflow.http.keys import PLUGIN_MANAGER
    from statusflow.serving.plugin_catalog import migration_locations
    from statusflow.store.database import migrate
    from statusflow.testing import settings_for

    await aiohttp_client(init_app(settings_for(sqlite_url, enable=("payment",))))
    settings = settings_for(sqlite_url, enable=("payment",), migrate_on_start=False)
    newer = await aiohttp_client(init_app(settings, extra_plugins=[("notes", NotesPlugin())]))
    assert (await newer.get("/healthz")).status == 200
    response = await newer.get("/readyz")
    assert response.status == 503
    error = assert_error_shape(await response.json(), "not_ready")
    assert "missing: notes_0001;" in error["message"]
    # `statusflow migrate` (with the same plugins) brings the database to head
    await migrate(sqlite_url, migration_locations(newer.app[PLUGIN_MANAGER]))
    assert (await newer.get("/readyz")).status == 200


async def test_a_database_ahead_of_this_release_keeps_it_ready(make_client):
    """During a rolling upgrade, a newer release migrates first: the older instances,
    which do not know the new revision, stay ready (migrations only ever add)."""
    client = await make_client(enable=("payment",))
    db = client.app[DATABASE]
    async with db.write() as conn:
        rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
        saved = [row[0] for row in rows]
        await conn.execute(text("DELETE FROM alembic_version"))
        await conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('9999')"))
    try:
        response = await client.get("/readyz")
        assert response.status == 200, await response.text()
    finally:
        async with db.write() as conn:
            await conn.execute(text("DELETE FROM alembic_version"))
            for version in saved:
                await conn.execute(
                    text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": version}
                )


async def test_without_migrate_on_start_an_empty_database_stops_start_up(sqlite_url):
    from aiohttp import web

    from statusflow.http import init_app
    from statusflow.testing import settings_for

    app = init_app(settings_for(sqlite_url, enable=("payment",), migrate_on_start=False))
    runner = web.AppRunner(app)
    with pytest.raises(StartupError, match="statusflow migrate"):
        await runner.setup()
