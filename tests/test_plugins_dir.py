"""Plugins from a folder, without packaging: ``--plugins-dir DIR`` and ``[plugins] dirs``.

The folder holds a module plugin ``ping.py`` and a package plugin ``ledger/`` (relative
imports, an Alembic migration of its own), and things that are not plugins (``_helper.py``,
a folder without ``__init__.py``, a text file). The commands run as real processes.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from statusflow.errors import StartupError
from statusflow.registry import make_plugin_manager
from statusflow.serving.plugin_catalog import list_plugins
from tests.helpers import BUILT_IN_PLUGINS, PING_SOURCE
from tests.processes import Serve, clean_env, cli, outcomes

PLUGIN_KEYS = {"name", "distribution", "version", "trigger_types", "enabled"}

LEDGER = """
from pathlib import Path

from statusflow import EventType, TriggerType, hookimpl

from .names import ENTRY


@hookimpl
def register_event_types(register):
    register(EventType(ENTRY, "Ledger entry"))


@hookimpl
def register_trigger_types(register):
    register(TriggerType(ENTRY, "Ledger entry", (ENTRY,)))


@hookimpl
def migration_locations():
    return str(Path(__file__).with_name("migrations"))
"""

LEDGER_MIGRATION = '''
"""ledger: its table

Revision ID: ledger_0001
Depends on: 0002 (the kernel's head)
"""

import sqlalchemy as sa
from alembic import op

revision = "ledger_0001"
down_revision = None
branch_labels = ("ledger",)
depends_on = "0002"


def upgrade() -> None:
    op.create_table("ledger_rows", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("ledger_rows")
'''


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    """A folder with the plugins ``ping`` (a module) and ``ledger`` (a package)."""
    folder = tmp_path / "plugins"
    _write(folder / "ping.py", PING_SOURCE)
    _write(folder / "ledger" / "__init__.py", LEDGER)
    _write(folder / "ledger" / "names.py", 'ENTRY = "ledger.entry"\n')
    _write(folder / "ledger" / "migrations" / "ledger_0001_rows.py", LEDGER_MIGRATION)
    _write(folder / "_helper.py", "raise RuntimeError('not a plugin: never imported')\n")
    _write(folder / "notes" / "todo.py", "raise RuntimeError('not a package')\n")
    _write(folder / "README.txt", "plugins of this shop\n")
    return folder


def _statusflow(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return cli(*args, env=clean_env(), cwd=cwd)


def _by_name(listing: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in json.loads(listing)}


def test_the_plugins_command_lists_a_folders_plugins(tmp_path, plugins_dir):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = _write(
        tmp_path / "conf" / "statusflow.toml",
        '[plugins]\ndirs = ["../plugins"]\ndisable = ["ping"]\n',  # read from the file's folder
    )
    flag, configured, human = outcomes(
        _statusflow("plugins", "--json", "--plugins-dir", str(plugins_dir), cwd=elsewhere),
        _statusflow("plugins", "--json", "--config", str(config), cwd=elsewhere),
        _statusflow("plugins", "--plugins-dir", "plugins", cwd=tmp_path),  # from the cwd
    )
    for code, _, err in (flag, configured, human):
        assert code == 0, err
    listing = _by_name(flag[1])
    assert listing["ping"] == {
        "name": "ping",
        "distribution": None,
        "version": None,
        "trigger_types": ["ping"],
        "enabled": True,
        "path": str(plugins_dir / "ping.py"),
    }
    assert listing["ledger"]["path"] == str(plugins_dir / "ledger")
    assert listing["ledger"]["trigger_types"] == ["ledger.entry"]
    assert set(listing) - BUILT_IN_PLUGINS >= {"ping", "ledger"}
    assert not {"_helper", "notes", "README"} & set(listing)
    assert all(set(p) == PLUGIN_KEYS for n, p in listing.items() if n not in ("ping", "ledger"))
    configured_listing = _by_name(configured[1])
    assert configured_listing["ping"]["enabled"] is False
    assert configured_listing["ledger"]["enabled"] is True
    line = next(line for line in human[1].splitlines() if line.split()[0] == "ping")
    assert str(plugins_dir / "ping.py") in line and "enabled" in line.split()


def test_migrate_and_serve_load_a_folders_plugins(tmp_path, plugins_dir):
    db = tmp_path / "statusflow.db"
    config = _write(tmp_path / "statusflow.toml", f'database_url = "sqlite:///{db}"\n')
    folder = ["--plugins-dir", str(plugins_dir)]
    [(code, _, err)] = outcomes(
        _statusflow("migrate", "--config", str(config), *folder, cwd=tmp_path)
    )
    assert code == 0, err
    with sqlite3.connect(db) as conn:  # the package plugin's own migration ran
        assert conn.execute("SELECT count(*) FROM ledger_rows").fetchone() == (0,)

    server = Serve(config, clean_env(), tmp_path / "serve.log", args=folder)
    try:
        plugins = {p["name"]: p for p in server.call("GET", "/api/plugins")}
        assert plugins["ping"]["path"] == str(plugins_dir / "ping.py")
        assert "path" not in plugins["payment"]
        server.call("POST", "/api/orders", {"id": "o1"}, expect=201)
        trigger = server.call("POST", "/api/triggers", {"type": "ping", "status": "P"}, expect=201)
        server.call("POST", "/api/triggers", {"type": "ledger.entry", "status": "F"}, expect=201)
        moved = server.call("POST", "/api/events", {"type": "ping", "order_id": "o1"})
        assert moved["moves"] == [
            {"order_id": "o1", "from": "N", "to": "P", "trigger_id": trigger["id"]}
        ]
        moved = server.call("POST", "/api/events", {"type": "ledger.entry", "order_id": "o1"})
        assert [m["to"] for m in moved["moves"]] == ["F"]
    finally:
        assert server.stop() == 0, server.output()


def test_a_clash_or_an_import_failure_stops_the_commands_naming_the_file(tmp_path):
    clash = _write(tmp_path / "clash" / "payment.py", PING_SOURCE)
    broken = _write(tmp_path / "broken" / "shaky.py", "import json\n\nimport no_such_module_here\n")
    twice = tmp_path / "twice"
    _write(twice / "ping.py", PING_SOURCE)
    _write(twice / "ping" / "__init__.py", PING_SOURCE)
    db = tmp_path / "never.db"
    config = _write(tmp_path / "statusflow.toml", f'database_url = "sqlite:///{db}"\n')
    serve = ["serve", "--config", str(config), "--port", "0", "--plugins-dir"]
    runs = {
        "clash_plugins": (
            ["plugins", "--plugins-dir", str(clash.parent)],
            ["'payment'", str(clash), "installed plugin statusflow"],
        ),
        "clash_serve": ([*serve, str(clash.parent)], ["'payment'", str(clash), "rename the file"]),
        "clash_migrate": (
            ["migrate", "--config", str(config), "--plugins-dir", str(clash.parent)],
            [str(clash)],
        ),
        "broken_serve": (
            [*serve, str(broken.parent)],
            ["'shaky'", f"{broken}, line 3", "ModuleNotFoundError", "no_such_module_here"],
        ),
        "twice_serve": (
            [*serve, str(twice)],
            ["'ping'", "found twice", str(twice / "ping.py"), str(twice / "ping")],
        ),
        "missing_serve": ([*serve, str(tmp_path / "nowhere")], ["nowhere", "does not exist"]),
    }
    results = outcomes(*(_statusflow(*args, cwd=tmp_path) for args, _ in runs.values()))
    for (name, (_, needles)), (code, out, err) in zip(runs.items(), results, strict=True):
        assert code == 2, (name, out, err)
        assert "Traceback" not in err, (name, err)
        for needle in needles:
            assert needle in err, (name, needle, err)
    assert not db.exists()
    # a broken plugin is still listed (with no trigger types), as a broken entry point is
    infos = {i.name: i for i in list_plugins(dirs=[str(broken.parent)])}
    assert infos["shaky"].trigger_types == () and infos["shaky"].path == str(broken)


async def test_an_app_loads_a_folders_plugins_as_entry_points_under_enable_and_disable(
    statusflow_app, plugins_dir
):
    folder = {"dirs": [str(plugins_dir)]}
    sf = await statusflow_app(plugins=["payment", "ping"], config={"plugins": folder})
    plugins = await sf.plugins()
    assert plugins["ping"]["enabled"] is True and plugins["ledger"]["enabled"] is False
    await sf.create_order("o1")
    trigger = await sf.create_trigger("ping", "P")
    await sf.call("POST", "/api/triggers", {"type": "ledger.entry", "status": "F"}, expect=422)
    moved = await sf.post_event(type="ping", order_id="o1")
    assert moved["moves"][0]["trigger_id"] == trigger["id"]
    await sf.close()
    # disabled: listed, not loaded; its trigger is kept, inactive
    off = await statusflow_app(
        config={"plugins": {**folder, "disable": ["ping"]}}, database_url=sf.database_url
    )
    assert (await off.plugins())["ping"]["enabled"] is False
    stored = await off.call("GET", f"/api/triggers/{trigger['id']}")
    assert stored["active"] is False
    assert stored["inactive_reason"] == "trigger type 'ping' is not provided by any loaded plugin"
    # an object cannot take a folder plugin's name either
    with pytest.raises(StartupError, match=r"'ping' is taken by the plugin at .*ping\.py"):
        make_plugin_manager(enable=(), extra_plugins=[("ping", object())], dirs=[str(plugins_dir)])
