"""``statusflow orders|triggers|events``: the commands for people at a terminal, run as
the console script against a real server on a loopback port (the requests are the
API's, so SQLite is enough): their output, their exit codes, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from typing import Any

import pytest

from statusflow.http import init_app
from statusflow.testing import settings_for
from tests.helpers import Api, event

TOKEN = "sesame"


class Cli:
    """``statusflow ...`` (the console script) against the test server; each run's exit
    code and output."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.env = {**os.environ, "STATUSFLOW_TOKEN": ""}

    async def __call__(
        self, *argv: str, token: str | None = TOKEN, stdin: str = ""
    ) -> tuple[int, str, str]:
        args = [*argv, "--url", self.base]
        if token is not None:
            args += ["--token", token]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "statusflow.cli", *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def ok(self, *argv: str, **kwargs: Any) -> str:
        code, out, err = await self(*argv, **kwargs)
        assert code == 0 and not err, (code, out, err)
        return out

    async def json(self, *argv: str, **kwargs: Any) -> Any:
        return json.loads(await self.ok(*argv, "--json", **kwargs))


@pytest.fixture
async def server(aiohttp_client: Any, sqlite_url: str) -> Api:
    settings = settings_for(sqlite_url, enable=("payment", "calls"), tokens=(TOKEN,))
    api = Api(await aiohttp_client(init_app(settings)))
    api.client.session.headers["Authorization"] = f"Bearer {TOKEN}"
    return api


@pytest.fixture
def cli(server: Api) -> Cli:
    return Cli(str(server.client.make_url("")).rstrip("/"))


async def test_triggers_list_add_disable_enable_rm(cli, server):
    assert (await cli.ok("triggers", "list")).strip() == "no trigger"
    out = await cli.ok(
        "triggers", "add", "call.missed", "P", "--name", "missed call",
        "--setting", "line=sales", "--when", "amount", "gte", "100",
    )  # fmt: skip
    assert out.strip() == "trigger 1 added: call.missed -> P Paid"
    made = await cli.json("triggers", "add", "payment.received", "S", "--disabled")
    assert (made["id"], made["enabled"], made["status"]) == (2, False, "S")
    stored = {t["id"]: t for t in await server.triggers()}
    assert stored[1]["settings"] == {"line": "sales"} and stored[1]["name"] == "missed call"
    assert stored[1]["conditions"] == [{"field": "amount", "op": "gte", "value": 100}]

    lines = (await cli.ok("triggers", "list")).splitlines()
    assert lines[0].split() == ["ID", "TYPE", "TARGET", "STATE", "NAME", "SETTINGS", "AND",
                                "CONDITIONS"]  # fmt: skip
    assert "call.missed" in lines[1] and "P Paid" in lines[1] and "enabled" in lines[1]
    assert 'line="sales"; amount gte 100' in lines[1] and "missed call" in lines[1]
    assert "S Shipped" in lines[2] and "disabled" in lines[2]
    assert [t["id"] for t in await cli.json("triggers", "list")] == [1, 2]

    assert (await cli.ok("triggers", "disable", "1")).strip() == "trigger 1 disabled"
    assert (await cli.ok("triggers", "enable", "2")).strip() == "trigger 2 enabled"
    stored = {t["id"]: t["enabled"] for t in await server.triggers()}
    assert stored == {1: False, 2: True}
    assert (await cli.ok("triggers", "rm", "1")).strip() == "trigger 1 deleted"
    assert [t["id"] for t in await server.triggers()] == [2]

    code, out, err = await cli("triggers", "rm", "1")
    assert (code, out) == (5, "") and "404" in err and "Traceback" not in err
    code, _, err = await cli("triggers", "add", "call.misssed", "P")
    assert code == 1 and "422" in err and "call.misssed" in err, err
    code, _, err = await cli("triggers", "add", "call.missed", "P", "--setting", "line")
    assert code == 1 and "KEY=VALUE" in err
    assert [t["id"] for t in await server.triggers()] == [2]  # nothing else was made


async def test_events_post_from_a_file_or_stdin_and_why(cli, server, tmp_path):
    paid = await server.trigger_id("P")
    shipped = await server.trigger_id("S")
    await server.create_order("o1", contact={"phones": ["+14155550100"]})
    body = tmp_path / "event.json"
    body.write_text(json.dumps(event(id="e1", order_id="o1")))
    out = await cli.ok("events", "post", str(body))
    assert out.splitlines()[:3] == [
        "e1",
        "  orders: o1",
        f"  moved o1: N New -> P Paid  (trigger {paid} payment.received -> P Paid)",
    ]
    listed = [event("call.missed", id="e2", contact={"phone": "415-555-0100"})]
    answer = await cli.json("events", "post", "-", stdin=json.dumps(listed))
    assert answer[0]["order_ids"] == ["o1"] and answer[0]["moves"] == []
    assert "no move" in await cli.ok("events", "post", "-", stdin=json.dumps(listed))  # again
    out = await cli.ok("events", "post", "-", "--dry-run", stdin=json.dumps(event(order_id="o1")))
    assert "dry run" in out and "OUTCOME" in out and "already in" in out.lower()

    out = await cli.ok("events", "why", "e1")
    assert out.splitlines()[0].startswith("event e1  payment.received  received ")
    assert f"moved o1: N New -> P Paid  (trigger {paid} payment.received -> P Paid)" in out
    table = out.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["ORDER", "TRIGGER", "OUTCOME", "REASON"]
    rows = {line.split()[1]: line for line in table[1:]}
    assert "moved" in rows[str(paid)] and "skipped" in rows[str(shipped)], table
    assert "S Shipped" in rows[str(shipped)]
    assert "no trigger listens" in await cli.ok("events", "why", "e2")
    assert (await cli.json("events", "why", "e1"))["trace"]

    code, _, err = await cli("events", "why", "nope")
    assert code == 5 and "nope" in err
    code, _, err = await cli("events", "post", "-", stdin="{not json")
    assert code == 1 and "standard input is not JSON" in err
    code, _, err = await cli("events", "post", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err
    code, _, err = await cli("events", "post", "-", stdin=json.dumps({"type": "nope"}))
    assert code == 1 and "422" in err and "nope" in err
    assert await server.stored_event_count() == 2


async def test_orders_show_and_find(cli, server):
    await server.trigger_id("P")
    ada = {"name": "Ada", "phones": ["+1 415 555 0100"], "emails": ["ada@example.com"]}
    await server.create_order("o1", contact=ada, amount=59.9, currency="USD")
    await server.create_order("o2", contact={"phones": ["4155550100"]})
    await server.create_order("o3")
    await server.post_events(event(id="e1", order_id="o1"))
    await server.patch_order("o1", {"status": "F"})

    out = await cli.ok("orders", "show", "o1")
    head, _, timeline = out.partition("\n\n")
    assert "status       F Completed" in head and "59.9 USD" in head and "Ada" in head
    lines = timeline.splitlines()
    assert lines[0].split() == ["AT", "KIND", "WHAT"]
    assert [line.split()[1] for line in lines[1:]] == [
        "created", "event", "status_changed", "status_changed",
    ]  # fmt: skip
    assert "N New -> P Paid  (trigger 1 payment.received -> P Paid, event e1)" in lines[3]
    assert "P Paid -> F Completed  (manual)" in lines[4]
    shown = await cli.json("orders", "show", "o1")
    assert shown["order"]["id"] == "o1" and len(shown["timeline"]) == 4

    out = await cli.ok("orders", "find", "(415) 555-0100")
    rows = out.splitlines()
    assert rows[0].split() == ["ID", "STATUS", "CREATED", "CONTACT"]
    assert [r.split()[0] for r in rows[1:]] == ["o2", "o1"]
    assert "F Completed" in rows[2] and "Ada" in rows[2]
    assert (await cli.ok("orders", "find", "nobody@example.com")).strip() == "no order found"
    out = await cli.ok("orders", "find", "--limit", "2")
    assert [r.split()[0] for r in out.splitlines()[1:3]] == ["o3", "o2"]
    cursor = out.rsplit("--cursor ", 1)[1].strip()
    out = await cli.ok("orders", "find", "--limit", "2", "--cursor", cursor)
    assert [r.split()[0] for r in out.splitlines()[1:]] == ["o1"] and "more" not in out
    page = await cli.json("orders", "find", "--status", "N")
    assert [o["id"] for o in page["items"]] == ["o3", "o2"] and page["next"] is None

    code, _, err = await cli("orders", "show", "nope")
    assert code == 5 and "404" in err and "nope" in err
    code, _, err = await cli("orders", "find", "--status", "ZZ")
    assert code == 1 and "422" in err and "ZZ" in err
    code, _, err = await cli("orders", "find", "--limit", "0")
    assert code == 1 and "limit" in err


async def test_the_token_comes_from_the_option_or_the_environment(cli):
    code, out, err = await cli("triggers", "list", token=None)
    assert (code, out) == (4, "") and "401" in err and "STATUSFLOW_TOKEN" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    code, _, err = await cli("triggers", "list", token="wrong")
    assert code == 4 and "401" in err
    cli.env["STATUSFLOW_TOKEN"] = TOKEN
    assert (await cli.ok("triggers", "list", token=None)).strip() == "no trigger"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _console(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statusflow.cli", *argv],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "STATUSFLOW_TOKEN": ""},
    )  # fmt: skip


def test_a_server_that_is_down_is_one_line_and_exit_code_3() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    for argv in (("orders", "show", "o1"), ("triggers", "list"), ("events", "why", "e1")):
        done = _console(*argv, "--url", url)
        assert done.returncode == 3, done
        assert done.stdout == "" and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"statusflow {argv[0]} {argv[1]}: cannot reach {url}")
        assert len(done.stderr.splitlines()) == 1, done.stderr
