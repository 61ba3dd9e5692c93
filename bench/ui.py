"""``python -m bench.ui`` (``make bench-ui``): how long the board's heaviest pages take.

On a real ``statusflow serve`` per database (SQLite, and PostgreSQL when reachable):

* **the board** (``/ui/``) with 1,000 triggers spread over the statuses and a few
  actions per status;
* **the order page** (``/ui/orders/{id}``) of an order with 5,000 timeline entries (its
  first page: the timeline is paged);
* **the board under load**: on a second server, seeded as ``make bench`` seeds its
  engine (``--load-orders`` orders, 200 triggers, the same event mix), the board and an
  order page are fetched every ``--probe-every`` seconds while the bench's load
  generator posts events at concurrency 32 for ``--load-seconds``: does the board stay
  responsive while the engine is saturated?

Each page is fetched ``--repeat`` times after a warm-up, over one keep-alive
connection on the loopback, signed in as a person would be; the figures are the time
to the last byte of the answer (the server's rendering plus a loopback round trip),
median, 95th percentile and worst, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.dataset import Pipeline, build_mix, order_id, plan_triggers
from bench.load import LoadSpec, drive
from bench.procs import ServerProcess, environment_for_server, free_port, statusflow_executable
from bench.seed import (
    DEFAULT_POSTGRES,
    BenchDatabase,
    databases_to_measure,
    get_json,
    probe_mix,
    seed_orders,
    seed_triggers,
    temporary_database,
)

TOKEN = "bench-ui-token-5c1d"
TRIGGER_TYPES = (
    ("payment.received", {}),
    ("shipment.shipped", {}),
    ("email.viewed", {}),
    ("email.link_clicked", {"url": "https://shop.example/"}),
    ("call.missed", {}),
    ("form.submitted", {"form_id": "contact"}),
    ("document.opened", {}),
    ("webhook.called", {}),
)


def _server(workdir: Path, db: BenchDatabase, name: str, tokens: bool = True) -> ServerProcess:
    """``statusflow serve`` on ``db``; with ``tokens``, behind :data:`TOKEN` (the load
    generator sends no token: the under-load server has none, as ``make bench``'s)."""
    config = workdir / f"{name}.toml"
    config.write_text(
        f"database_url = {json.dumps(db.url)}\n"
        + (f'[auth]\ntokens = ["{TOKEN}"]\n' if tokens else "")
        + "[server]\npublic_rate_per_second = 0\n"
    )
    port = free_port()
    argv = [
        statusflow_executable(), "serve", "--config", str(config),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = environment_for_server("warning")
    server = ServerProcess(name, argv, workdir / f"{name}.log", port, env)
    server.start()
    return server


async def _call(session: aiohttp.ClientSession, method: str, url: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.request(method, url, json=body, headers=headers) as response:
        if response.status >= 300:
            raise RuntimeError(f"{method} {url}: {response.status} {await response.text()}")
        return await response.json() if response.status != 204 else None


async def _gather_limited(calls: Sequence[Any], limit: int = 16) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Any) -> None:
        async with semaphore:
            await call

    await asyncio.gather(*(one(call) for call in calls))


async def seed(base: str, triggers: int, entries: int) -> str:
    """``triggers`` triggers, two actions per status, and an order with ``entries``
    timeline entries; the order's id."""
    async with aiohttp.ClientSession() as session:
        statuses = await _call(session, "GET", f"{base}/api/statuses", None)
        targets = [s["id"] for s in statuses]
        bodies = []
        for index in range(triggers):
            type_, settings = TRIGGER_TYPES[index % len(TRIGGER_TYPES)]
            bodies.append({
                "type": type_, "status": targets[index % len(targets)],
                "name": f"trigger {index}" if index % 3 == 0 else "",
                "settings": settings, "enabled": index % 10 != 0,
                "conditions": [{"field": "amount", "op": "gte", "value": index % 50}],
            })  # fmt: skip
        await _gather_limited([_call(session, "POST", f"{base}/api/triggers", b) for b in bodies])
        for status in targets:
            for delay in ("PT1H", "P3D"):
                action = {"status": status, "type": "field.set", "delay": delay,
                          "settings": {"field": "seen", "value": True}}  # fmt: skip
                await _call(session, "POST", f"{base}/api/actions", action)
        order = "bench-ui-order"
        await _call(session, "POST", f"{base}/api/orders", {"id": order, "amount": 10})
        posts = []
        for start in range(0, entries, 100):
            events = [
                {"type": "email.viewed", "order_id": order, "data": {"n": n}}
                for n in range(start, min(entries, start + 100))
            ]
            posts.append(_call(session, "POST", f"{base}/api/events", events))
        await _gather_limited(posts, 4)
        return order


async def time_pages(
    base: str, paths: dict[str, str], repeat: int, sign_in: bool = True
) -> dict[str, Any]:
    """Sign in (unless the server has no tokens), then fetch each page ``repeat`` times;
    ms figures per page."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        if sign_in:
            async with session.get(f"{base}/ui/sign-in") as response:
                page = await response.text()
            csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            form = {"csrf_token": csrf, "token": TOKEN, "next": "/ui/"}
            async with session.post(f"{base}/ui/sign-in", data=form) as response:
                if response.status != 200 or "Sign in" in str(response.url):
                    raise RuntimeError(f"sign-in failed: {response.status}")
        figures: dict[str, Any] = {}
        for name, path in paths.items():
            times = []
            size = 0
            for attempt in range(repeat + 3):
                started = time.perf_counter()
                async with session.get(base + path) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{path}: {response.status}")
                elapsed = (time.perf_counter() - started) * 1000
                size = len(body)
                if attempt >= 3:  # the first few warm the caches
                    times.append(elapsed)
            times.sort()
            figures[name] = {
                "median_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
                "max_ms": round(times[-1], 1),
                "bytes": size,
            }
        return figures


def measure(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with temporary_database(kind, workdir, args.postgres_url) as db:
        server = _server(workdir, db, f"ui-{kind}")
        try:
            started = time.perf_counter()
            order = asyncio.run(seed(server.base_url, args.triggers, args.entries))
            seeded = time.perf_counter() - started
            paths = {"board": "/ui/", "order_page": f"/ui/orders/{order}"}
            figures = asyncio.run(time_pages(server.base_url, paths, args.repeat))
        finally:
            server.stop()
    return {
        "db": kind,
        "triggers": args.triggers,
        "timeline_entries": args.entries,
        "seed_s": round(seeded, 1),
        **figures,
    }


def _summary(times: list[float]) -> dict[str, Any]:
    times = sorted(times)
    if not times:
        return {"fetches": 0}
    return {
        "fetches": len(times),
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "max_ms": round(times[-1], 1),
    }


async def probe_pages(
    base: str, paths: dict[str, str], every: float, done: threading.Event
) -> dict[str, Any]:
    """Fetch each of ``paths`` every ``every`` seconds until ``done``; ms figures."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    failures: dict[str, int] = {name: 0 for name in paths}
    async with aiohttp.ClientSession() as session:
        while not done.is_set():
            for name, path in paths.items():
                started = time.perf_counter()
                async with session.get(base + path) as response:
                    await response.read()
                    if response.status != 200:
                        failures[name] += 1
                        continue
                times[name].append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(every)
    return {name: {**_summary(times[name]), "failures": failures[name]} for name in paths}


def measure_under_load(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The board and an order page fetched while the bench's load saturates the engine."""
    with temporary_database(kind, workdir, args.postgres_url) as db:
        server = _server(workdir, db, f"ui-load-{kind}", tokens=False)
        base = server.base_url
        try:
            pipeline = Pipeline.from_api(get_json(base, "/api/statuses"))
            seeded = seed_orders(db, pipeline, args.load_orders, 1)
            types = get_json(base, "/api/trigger-types")
            seed_triggers(base, plan_triggers(types, pipeline, 200, 1))
            accepted = sorted({e for t in types for e in t["events"]} - {"webhook.called"})
            templates, _ = build_mix(accepted)
            templates, _ = probe_mix(base, templates, seeded.orders, seeded.contacts)
            spec = LoadSpec(
                url=f"{base}/api/events",
                concurrency=32,
                warmup=2.0,
                duration=args.load_seconds,
                seed=1,
                tag=f"u{uuid.uuid4().hex[:8]}",
                orders=seeded.orders,
                contacts=seeded.contacts,
                templates=[t.as_json() for t in templates],
            )
            paths = {"board": "/ui/", "order_page": f"/ui/orders/{order_id(0)}"}
            idle = asyncio.run(time_pages(base, paths, 10, sign_in=False))
            done = threading.Event()
            load: dict[str, Any] = {}

            def run_load() -> None:
                try:
                    load.update(drive(spec, server.pid, workdir, f"ui-load-{kind}"))
                finally:
                    done.set()

            thread = threading.Thread(target=run_load)
            thread.start()
            loaded = asyncio.run(probe_pages(base, paths, args.probe_every, done))
            thread.join()
        finally:
            server.stop()
    return {
        "db": kind,
        "under_load": True,
        "orders": seeded.orders,
        "triggers": 200,
        "load_events_per_s": round(load.get("events_per_s", 0.0)),
        "load_p99_ms": round(load.get("latency_ms", {}).get("p99", 0.0), 1),
        "idle": idle,
        "loaded": loaded,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=5000, help="the order's timeline entries")
    parser.add_argument("--repeat", type=int, default=40, help="fetches per page")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument(
        "--load-seconds", type=float, default=20.0, help="the under-load phase (0: skip it)"
    )
    parser.add_argument("--load-orders", type=int, default=20_000)
    parser.add_argument("--probe-every", type=float, default=0.5, help="seconds between probes")
    args = parser.parse_args(argv)
    kinds = databases_to_measure(args.db, args.postgres_url)
    with tempfile.TemporaryDirectory(prefix="statusflow-bench-ui-") as folder:
        for kind in kinds:
            sys.stdout.write(json.dumps(measure(kind, args, Path(folder))) + "\n")
            sys.stdout.flush()
            if args.load_seconds > 0:
                figures = measure_under_load(kind, args, Path(folder))
                sys.stdout.write(json.dumps(figures) + "\n")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
