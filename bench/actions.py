"""``python -m bench.actions``: what actions cost (issue 14), on real ``statusflow serve``.

Two figures per database:

* **the move path**: events that move an order to a status with no action, against
  events that move it to a status with two (delayed three days, so that none runs
  meanwhile): events per second at concurrency C, in alternating rounds of the same
  run, and the ratio;
* **the drain**: N ``status.change`` runs due at once (an action added with
  ``apply_to_existing``), ended per second by one instance; on PostgreSQL by two
  instances too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import ServerProcess, environment_for_server, free_port, statusflow_executable
from bench.seed import DEFAULT_POSTGRES, BenchDatabase, databases_to_measure, temporary_database

ROUNDS = 4
"""Rounds of the move path, alternating: without actions, with two, ..."""


def _config(workdir: Path, db: BenchDatabase, name: str) -> Path:
    config = workdir / f"{name}.toml"
    config.write_text(
        f"database_url = {json.dumps(db.url)}\n"
        '[plugins]\nenable = ["payment", "order_actions"]\n'
        "[actions]\nconcurrency = 64\n"
    )
    return config


def _server(workdir: Path, db: BenchDatabase, name: str) -> ServerProcess:
    port = free_port()
    argv = [
        statusflow_executable(), "serve", "--config", str(_config(workdir, db, name)),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = environment_for_server("warning")
    server = ServerProcess(name, argv, workdir / f"{name}.log", port, env)
    server.start()
    return server


async def _post_all(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[Any], concurrency: int
) -> float:
    """POST every body (``concurrency`` at a time); the seconds it took."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(url, json=body) as response:
                if response.status >= 300:
                    raise RuntimeError(f"{url}: {response.status} {await response.text()}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def move_path(base: str, events: int, concurrency: int) -> dict[str, Any]:
    """Events/s moving orders to a status without actions and with two."""
    async with aiohttp.ClientSession() as session:
        statuses = [
            {"id": "N", "name": "New", "sort": 100, "semantics": "process"},
            {"id": "A", "name": "Plain", "sort": 150, "semantics": "process"},
            {"id": "B", "name": "With actions", "sort": 160, "semantics": "process"},
            {"id": "D", "name": "Canceled", "sort": 250, "semantics": "failure"},
        ]
        async with session.put(f"{base}/api/statuses", json=statuses) as response:
            assert response.status == 200, await response.text()
        for status in ("A", "B"):
            trigger = {
                "type": "payment.received",
                "status": status,
                "conditions": [{"field": "fields.lane", "op": "eq", "value": status}],
            }
            async with session.post(f"{base}/api/triggers", json=trigger) as response:
                assert response.status == 201, await response.text()
        for body in (
            {"status": "B", "type": "status.change", "settings": {"status": "D"}, "delay": "P3D"},
            {
                "status": "B",
                "type": "field.set",
                "settings": {"field": "x", "value": 1},
                "delay": "P3D",
            },
        ):
            async with session.post(f"{base}/api/actions", json=body) as response:
                assert response.status == 201, await response.text()
        rates: dict[str, list[float]] = {"A": [], "B": []}
        for round_ in range(ROUNDS):
            lane = "AB"[round_ % 2]
            ids = [f"{lane}{round_}-{i}" for i in range(events)]
            orders = [{"id": i, "fields": {"lane": lane}} for i in ids]
            await _post_all(session, f"{base}/api/orders", orders, concurrency)
            bodies = [{"type": "payment.received", "order_id": i} for i in ids]
            seconds = await _post_all(session, f"{base}/api/events", bodies, concurrency)
            rates[lane].append(events / seconds)
    without, with_two = statistics.mean(rates["A"]), statistics.mean(rates["B"])
    return {
        "events_per_round": events,
        "events_per_s_no_actions": round(without, 1),
        "events_per_s_two_actions": round(with_two, 1),
        "extra_cost": round(without / with_two - 1, 4),
    }


async def drain(bases: Sequence[str], db: BenchDatabase, runs: int, concurrency: int) -> float:
    """Runs/s ending ``runs`` due ``status.change`` runs on the servers at ``bases``."""
    base = bases[0]
    async with aiohttp.ClientSession() as session:
        prefix = f"drain{len(bases)}-"
        orders = [{"id": f"{prefix}{i}", "status": "N"} for i in range(runs)]
        await _post_all(session, f"{base}/api/orders", orders, concurrency)
        body = {"status": "N", "type": "status.change", "settings": {"status": "D"}}
        started = time.perf_counter()
        url = f"{base}/api/actions?apply_to_existing=true"
        async with session.post(url, json=body) as response:
            assert response.status == 201, await response.text()
            action = await response.json()
        while await _unfinished(db, action["id"]) > 0:
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        async with session.delete(f"{base}/api/actions/{action['id']}") as response:
            assert response.status == 204
    return runs / seconds


async def _unfinished(db: BenchDatabase, action_id: int) -> int:
    query = (
        "SELECT count(*) FROM action_runs WHERE action_id = $1 AND state IN ('pending', 'running')"
    )
    if db.kind == "sqlite":
        import sqlite3

        assert db.path is not None
        with sqlite3.connect(db.path) as conn:
            return int(conn.execute(query.replace("$1", "?"), (action_id,)).fetchone()[0])
    import asyncpg

    conn = await asyncpg.connect(db.dsn)
    try:
        return int(await conn.fetchval(query, action_id))
    finally:
        await conn.close()


def measure(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with temporary_database(kind, workdir, args.postgres_url) as db:
        first = _server(workdir, db, f"{kind}-1")
        servers = [first]
        try:
            figures: dict[str, Any] = {"db": kind}
            figures.update(asyncio.run(move_path(first.base_url, args.events, args.concurrency)))
            figures["drain_runs_per_s_one_instance"] = round(
                asyncio.run(drain([first.base_url], db, args.runs, args.concurrency)), 1
            )
            if kind == "postgres":
                servers.append(_server(workdir, db, f"{kind}-2"))
                bases = [server.base_url for server in servers]
                figures["drain_runs_per_s_two_instances"] = round(
                    asyncio.run(drain(bases, db, args.runs, args.concurrency)), 1
                )
            return figures
        finally:
            for server in servers:
                server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.actions", description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--events", type=int, default=3000, help="events per round")
    parser.add_argument("--runs", type=int, default=10_000, help="runs to drain")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args(argv)
    kinds = databases_to_measure(args.db, args.postgres_url)
    with tempfile.TemporaryDirectory(prefix="statusflow-bench-actions-") as folder:
        for kind in kinds:
            sys.stdout.write(json.dumps(measure(kind, args, Path(folder))) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
