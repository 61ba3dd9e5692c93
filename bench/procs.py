"""Server subprocesses: start, wait until healthy, measure (CPU, memory), stop."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: subprocesses run there, so ``bench`` and ``kernel`` import."""


class StartError(RuntimeError):
    """A server did not come up; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def statusflow_executable() -> str:
    """The ``statusflow`` console script next to the running interpreter."""
    path = Path(sys.executable).parent / "statusflow"
    if not path.exists():
        raise SystemExit(f"{path} not found: install statusflow into this venv (make install)")
    return str(path)


@functools.cache
def serve_supports_workers() -> bool:
    """Whether ``statusflow serve`` accepts ``--workers``."""
    out = subprocess.run(
        [statusflow_executable(), "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    return "--workers" in out.stdout


def plugins_to_enable() -> list[str] | None:
    """The entry-point plugins whose module exists, when some are missing; else ``None``.

    While the built-in plugins are being written, ``setup.cfg`` names modules that do not
    exist yet and the server refuses to start; ``[plugins] enable`` then lists the others.
    """
    present: list[str] = []
    missing: list[str] = []
    for ep in sorted(entry_points(group="statusflow"), key=lambda e: e.name):
        try:
            found = importlib.util.find_spec(ep.module) is not None
        except (ImportError, ValueError):
            found = False
        (present if found else missing).append(ep.name)
    return present if missing else None


def code_fingerprint() -> str:
    """A hash of statusflow's code (``kernel/``, ``plugins/``, ``setup.cfg``) as it is now.

    The server imports the work tree (editable install): a change during a run means
    its measurements mix versions.
    """
    digest = hashlib.sha1()
    files = [ROOT / "setup.cfg"]
    for folder in ("kernel", "plugins"):
        files += sorted((ROOT / folder).rglob("*.py"))
    for path in files:
        try:
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
        except OSError:
            continue
    return digest.hexdigest()[:12]


def log_tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ServerProcess:
    """A server subprocess with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        port: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log_path = log_path
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait for ``GET /healthz`` to answer 200.

        :raises StartError: the process exited or did not answer in time.
        """
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise StartError(f"{self.name} exited with code {code}:\n{log_tail(self.log_path)}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise StartError(f"{self.name} did not answer /healthz in {timeout:.0f} s")

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the process (and its children) to stop; kill whatever is left after ``timeout``."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
        except psutil.NoSuchProcess:
            family = []
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        _gone, alive = psutil.wait_procs(family, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


@dataclass
class Usage:
    """What a process tree used during the measured window."""

    cpu_seconds: float
    wall_seconds: float
    peak_rss_mb: float
    database_cpu_seconds: float  # PostgreSQL backends of the database (0 for SQLite)
    machine_busy_seconds: float  # CPU time of every process on the machine

    @property
    def cpu_percent(self) -> float:
        """CPU time over wall time, in percent of one core (200% = two cores busy)."""
        return 100.0 * self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine since boot (all cores, not idle)."""
    times = psutil.cpu_times()
    busy = times.user + times.system
    for name in ("nice", "irq", "softirq", "steal"):
        busy += getattr(times, name, 0.0)
    return float(busy)


def postgres_backends_cpu(database: str) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends connected to ``database``, by pid.

    A backend's title is ``postgres: VERSION/CLUSTER: USER DATABASE HOST(PORT) STATE``.
    """
    times = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            title = " ".join(proc.info["cmdline"] or ())
            is_postgres = proc.info["name"] == "postgres" or title.startswith("postgres:")
            if is_postgres and f" {database} " in f" {title} ":
                cpu = proc.cpu_times()
                times[proc.pid] = cpu.user + cpu.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return times


class ResourceSampler(threading.Thread):
    """Samples a process tree's memory; snapshots CPU times at window start and end.

    Besides the server's process tree it snapshots the whole machine's CPU time and,
    given ``database``, the CPU of the PostgreSQL backends serving that database.
    """

    def __init__(self, pid: int, database: str | None = None, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name=f"sampler-{pid}")
        self.root = psutil.Process(pid)
        self.database = database
        self.interval = interval
        self.peak_rss = 0
        self._stop_event = threading.Event()
        self._procs: dict[int, psutil.Process] = {}
        self._marks: dict[str, tuple[float, dict[int, float], dict[int, float], float]] = {}

    def _family(self) -> list[psutil.Process]:
        try:
            found = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for proc in found:
            self._procs.setdefault(proc.pid, proc)
        return [self._procs[p.pid] for p in found]

    def _cpu(self) -> dict[int, float]:
        times = {}
        for proc in self._family():
            try:
                cpu = proc.cpu_times()
                times[proc.pid] = cpu.user + cpu.system
            except psutil.NoSuchProcess:
                continue
        return times

    def _sample_memory(self) -> None:
        total = 0
        for proc in self._family():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        self.peak_rss = max(self.peak_rss, total)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self._sample_memory()

    def _mark(self, name: str) -> None:
        database = postgres_backends_cpu(self.database) if self.database else {}
        self._marks[name] = (time.monotonic(), self._cpu(), database, machine_busy_seconds())

    def mark_start(self) -> None:
        """The measured window starts now."""
        self._mark("start")

    def mark_end(self) -> None:
        """The measured window ends now."""
        self._mark("end")
        self._sample_memory()

    def finish(self) -> Usage:
        """Stop sampling; the usage in the window (from the first sample if never marked)."""
        self._stop_event.set()
        self.join(5)
        if "end" not in self._marks:
            self.mark_end()
        start_at, start_cpu, start_db, start_busy = self._marks.get(
            "start", (self._marks["end"][0], {}, {}, self._marks["end"][3])
        )
        end_at, end_cpu, end_db, end_busy = self._marks["end"]

        def spent(before: dict[int, float], after: dict[int, float]) -> float:
            return sum(max(0.0, value - before.get(pid, 0.0)) for pid, value in after.items())

        return Usage(
            cpu_seconds=spent(start_cpu, end_cpu),
            wall_seconds=max(0.0, end_at - start_at),
            peak_rss_mb=self.peak_rss / 2**20,
            database_cpu_seconds=spent(start_db, end_db),
            machine_busy_seconds=max(0.0, end_busy - start_busy),
        )


def environment_for_server(log_level: str | None) -> dict[str, str]:
    """The environment of a server subprocess (``STATUSFLOW_LOG_LEVEL`` when given)."""
    env = dict(os.environ)
    env.pop("STATUSFLOW_CONFIG", None)
    env.pop("STATUSFLOW_DATABASE_URL", None)
    if log_level:
        env["STATUSFLOW_LOG_LEVEL"] = log_level
    return env
