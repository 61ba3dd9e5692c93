"""Plugins that come and go: their triggers stay stored, inactive, and act again on return.

The plugin is the real third-party distribution ``contrib/statusflow-reviews`` (trigger
types ``review.negative``/``review.positive``, the condition operator ``matches``, a
table of its own), pip-installed into a throwaway folder:

* *disabled* in the configuration: an app in this process, with that folder first on
  ``sys.path``;
* *uninstalled*: ``statusflow serve`` in a fresh virtual environment that has everything
  this one has except ``statusflow-reviews`` (so the test holds where ``make test``
  installed it too), started on one SQLite database with the folder on ``PYTHONPATH``,
  restarted without it, then with it again.

While a plugin is away its triggers are listed with ``"active": false`` and a reason,
events ignore them (and their traces do not list them), the server starts and serves
normally, and nothing answers a 500.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from statusflow import ConditionOperator, EventType, TriggerType, hookimpl
from tests.helpers import pip_install_copy
from tests.processes import Serve, clean_env

ROOT = Path(__file__).resolve().parents[1]
REVIEWS = ROOT / "contrib" / "statusflow-reviews"
PIPELINE = [
    {"id": "N", "name": "New", "sort": 100, "semantics": "process"},
    {"id": "P", "name": "Paid", "sort": 150, "semantics": "process"},
    {"id": "S", "name": "Shipped", "sort": 175, "semantics": "process"},
    {"id": "F", "name": "Completed", "sort": 200, "semantics": "success"},
    {"id": "D", "name": "Canceled", "sort": 250, "semantics": "failure"},
    {"id": "A", "name": "Needs attention", "sort": 300, "semantics": "process"},
]
NEGATIVE = {"type": "review.negative", "status": "A", "name": "unhappy"}
BY_CARD = [{"field": "event.method", "op": "matches", "value": "^(card|apple_pay)$"}]
PICKY = {"type": "payment.received", "status": "P", "conditions": BY_CARD}
PLAIN = {"type": "payment.received", "status": "S"}
NOT_LOADED_TYPE = "trigger type 'review.negative' is not provided by any loaded plugin"
NOT_LOADED_OP = "condition operator 'matches' is not provided by any loaded plugin"


def review(order_id: str, rating: int, **extra: Any) -> dict[str, Any]:
    return {"type": "review.posted", "order_id": order_id, "data": {"rating": rating}, **extra}


def payment(order_id: str, method: str = "card", **extra: Any) -> dict[str, Any]:
    data = {"amount": 10, "method": method}
    return {"type": "payment.received", "order_id": order_id, "data": data, **extra}


@pytest.fixture(scope="module")
def reviews_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --no-deps --target SITE ./contrib/statusflow-reviews``: the SITE."""
    site = pip_install_copy(REVIEWS, tmp_path_factory.mktemp("reviews"))
    assert (site / "statusflow_reviews" / "migrations" / "reviews_0001_moves.py").is_file()
    return site


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a fresh virtual environment without statusflow-reviews.

    Every other entry of this environment's site-packages is linked into it (statusflow,
    its dependencies, the other plugins), so that it starts in a moment, offline.
    """
    root = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    target = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    target.mkdir(parents=True, exist_ok=True)
    sources = {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
    for source in sorted(sources):
        for entry in sorted(source.iterdir()):
            if entry.name.lower().startswith("statusflow_reviews"):
                continue
            link = target / entry.name
            if not link.exists():
                link.symlink_to(entry, target_is_directory=entry.is_dir())
    return python


@pytest.fixture
def reviews_on_path(reviews_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The pip-installed copy first on ``sys.path``: its entry point is the one found."""
    monkeypatch.syspath_prepend(str(reviews_site))
    yield reviews_site
    for name in [m for m in sys.modules if m.split(".")[0] == "statusflow_reviews"]:
        sys.modules.pop(name, None)


# --- disabled in the configuration, in this process ---------------------------------------


async def test_a_disabled_plugins_triggers_are_kept_inactive_and_act_again(
    statusflow_app, reviews_on_path
):
    plugins = ["payment", "reviews"]
    sf = await statusflow_app(plugins=plugins)
    await sf.call("PUT", "/api/statuses", PIPELINE)
    for order_id in ("o1", "o2", "o3", "o4", "o5"):
        await sf.create_order(order_id)
    negative = await sf.call("POST", "/api/triggers", NEGATIVE, expect=201)
    picky = await sf.call("POST", "/api/triggers", PICKY, expect=201)
    plain = await sf.call("POST", "/api/triggers", PLAIN, expect=201)
    assert (await sf.post_event(review("o1", 1)))["moves"][0]["to"] == "A"
    assert (await sf.post_event(payment("o2")))["moves"][0]["trigger_id"] == picky["id"]

    off = await statusflow_app(
        plugins=plugins,
        config={"plugins": {"disable": ["reviews"]}},
        database_url=sf.database_url,
    )
    assert (await off.plugins())["reviews"]["enabled"] is False
    listed = {t["id"]: t for t in await off.call("GET", "/api/triggers")}
    assert (listed[negative["id"]]["active"], listed[negative["id"]]["inactive_reason"]) == (
        False,
        NOT_LOADED_TYPE,
    )
    assert (listed[picky["id"]]["active"], listed[picky["id"]]["inactive_reason"]) == (
        False,
        NOT_LOADED_OP,
    )
    assert listed[plain["id"]]["active"] is True
    assert listed[picky["id"]]["conditions"] == BY_CARD
    # events ignore them, and their traces do not list them
    result = await off.post_event(payment("o3", id="pay-o3"))
    assert result["moves"] == [
        {"order_id": "o3", "from": "N", "to": "S", "trigger_id": plain["id"]}
    ]
    trace = (await off.get_event("pay-o3"))["trace"]
    assert [(t["trigger_id"], t["outcome"]) for t in trace] == [(plain["id"], "moved")]
    dry = await off.post_event(payment("o4"), dry_run=True)
    assert [t["trigger_id"] for t in dry["trace"]] == [plain["id"]]
    # the plugin's event type is refused like any unknown type; its route is gone
    await off.post_event(review("o4", 1), expect=422)
    assert (await off.client.get("/sources/reviews/stats")).status == 404
    # such triggers may be renamed, retargeted, switched off; what needs the plugin is a 422
    renamed = await off.call("PATCH", f"/api/triggers/{negative['id']}", {"name": "renamed"})
    assert renamed["name"] == "renamed" and renamed["active"] is False
    await off.call(
        "PATCH", f"/api/triggers/{negative['id']}", {"settings": {"max_rating": 1}}, expect=422
    )
    other = [{**BY_CARD[0], "value": "^card$"}]
    answer = await off.call(
        "PATCH", f"/api/triggers/{picky['id']}", {"conditions": other}, expect=422
    )
    assert "unknown operator 'matches'" in answer["error"]["message"]
    await off.call("POST", "/api/triggers", {**PICKY, "conditions": other}, expect=422)
    assert (await off.call("GET", f"/api/triggers/{picky['id']}"))["conditions"] == BY_CARD

    # enabled again: they act again
    back = await statusflow_app(plugins=plugins, database_url=sf.database_url)
    listed = {t["id"]: t for t in await back.call("GET", "/api/triggers")}
    assert all(t["active"] and t["inactive_reason"] is None for t in listed.values())
    assert listed[negative["id"]]["name"] == "renamed"
    assert (await back.post_event(review("o4", 2)))["moves"][0]["trigger_id"] == negative["id"]
    assert (await back.post_event(payment("o5")))["moves"][0]["trigger_id"] == picky["id"]
    stats = await back.client.get("/sources/reviews/stats")
    assert (await stats.json())["moves"] == 2


# --- operators that fail or change ---------------------------------------------------------


class Ping:
    @hookimpl
    def register_event_types(self, register):
        register(EventType("ping", "Ping"))

    @hookimpl
    def register_trigger_types(self, register):
        register(TriggerType("ping", "Ping", ("ping",)))


class Short:
    """An operator ``short`` whose accepted values a new version narrows to 3 characters."""

    def __init__(self, max_length: int | None = None) -> None:
        schema: dict[str, Any] = {"type": "string"}
        if max_length is not None:
            schema["maxLength"] = max_length
        self.schema = schema

    @hookimpl
    def register_condition_operators(self, register):
        register(ConditionOperator("short", lambda actual, expected: True, self.schema))


class Broken:
    """An operator ``broken`` whose test raises what no operator should."""

    @hookimpl
    def register_condition_operators(self, register):
        def test(actual, expected):
            raise RuntimeError("bug in the operator")

        register(ConditionOperator("broken", test, {"type": "string"}))


async def test_an_operator_that_fails_or_no_longer_accepts_a_value_is_never_a_500(
    statusflow_app,
):
    sf = await statusflow_app(plugins=[("ping", Ping()), ("short", Short()), ("broken", Broken())])
    await sf.create_order("o1", currency="USD")
    failing = await sf.create_trigger(
        "ping", "P", conditions=[{"field": "currency", "op": "broken", "value": "x"}]
    )
    changed = await sf.create_trigger(
        "ping", "S", conditions=[{"field": "currency", "op": "short", "value": "abcdef"}]
    )
    fallback = await sf.create_trigger("ping", "F")
    result = await sf.post_event({"id": "e1", "type": "ping", "order_id": "o1"})
    assert [m["to"] for m in result["moves"]] == ["S"]
    trace = {t["trigger_id"]: t for t in (await sf.get_event("e1"))["trace"]}
    assert trace[failing["id"]]["reason"] == (
        "condition failed: currency broken 'x' "
        "(operator 'broken' failed: RuntimeError('bug in the operator'))"
    )

    # a new version of the operator's plugin no longer accepts the stored value
    newer = await statusflow_app(
        plugins=[("ping", Ping()), ("short", Short(max_length=3))],
        database_url=sf.database_url,
    )
    stored = await newer.call("GET", f"/api/triggers/{changed['id']}")
    assert stored["active"] is False
    assert stored["inactive_reason"].startswith("conditions are no longer accepted: conditions/0")
    stored = await newer.call("GET", f"/api/triggers/{failing['id']}")
    assert stored["inactive_reason"] == (
        "condition operator 'broken' is not provided by any loaded plugin"
    )
    await newer.create_order("o2")
    result = await newer.post_event({"id": "e2", "type": "ping", "order_id": "o2"})
    assert result["moves"][0]["trigger_id"] == fallback["id"]
    assert [t["trigger_id"] for t in (await newer.get_event("e2"))["trace"]] == [fallback["id"]]
    # fixing the condition through PATCH makes it act again
    fixed = [{"field": "currency", "op": "short", "value": "abc"}]
    patched = await newer.call("PATCH", f"/api/triggers/{changed['id']}", {"conditions": fixed})
    assert patched["active"] is True


# --- uninstalled: statusflow serve in an environment without it ---------------------------


async def test_migrations_go_on_around_the_heads_of_uninstalled_plugins(database_url, reviews_site):
    """Alembic refuses recorded revisions it cannot locate; the kernel upgrades around them.

    Alembic records no kernel revision that a plugin's head depends on: ``notes_0001``
    depends on the kernel's head, so with ``notes`` alone ``alembic_version`` holds only
    ``notes_0001``, and the kernel must not take its uninstalling for an empty database.
    """
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from statusflow.store.database import Database, alembic_config, migrate

    kernel = ScriptDirectory.from_config(alembic_config())
    kernel_revisions = {revision.revision for revision in kernel.walk_revisions()}

    reviews = str(reviews_site / "statusflow_reviews" / "migrations")
    notes = str(ROOT / "tests" / "notes_plugin" / "migrations")
    db = Database(database_url)

    async def heads() -> set[str]:
        """The plugins' recorded heads (the kernel's own is checked apart)."""
        async with db.read() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return set(rows.scalars()) - kernel_revisions

    try:
        await migrate(database_url, [reviews])
        assert await heads() == {"reviews_0001"}
        async with db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO reviews_moves (order_id, trigger_id, trigger_type, "
                    "from_status, to_status, at) VALUES ('o1', 1, 'review.negative', 'N', "
                    "'A', 'now')"
                )
            )
        # uninstalled, reinstalled, with another plugin, each away, both away, both back
        for locations in ([], [reviews], [reviews, notes], [notes], [], [reviews], [notes]):
            await migrate(database_url, locations)
            recorded = await heads()
            assert "reviews_0001" in recorded, (locations, recorded)
            assert recorded <= {"reviews_0001", "notes_0001"}, (locations, recorded)
        await migrate(database_url, [reviews, notes])
        assert await heads() == {"reviews_0001", "notes_0001"}
        async with db.read() as conn:
            count = await conn.execute(text("SELECT count(*) FROM reviews_moves"))
            assert count.scalar() == 1
    finally:
        await db.dispose()


def _run_all(commands: list[tuple[list[str], dict[str, str]]], cwd: Path) -> list[Any]:
    processes = [
        subprocess.Popen(
            args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args, env in commands
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        results.append(stdout)
    return results


def test_an_uninstalled_plugins_triggers_are_kept_inactive_and_act_again_when_reinstalled(
    tmp_path, reviews_site, bare_python
):
    db = tmp_path / "statusflow.db"
    config = tmp_path / "statusflow.toml"
    config.write_text(
        f'database_url = "sqlite:///{db}"\n[plugins]\nenable = ["payment", "reviews"]\n'
    )
    with_plugin = clean_env(PYTHONPATH=str(reviews_site))
    without = clean_env()

    server = Serve(config, with_plugin, tmp_path / "with.log", python=bare_python)
    try:
        server.call("PUT", "/api/statuses", PIPELINE)
        for order_id in ("o1", "o2", "o3", "o4", "o5"):
            server.call("POST", "/api/orders", {"id": order_id}, expect=201)
        negative = server.call("POST", "/api/triggers", NEGATIVE, expect=201)
        picky = server.call("POST", "/api/triggers", PICKY, expect=201)
        plain = server.call("POST", "/api/triggers", PLAIN, expect=201)
        assert server.call("POST", "/api/events", review("o1", 1))["moves"][0]["to"] == "A"
        moved = server.call("POST", "/api/events", payment("o2"))["moves"]
        assert moved[0]["trigger_id"] == picky["id"]
        assert server.call("GET", "/sources/reviews/stats")["moves"] == 1
    finally:
        assert server.stop() == 0, server.output()

    # uninstalled: listed nowhere; migrating and serving still work once its name has left
    # [plugins] enable (a name no installed plugin has stops start-up, as a typo would)
    cli = [str(bare_python), "-m", "statusflow.cli"]
    named = config.read_text()
    config.write_text(named.replace('enable = ["payment", "reviews"]', 'enable = ["payment"]'))
    listing_without, listing_with, _ = _run_all(
        [
            ([*cli, "plugins", "--json"], without),
            ([*cli, "plugins", "--json"], with_plugin),
            ([*cli, "migrate", "--config", str(config)], without),
        ],
        tmp_path,
    )
    assert "reviews" not in {p["name"] for p in json.loads(listing_without)}
    assert {p["name"]: p for p in json.loads(listing_with)}["reviews"]["trigger_types"] == [
        "review.negative",
        "review.positive",
    ]
    server = Serve(config, without, tmp_path / "without.log", python=bare_python)
    try:
        assert "reviews" not in {p["name"] for p in server.call("GET", "/api/plugins")}
        types = {t["type"] for t in server.call("GET", "/api/trigger-types")}
        assert types == {"payment.received"}
        listed = {t["id"]: t for t in server.call("GET", "/api/triggers")}
        assert listed[negative["id"]]["active"] is False
        assert listed[negative["id"]]["inactive_reason"] == NOT_LOADED_TYPE
        assert listed[picky["id"]]["active"] is False
        assert listed[picky["id"]]["inactive_reason"] == NOT_LOADED_OP
        assert listed[plain["id"]]["active"] is True
        single = server.call("GET", f"/api/triggers/{negative['id']}")
        assert single["settings"] == {} and single["status"] == "A"
        # events ignore them; traces do not list them
        result = server.call("POST", "/api/events", payment("o3", id="pay-o3"))
        assert [m["trigger_id"] for m in result["moves"]] == [plain["id"]]
        trace = server.call("GET", "/api/events/pay-o3")["trace"]
        assert [t["trigger_id"] for t in trace] == [plain["id"]]
        server.call("POST", "/api/events", review("o4", 1), expect=422)
        server.call("GET", "/sources/reviews/stats", expect=404)
        patched = server.call("PATCH", f"/api/triggers/{picky['id']}", {"enabled": True})
        assert patched["active"] is False
    finally:
        assert server.stop() == 0, server.output()
    output = server.log.read_text()
    assert "Traceback" not in output, output
    assert "migrations.plugin_missing" in output
    with sqlite3.connect(db) as conn:  # its tables and its migration head are kept
        heads = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        assert "reviews_0001" in heads
        assert conn.execute("SELECT count(*) FROM reviews_moves").fetchone() == (1,)

    # reinstalled (and enabled again): they act again, and the plugin's table counts on
    # from where it was
    config.write_text(named)
    server = Serve(config, with_plugin, tmp_path / "again.log", python=bare_python)
    try:
        listed = server.call("GET", "/api/triggers")
        assert [t["active"] for t in listed] == [True, True, True]
        moved = server.call("POST", "/api/events", review("o4", 2))["moves"]
        assert moved[0]["trigger_id"] == negative["id"]
        moved = server.call("POST", "/api/events", payment("o5"))["moves"]
        assert moved[0]["trigger_id"] == picky["id"]
        assert server.call("GET", "/sources/reviews/stats")["moves"] == 2
    finally:
        assert server.stop() == 0, server.output()
