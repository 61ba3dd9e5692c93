"""``statusflow serve --workers N`` and ``statusflow migrate`` as real processes."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "statusflow.toml"
    path.write_text(
        f'database_url = "sqlite:///{tmp_path / "db.sqlite"}"\n'
        f"[server]\nport = {port}\n"
        '[plugins]\nenable = ["payment"]\n'
    )
    return path


async def _wait_healthy(base: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(seconds * 10)):
            assert process.poll() is None, "the server exited"
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not answer /healthz")


def _serve_two_workers(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, list[str]]:
    """``statusflow serve --workers 2`` on a fresh SQLite file: the process, its base URL
    and the command (to start it again)."""
    port = _free_port()
    command = [str(BIN / "statusflow"), "serve", "--config", str(_config(tmp_path, port))]
    command += ["--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return process, f"http://127.0.0.1:{port}", command


async def test_two_workers_share_one_port_and_stop_on_sigterm(tmp_path):
    process, base, _ = _serve_two_workers(tmp_path)
    try:
        await _wait_healthy(base, process)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/api/orders", json={"id": "o1"}) as response:
                assert response.status == 201
            trigger = {"type": "payment.received", "status": "P"}
            async with session.post(f"{base}/api/triggers", json=trigger) as response:
                assert response.status == 201
            bodies = [
                {"id": f"e{i}", "type": "payment.received", "order_id": "o1"} for i in range(20)
            ]
            results = []
            for body in bodies:  # new connections: the kernel spreads them over the workers
                async with (
                    aiohttp.ClientSession() as fresh,
                    fresh.post(f"{base}/api/events", json=body) as response,
                ):
                    assert response.status == 200
                    results.append(await response.json())
        assert sum(len(r["moves"]) for r in results) == 1  # one move, whichever worker
        for _ in range(4):  # whichever worker answers /metrics reports both (multiprocess)
            async with (
                aiohttp.ClientSession() as fresh,
                fresh.get(f"{base}/metrics") as response,
            ):
                assert response.status == 200
                totals = _metric_totals(await response.text())
            assert totals["statusflow_events_total"] == 20
            assert totals["statusflow_moves_total"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()[-2000:]


async def test_two_workers_write_one_sqlite_file_concurrently(tmp_path):
    """Two processes' group writers take turns on the file (their flock): under concurrent
    load every event is stored once, every order moves once, nothing fails."""
    process, base, _ = _serve_two_workers(tmp_path)
    orders = [f"o{i}" for i in range(20)]
    try:
        await _wait_healthy(base, process)
        async with aiohttp.ClientSession() as session:
            for order in orders:
                async with session.post(f"{base}/api/orders", json={"id": order}) as response:
                    assert response.status == 201
            trigger = {"type": "payment.received", "status": "P"}
            async with session.post(f"{base}/api/triggers", json=trigger) as response:
                assert response.status == 201

        async def post(index: int) -> dict[str, object]:
            body = {"id": f"e{index}", "type": "payment.received", "order_id": orders[index % 20]}
            connector = aiohttp.TCPConnector(force_close=True)  # spread over the workers
            async with (
                aiohttp.ClientSession(connector=connector) as fresh,
                fresh.post(f"{base}/api/events", json=body) as response,
            ):
                assert response.status == 200, await response.text()
                result: dict[str, object] = await response.json()
                return result

        results = await asyncio.gather(*(post(i) for i in range(200)))
        moved = [m["order_id"] for r in results for m in r["moves"]]  # type: ignore[attr-defined]
        assert sorted(moved) == sorted(orders)  # each order once, by whichever worker
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()[-2000:]
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 200
        assert db.execute("SELECT count(*) FROM moves").fetchone()[0] == 20


def _metric_totals(text: str) -> dict[str, float]:
    """Each sample name's sum over its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def test_migrate_creates_the_schema(tmp_path):
    config = _config(tmp_path, _free_port())
    done = subprocess.run(
        [BIN / "statusflow", "migrate", "--config", str(config)],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        statuses = [row[0] for row in conn.execute("SELECT id FROM statuses ORDER BY sort")]
    assert {"alembic_version", "orders", "events", "triggers"} <= tables
    assert statuses == ["N", "P", "S", "F", "D"]


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path):
    """A SIGKILLed supervisor takes its workers down (they drain and stop): none is
    left serving the port with nobody to restart or stop it, and a new ``serve`` finds
    the port free. While something else listens on the port, ``serve --workers``
    refuses to start (sharing it through SO_REUSEPORT would go unnoticed)."""
    import psutil

    process, base, command = _serve_two_workers(tmp_path)
    port = int(base.rsplit(":", 1)[1])
    await _wait_healthy(base, process)
    workers = []
    for child in psutil.Process(process.pid).children():
        try:
            cmdline = " ".join(child.cmdline())
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue  # a short-lived helper of the supervisor that just ended (ldconfig, ...)
        if "spawn_main" in cmdline:  # multiprocessing's workers, not its resource tracker
            workers.append(child)
    assert len(workers) == 2
    process.kill()
    process.communicate(timeout=10)
    _gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, [p.pid for p in alive]

    again = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await _wait_healthy(base, again)  # the port was free
    finally:
        again.send_signal(signal.SIGTERM)
        _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr.decode()[-2000:]

    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        squatter.close()
    assert refused.returncode != 0 and "cannot listen on" in refused.stderr, refused.stderr
