"""Logs that tell and no silent foot-guns (issue 13): the access log, the start-up line
and its warnings, statuses by name, errors said once, typos answered with the names
they were meant to be, and a ``Server`` header without versions."""

from __future__ import annotations

import ast
import json
import logging
import re
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.web_exceptions import NotAppKeyWarning
from structlog.testing import capture_logs

from statusflow import Route, hookimpl
from statusflow.errors import StartupError
from statusflow.http import init_app
from statusflow.registry import make_plugin_manager
from statusflow.serving.access_log import KEY_NAME, AccessLogger
from statusflow.serving.announce import announce, database_label, is_loopback, version
from statusflow.serving.config import settings_from_mapping
from statusflow.serving.logs import configure_logging, log_options
from statusflow.testing import settings_for
from tests.helpers import Api, event
from tests.processes import Serve, clean_env, cli, free_port, outcomes

TOKEN = "sesame-token-0123456789"
SECRET_BODY = "ada-lovelace-secret-phone"


def _lines(text: str, event_name: str) -> list[dict[str, Any]]:
    """The key-value lines of ``event_name`` in a console log, as dicts."""
    found = []
    for line in text.splitlines():
        if f"event='{event_name}'" not in line:
            continue
        fields: dict[str, Any] = {}
        for part in _split(line):
            key, _, value = part.partition("=")
            fields[key] = ast.literal_eval(value)
        found.append(fields)
    return found


def _split(line: str) -> list[str]:
    """``key=repr`` pairs separated by spaces (reprs may hold spaces: parse greedily)."""
    parts, current = [], ""
    for piece in line.split(" "):
        current = f"{current} {piece}" if current else piece
        _key, _, value = current.partition("=")
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            continue
        parts.append(current)
        current = ""
    assert not current, line
    return parts


def _request(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, response.headers, raw
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


# --- a real server: the access log, the start-up line, the Server header ------------------


def test_a_real_server_logs_each_request_once_without_secrets(tmp_path: Path) -> None:
    config = tmp_path / "statusflow.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path}/statusflow.db"\n'
        f'[auth]\ntokens = ["{TOKEN}"]\n'
        '[plugins]\nenable = ["payment", "webhook", "email"]\n'
    )
    server = Serve(config, clean_env(), tmp_path / "serve.log")
    try:
        base = server.base
        order = {"id": "o1", "contact": {"name": SECRET_BODY, "emails": ["ada@example.com"]}}
        assert _request(base, "POST", "/api/orders", order)[0] == 201
        trigger = {"type": "webhook.called", "status": "P"}
        status, _, raw = _request(base, "POST", "/api/triggers", trigger)
        assert status == 201
        hook_secret = json.loads(raw)["webhook_url"].rsplit("/", 1)[1]
        assert _request(base, "POST", f"/hooks/{hook_secret}", {"order_id": "o1"})[0] == 200
        links = {"order_id": "o1", "urls": ["https://shop.example/pay"]}
        status, _, raw = _request(base, "POST", "/api/tracking-links", links)
        pixel = json.loads(raw)["open_pixel_url"].split(server.base, 1)[1]
        assert pixel.startswith("/t/o/")
        assert _request(base, "GET", pixel)[0] == 200
        status, headers, _ = _request(base, "GET", f"/api/orders?q={SECRET_BODY}")
        assert status == 200 and headers["Server"] == "statusflow"  # the query is not logged
        status, headers, _ = _request(base, "GET", "/nowhere")
        assert status == 404 and headers["Server"] == "statusflow"
        status, headers, _ = _request(base, "DELETE", "/healthz")
        assert status == 405 and headers["Server"] == "statusflow"
    finally:
        assert server.stop() == 0
    text = (tmp_path / "serve.log").read_text()

    started = _lines(text, "server.started")
    assert len(started) == 1, text
    assert started[0]["version"] == version() != "unknown"
    assert started[0]["database"] == f"sqlite:///{tmp_path}/statusflow.db"
    assert started[0]["auth"] is True
    assert started[0]["plugins"] == ["email", "payment", "webhook"]
    assert not _lines(text, "server.unprotected")  # loopback, and tokens anyway

    requests = _lines(text, "http.request")
    seen = [(r["method"], r["path"], r["status"]) for r in requests]
    assert seen[-8:] == [
        ("POST", "/api/orders", 201),
        ("POST", "/api/triggers", 201),
        ("POST", "/hooks/***", 200),
        ("POST", "/api/tracking-links", 201),
        ("GET", "/t/o/***", 200),
        ("GET", "/api/orders", 200),
        ("GET", "/nowhere", 404),
        ("DELETE", "/healthz", 405),
    ], text
    for line in requests:
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        guarded = line["path"].startswith("/api/")  # a plain token's key name is "token"
        assert line["key"] == ("token" if guarded else None) and line["level"] == "info"
    # measured with perf_counter, not uvloop's clock (whole milliseconds: mostly 0.0)
    assert any(line["duration_ms"] % 1 for line in requests[-8:]), requests
    for leak in (hook_secret, pixel[len("/t/o/") :], TOKEN, SECRET_BODY, "ada@example.com"):
        assert leak not in text
    assert "HTTP/1.1" not in text  # aiohttp's own access log is off
    moved = _lines(text, "order.moved")
    assert [m["move"] for m in moved] == ["N New -> P Paid"], text


async def test_the_access_line_names_the_key_that_authenticated(sqlite_url: str) -> None:
    """The auth middleware leaves the key's name on the request; the line shows it."""

    class Named:
        @hookimpl
        def register_routes(self, register: Any) -> None:
            async def whoami(request: web.Request) -> web.Response:
                with warnings.catch_warnings():  # aiohttp 3.14 would rather have a RequestKey
                    warnings.simplefilter("ignore", NotAppKeyWarning)
                    request[KEY_NAME] = "store-backend"
                return web.json_response({})

            register(Route("GET", "/api/whoami", whoami, query=("token",)))

    app = init_app(settings_for(sqlite_url, enable=()), extra_plugins=[("named", Named())])
    runner = web.AppRunner(
        app, access_log_class=AccessLogger, access_log=logging.getLogger("statusflow.access")
    )
    await runner.setup()
    port = free_port()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        with capture_logs() as captured:
            async with aiohttp.ClientSession() as session:
                base = f"http://127.0.0.1:{port}"
                async with session.get(f"{base}/api/whoami?token=abc") as response:
                    assert response.status == 200
                    assert response.headers["Server"] == "statusflow"
                async with session.get(f"{base}/healthz") as response:
                    assert response.status == 200
    finally:
        await runner.cleanup()
    lines = [c for c in captured if c["event"] == "http.request"]
    assert [(c["path"], c["key"], c["status"]) for c in lines] == [
        ("/api/whoami", "store-backend", 200),
        ("/healthz", None, 200),
    ]


def test_the_start_up_line_and_the_warning_of_an_open_api() -> None:
    pm = make_plugin_manager(enable=("payment",))
    url = "postgresql+asyncpg://statusflow:hunter2@db.internal:5433/orders?ssl=require"
    with capture_logs() as open_api:
        announce(settings_for(url, host="0.0.0.0"), pm)
    started = next(c for c in open_api if c["event"] == "server.started")
    assert started["database"] == "postgresql://db.internal:5433/orders"
    assert started["plugins"] == ["payment"] and started["auth"] is False
    assert "hunter2" not in repr(open_api) and "statusflow:" not in started["database"]
    warned = [c for c in open_api if c["event"] == "server.unprotected"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"
    assert "tokens" in warned[0]["hint"]
    for quiet in (
        settings_for(url, host="0.0.0.0", tokens=("t",)),
        settings_for(url, host="127.0.0.1"),
        settings_for(url, host="localhost"),
        settings_for(url, host="::1"),
    ):
        with capture_logs() as captured:
            announce(quiet, pm)
        assert "server.unprotected" not in [c["event"] for c in captured], quiet
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("10.1.2.3") and is_loopback("127.0.0.2")
    assert database_label("sqlite:///rel/statusflow.db") == "sqlite:///rel/statusflow.db"
    assert database_label("postgresql://u:p@h/db") == "postgresql://h/db"


# --- statuses by name ------------------------------------------------------------------------


async def test_order_moved_lines_show_statuses_with_their_names(make_client: Any) -> None:
    api = Api(await make_client(enable=("payment",)))
    await api.trigger_id("P")
    await api.create_order("o1")
    await api.create_order("o2")
    with capture_logs() as captured:
        await api.post_events(event(order_id="o1", id="pay-1"))
        await api.patch_order("o1", {"status": "S"})
    statuses = await api.call("GET", "/api/statuses")
    renamed = [{**s, "name": "Sent out"} if s["id"] == "S" else s for s in statuses]
    renamed.append({"id": "X", "name": "Lost", "sort": 10_000, "semantics": "failure"})
    await api.call("PUT", "/api/statuses", renamed)
    with capture_logs() as after:
        await api.patch_order("o1", {"status": "X"})  # a status the engine has never read
        await api.post_events(event(order_id="o2", id="pay-2"))
    moves = [(c["order_id"], c["move"]) for c in captured + after if c["event"] == "order.moved"]
    assert moves == [
        ("o1", "N New -> P Paid"),
        ("o1", "P Paid -> S Shipped"),
        ("o1", "S Sent out -> X Lost"),
        ("o2", "N New -> P Paid"),
    ]
    line = next(c for c in captured if c["event"] == "order.moved")
    assert (line["from_status"], line["to_status"]) == ("N", "P")  # the ids stay, for machines


# --- errors said once, typos answered with names ----------------------------------------------


def test_start_up_errors_are_said_once_with_what_was_meant(tmp_path: Path) -> None:
    configs = {
        "server_key": ("[server]\nprot = 8081\n", "unknown key(s) 'prot' (did you mean 'port'?)"),
        "top_key": ('databse_url = "sqlite:///x.db"\n', "did you mean 'database_url'?"),
        "plugins_key": (
            '[plugins]\ndisabel = ["visits"]\n',
            "configuration error at plugins: unknown key(s) 'disabel' (did you mean 'disable'?)",
        ),
        "plugin_name": (
            '[plugins]\nenable = ["payment", "shipmnet"]\n',
            "[plugins] enable: unknown plugin(s) 'shipmnet' (did you mean 'shipment'?)",
        ),
    }
    processes = []
    for name, (text, _) in configs.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        processes.append(cli("serve", "--config", str(path), env=clean_env(), cwd=tmp_path))
    environments = {
        "format": (
            {"STATUSFLOW_LOG_FORMAT": "jsno"},
            "STATUSFLOW_LOG_FORMAT 'jsno' is not one of console, json (did you mean 'json'?)",
        ),
        "level": (
            {"STATUSFLOW_LOG_LEVEL": "warnign"},
            "STATUSFLOW_LOG_LEVEL 'warnign' is not one of debug, info, warning, error, "
            "critical (did you mean 'warning'?)",
        ),
    }
    for variables, _ in environments.values():
        processes.append(cli("plugins", env=clean_env(**variables), cwd=tmp_path))
    wanted = [needle for _, needle in configs.values()]
    wanted += [needle for _, needle in environments.values()]
    for (code, out, err), needle in zip(outcomes(*processes), wanted, strict=True):
        assert code == 2 and out == "", (needle, out, err)
        assert err.count("\n") == 1 and "startup.failed" in err, err  # one line, once
        assert needle in err, (needle, err)
    assert not list(tmp_path.glob("*.db"))


def test_log_options_refuse_unknown_names_and_change_nothing(monkeypatch: Any) -> None:
    before = structlog.get_config()
    monkeypatch.setenv("STATUSFLOW_LOG_FORMAT", "yaml")
    with pytest.raises(StartupError, match="console, json"):
        configure_logging()
    assert structlog.get_config() == before
    monkeypatch.setenv("STATUSFLOW_LOG_FORMAT", "JSON")
    monkeypatch.setenv("STATUSFLOW_LOG_LEVEL", "Debug")
    assert log_options() == (logging.DEBUG, True)
    monkeypatch.delenv("STATUSFLOW_LOG_FORMAT")
    monkeypatch.delenv("STATUSFLOW_LOG_LEVEL")
    assert log_options() == (logging.INFO, False)


def test_a_plugin_table_that_is_not_a_table_is_still_said_so() -> None:
    with pytest.raises(StartupError, match=r"at plugins\.vault: must be of type object"):
        settings_from_mapping({"plugins": {"vault": "x"}})
    with pytest.raises(StartupError, match="did you mean 'enable'"):
        settings_from_mapping({"plugins": {"enabel": ["payment"]}})


def test_a_table_of_a_plugin_that_is_not_installed_is_answered_with_a_name(
    sqlite_url: str,
) -> None:
    """``[plugins.outgoing_webhook]`` would leave outgoing_webhooks on its defaults."""
    table = {"outgoing_webhook": {"batch_size": 10}, "visits": {}}
    with capture_logs() as captured:
        init_app(settings_for(sqlite_url, enable=("payment",), plugin_tables=table))
    unused = {c["plugin"]: c for c in captured if c["event"] == "plugin.settings_unused"}
    assert unused["outgoing_webhook"]["hint"].startswith("did you mean 'outgoing_webhooks'")
    assert unused["outgoing_webhook"]["reason"] == "no such plugin installed"
    assert unused["visits"]["reason"] == "plugin not loaded" and unused["visits"]["hint"] is None


async def test_the_server_header_names_no_versions(client: Any) -> None:
    for method, path in (("GET", "/healthz"), ("GET", "/nowhere"), ("PUT", "/healthz")):
        response = await client.request(method, path)
        assert response.headers["Server"] == "statusflow", (method, path)
    response = await client.post("/api/events", data=b"{not json")
    assert response.status == 400 and response.headers["Server"] == "statusflow"


def test_make_run_takes_host_and_port_and_the_readme_points_only_into_the_repository() -> None:
    """``make run`` installs the runtime only (``pip install -e .``), takes ``HOST`` and
    ``PORT``; the README says so, and each of its links is a file of the repository.
    (A real ``make run`` on a fresh clone takes minutes of installing: checked by hand.)"""
    root = Path(__file__).resolve().parents[1]
    makefile = (root / "Makefile").read_text()
    run = makefile[makefile.index("\nrun:") :].split("\n\n")[0]
    assert "run: install-run\n" in run and "--port $(PORT)" in run and "--host $(HOST)" in run
    assert "pip install -e .\n" in makefile  # the run stamp: no extras
    readme = (root / "README.md").read_text()
    assert "make run PORT=8081" in readme
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert links
    for link in links:
        assert "://" not in link and not link.startswith(("/", "..")), link
        assert (root / link).exists(), f"README.md links to {link}, which is not in the repository"
