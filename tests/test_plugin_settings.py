"""Per-plugin settings: ``[plugins.NAME]`` tables, checked by the plugin's own schema.

A plugin declares its schema with ``plugin_settings_schema``; the kernel resolves
``{"$env": "VAR"}`` secrets, checks the table at start-up (a bad one stops start-up naming
plugin and key) and hands the result to the plugin through ``kernel.plugin_config(NAME)``.
The apps here come from statusflow's own pytest plugin (``statusflow_app``).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from statusflow import Route, hookimpl
from statusflow.errors import StartupError
from statusflow.http import init_app
from statusflow.serving.config import settings_from_mapping
from tests.helpers import write_distribution
from tests.processes import clean_env, cli, outcomes

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
    greeter = "plugin 'greeter': [plugins.greeter]"
    cases = [
        ({"retries": "three"}, f"{greeter} retries: must be of type integer"),
        ({"retries": -1}, f"{greeter} retries: must be at least 0"),
        ({"greting": "hi"}, f"{greeter}: unknown key(s) 'greting' (did you mean 'greeting'?)"),
        ({"tokens": ["a", 5]}, f"{greeter} tokens.1: must be of type string"),
        (
            {"greeting": {"$env": "GREETER_UNSET"}},
            "[plugins.greeter].greeting: environment variable 'GREETER_UNSET' is not set",
        ),
        (
            {"tokens": ["a", {"$env": "GREETER_UNSET"}]},
            "[plugins.greeter].tokens[1]: environment variable 'GREETER_UNSET' is not set",
        ),
    ]
    for table, message in cases:
        with pytest.raises(StartupError) as caught:
            _start(table)
        assert str(caught.value) == message
    # an environment secret is checked by the schema after it is resolved (and not shown)
    monkeypatch.setenv("GREETER_RETRIES", "3")
    with pytest.raises(StartupError) as caught:
        _start({"retries": {"$env": "GREETER_RETRIES"}})
    assert str(caught.value) == f"{greeter} retries: must be of type integer"
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
    env = clean_env(PYTHONPATH=str(site))
    env.pop("GREETER_UNSET", None)
    serve = [
        cli("serve", "--config", str(c), "--port", "0", env=env, cwd=tmp_path)
        for c in (bad_type, unset)
    ]
    expected = [
        ["'greeter'", "retries", "must be of type integer"],
        ["[plugins.greeter].greeting", "GREETER_UNSET"],
    ]
    for (code, _out, err), needles in zip(outcomes(*serve), expected, strict=True):
        assert code == 2, err
        for needle in needles:
            assert needle in err, (needle, err)
        assert "three" not in err
    assert not db.exists()


# --- a secret never shows in a message or a log line ------------------------------------

SECRET = "hunter2-Secret-Value-0xC0FFEE"
VAULT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["token"],
    "properties": {
        "token": {"type": "string", "minLength": 64},
        "short": {"type": "string", "maxLength": 4},
        "label": {"type": "string", "minLength": 1},
        "prefixed": {"type": "string", "pattern": "^tok_"},
        "mode": {"enum": ["live", "test"]},
        "port": {"type": "integer"},
        "keys": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "nested": {"type": "object", "properties": {"fixed": {"const": "fixed"}}},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]},
        "one": {"oneOf": [{"type": "string"}, {"type": "string", "minLength": 1}]},
        "not_secret": {"not": {"type": "string"}},
    },
}
VAULT_SOURCE = f"""
from statusflow import hookimpl


@hookimpl
def plugin_settings_schema():
    return {VAULT_SCHEMA!r}
"""
FROM_ENV = {"$env": "VAULT_SECRET"}
OK_TOKEN = "t" * 64
VAULT_CASES: list[tuple[dict[str, Any], str]] = [
    ({"token": FROM_ENV}, "token: is shorter than 64 characters"),
    ({"token": OK_TOKEN, "short": FROM_ENV}, "short: is longer than 4 characters"),
    ({"token": OK_TOKEN, "label": ""}, "label: must not be empty"),
    ({"token": OK_TOKEN, "prefixed": FROM_ENV}, "prefixed: does not match the pattern '^tok_'"),
    ({"token": OK_TOKEN, "mode": FROM_ENV}, "mode: must be one of 'live', 'test'"),
    ({"token": OK_TOKEN, "port": FROM_ENV}, "port: must be of type integer"),
    ({"token": OK_TOKEN, "keys": [FROM_ENV, FROM_ENV]}, "keys: must not repeat an item"),
    ({"token": OK_TOKEN, "nested": {"fixed": FROM_ENV}}, "nested.fixed: must be 'fixed'"),
    ({"token": OK_TOKEN, "either": FROM_ENV}, "either: matches none of the allowed forms"),
    ({"token": OK_TOKEN, "one": FROM_ENV}, "one: must match exactly one of the allowed forms"),
    ({"token": OK_TOKEN, "not_secret": FROM_ENV}, "not_secret: has a form that is not allowed"),
    ({"token": OK_TOKEN, "tokn": FROM_ENV}, ": unknown key(s) 'tokn' (did you mean 'token'?)"),
    ({"mode": "live"}, ": missing required key(s) 'token'"),
    ({"token": FROM_ENV, "nested": FROM_ENV}, "nested: must be of type object"),
]


class Vault:
    @hookimpl
    def plugin_settings_schema(self):
        return VAULT_SCHEMA


def test_a_bad_setting_is_named_without_its_value(monkeypatch, capfd):
    monkeypatch.setenv("VAULT_SECRET", SECRET)
    for table, message in VAULT_CASES:
        raw = {"database_url": "sqlite:////nonexistent/dir/never.db", "plugins": {"enable": []}}
        raw["plugins"]["vault"] = table
        with pytest.raises(StartupError) as caught:
            init_app(settings_from_mapping(raw), extra_plugins=[("vault", Vault())])
        assert str(caught.value).endswith(message), (table, str(caught.value))
        assert str(caught.value).startswith("plugin 'vault': [plugins.vault]")
        assert SECRET not in str(caught.value)
    logged = capfd.readouterr()
    assert SECRET not in logged.out + logged.err


def test_serve_names_a_bad_setting_or_configuration_value_without_it(tmp_path):
    """Through ``statusflow serve``: its standard error and its log lines (both streams)."""
    site = tmp_path / "site"
    write_distribution(site, "vault", VAULT_SOURCE)
    base = f'database_url = "sqlite:///{tmp_path / "never.db"}"\n'
    vault = base + '[plugins]\nenable = ["vault"]\n[plugins.vault]\n'
    configs = {
        "token": vault + 'token = {"$env" = "VAULT_SECRET"}\n',
        "mode": vault + f'token = "{OK_TOKEN}"\nmode = {{"$env" = "VAULT_SECRET"}}\n',
        "unknown_key": vault + f'token = "{OK_TOKEN}"\ntokn = {{"$env" = "VAULT_SECRET"}}\n',
        "server_secret": base + f'[server]\nsecret = "{SECRET[:12]}"\n',
        "plugin_table": base + f'[plugins]\nvault = "{SECRET}"\n',
        "database_url": f'database_url = "{SECRET}"\n',
        "auth_tokens": base + f'[auth]\ntokens = "{SECRET}"\n',
    }
    env = clean_env(PYTHONPATH=str(site), VAULT_SECRET=SECRET)
    serve = []
    for name, text in configs.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        serve.append(cli("serve", "--config", str(path), "--port", "0", env=env, cwd=tmp_path))
    expected = {
        "token": "[plugins.vault] token: is shorter than 64 characters",
        "mode": "[plugins.vault] mode: must be one of 'live', 'test'",
        "unknown_key": "[plugins.vault]: unknown key(s) 'tokn'",
        "server_secret": "configuration error at server.secret: is shorter than 16 characters",
        "plugin_table": "configuration error at plugins.vault: must be of type object",
        "database_url": "configuration error at database_url",
        "auth_tokens": "configuration error at auth.tokens: must be of type array",
    }
    for name, (code, out, err) in zip(configs, outcomes(*serve), strict=True):
        assert code == 2, (name, err)
        assert expected[name] in err, (name, err)
        for secret in (SECRET, SECRET[:12]):
            assert secret not in out + err, (name, out, err)
