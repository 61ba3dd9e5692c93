"""Hooks are called the pluggy way (contract §6), by one runner (``statusflow.hooks``).

A real distribution written as pluggy's docs teach (``tests/pluggy_way``: a marker of
its own, implementations taking subsets of their arguments, ``tryfirst``/``trylast``, a
class entry point) is pip-installed and run through real apps. Wrappers stop start-up;
a plugin's failure in one hook is its own; ``STATUSFLOW_TRACE_PLUGINS`` logs every call
through pluggy's hook-call monitoring.
"""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pluggy
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from statusflow import Event, Outcome, StartupError, hookimpl, hooks, hookspecs
from statusflow.http import init_app
from statusflow.http.keys import PLUGIN_MANAGER
from statusflow.plugins.outgoing_webhooks import OutgoingWebhooks
from statusflow.registry import make_plugin_manager
from statusflow.testing import settings_for
from tests.helpers import pip_install_copy

DISTRIBUTION = Path(__file__).resolve().parent / "pluggy_way"
PLUGINS = ["pw_a_first", "pw_app", "pw_b_plain", "pw_z_last"]
PING = "pluggy.ping"


@pytest.fixture(scope="module")
def pluggy_way_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --no-deps --target SITE tests/pluggy_way``: the SITE."""
    return pip_install_copy(DISTRIBUTION, tmp_path_factory.mktemp("pluggy-way"))


@pytest.fixture
def pluggy_way(pluggy_way_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The installed distribution on ``sys.path``: its four entry points are found."""
    monkeypatch.syspath_prepend(str(pluggy_way_site))
    yield pluggy_way_site
    for name in [m for m in sys.modules if m.split(".")[0] == "statusflow_pluggy_way"]:
        sys.modules.pop(name, None)


async def json_of(sf: Any, path: str) -> Any:
    response = await sf.client.get(path)
    assert response.status == 200, await response.text()
    return await response.json()


# --- a distribution written the pluggy way ------------------------------------------------


async def test_a_plugin_written_the_pluggy_way_starts_serves_and_runs_in_pluggys_order(
    statusflow_app, pluggy_way
):
    config = {"plugins": {"pw_app": {"label": "app, from its settings"}}}
    with capture_logs() as logs:
        sf = await statusflow_app(plugins=PLUGINS, config=config)
    assert {"event": "pluggy_way.started", "log_level": "info"} in logs  # def startup(): ...
    # def register_routes(register): ... (a module) and (self, register) (an object)
    assert await json_of(sf, "/sources/pluggy-way/hello") == {"hello": "pluggy"}
    assert await json_of(sf, "/sources/pluggy-way") == {"started": 1, "orders": []}
    await sf.create_order("o1")
    await sf.create_trigger(PING, "P")
    result = await sf.post_event(type=PING, order_id="o1")
    assert [move["to"] for move in result["moves"]] == ["P"]
    # registered pw_a_first, pw_app, pw_b_plain, pw_z_last: tryfirst first, trylast last,
    # otherwise the last registered first; pw_app read its label at event time
    seen = await json_of(sf, "/sources/pluggy-way")
    assert seen["orders"] == [["pw_a_first", "pw_b_plain", "app, from its settings", "pw_z_last"]]


async def test_a_class_entry_point_gets_one_object_per_app(statusflow_app, pluggy_way):
    from statusflow_pluggy_way.app import PluggyWay

    first = await statusflow_app(plugins=PLUGINS)
    second = await statusflow_app(plugins=PLUGINS)
    objects = [sf.app[PLUGIN_MANAGER].get_plugin("pw_app") for sf in (first, second)]
    assert all(type(plugin) is PluggyWay for plugin in objects)
    assert objects[0] is not objects[1]
    assert [plugin.started for plugin in objects] == [1, 1]
    await first.create_order("o1")
    await first.create_trigger(PING, "P")
    await first.post_event(type=PING, order_id="o1")
    assert len((await json_of(first, "/sources/pluggy-way"))["orders"]) == 1
    assert (await json_of(second, "/sources/pluggy-way"))["orders"] == []


def test_the_built_in_outgoing_webhooks_plugin_is_a_class_made_per_plugin_manager():
    managers = [make_plugin_manager(enable=("outgoing_webhooks",)) for _ in range(2)]
    objects = [pm.get_plugin("outgoing_webhooks") for pm in managers]
    assert all(isinstance(plugin, OutgoingWebhooks) for plugin in objects)
    assert objects[0] is not objects[1]


# --- pluggy's order and arguments, compared with pluggy itself ---------------------------


class Recorder:
    """Notes ``(name, hook)`` in a shared list; ``tryfirst``/``trylast`` per instance."""

    def __init__(self, calls: list[tuple[str, str]], name: str) -> None:
        self.calls = calls
        self.name = name

    @hookimpl
    def prepare_moves(self, outcome: Outcome) -> None:
        self.calls.append((self.name, "prepare_moves"))


class First(Recorder):
    @hookimpl(tryfirst=True)
    def prepare_moves(self, outcome: Outcome) -> None:
        self.calls.append((self.name, "prepare_moves"))


class Last(Recorder):
    @hookimpl(trylast=True)
    def prepare_moves(self, outcome: Outcome) -> None:
        self.calls.append((self.name, "prepare_moves"))


def test_the_runner_calls_implementations_in_the_order_pluggy_does():
    calls: list[tuple[str, str]] = []
    plugins = [
        ("last", Last(calls, "last")),
        ("one", Recorder(calls, "one")),
        ("first", First(calls, "first")),
        ("two", Recorder(calls, "two")),
    ]
    pm = pluggy.PluginManager("statusflow")
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    kwargs = {"outcome": None, "tx": None, "kernel": None}
    pm.hook.prepare_moves(**kwargs)
    by_pluggy = [name for name, _ in calls]
    calls.clear()
    hooks.runner(pm).call("prepare_moves", kwargs, pytest.fail)
    by_runner = [name for name, _ in calls]
    assert by_runner == by_pluggy == ["first", "two", "one", "last"]


# --- what the runner refuses at start-up --------------------------------------------------


class Wrapper:
    @hookimpl(wrapper=True)
    def inspect_event(self, event: Event) -> Any:
        return (yield)


class OldStyleWrapper:
    @hookimpl(hookwrapper=True)
    def moves_committed(self) -> Any:
        yield


class AsyncPreparer:
    @hookimpl
    async def prepare_moves(self, outcome: Outcome) -> None:
        pass


class FailingStartup:
    @hookimpl
    def startup(self) -> None:
        raise RuntimeError("no licence key")


async def test_wrappers_and_async_plain_hooks_stop_start_up(statusflow_app):
    cases = [
        ("wrapper", Wrapper(), ["'wrapper'", "inspect_event", "wrapper"]),
        ("old_wrapper", OldStyleWrapper(), ["'old_wrapper'", "moves_committed", "wrapper"]),
        ("async_sink", AsyncPreparer(), ["'async_sink'", "prepare_moves", "not async"]),
    ]
    for name, plugin, needles in cases:
        with pytest.raises(StartupError) as caught:
            await statusflow_app(plugins=["payment", (name, plugin)])
        for needle in needles:
            assert needle in str(caught.value), (name, str(caught.value))


async def test_a_failing_startup_stops_start_up_naming_the_plugin(sqlite_url):
    settings = settings_for(sqlite_url, enable=("payment",))
    client = TestClient(TestServer(init_app(settings, [("no_licence", FailingStartup())])))
    try:
        with pytest.raises(StartupError, match="plugin 'no_licence' failed in startup: no licence"):
            await client.start_server()
    finally:
        await client.close()


# --- a plugin's failure is its own --------------------------------------------------------


class Witness:
    """Notes each call in a shared list; answers an event for each order change."""

    def __init__(self, calls: list[tuple[str, str]]) -> None:
        self.calls = calls

    @hookimpl
    def inspect_event(self) -> None:
        self.calls.append(("witness", "inspect_event"))

    @hookimpl
    async def moves_committed(self) -> None:
        self.calls.append(("witness", "moves_committed"))

    @hookimpl
    def events_from_order_change(self) -> list[dict[str, Any]]:
        self.calls.append(("witness", "events_from_order_change"))
        return [{"type": "payment.received"}]

    @hookimpl
    def shutdown(self) -> None:
        self.calls.append(("witness", "shutdown"))


class Broken:
    """Fails in every hook it implements, after noting the call."""

    def __init__(self, calls: list[tuple[str, str]]) -> None:
        self.calls = calls

    def _fail(self, hook: str) -> None:
        self.calls.append(("broken", hook))
        raise RuntimeError(f"broken in {hook}")

    @hookimpl
    def inspect_event(self) -> None:
        self._fail("inspect_event")

    @hookimpl
    def moves_committed(self) -> None:
        self._fail("moves_committed")

    @hookimpl
    def events_from_order_change(self) -> None:
        self._fail("events_from_order_change")

    @hookimpl
    async def shutdown(self) -> None:
        self._fail("shutdown")


def errors_of(plugin: str, hook: str) -> float:
    labels = {"plugin": plugin, "hook": hook}
    return REGISTRY.get_sample_value("statusflow_plugin_errors_total", labels) or 0.0


async def test_a_failing_implementation_is_pinned_to_its_plugin_and_the_others_still_run(
    statusflow_app,
):
    calls: list[tuple[str, str]] = []
    hooks_ = ("inspect_event", "moves_committed", "events_from_order_change", "shutdown")
    before = {hook: errors_of("broken", hook) for hook in hooks_}
    # broken is registered last, so it runs first: the witness runs after each failure
    sf = await statusflow_app(
        plugins=["payment", ("witness", Witness(calls)), ("broken", Broken(calls))]
    )
    await sf.create_order("o1")
    await sf.create_trigger("payment.received", "P")
    with capture_logs() as logs:
        result = await sf.post_event(id="e1", type="payment.received", order_id="o1")
    assert [move["to"] for move in result["moves"]] == ["P"]
    assert calls == [
        ("broken", "inspect_event"),
        ("witness", "inspect_event"),
        ("broken", "moves_committed"),
        ("witness", "moves_committed"),
    ]
    failures = {(e["event"], e["plugin"]) for e in logs if e.get("log_level") == "error"}
    assert failures == {("plugin.inspect_failed", "broken"), ("plugin.sink_failed", "broken")}
    # an order change: the witness's event is processed, the broken plugin's failure logged
    await sf.create_order("o2")
    calls.clear()
    patched = await sf.call("PATCH", "/api/orders/o2", {"amount": 10})
    assert patched["status"] == "P"
    assert calls[:2] == [
        ("broken", "events_from_order_change"),
        ("witness", "events_from_order_change"),
    ]
    calls.clear()
    await sf.close()
    assert calls == [("broken", "shutdown"), ("witness", "shutdown")]
    after = {hook: errors_of("broken", hook) for hook in hooks_}
    assert {hook: after[hook] - before[hook] for hook in hooks_} == {
        "inspect_event": 2,  # e1, and the event made from the order change
        "moves_committed": 2,
        "events_from_order_change": 1,
        "shutdown": 1,
    }


# --- tracing through pluggy's hook-call monitoring ----------------------------------------


class Monitor:
    """A pluggy hook-call monitor: ``(hook, plugins)`` of every call it sees."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[str, ...]]] = []

    def before(
        self, hook: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        self.seen.append((hook, tuple(impl.plugin_name for impl in impls)))

    def after(self, *args: Any) -> None:
        pass


async def test_trace_plugins_logs_every_call_through_pluggys_monitoring(
    statusflow_app, monkeypatch
):
    calls: list[tuple[str, str]] = []
    monkeypatch.setenv("STATUSFLOW_TRACE_PLUGINS", "1")
    with capture_logs() as logs:
        sf = await statusflow_app(plugins=["payment", ("witness", Witness(calls))])
    traced = {(e["hook"], e["plugin"]) for e in logs if e["event"] == "hook.call"}
    assert ("register_event_types", "payment") in traced
    assert ("register_condition_operators", "statusflow.conditions") in traced
    monitor = Monitor()
    sf.app[PLUGIN_MANAGER].add_hookcall_monitoring(monitor.before, monitor.after)
    await sf.create_order("o1")
    await sf.create_trigger("payment.received", "P")
    with capture_logs() as logs:
        await sf.post_event(type="payment.received", order_id="o1")
    traced = {(e["hook"], e["plugin"]) for e in logs if e["event"] == "hook.call"}
    expected = {
        ("inspect_event", "witness"),
        ("prepare_moves", "statusflow.sinks"),
        ("moves_committed", "statusflow.sinks"),
        ("moves_committed", "witness"),
    }
    assert expected <= traced
    assert expected <= {(hook, plugin) for hook, (plugin,) in monitor.seen}


async def test_without_tracing_the_runner_calls_implementations_directly(statusflow_app):
    calls: list[tuple[str, str]] = []
    sf = await statusflow_app(plugins=["payment", ("witness", Witness(calls))])
    monitor = Monitor()
    sf.app[PLUGIN_MANAGER].add_hookcall_monitoring(monitor.before, monitor.after)
    await sf.create_order("o1")
    await sf.post_event(type="payment.received", order_id="o1")
    assert ("witness", "inspect_event") in calls
    assert monitor.seen == []  # the fast path: no pluggy hook caller in between


def test_the_plan_is_made_once_per_plugin_manager():
    pm = make_plugin_manager(enable=("payment", "chat", "visits"))
    runner = hooks.runner(pm)
    assert hooks.runner(pm) is runner
    plan = runner.plan("inspect_event")
    assert runner.plan("inspect_event") is plan
    assert [impl.plugin_name for impl in plan] == ["visits", "chat"]  # registered: chat, visits


def test_a_runner_does_not_keep_its_plugin_manager_alive(monkeypatch):
    for traced in ("", "1"):
        monkeypatch.setenv("STATUSFLOW_TRACE_PLUGINS", traced)
        pm = make_plugin_manager(enable=("payment", "chat"))
        assert hooks.runner(pm).plan("inspect_event")
        gone = weakref.ref(pm)
        del pm
        gc.collect()
        assert gone() is None, f"STATUSFLOW_TRACE_PLUGINS={traced!r}"
