"""The load generator: C concurrent aiohttp connections for D seconds, in its own process.

Run by :func:`drive` as ``python -m bench.load SPEC.json RESULT.json``. Each of the C
workers posts one event at a time (a new one as soon as the previous answer arrived)
from its own deterministic :class:`~bench.dataset.EventFactory`. Requests that finish
during the warm-up are not counted. The process prints ``WINDOW_START`` and
``WINDOW_END`` on standard output when the measured window opens and closes, so the
parent can read the server's CPU time at those moments.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.dataset import EventFactory, Template
from bench.procs import ROOT, ResourceSampler, log_tail

HEADERS = {"Content-Type": "application/json"}


@dataclass
class LoadSpec:
    """Everything the load process needs."""

    url: str
    concurrency: int
    warmup: float
    duration: float
    seed: int
    tag: str
    orders: int
    contacts: int
    templates: list[dict[str, Any]]
    duplicate_share: float = 0.02
    unknown_share: float = 0.05
    request_timeout: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99, mean and max of ``values`` (in the same unit), 0 when empty."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": sum(ordered) / len(ordered),
        "max": ordered[-1],
    }


async def generate(spec: LoadSpec) -> dict[str, Any]:
    """Drive the load described by ``spec``; return the counts and latencies."""
    loop = asyncio.get_running_loop()
    templates = [Template(**t) for t in spec.templates]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    duplicates = 0
    warmup_requests = 0
    cpu_marks: dict[str, float] = {}
    start = loop.time() + 0.2
    window_start = start + spec.warmup
    window_end = window_start + spec.duration

    def mark(name: str) -> None:
        cpu_marks[name] = time.process_time()
        sys.stdout.write(f"{name}\n")
        sys.stdout.flush()

    loop.call_at(window_start, mark, "WINDOW_START")
    loop.call_at(window_end, mark, "WINDOW_END")
    connector = aiohttp.TCPConnector(limit=spec.concurrency, limit_per_host=spec.concurrency)
    timeout = aiohttp.ClientTimeout(total=spec.request_timeout)

    # No cookies, no decompression: the client's CPU is taken from the same cores.
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    ) as session:

        async def worker(index: int) -> None:
            nonlocal duplicates, warmup_requests
            factory = EventFactory(
                templates,
                orders=spec.orders,
                contacts=spec.contacts,
                seed=spec.seed,
                worker=index,
                tag=spec.tag,
                duplicate_share=spec.duplicate_share,
                unknown_share=spec.unknown_share,
            )
            await asyncio.sleep(max(0.0, start - loop.time()))
            while loop.time() < window_end:
                event_type, body, duplicate = factory.next()
                sent = loop.time()
                try:
                    async with session.post(spec.url, data=body, headers=HEADERS) as answer:
                        await answer.read()
                        outcome = str(answer.status)
                except TimeoutError:
                    outcome = "timeout"
                except aiohttp.ClientError as exc:
                    outcome = type(exc).__name__
                done = loop.time()
                if done < window_start:
                    warmup_requests += 1
                elif done <= window_end:
                    statuses[outcome] += 1
                    by_type[event_type] += 1
                    duplicates += duplicate
                    if outcome.startswith("2"):
                        latencies.append((done - sent) * 1000.0)
                if not outcome.isdigit():
                    await asyncio.sleep(0.01)  # the server is gone or stuck: do not spin

        await asyncio.gather(*(worker(i) for i in range(spec.concurrency)))

    successes = sum(n for s, n in statuses.items() if s.startswith("2"))
    return {
        "requests": sum(statuses.values()),
        "successes": successes,
        "events_per_s": successes / spec.duration,
        "latency_ms": percentiles(latencies),
        "errors": {s: n for s, n in sorted(statuses.items()) if not s.startswith("2")},
        "by_type": dict(sorted(by_type.items())),
        "duplicates_sent": duplicates,
        "warmup_requests": warmup_requests,
        "client_cpu_seconds": cpu_marks.get("WINDOW_END", 0.0) - cpu_marks.get("WINDOW_START", 0.0),
        "duration": spec.duration,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.load SPEC.json RESULT.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m bench.load SPEC.json RESULT.json\n")
        return 2
    spec = LoadSpec(**orjson.loads(Path(args[0]).read_bytes()))
    result = asyncio.run(generate(spec))
    Path(args[1]).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


def drive(
    spec: LoadSpec, server_pid: int, workdir: Path, name: str, database: str | None = None
) -> dict[str, Any]:
    """Run the load process against a server; add the server's CPU and memory to its result.

    :param server_pid: the server process, whose process tree is measured.
    :param name: names the spec, result and log files in ``workdir``.
    :param database: a PostgreSQL database name, whose backends' CPU is measured too.
    """
    spec_path = workdir / f"{name}.spec.json"
    result_path = workdir / f"{name}.result.json"
    log_path = workdir / f"{name}.load.log"
    spec_path.write_bytes(orjson.dumps(asdict(spec)))
    sampler = ResourceSampler(server_pid, database)
    sampler.start()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.load", str(spec_path), str(result_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            text=True,
        )
    limit = spec.warmup + spec.duration + spec.request_timeout + 60
    watchdog = threading.Timer(limit, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "WINDOW_START":
                sampler.mark_start()
            elif line.strip() == "WINDOW_END":
                sampler.mark_end()
        code = proc.wait()
    finally:
        watchdog.cancel()
        usage = sampler.finish()
    if code != 0 or not result_path.exists():
        raise RuntimeError(f"the load generator failed ({code}):\n{log_tail(log_path)}")
    result: dict[str, Any] = orjson.loads(result_path.read_bytes())
    result.update(
        cpu_seconds=usage.cpu_seconds,
        cpu_percent=usage.cpu_percent,
        peak_rss_mb=usage.peak_rss_mb,
        measured_wall_seconds=usage.wall_seconds,
    )
    result["database_cpu_seconds"] = usage.database_cpu_seconds
    # CPU that neither the server, its PostgreSQL backends nor the load generator used:
    # other work on the machine (PostgreSQL's background writers and the benchmark's own
    # sampling included, a few percent). Much of it means disturbed figures.
    result["other_cpu_seconds"] = max(
        0.0,
        usage.machine_busy_seconds
        - usage.cpu_seconds
        - usage.database_cpu_seconds
        - result["client_cpu_seconds"],
    )
    return result


if __name__ == "__main__":
    raise SystemExit(main())
