"""aiohttp's share of a request's CPU, in the engine and in the baseline (issue 17).

``python -m bench.http_share [--out DIR] [bench.run options]`` runs ``bench.run --quick``
(SQLite unless told otherwise) and attaches ``py-spy record`` (``pip install py-spy``)
to each server while the load generator drives it, warm-up included. Each main-thread
sample is put in the group of the innermost frame that belongs to one:

- ``app``: statusflow's own code (``kernel/``, ``plugins/``, the contrib plugins) past
  the front door: the handler, validation, the engine, the store; the baseline's
  ``bench/baseline.py`` (its handler and group committer);
- ``front``: statusflow's HTTP front (the front door or the middlewares it replaced, the
  ``Server`` header);
- ``access log``: the ``http.request`` line (``serving/access_log.py``, structlog);
- ``aiohttp``: aiohttp's code (parsing, routing, the request and response objects);
- ``loop``: none of these (the event loop and the transports: uvloop in the engine,
  asyncio's own loop in the baseline).

Frames of the standard library and other packages (asyncio, structlog, multidict...)
count for their caller. The other threads (the SQLite commits' fsync, the checkpoints)
are left out: py-spy counts a thread waiting for the disk as running. py-spy runs
``--nonblocking`` (paused, a waiting thread would be sampled as running). The shares,
times the server's CPU per event that ``bench.run`` measured, give milliseconds per
event.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import psutil

GROUPS = ("app", "front", "access log", "aiohttp", "loop")
FRONT = (
    "http/front_door.py",
    "http/middlewares.py",
    "http/limits.py",
    "http/auth.py",
    "http/drain.py",
    "http/app.py",
)
STARTS = {
    "engine": (re.compile(r": engine: \d+ connections"), " serve "),
    "baseline": (re.compile(r": baseline on http"), "bench.baseline"),
}
FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
DRIVERS = ("asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py", "aiohttp/web.py")
"""Files of the frames that start the server and run the loop: the samples' groups are
read from the frames below them (the callbacks the loop runs)."""


def group_of(path: str) -> str | None:
    """The group of a frame's file, or ``None`` (it counts for its caller)."""
    if "/aiohttp/" in path:
        return "aiohttp"
    if path.endswith("serving/access_log.py"):
        return "access log"
    if path.endswith("bench/baseline.py"):
        return "app"
    statusflow = "/statusflow/" in path or "/kernel/" in path or "/plugins/" in path
    if statusflow or "/statusflow_" in path:
        return "front" if path.endswith(FRONT) else "app"
    return None


def classify(raw: Path) -> tuple[Counter[str], int]:
    """Main-thread samples per group, and the other threads' samples."""
    groups: Counter[str] = Counter()
    others = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not frames[0].endswith("MainThread"):
            others += int(count)
            continue
        files = [match.group(2) if (match := FRAME.match(f)) else "" for f in frames[1:]]
        start = next((i for i, f in enumerate(files) if f.endswith(DRIVERS)), 0)
        while start < len(files) and files[start].endswith(DRIVERS):
            start += 1  # the loop's own frames, down to the callback it runs
        found = next((g for f in reversed(files[start:]) if (g := group_of(f))), "loop")
        groups[found] += int(count)
    return groups, others


def server_pid(parent: int, needle: str) -> int:
    """The pid of ``parent``'s descendant whose command line holds ``needle``."""
    for _ in range(50):
        for child in psutil.Process(parent).children(recursive=True):
            if needle in " ".join(child.cmdline()):
                return int(child.pid)
        time.sleep(0.1)
    raise RuntimeError(f"no server process {needle!r} found")


def run(out: Path, rate: int, seconds: int, bench_args: Sequence[str]) -> dict[str, Path]:
    """Run ``bench.run --quick``, profiling each server while it is loaded."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [sys.executable, "-u", "-m", "bench.run", "--quick", *bench_args]
    argv += ["--json", str(out / "bench.json")]
    raws: dict[str, Path] = {}
    spies: list[subprocess.Popen[bytes]] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as bench:
        assert bench.stdout is not None
        for line in bench.stdout:
            print(line, end="", flush=True)
            for kind, (pattern, needle) in STARTS.items():
                if pattern.search(line) and kind not in raws:
                    raws[kind] = out / f"{kind}.raw"
                    pid = server_pid(bench.pid, needle)
                    record = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--threads"]
                    record += ["--duration", str(seconds), "--nonblocking", "--full-filenames"]
                    record += ["--format", "raw", "-o", str(raws[kind])]
                    spies.append(subprocess.Popen(record, stdout=subprocess.DEVNULL))
    for process in spies:
        process.wait()
    return raws


def report(out: Path, raws: dict[str, Path]) -> None:
    """Per group: its share of the main thread's samples, and that share of the
    process's CPU per event (the other threads mostly wait for the fsync)."""
    measured = json.loads((out / "bench.json").read_text())["databases"][0]
    print(f"\n{'group':<12}" + "".join(f"{kind:>22}" for kind in raws))
    rows: dict[str, list[str]] = {group: [] for group in GROUPS}
    notes = []
    for kind, raw in raws.items():
        groups, others = classify(raw)
        result = measured[kind]
        per_event = result["cpu_seconds"] / max(1, result["requests"]) * 1000
        main = max(1, sum(groups.values()))
        for group, cells in rows.items():
            share = groups[group] / main
            cells.append(f"{share:6.1%} {share * per_event:6.3f} ms")
        notes.append(
            f"{kind}: {result['events_per_s']:,.0f} events/s, {per_event:.3f} ms of server CPU "
            f"per event; {main} main-thread samples, {others} of other threads"
        )
    for group, cells in rows.items():
        print(f"{group:<12}" + "".join(f"{cell:>22}" for cell in cells))
    print("\n".join(notes))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.http_share [--out DIR] [--rate HZ] [bench.run options]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.http_share", description=__doc__)
    parser.add_argument("--out", help="where the raw profiles go (default: a temporary dir)")
    parser.add_argument("--rate", type=int, default=200, help="samples a second (200)")
    parser.add_argument("--seconds", type=int, default=9, help="profiled seconds (9)")
    args, rest = parser.parse_known_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="http-share-"))
    out.mkdir(parents=True, exist_ok=True)
    raws = run(out, args.rate, args.seconds, rest or ["--db", "sqlite"])
    report(out, raws)
    print(f"raw profiles in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
