"""statusflow as real processes: commands run at once, ``statusflow serve`` on a free port,
and plain HTTP to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without statusflow's variables and ``PYTHONPATH``."""
    drop = ("STATUSFLOW_CONFIG", "STATUSFLOW_DATABASE_URL", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def cli(
    *args: str, env: Mapping[str, str], cwd: Path, python: Path | str = sys.executable
) -> subprocess.Popen[str]:
    """``python -m statusflow.cli ARGS``, started (several run at once: see :func:`outcomes`)."""
    return subprocess.Popen(
        [str(python), "-m", "statusflow.cli", *args],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcomes(*processes: subprocess.Popen[str]) -> list[tuple[int, str, str]]:
    """Each process's exit status, standard output and standard error, in order."""
    done = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        done.append((process.returncode, out, err))
    return done


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """One request with a JSON body; the status and the decoded JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Serve:
    """``python -m statusflow.cli serve --config CONFIG [ARGS]`` on a free loopback port,
    answering ``/healthz``, until ``stop()``; its output goes to ``log``."""

    def __init__(
        self,
        config: Path,
        env: dict[str, str],
        log: Path,
        *,
        python: Path | str = sys.executable,
        args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("w")
        command = [str(python), "-m", "statusflow.cli", "serve", "--config", str(config)]
        self.process = subprocess.Popen(
            [*command, *args, "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            cwd=config.parent,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}: {self.output()}")
            try:
                if http("GET", f"{self.base}/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"serve did not answer in time: {self.output()}")

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        """Send ``body`` as JSON; assert the status; the JSON answer."""
        status, answer = http(method, self.base + path, body)
        assert status == expect, (method, path, status, answer)
        return answer

    def stop(self) -> int:
        """SIGTERM, then wait; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._out.close()

    def output(self) -> str:
        """The end of what it wrote."""
        self._out.flush()
        return self.log.read_text()[-4000:]
