"""``python -m bench.ui`` (``make bench-ui``): how long the board's heaviest pages take.

On a real ``statusflow serve`` per database (SQLite, and PostgreSQL when reachable):

* **the board** (``/ui/``) with 1,000 triggers spread over the statuses and a few
  actions per status;
* **the order page** (``/ui/orders/{id}``) of an order with 5,000 timeline entries (its
  first page: the timeline is paged).

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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.procs import ServerProcess, environment_for_server, free_port, statusflow_executable
from bench.seed import DEFAULT_POSTGRES, BenchDatabase, postgres_reachable, temporary_database

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


def _server(workdir: Path, db: BenchDatabase, name: str) -> ServerProcess:
    config = workdir / f"{name}.toml"
    config.write_text(
        f"database_url = {json.dumps(db.url)}\n"
        f'[auth]\ntokens = ["{TOKEN}"]\n'
        "[server]\npublic_rate_per_second = 0\n"
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


async def time_pages(base: str, paths: dict[str, str], repeat: int) -> dict[str, Any]:
    """Sign in, then fetch each page ``repeat`` times; ms figures per page."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=5000, help="the order's timeline entries")
    parser.add_argument("--repeat", type=int, default=40, help="fetches per page")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if "postgres" in kinds and not postgres_reachable(args.postgres_url):
        kinds.remove("postgres")
        sys.stderr.write("PostgreSQL is not reachable: SQLite only\n")
    with tempfile.TemporaryDirectory(prefix="statusflow-bench-ui-") as folder:
        for kind in kinds:
            sys.stdout.write(json.dumps(measure(kind, args, Path(folder))) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
