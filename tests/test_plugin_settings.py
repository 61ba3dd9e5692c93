"""Per-plugin settings: ``[plugins.NAME]`` tables, checked by the plugin's own schema.

A plugin declares its schema with ``plugin_settings_schema``; the kernel resolves
``{"$env": "VAR"}`` secrets, checks the table at start-up (a bad one stops start-up naming
plugin and key) and hands the result to the plugin through ``kernel.plugin_config(NAME)``.
The apps here come from statusflow's own pytest plugin (``statusflow_app``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from statusflow import Route, hookimpl
from statusflow.errors import StartupError
from statusflow.http import init_app
from statusflow.serving.config import settings_from_mapping
from tests.helpers import write_distribution

STATUSFLOW = Path(sys.executable).with_name("statusflow")

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "greeting": {"type": "string", "minLength": 1},
        "retries": {"type": "integer", "minimum": 0},
        "tokens": {"type": "array", "items": {"type": "string"}},
    },
}


class Greeter:
    """A plugin with settings, and a route that shows the settings it was given."""

    @hookimpl
    def plugin_settings_schema(self):
        return SCHEMA

    @hookimpl
    def register_routes(self, register, kernel):
        async def show(request: web.Request) -> web.Response:
            return web.json_response(dict(kernel.plugin_config("greeter")))

        register(Route("GET", "/greeter/settings", show))


GREETER_SOURCE = f"""
from statusflow import hookimpl


@hookimpl
def plugin_settings_schema():
    return {SCHEMA!r}
"""


def _start(table: dict[str, Any], **plugins: Any) -> web.Application:
    raw = {"database_url": "sqlite:////nonexistent/dir/never.db", "plugins": {"enable": []}}
    raw["plugins"].update(plugins)
    raw["plugins"]["greeter"] = table
    return init_app(settings_from_mapping(raw), extra_plugins=[("greeter", Greeter())])


async def test_the_plugin_gets_its_table_with_secrets_resolved(statusflow_app, monkeypatch):
    monkeypatch.setenv("GREETER_TOKEN", "s3cret")
    sf = await statusflow_app(
        plugins=[("greeter", Greeter())],
        config="""
        [plugins.greeter]
        greeting = "hello"
        retries = 2
        tokens = ["plain", {"$env" = "GREETER_TOKEN"}]
        """,
    )
    response = await sf.client.get("/greeter/settings")
    assert await response.json() == {
        "greeting": "hello",
        "retries": 2,
        "tokens": ["plain", "s3cret"],
    }
    # without a table the plugin gets {}
    bare = await statusflow_app(plugins=[("greeter", Greeter())])
    assert await (await bare.client.get("/greeter/settings")).json() == {}


def test_a_bad_table_stops_start_up_naming_plugin_and_key(monkeypatch):
    monkeypatch.delenv("GREETER_UNSET", raising=False)
    cases = [
        ({"retries": "three"}, ["'greeter'", "[plugins.greeter] retries", "'three'"]),
        ({"retries": -1}, ["'greeter'", "retries", "-1"]),
        ({"greting": "hi"}, ["'greeter'", "greting"]),
        ({"tokens": ["a", 5]}, ["'greeter'", "tokens.1"]),
        ({"greeting": {"$env": "GREETER_UNSET"}}, ["[plugins.greeter].greeting", "GREETER_UNSET"]),
        ({"tokens": ["a", {"$env": "GREETER_UNSET"}]}, ["tokens[1]", "GREETER_UNSET"]),
    ]
    for table, needles in cases:
        with pytest.raises(StartupError) as caught:
            _start(table)
        for needle in needles:
            assert needle in str(caught.value), (table, needle, str(caught.value))
    # an environment secret is checked by the schema after it is resolved
    monkeypatch.setenv("GREETER_RETRIES", "3")
    with pytest.raises(StartupError, match=r"retries.*'3' is not of type 'integer'"):
        _start({"retries": {"$env": "GREETER_RETRIES"}})
    # a disabled plugin's table is not its business any more
    _start({"retries": "three"}, disable=["greeter"])
    # nor is the table of a plugin that is not installed (a warning, no error)
    raw = {"database_url": "sqlite:////nonexistent/dir/never.db", "plugins": {"nobody": {"x": 1}}}
    init_app(settings_from_mapping(raw))


def test_serve_refuses_a_bad_table_naming_plugin_and_key(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "greeter", GREETER_SOURCE)
    db = tmp_path / "never.db"
    base = f'database_url = "sqlite:///{db}"\n[plugins]\nenable = ["payment", "greeter"]\n'
    bad_type = tmp_path / "bad.toml"
    bad_type.write_text(base + '[plugins.greeter]\nretries = "three"\n')
    unset = tmp_path / "unset.toml"
    unset.write_text(base + '[plugins.greeter]\ngreeting = {"$env" = "GREETER_UNSET"}\n')
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STATUSFLOW_CONFIG", "STATUSFLOW_DATABASE_URL", "GREETER_UNSET")
    }
    env["PYTHONPATH"] = str(site)
    processes = [
        subprocess.Popen(
            [str(STATUSFLOW), "serve", "--config", str(config), "--port", "0"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for config in (bad_type, unset)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    expected = [
        ["'greeter'", "retries", "'three'"],
        ["[plugins.greeter].greeting", "GREETER_UNSET"],
    ]
    for process, (_out, err), needles in zip(processes, outputs, expected, strict=True):
        assert process.returncode not in (0, None), err
        for needle in needles:
            assert needle in err, (needle, err)
    assert not db.exists()
