"""Runs survive restarts and crashes: on SQLite and PostgreSQL, in-process and with real
``statusflow serve`` processes killed mid-run.

No wait here is a timing assertion: each waits for a condition, with a hang guard.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from statusflow.engine.scheduler import ManualClock
from tests.actions_helpers import start
from tests.helpers import HANG_GUARD
from tests.processes import Serve, clean_env


async def test_runs_due_while_nothing_ran_execute_at_the_next_start_late(
    aiohttp_client: Any, database_url: str
) -> None:
    clock = ManualClock()
    first = await start(aiohttp_client, database_url, clock=clock)
    action = await first.create_action(
        "N", "field.set", settings={"field": "a", "value": 1}, delay="PT1H"
    )
    await first.create_order("o1")
    await first.client.close()  # nothing runs now
    clock.advance(timedelta(hours=3))  # the run fell due two hours ago
    again = await start(aiohttp_client, database_url, clock=clock)
    done = await again.wait_run("o1", action["id"])
    assert done["attempts"] == 1
    assert done["lateness"] >= 2 * 3600  # started_at - due_at
    assert (await again.order("o1"))["fields"] == {"a": 1}


# --- a real server killed mid-run ----------------------------------------------------------


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver on a loopback port: the first request hangs until released
    (the server that sent it is killed meanwhile), the next ones are answered 200."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.first = threading.Event()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((dict(self.headers), json.loads(body)))
        if len(self.server.requests) == 1:
            self.server.first.set()
            self.server.release.wait(HANG_GUARD)  # its sender dies meanwhile
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def _config(tmp_path: Path, database_url: str) -> Path:
    config = tmp_path / "statusflow.toml"
    config.write_text(
        f"database_url = {json.dumps(database_url)}\n"
        '[plugins]\nenable = ["webhook_call"]\n'
        "[actions]\nlease_seconds = 7\nrun_timeout_seconds = 6\nretry_initial_seconds = 1\n"
    )
    return config


def _wait(check: Any, what: str) -> Any:
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def _crash_and_take_over(tmp_path: Path, database_url: str, receiver: Receiver) -> None:
    config = _config(tmp_path, database_url)
    env = clean_env()
    first = Serve(config, env, tmp_path / "first.log")
    try:
        action = first.call(
            "POST",
            "/api/actions",
            {"status": "N", "type": "webhook.call", "settings": {"url": receiver.url}},
            expect=201,
        )
        first.call("POST", "/api/orders", {"id": "o1"}, expect=201)
        assert receiver.first.wait(HANG_GUARD), first.output()
        [running] = first.call("GET", "/api/orders/o1/runs")
        assert running["state"] == "running" and running["attempts"] == 1
        first.process.kill()  # mid-run: its lease is all that is left of it
    finally:
        first.stop()
    second = Serve(config, env, tmp_path / "second.log")
    try:

        def done() -> dict[str, Any] | None:
            [run] = second.call("GET", "/api/orders/o1/runs")
            return run if run["state"] == "done" else None

        run = _wait(done, "the run to be taken over")
        assert run["attempts"] == 2 and run["action_id"] == action["id"]
        assert run["started_at"] == running["started_at"]  # its lateness counts from then
        assert run["reason"] == "HTTP 200"
        ids = {headers["webhook-id"] for headers, _ in receiver.requests}
        assert ids == {str(run["id"])}  # the same idempotency key both times
        assert [body["run_id"] for _, body in receiver.requests] == [run["id"], run["id"]]
        timeline = second.call("GET", "/api/orders/o1/timeline")
        assert [e["state"] for e in timeline if e["kind"] == "action"] == ["done"]
        listed = subprocess.run(
            [sys.executable, "-m", "statusflow.cli", "runs", "--url", second.base,
             "--order", "o1", "--state", "done", "--json"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [run["id"]]
    finally:
        assert second.stop() == 0, second.output()


async def test_a_server_killed_mid_run_is_taken_over_when_its_lease_ends(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    await asyncio.to_thread(_crash_and_take_over, tmp_path, database_url, receiver)
