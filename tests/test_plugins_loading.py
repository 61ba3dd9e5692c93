"""Loading plugins: entry points, enable/disable, the factory's checks, and the CLI.

Third-party plugins are real distributions here: a ``.dist-info`` directory with an
``entry_points.txt`` on ``sys.path`` (or ``PYTHONPATH`` for the CLI), found by
``importlib.metadata`` exactly as a pip-installed one would be.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from statusflow import ConditionOperator, EventType, TriggerType, hookimpl
from statusflow.errors import StartupError
from statusflow.http import init_app
from statusflow.registry import build_registry, make_plugin_manager
from statusflow.serving.plugin_catalog import list_plugins
from statusflow.testing import settings_for
from tests.helpers import BUILT_IN_PLUGINS, PING_SOURCE, write_distribution

BUILT_IN = BUILT_IN_PLUGINS
PLUGIN_KEYS = {"name", "distribution", "version", "trigger_types", "enabled"}
STATUSFLOW = Path(sys.executable).with_name("statusflow")
PAID_TRIGGER = {"type": "payment.received", "status": "P"}


@pytest.fixture
def database_url(reused_database_url):
    """A fresh SQLite file, then the session's PostgreSQL database emptied (faster)."""
    return reused_database_url


async def get(client: Any, path: str, expected: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == expected, (path, response.status, await response.text())
    return await response.json()


async def send(client: Any, method: str, path: str, body: Any, expected: int) -> Any:
    response = await client.request(method, path, json=body)
    assert response.status == expected, (method, path, response.status, await response.text())
    return await response.json()


# --- throwaway plugins and distributions ------------------------------------------------


class PaymentEvents:
    """Registers only the ``payment.received`` event type, no trigger type."""

    @hookimpl
    def register_event_types(self, register):
        register(EventType("payment.received", "Payment received"))


class StartsWith:
    """Adds a condition operator ``startswith``."""

    @hookimpl
    def register_condition_operators(self, register):
        register(
            ConditionOperator(
                "startswith",
                lambda actual, expected: str(actual).startswith(expected),
                {"type": "string"},
            )
        )


class Ping:
    """An event type and a trigger type ``ping``."""

    @hookimpl
    def register_event_types(self, register):
        register(EventType("ping", "Ping"))

    @hookimpl
    def register_trigger_types(self, register):
        register(TriggerType("ping", "Ping", ("ping",)))


class PingCopy:
    """The trigger type ``ping`` once more."""

    @hookimpl
    def register_trigger_types(self, register):
        register(TriggerType("ping", "Ping again", ("ping",)))


class PaymentCopy:
    """The built-in ``payment.received`` trigger type once more."""

    @hookimpl
    def register_trigger_types(self, register):
        register(TriggerType("payment.received", "Payment", ("payment.received",)))


class UnknownHook:
    @hookimpl
    def register_widgets(self, register):
        register("widget")


class WrongArgument:
    @hookimpl
    def register_trigger_types(self, registr):
        registr(TriggerType("x", "X", ("x",)))


UNKNOWN_HOOK_SOURCE = """
from statusflow import hookimpl


@hookimpl
def register_widgets(register):
    pass
"""

WRONG_ARGUMENT_SOURCE = """
from statusflow import hookimpl


@hookimpl
def register_trigger_types(registr):
    pass
"""


@pytest.fixture
def distributions(tmp_path, monkeypatch):
    """``add(entry_name, source)``: a real distribution whose entry point loads ``source``.

    Answers the directory to put on ``sys.path``/``PYTHONPATH`` (already on ``sys.path``).
    """
    root = tmp_path / "site"
    root.mkdir()
    modules: list[str] = []

    def add(entry_name: str, source: str, version: str = "1.0") -> Path:
        modules.append(write_distribution(root, entry_name, source, version))
        return root

    monkeypatch.syspath_prepend(str(root))
    yield add
    for module in modules:
        sys.modules.pop(module, None)


# --- enabling and disabling through the built-in entry points -----------------------------


async def test_disabled_plugin_is_listed_but_not_loaded(make_client):
    client = await make_client(disable=("payment",))
    types = await get(client, "/api/trigger-types")
    assert "payment.received" not in {t["type"] for t in types}
    assert "payment" not in {t["plugin"] for t in types}
    assert types, "the other plugins are still loaded"
    response = await client.post("/api/triggers", json=PAID_TRIGGER)
    assert response.status == 422
    assert "payment.received" in (await response.json())["error"]["message"]
    assert await get(client, "/api/triggers") == []
    await send(client, "POST", "/api/orders", {"id": "o1"}, 201)
    response = await client.post("/api/events", json={"type": "payment.received", "order_id": "o1"})
    assert response.status == 422
    plugins = {p["name"]: p for p in await get(client, "/api/plugins")}
    assert set(plugins) >= BUILT_IN
    assert all(set(p) == PLUGIN_KEYS for p in plugins.values())
    assert plugins["payment"]["enabled"] is False
    assert plugins["payment"]["trigger_types"] == ["payment.received"]
    assert plugins["payment"]["distribution"] == "statusflow"
    assert all(p["enabled"] for name, p in plugins.items() if name != "payment")


async def test_enable_loads_only_the_plugins_named(make_client):
    client = await make_client(enable=("payment",))
    plugins = {p["name"]: p for p in await get(client, "/api/plugins")}
    assert set(plugins) >= BUILT_IN
    assert [name for name, p in plugins.items() if p["enabled"]] == ["payment"]
    # disabled plugins still show their trigger types
    assert all(plugins[name]["trigger_types"] for name in BUILT_IN), plugins
    types = await get(client, "/api/trigger-types")
    assert {t["plugin"] for t in types} == {"payment"}
    other = next(t for name, p in plugins.items() if name != "payment" for t in p["trigger_types"])
    response = await client.post("/api/triggers", json={"type": other, "status": "P"})
    assert response.status == 422
    await send(client, "POST", "/api/triggers", PAID_TRIGGER, 201)


async def test_disable_wins_over_enable(make_client):
    client = await make_client(enable=("payment",), disable=("payment",))
    assert await get(client, "/api/trigger-types") == []
    plugins = await get(client, "/api/plugins")
    assert not any(p["enabled"] for p in plugins)


async def test_trigger_of_a_disabled_plugin_is_kept_inactive_and_ignored(make_client):
    first = await make_client(enable=("payment",))
    await send(first, "POST", "/api/orders", {"id": "o1"}, 201)
    trigger = await send(first, "POST", "/api/triggers", {**PAID_TRIGGER, "name": "paid"}, 201)
    assert trigger["active"] is True and trigger["inactive_reason"] is None
    await first.close()

    # restart on the same database without the payment plugin; another plugin still
    # accepts payment events, so that events can show they ignore the trigger
    second = await make_client(
        disable=("payment",), extra_plugins=[("payment_events", PaymentEvents())]
    )
    stored = await get(second, f"/api/triggers/{trigger['id']}")
    assert stored["active"] is False
    assert isinstance(stored["inactive_reason"], str)
    assert "payment.received" in stored["inactive_reason"]
    assert {k: stored[k] for k in ("type", "status", "name")} == {
        "type": "payment.received",
        "status": "P",
        "name": "paid",
    }
    assert [t["active"] for t in await get(second, "/api/triggers")] == [False]
    result = await send(
        second,
        "POST",
        "/api/events",
        {"id": "e1", "type": "payment.received", "order_id": "o1"},
        200,
    )
    assert result["order_ids"] == ["o1"] and result["moves"] == []
    assert (await get(second, "/api/events/e1"))["trace"] == []
    assert (await get(second, "/api/orders/o1"))["status"] == "N"
    # it may still be renamed, and it still holds its target status
    renamed = await send(second, "PATCH", f"/api/triggers/{trigger['id']}", {"name": "r"}, 200)
    assert renamed["name"] == "r" and renamed["active"] is False
    response = await second.put(
        "/api/statuses",
        json=[
            {"id": "N", "name": "New", "sort": 100, "semantics": "process"},
            {"id": "F", "name": "Completed", "sort": 200, "semantics": "success"},
        ],
    )
    assert response.status == 409
    await second.close()

    # enabled again, it acts again
    third = await make_client(enable=("payment",))
    stored = await get(third, f"/api/triggers/{trigger['id']}")
    assert stored["active"] is True and stored["inactive_reason"] is None
    result = await send(
        third,
        "POST",
        "/api/events",
        {"id": "e2", "type": "payment.received", "order_id": "o1"},
        200,
    )
    assert result["moves"] == [
        {"order_id": "o1", "from": "N", "to": "P", "trigger_id": trigger["id"]}
    ]


async def test_trigger_with_an_operator_no_longer_loaded_is_inactive(make_client):
    condition = {"field": "currency", "op": "startswith", "value": "US"}
    first = await make_client(enable=("payment",), extra_plugins=[("startswith", StartsWith())])
    await send(first, "POST", "/api/orders", {"id": "o1", "currency": "USD"}, 201)
    trigger = await send(
        first, "POST", "/api/triggers", {**PAID_TRIGGER, "conditions": [condition]}, 201
    )
    assert trigger["active"] is True
    await first.close()

    second = await make_client(enable=("payment",))
    stored = await get(second, f"/api/triggers/{trigger['id']}")
    assert stored["active"] is False and "startswith" in stored["inactive_reason"]
    assert stored["conditions"] == [condition]
    result = await send(
        second, "POST", "/api/events", {"type": "payment.received", "order_id": "o1"}, 200
    )
    assert result["moves"] == []
    # a new trigger cannot use the missing operator
    response = await second.post("/api/triggers", json={**PAID_TRIGGER, "conditions": [condition]})
    assert response.status == 422
    await second.close()

    third = await make_client(enable=("payment",), extra_plugins=[("startswith", StartsWith())])
    assert (await get(third, f"/api/triggers/{trigger['id']}"))["active"] is True
    result = await send(
        third, "POST", "/api/events", {"type": "payment.received", "order_id": "o1"}, 200
    )
    assert [m["to"] for m in result["moves"]] == ["P"]


async def test_contract_operators_are_there_whatever_plugins_says(make_client):
    client = await make_client(enable=(), extra_plugins=[("ping", Ping())])
    assert [t["type"] for t in await get(client, "/api/trigger-types")] == ["ping"]
    conditions = [
        {"field": "amount", "op": "eq", "value": 1},
        {"field": "amount", "op": "ne", "value": 2},
        {"field": "amount", "op": "gt", "value": 0},
        {"field": "amount", "op": "gte", "value": 1},
        {"field": "amount", "op": "lt", "value": 2},
        {"field": "amount", "op": "lte", "value": 1},
        {"field": "currency", "op": "in", "value": ["USD"]},
        {"field": "currency", "op": "not_in", "value": ["EUR"]},
        {"field": "currency", "op": "contains", "value": "US"},
        {"field": "responsible_id", "op": "exists", "value": False},
    ]
    await send(client, "POST", "/api/orders", {"id": "o1", "amount": 1, "currency": "USD"}, 201)
    trigger = await send(
        client,
        "POST",
        "/api/triggers",
        {"type": "ping", "status": "P", "conditions": conditions},
        201,
    )
    assert trigger["active"] is True
    result = await send(client, "POST", "/api/events", {"type": "ping", "order_id": "o1"}, 200)
    assert [m["to"] for m in result["moves"]] == ["P"]


async def test_a_third_party_distribution_is_found_through_its_entry_point(
    make_client, distributions
):
    distributions("ping", PING_SOURCE, version="2.5")
    client = await make_client(enable=("payment", "ping"))
    plugins = {p["name"]: p for p in await get(client, "/api/plugins")}
    assert plugins["ping"] == {
        "name": "ping",
        "distribution": "statusflow-ping",
        "version": "2.5",
        "trigger_types": ["ping"],
        "enabled": True,
    }
    types = {t["type"]: t for t in await get(client, "/api/trigger-types")}
    assert types["ping"]["plugin"] == "ping"
    await send(client, "POST", "/api/orders", {"id": "o1"}, 201)
    await send(client, "POST", "/api/triggers", {"type": "ping", "status": "S"}, 201)
    result = await send(client, "POST", "/api/events", {"type": "ping", "order_id": "o1"}, 200)
    assert [m["to"] for m in result["moves"]] == ["S"]


# --- the plugin manager factory -----------------------------------------------------------


def test_each_call_builds_a_fresh_plugin_manager():
    first = make_plugin_manager(enable=("payment",), extra_plugins=[("ping", Ping())])
    second = make_plugin_manager(enable=("payment",))
    assert first is not second
    assert first.get_plugin("ping") is not None and second.get_plugin("ping") is None
    assert "ping" in build_registry(first).trigger_types
    assert "ping" not in build_registry(second).trigger_types


async def test_an_object_named_like_an_installed_plugin_is_refused_never_left_out(
    statusflow_app, distributions
):
    """``("payment", obj)`` was silently not loaded while ``payment`` was installed."""
    taken = (
        "plugin name 'payment' is taken by the installed plugin statusflow "
        f"{version('statusflow')}, so this object cannot have it: register the object "
        "under another name (e.g. "
        "'payment_test'), or uninstall statusflow from this environment"
    )
    for plugins in ([("payment", Ping())], ["payment", ("payment", Ping())]):
        with pytest.raises(StartupError) as caught:
            await statusflow_app(plugins=plugins)
        assert str(caught.value) == taken, plugins
    distributions("ping", PING_SOURCE, version="2.0")
    for enable in ((), ("ping",), None):
        with pytest.raises(
            StartupError, match=r"taken by the installed plugin statusflow-ping 2\.0"
        ):
            make_plugin_manager(enable=enable, extra_plugins=[("ping", Ping())])
    # the kernel's own names, and one name for two objects
    with pytest.raises(StartupError, match=r"'statusflow\.sinks' is the kernel's own"):
        make_plugin_manager(enable=(), extra_plugins=[("statusflow.sinks", Ping())])
    with pytest.raises(StartupError, match="'twice' is given to two plugin objects"):
        make_plugin_manager(enable=(), extra_plugins=[("twice", Ping()), ("twice", PingCopy())])
    # under a free name, it loads
    sf = await statusflow_app(plugins=["payment", ("ping_test", Ping())])
    types = {t["type"]: t["plugin"] for t in await sf.call("GET", "/api/trigger-types")}
    assert types == {"payment.received": "payment", "ping": "ping_test"}


def test_an_unknown_hook_stops_start_up_naming_plugin_and_hook(distributions):
    with pytest.raises(StartupError) as caught:
        make_plugin_manager(enable=(), extra_plugins=[("widgets_plugin", UnknownHook())])
    assert "widgets_plugin" in str(caught.value) and "register_widgets" in str(caught.value)
    # the same through an entry point
    distributions("widgets", UNKNOWN_HOOK_SOURCE)
    with pytest.raises(StartupError) as caught:
        make_plugin_manager(enable=("widgets",))
    assert "'widgets'" in str(caught.value) and "register_widgets" in str(caught.value)
    # and from init_app, before anything touches a database
    settings = settings_for("sqlite:////nonexistent/dir/x.db", enable=("widgets",))
    with pytest.raises(StartupError, match="widgets"):
        init_app(settings)
    # a disabled plugin is never loaded, so it cannot stop start-up
    make_plugin_manager(
        disable=("widgets_plugin", "widgets"), extra_plugins=[("widgets_plugin", UnknownHook())]
    )
    make_plugin_manager(enable=("payment", "widgets"), disable=("widgets",))


def test_a_wrong_hook_argument_stops_start_up(distributions):
    with pytest.raises(StartupError) as caught:
        make_plugin_manager(enable=(), extra_plugins=[("bad_args", WrongArgument())])
    assert "bad_args" in str(caught.value) and "registr" in str(caught.value)
    distributions("badargs", WRONG_ARGUMENT_SOURCE)
    with pytest.raises(StartupError) as caught:
        make_plugin_manager(enable=("badargs",))
    assert "badargs" in str(caught.value) and "registr" in str(caught.value)


def test_a_duplicate_trigger_type_stops_start_up_naming_both():
    pm = make_plugin_manager(
        enable=(), extra_plugins=[("ping_one", Ping()), ("ping_two", PingCopy())]
    )
    with pytest.raises(StartupError) as caught:
        build_registry(pm)
    message = str(caught.value)
    assert "'ping'" in message and "ping_one" in message and "ping_two" in message
    # against a built-in plugin too
    pm = make_plugin_manager(enable=("payment",), extra_plugins=[("copycat", PaymentCopy())])
    with pytest.raises(StartupError) as caught:
        build_registry(pm)
    message = str(caught.value)
    assert "payment.received" in message and "'payment'" in message and "copycat" in message
    # and init_app refuses to build the application
    with pytest.raises(StartupError, match="copycat"):
        init_app(
            settings_for("sqlite:////nonexistent/dir/x.db", enable=("payment",)),
            extra_plugins=[("copycat", PaymentCopy())],
        )


def test_other_duplicates_and_invalid_schemas_stop_start_up():
    class TwoPings:
        @hookimpl
        def register_event_types(self, register):
            register(EventType("ping", "Ping"))

    class SecondEq:
        @hookimpl
        def register_condition_operators(self, register):
            register(ConditionOperator("eq", lambda a, e: True))

    class BadSchema:
        @hookimpl
        def register_event_types(self, register):
            register(EventType("odd", "Odd"))

        @hookimpl
        def register_trigger_types(self, register):
            register(TriggerType("odd", "Odd", ("odd",), settings_schema={"type": "nonsense"}))

    cases = [
        ([("ping", Ping()), ("two_pings", TwoPings())], ["ping", "two_pings"]),
        ([("second_eq", SecondEq())], ["eq", "statusflow.conditions", "second_eq"]),
        ([("bad_schema", BadSchema())], ["bad_schema", "odd"]),
    ]
    for extra, names in cases:
        with pytest.raises(StartupError) as caught:
            build_registry(make_plugin_manager(enable=(), extra_plugins=extra))
        assert all(name in str(caught.value) for name in names), (names, str(caught.value))


def test_a_plugin_that_cannot_be_imported_stops_start_up(distributions):
    distributions("broken", "import this_module_does_not_exist_anywhere\n")
    with pytest.raises(StartupError, match="broken"):
        make_plugin_manager(enable=("broken", "payment"))
    # listing plugins still works, and shows it with no trigger types
    infos = {i.name: i for i in list_plugins(enable=("payment",))}
    assert infos["broken"].trigger_types == () and infos["broken"].enabled is False
    assert infos["payment"].trigger_types == ("payment.received",)


# --- the command line -----------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STATUSFLOW_CONFIG", "STATUSFLOW_DATABASE_URL", "PYTHONPATH")
    }
    env.update(extra)
    return env


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def _run_all(commands: list[tuple[list[str], dict[str, str]]], cwd: Path) -> list[Any]:
    """Run the commands at once (each start costs about a second), in order of the list."""
    processes = [
        subprocess.Popen(
            [str(STATUSFLOW), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args, env in commands
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        results.append((process.returncode, stdout, stderr))
    return results


def test_plugins_command(tmp_path, distributions):
    disable = _write(tmp_path / "disable.toml", '[plugins]\ndisable = ["payment"]\n')
    enable = _write(tmp_path / "enable.toml", '[plugins]\nenable = ["payment"]\n')
    site = distributions("ping", PING_SOURCE, version="3.1")
    results = _run_all(
        [
            (["plugins", "--json", "--config", str(disable)], _env()),
            (["plugins", "--json"], _env(STATUSFLOW_CONFIG=str(enable))),
            # --config wins over STATUSFLOW_CONFIG
            (["plugins", "--json", "--config", str(disable)], _env(STATUSFLOW_CONFIG=str(enable))),
            (["plugins", "--json"], _env(PYTHONPATH=str(site))),
            (["plugins", "--config", str(enable)], _env()),
        ],
        tmp_path,
    )
    for code, _stdout, stderr in results:
        assert code == 0, stderr
    listings = [{p["name"]: p for p in json.loads(stdout)} for _, stdout, _ in results[:4]]
    for listing in listings:
        assert set(listing) >= BUILT_IN
        assert all(set(p) == PLUGIN_KEYS for p in listing.values())
        assert listing["payment"]["trigger_types"] == ["payment.received"]
        assert listing["payment"]["distribution"] == "statusflow"
    disabled, enabled, both, third_party = listings
    assert disabled["payment"]["enabled"] is False
    assert all(p["enabled"] for name, p in disabled.items() if name != "payment")
    assert [name for name, p in enabled.items() if p["enabled"]] == ["payment"]
    assert both["payment"]["enabled"] is False
    assert third_party["ping"] == {
        "name": "ping",
        "distribution": "statusflow-ping",
        "version": "3.1",
        "trigger_types": ["ping"],
        "enabled": True,
    }
    assert "ping" not in disabled
    # the human listing: one line per plugin with its state and trigger types
    lines = results[4][1].splitlines()
    assert len(lines) >= len(BUILT_IN)
    payment = next(line for line in lines if line.split()[0] == "payment")
    assert "enabled" in payment.split() and "payment.received" in payment
    for line in lines:
        if line.split()[0] != "payment":
            assert "disabled" in line.split(), line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http(method: str, url: str, body: Any = None, timeout: float = 5) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Server:
    """``statusflow serve`` as a real process, its output in files."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.log = cwd / f"serve-{uuid.uuid4().hex[:6]}.log"
        self._out = self.log.open("w")
        self.process = subprocess.Popen(
            [str(STATUSFLOW), "serve", *args],
            env=env,
            cwd=cwd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, base: str, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}: {self.output()}")
            try:
                if _http("GET", f"{base}/healthz", timeout=1) == (200, {"status": "ok"}):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"serve did not answer /healthz in {timeout}s: {self.output()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._out.close()
        return code

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text()[-3000:]


def _orders_in(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status FROM orders ORDER BY id").fetchall()


def test_serve_starts_answers_and_stops_on_sigterm(tmp_path):
    file_db = tmp_path / "from-file.db"
    env_db = tmp_path / "from-env.db"
    port, other_port = _free_port(), _free_port()
    config = _write(
        tmp_path / "statusflow.toml",
        f"""
        database_url = "sqlite:///{file_db}"
        [server]
        host = "192.0.2.1"
        port = {other_port}
        [plugins]
        enable = ["payment"]
        """,
    )
    base = f"http://127.0.0.1:{port}"

    # the file's database; --host and --port override the file's (unreachable) address
    server = Server(
        ["--config", str(config), "--host", "127.0.0.1", "--port", str(port)], _env(), tmp_path
    )
    try:
        server.wait_healthy(base)
        assert _http("POST", f"{base}/api/orders", {"id": "o1"})[0] == 201
        status, statuses = _http("GET", f"{base}/api/statuses")
        assert status == 200 and [s["id"] for s in statuses] == ["N", "P", "S", "F", "D"]
    finally:
        code = server.stop()
    assert code == 0, server.output()
    assert _orders_in(file_db) == [("o1", "N")]

    # STATUSFLOW_DATABASE_URL overrides the file; the config comes from STATUSFLOW_CONFIG
    server = Server(
        ["--host", "127.0.0.1", "--port", str(port)],
        _env(STATUSFLOW_CONFIG=str(config), STATUSFLOW_DATABASE_URL=f"sqlite:///{env_db}"),
        tmp_path,
    )
    try:
        server.wait_healthy(base)
        assert _http("POST", f"{base}/api/orders", {"id": "o2"})[0] == 201
        assert _http("GET", f"{base}/api/orders/o1")[0] == 404
    finally:
        code = server.stop()
    assert code == 0, server.output()
    assert _orders_in(env_db) == [("o2", "N")]
    assert _orders_in(file_db) == [("o1", "N")]


def test_serve_refuses_a_bad_configuration_quickly(tmp_path, distributions):
    port = str(_free_port())
    cases = {
        "unknown_key": ("[server]\nbogus_key = 1\n", ["bogus_key"]),
        "unknown_top_level_key": ('databse_url = "sqlite:///x.db"\n', ["databse_url"]),
        "unknown_section": ("[logging]\nlevel = 'debug'\n", ["logging"]),
        "wrong_type": ('[server]\nport = "8080"\n', ["port"]),
        "wrong_list": ('[plugins]\ndisable = "payment"\n', ["disable"]),
        "wrong_token_type": ("[auth]\ntokens = [1]\n", ["tokens"]),
        "not_toml": ("[server\nport = 1\n", ["toml"]),
        "unsupported_database": ('database_url = "mysql://x"\n', ["database_url", "mysql"]),
        "not_a_database_url": ('database_url = "not a url"\n', ["database_url"]),
        "unknown_region": ('[phones]\ndefault_region = "XX"\n', ["default_region", "XX"]),
        "unopenable_sqlite": (
            f'database_url = "sqlite:///{tmp_path}/no/such/dir/x.db"\n',
            ["cannot open the database", "folder does not exist"],
        ),
        "unreachable_postgresql": (
            f'database_url = "postgresql://postgres@127.0.0.1:{_free_port()}/x"\n',
            ["cannot open the database", "refused"],
        ),
    }
    commands = []
    for name, (text, _) in cases.items():
        path = _write(tmp_path / f"{name}.toml", text)
        commands.append((["serve", "--config", str(path), "--port", port], _env()))
    commands.append((["serve", "--config", str(tmp_path / "missing.toml"), "--port", port], _env()))
    commands.append((["plugins", "--config", str(tmp_path / "unknown_key.toml")], _env()))
    unopenable = str(tmp_path / "unopenable_sqlite.toml")
    commands.append((["migrate", "--config", unopenable], _env()))
    taken = socket.create_server(("127.0.0.1", 0))  # a port something else listens on
    taken_port = str(taken.getsockname()[1])
    listen = [["--port", taken_port, "--workers", "1"], ["--port", taken_port, "--workers", "2"]]
    for index, options in enumerate([*listen, ["--host", "999.1.1.1"]]):
        ok_db = _write(
            tmp_path / f"ok{index}.toml", f'database_url = "sqlite:///{tmp_path}/ok{index}.db"\n'
        )
        commands.append((["serve", "--config", str(ok_db), *options], _env()))
    # a plugin that implements an unknown hook stops serve too, naming it
    site = distributions("widgets", UNKNOWN_HOOK_SOURCE)
    db = tmp_path / "never.db"
    plugin_config = _write(
        tmp_path / "widgets.toml",
        f'database_url = "sqlite:///{db}"\n[plugins]\nenable = ["payment", "widgets"]\n',
    )
    commands.append(
        (["serve", "--config", str(plugin_config), "--port", port], _env(PYTHONPATH=str(site)))
    )
    try:
        results = _run_all(commands, tmp_path)  # each has a timeout: a hang fails the test
    finally:
        taken.close()
    expected = [needles for _, needles in cases.values()]
    expected += [["missing.toml"], ["bogus_key"], ["cannot open the database"]]
    expected += [["cannot listen on", taken_port]] * 2 + [["cannot listen on", "999.1.1.1"]]
    expected += [["widgets", "register_widgets"]]
    for (code, _stdout, stderr), needles, (args, _) in zip(
        results, expected, commands, strict=True
    ):
        assert code != 0, (args, stderr)
        assert "Traceback" not in stderr, (args, stderr)  # one clear line, not a crash
        for needle in needles:
            assert needle.lower() in stderr.lower(), (args, needle, stderr)
    assert not db.exists()


def test_a_plugin_named_in_the_configuration_but_not_installed_stops_start_up(tmp_path):
    """A typo in ``[plugins]`` must not leave a plugin on (or off) without a word."""
    typos = {
        "enable": '[plugins]\nenable = ["payment", "emial"]\n',
        "disable": '[plugins]\ndisable = ["visits", "paymnt"]\n',
        "far": '[plugins]\ndisable = ["zzzzzz"]\n',
    }
    commands = []
    for name, text in typos.items():
        config = _write(
            tmp_path / f"{name}.toml", f'database_url = "sqlite:///{tmp_path}/{name}.db"\n' + text
        )
        commands += [(["migrate", "--config", str(config)], _env())]
        commands += [(["serve", "--config", str(config), "--port", "0"], _env())]
    clean = _write(
        tmp_path / "clean.toml",
        f'database_url = "sqlite:///{tmp_path}/clean.db"\n[plugins]\ndisable = ["visits"]\n',
    )
    commands.append((["migrate", "--config", str(clean)], _env()))
    *refused, clean_run = _run_all(commands, tmp_path)
    expected = [
        "[plugins] enable: unknown plugin(s) 'emial' (did you mean 'email'?)",
        "[plugins] disable: unknown plugin(s) 'paymnt' (did you mean 'payment'?)",
        "[plugins] disable: unknown plugin(s) 'zzzzzz'; installed: ",
    ]
    for (code, _out, err), needle in zip(
        refused, [n for n in expected for _ in (1, 2)], strict=True
    ):
        assert code == 2, err
        assert needle in err and "Traceback" not in err, err
        assert len([line for line in err.splitlines() if "startup.failed" in line]) == 1, err
        assert "calls" in err.split("installed: ")[1]  # the installed names are listed
    assert not any((tmp_path / f"{name}.db").exists() for name in typos)  # nothing was done
    assert clean_run[0] == 0, clean_run[2]
    # the same from the factory: nothing is loaded
    with pytest.raises(StartupError, match="did you mean 'payment'"):
        make_plugin_manager(enable=("paymet",))
    make_plugin_manager(enable=("ping",), extra_plugins=[("ping", Ping())])  # a given name


# --- what a plugin author gets wrong is said clearly -------------------------------------


class Answers:
    """Trigger types whose ``match`` answers a bool, or something that is no answer."""

    @hookimpl
    def register_event_types(self, register):
        register(EventType("ping", "Ping"))

    @hookimpl
    def register_trigger_types(self, register):
        register(TriggerType("ping.yes", "Yes", ("ping",), match=lambda s, e: True))
        register(TriggerType("ping.no", "No", ("ping",), match=lambda s, e: False))
        register(TriggerType("ping.odd", "Odd", ("ping",), match=lambda s, e: "yes"))


async def test_a_match_answering_a_bool_works_and_any_other_answer_is_the_plugins_failure(
    make_client,
):
    client = await make_client(enable=(), extra_plugins=[("answers", Answers())])
    await send(client, "POST", "/api/orders", {"id": "o1"}, 201)
    ids = {}
    for kind, status in (("no", "P"), ("odd", "S"), ("yes", "F")):
        trigger = await send(
            client, "POST", "/api/triggers", {"type": f"ping.{kind}", "status": status}, 201
        )
        ids[kind] = trigger["id"]
    for dry_run in ("true", "false"):
        result = await send(
            client,
            "POST",
            f"/api/events?dry_run={dry_run}",
            {"type": "ping", "order_id": "o1"},
            200,
        )
        assert [(m["to"], m["trigger_id"]) for m in result["moves"]] == [("F", ids["yes"])]
    stored = await get(client, f"/api/events/{result['event_id']}")
    reasons = {t["trigger_id"]: t["reason"] for t in stored["trace"]}
    assert reasons[ids["no"]].startswith("settings do not match")
    assert "'answers' failed to match" in reasons[ids["odd"]] and "str" in reasons[ids["odd"]]


class BadDataSchema:
    @hookimpl
    def register_event_types(self, register):
        register(EventType("ping", "Ping", data_schema={"type": "objekt"}))


class BadValueSchema:
    @hookimpl
    def register_condition_operators(self, register):
        register(ConditionOperator("near", lambda a, e: a == e, {"type": "nummer"}))


class AsyncRegistration:
    @hookimpl
    async def register_event_types(self, register):
        register(EventType("ping", "Ping"))


def test_invalid_schemas_and_async_registration_stop_start_up_naming_the_plugin():
    cases = [
        ("bad_data", BadDataSchema(), ["'bad_data'", "data schema", "'ping'"]),
        ("bad_value", BadValueSchema(), ["'bad_value'", "value schema", "'near'"]),
        ("async_reg", AsyncRegistration(), ["'async_reg'", "register_event_types", "async"]),
    ]
    for name, plugin, needles in cases:
        with pytest.raises(StartupError) as caught:  # async: as the manager is made
            build_registry(make_plugin_manager(enable=(), extra_plugins=[(name, plugin)]))
        for needle in needles:
            assert needle in str(caught.value), (name, str(caught.value))


def test_trace_plugins_logs_the_calls_the_kernel_makes_itself(tmp_path):
    """``STATUSFLOW_TRACE_PLUGINS=1``: the event path's hooks, called implementation by
    implementation, are logged like those pluggy calls."""
    port = _free_port()
    config = _write(
        tmp_path / "trace.toml",
        f'database_url = "sqlite:///{tmp_path}/trace.db"\n'
        '[plugins]\nenable = ["payment", "chat"]\n',
    )
    env = _env(STATUSFLOW_TRACE_PLUGINS="1", STATUSFLOW_LOG_LEVEL="debug")
    server = Server(["--config", str(config), "--port", str(port)], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        server.wait_healthy(base)
        assert _http("POST", f"{base}/api/orders", {"id": "o1"})[0] == 201
        trigger = {"type": "payment.received", "status": "P"}
        assert _http("POST", f"{base}/api/triggers", trigger)[0] == 201
        event = {"type": "payment.received", "order_id": "o1"}
        assert _http("POST", f"{base}/api/events", event)[0] == 200
    finally:
        assert server.stop() == 0
    calls = {
        line.split("hook=")[1].split()[0].strip("'")
        for line in server.log.read_text().splitlines()
        if "hook.call" in line
    }
    assert {"register_event_types", "inspect_event", "prepare_moves", "moves_committed"} <= calls


def test_a_settings_table_for_a_plugin_that_takes_none_is_warned_about(capfd):
    from statusflow.serving.plugin_settings import plugin_settings

    pm = make_plugin_manager(enable=("payment", "outgoing_webhooks"))
    capfd.readouterr()
    tables = {"payment": {"currency": "EUR"}, "outgoing_webhooks": {"batch_size": 10}}
    assert plugin_settings(pm, tables)["payment"] == {"currency": "EUR"}
    unused = [line for line in capfd.readouterr().out.splitlines() if "settings_unused" in line]
    assert len(unused) == 1 and "payment" in unused[0] and "no settings" in unused[0], unused
