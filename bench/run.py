"""``python -m bench.run``: the load benchmark of issue 4.

For each database (SQLite, and PostgreSQL when reachable): start ``statusflow serve``
on a temporary database, seed orders and triggers, drive it with the event mix at
concurrency C for D seconds, then measure the group-commit baseline
(:mod:`bench.baseline`) on the same database with the same events, and print the
ratio. ``--series`` runs the scaling series instead and writes ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import orjson

from bench import report
from bench.dataset import (
    RING_SHARE,
    Pipeline,
    RingStep,
    Template,
    build_mix,
    plan_ring,
    plan_ring_triggers,
    plan_triggers,
    ring_mix,
)
from bench.load import LoadSpec, drive
from bench.procs import (
    ROOT,
    ServerProcess,
    StartError,
    code_fingerprint,
    environment_for_server,
    free_port,
    plugins_to_enable,
    serve_supports_workers,
    statusflow_executable,
)
from bench.seed import (
    DEFAULT_POSTGRES,
    BenchDatabase,
    check_ring,
    check_seed_format,
    event_data_schemas,
    get_json,
    postgres_reachable,
    postgres_version,
    probe_mix,
    seed_orders,
    seed_triggers,
    stored_counts,
    temporary_database,
)

PRIVATE_EVENTS = frozenset({"webhook.called"})
"""Event types that ``POST /api/events`` does not accept (only the plugin's own route)."""

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"

FULL = {"orders": 100_000, "triggers": 200, "duration": 30.0, "warmup": 5.0}
QUICK = {"orders": 10_000, "triggers": 50, "duration": 8.0, "warmup": 2.0}
SERIES = {"duration": 10.0, "warmup": 2.0}
SERIES_QUICK = {"duration": 3.0, "warmup": 1.0}
SERIES_POINTS = {
    "triggers": (10, 100, 1_000, 10_000),
    "orders": (1_000, 10_000, 100_000, 1_000_000),
    "fanout": (1, 5, 20, 50),
}
SERIES_POINTS_QUICK = {
    "triggers": (10, 100, 1_000),
    "orders": (1_000, 10_000, 100_000),
    "fanout": (1, 5, 20, 50),
}
SERIES_ORDERS = 10_000
SERIES_TRIGGERS = 100
SERIES_DESIGN = "ring"
"""The triggers and orders points run the ring pipeline (the same moves per event at
each point); a saved series without it compares points that did different work."""

BUSY_SHARE = 0.15
"""Other processes' CPU, as a share of one core over the window, above which a run is noted."""

_UNSET: Any = object()


@dataclass(frozen=True)
class Point:
    """One engine measurement."""

    label: str
    kind: str  # "sqlite" or "postgres"
    orders: int
    triggers: int
    concurrency: int
    warmup: float
    duration: float
    workers: int | None = None
    orders_per_contact: int | None = None
    fanout_only: bool = False
    ring: bool = False
    """The series' ring pipeline (:func:`bench.dataset.plan_ring`): orders that never
    end, the same moves per event at every point."""


# --- the command line ----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options; unset figures get the defaults of the chosen mode."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Load benchmark of statusflow against an in-run group-commit baseline.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run, under two minutes (defaults {QUICK})",
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres", "both"),
        help="database(s); default both when PostgreSQL is reachable, else sqlite",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--duration", type=float, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up, not counted")
    parser.add_argument("--orders", type=int, help="orders to seed")
    parser.add_argument("--triggers", type=int, help="triggers to create")
    parser.add_argument(
        "--workers", type=int, help="passed to `statusflow serve --workers` when it supports it"
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite docs/performance.md from the saved series and last full run",
    )
    parser.add_argument(
        "--series",
        action="store_true",
        help="the scaling series (SQLite): writes docs/performance.md and docs/performance.png",
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES,
        help=f"PostgreSQL admin URL (default {DEFAULT_POSTGRES})",
    )
    parser.add_argument(
        "--server-log-level",
        help="STATUSFLOW_LOG_LEVEL of the server (default: the server's own, info)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    defaults = (
        (SERIES_QUICK if args.quick else SERIES) if args.series else (QUICK if args.quick else FULL)
    )
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key in ("orders", "triggers"):
        if getattr(args, key) is None:
            setattr(args, key, (QUICK if args.quick else FULL)[key])
    if args.orders < 1 or args.triggers < 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--orders, --duration must be positive, --triggers and --warmup not negative")
    return args


# --- the runner ----------------------------------------------------------------------


class Runner:
    """Starts servers, seeds, drives load; remembers notes for the report."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.started = time.monotonic()
        self.notes: list[str] = []
        self.enable: list[str] | None = _UNSET
        self.env = environment_for_server(args.server_log_level)
        self.counter = 0
        self.accepted_seen = ""
        self.failures = 0
        self.fingerprint: str | None = None
        self.schemas: dict[str, dict[str, Any]] | None = None

    def say(self, message: str) -> None:
        """Progress, with the seconds since the start."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    def fail(self, message: str) -> None:
        """A measurement that could not be made: noted, and the exit status becomes 1."""
        self.failures += 1
        self.note(f"{message} (logs in {self.workdir})")

    def note(self, message: str) -> None:
        """A remark that also goes into the summary (once)."""
        if message not in self.notes:
            self.notes.append(message)
            self.say(f"note: {message}")

    def _name(self, label: str) -> str:
        self.counter += 1
        return f"{self.counter:02d}-" + re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")

    def check_quiet(self, label: str, result: dict[str, Any]) -> None:
        """Note a measurement during which other processes used much CPU."""
        other = result.get("other_cpu_seconds", 0.0)
        if other > BUSY_SHARE * result["duration"]:
            self.note(
                f"{label}: other processes used {other:.1f} s of CPU during the "
                f"{result['duration']:g} s measured: figures disturbed, rerun on a quiet machine"
            )

    # servers ------------------------------------------------------------------------

    def workers_flag(self, workers: int | None) -> list[str]:
        """``--workers W`` when asked for and supported."""
        if workers is None:
            return []
        if serve_supports_workers():
            return ["--workers", str(workers)]
        self.note(f"statusflow serve rejects --workers: ran one process instead of {workers}")
        return []

    def start_engine(self, db: BenchDatabase, workers: int | None, name: str) -> ServerProcess:
        """``statusflow serve`` on ``db`` on a free port, healthy."""
        fingerprint = code_fingerprint()
        if self.fingerprint is None:
            self.fingerprint = fingerprint
        elif fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.note(
                f"statusflow's code (kernel/, plugins/) changed during the run, before {name}: "
                "the figures mix versions, rerun"
            )
        if self.enable is _UNSET:
            self.enable = plugins_to_enable()
            if self.enable is not None:
                self.note(
                    "some plugin modules are missing: [plugins] enable = "
                    f"{self.enable} (the ones that exist)"
                )
        for attempt in range(1, 13):
            port = free_port()
            config = self.workdir / f"{name}.toml"
            write_config(config, db.url, port, self.enable)
            argv = [statusflow_executable(), "serve", "--config", str(config), "--port", str(port)]
            argv += self.workers_flag(workers)
            server = ServerProcess(
                "statusflow", argv, self.workdir / f"{name}.server-{attempt}.log", port, self.env
            )
            try:
                server.start(timeout=120)
                return server
            except StartError as exc:
                found = re.search(r"plugin '([^']+)' cannot be loaded", str(exc))
                current = self.enable if self.enable is not None else all_plugins()
                if not found or found.group(1) not in current:
                    raise
                self.enable = [p for p in current if p != found.group(1)]
                self.note(
                    f"plugin {found.group(1)!r} cannot be loaded: left out of [plugins] enable"
                )
        raise StartError("statusflow did not start")

    # measurements -------------------------------------------------------------------

    def engine(self, point: Point, db: BenchDatabase) -> tuple[dict[str, Any], LoadSpec]:
        """Seed and load the engine; its figures and the load spec (for the baseline)."""
        name = self._name(f"{point.label}-engine")
        server = self.start_engine(db, point.workers, name)
        base = server.base_url
        try:
            types = get_json(base, "/api/trigger-types")
            pipeline = Pipeline.from_api(get_json(base, "/api/statuses"))
            accepted = sorted({e for t in types for e in t["events"]} - PRIVATE_EVENTS)
            listing = ", ".join(accepted) or "-"
            if listing != self.accepted_seen:
                self.accepted_seen = listing
                listing = f"events accepted: {listing}"
            else:
                listing = f"{len(accepted)} event types accepted (as above)"
            self.say(f"{point.label}: statusflow on {base}, {len(types)} trigger types, {listing}")
            check_seed_format(db, base, pipeline)
            seeded = seed_orders(
                db, pipeline, point.orders, self.args.seed, point.orders_per_contact, point.ring
            )
            self.say(
                f"{point.label}: seeded {seeded.orders:,} orders ({seeded.contacts:,} contacts, "
                f"{seeded.identifiers:,} identifiers) in {seeded.seconds:.1f} s"
            )
            templates, notes = build_mix(
                accepted, fanout_only=point.fanout_only, data_schemas=self.data_schemas()
            )
            ring: list[RingStep] = []
            if point.ring:
                ring = plan_ring(types, templates, pipeline)
                templates = ring_mix(templates, ring)
                bodies = plan_ring_triggers(types, pipeline, ring, point.triggers, self.args.seed)
            else:
                bodies = plan_triggers(
                    types,
                    pipeline,
                    point.triggers,
                    self.args.seed,
                    final_targets=not point.fanout_only,
                )
            made = seed_triggers(base, bodies, keep_conditions=point.ring)
            self.say(
                f"{point.label}: created {made.created:,} triggers over {len(made.by_type)} types "
                f"in {made.seconds:.1f} s"
                + (f" ({made.simplified} without settings)" if made.simplified else "")
            )
            for failure in made.failed[:3]:
                self.note(f"trigger refused: {failure}")
            templates, probe_notes = probe_mix(base, templates, point.orders, seeded.contacts)
            for text in notes + probe_notes:
                self.note(text)
            if not templates:
                raise RuntimeError("the server accepts none of the benchmark's events")
            if ring:
                self.check_ring(point, base, ring, templates, made.created)
            spec = LoadSpec(
                url=f"{base}/api/events",
                concurrency=point.concurrency,
                warmup=point.warmup,
                duration=point.duration,
                seed=self.args.seed,
                tag=f"b{uuid.uuid4().hex[:8]}",
                orders=point.orders,
                contacts=seeded.contacts,
                templates=[t.as_json() for t in templates],
            )
            self.say(
                f"{point.label}: engine: {point.concurrency} connections, {point.warmup:g} s "
                f"warm-up + {point.duration:g} s"
            )
            result = drive(spec, server.pid, self.workdir, name, pg_name(db))
        finally:
            server.stop()
        result.update(
            kind="engine",
            label=point.label,
            point=asdict(point),
            workers=int(flag[1]) if (flag := self.workers_flag(point.workers)) else 1,
            seeded=asdict(seeded),
            triggers_created=made.created,
            triggers_by_type=made.by_type,
            mix={f"{t.type} ({t.mode})": round(t.weight, 4) for t in templates},
            ring=[asdict(step) for step in ring],
            stored=stored_counts(db),
        )
        self.say(f"{point.label}: engine   {report.run_line(result)}")
        self.check_quiet(point.label, result)
        stored = result["stored"]
        self.say(
            f"{point.label}: stored {stored['events']:,} events, {stored['moves']:,} moves, "
            f"{stored['timeline']:,} timeline entries"
        )
        return result, spec

    def data_schemas(self) -> dict[str, dict[str, Any]]:
        """The event types' data schemas, for the types the mix has no data for (once)."""
        if self.schemas is None:
            enable = None if self.enable is _UNSET else self.enable
            try:
                self.schemas = event_data_schemas(enable)
            except Exception as exc:  # the mix then sends such types without data
                self.note(f"event data schemas unknown: {type(exc).__name__}: {exc}")
                self.schemas = {}
        return self.schemas

    def check_ring(
        self,
        point: Point,
        base: str,
        ring: list[RingStep],
        templates: list[Template],
        created: int,
    ) -> None:
        """Refuse a point whose ring does not move orders as planned (every trigger
        created, every ring type sent, each moving exactly the orders of its status)."""
        sent = {t.type for t in templates}
        problems = [
            f"ring event type {s.event_type} dropped" for s in ring if s.event_type not in sent
        ]
        if created != point.triggers:
            problems.append(f"{created:,} of {point.triggers:,} triggers created")
        problems = problems or check_ring(base, ring, templates)
        if problems:
            raise RuntimeError("the ring pipeline does not work: " + "; ".join(problems[:3]))
        steps = ", ".join(f"{s.event_type} {s.source}->{s.target}" for s in ring)
        self.say(
            f"{point.label}: ring {steps}, each type {RING_SHARE:.0%} of the events; "
            f"{point.triggers - len(ring):,} triggers listening that never win"
        )

    def baseline(self, label: str, db: BenchDatabase, spec: LoadSpec) -> dict[str, Any]:
        """The group-commit baseline on ``db``, driven with the same spec (same events)."""
        name = self._name(f"{label}-baseline")
        port = free_port()
        url = db.url if db.kind == "sqlite" else str(db.dsn)
        argv = [sys.executable, "-m", "bench.baseline", "--database", url, "--port", str(port)]
        server = ServerProcess("baseline", argv, self.workdir / f"{name}.log", port, self.env)
        server.start(timeout=60)
        try:
            self.say(f"{label}: baseline on {server.base_url}")
            result = drive(
                replace(spec, url=f"{server.base_url}/api/events"),
                server.pid,
                self.workdir,
                name,
                pg_name(db),
            )
            result["groups"] = get_json(server.base_url, "/stats")
        finally:
            server.stop()
        result.update(kind="baseline", label=label)
        self.check_quiet(f"{label} baseline", result)
        self.say(
            f"{label}: baseline {report.run_line(result)}  "
            f"(mean group {result['groups']['mean_group']:.1f})"
        )
        return result


def write_config(path: Path, database_url: str, port: int, enable: list[str] | None) -> None:
    """A statusflow TOML configuration (contract §5)."""

    def q(value: str) -> str:
        return json.dumps(value)

    lines = [
        f"database_url = {q(database_url)}",
        "",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"public_url = {q(f'http://127.0.0.1:{port}')}",
        "",
        "[phones]",
        'default_region = "US"',
    ]
    if enable is not None:
        lines += ["", "[plugins]", f"enable = [{', '.join(q(p) for p in enable)}]"]
    path.write_text("\n".join(lines) + "\n")


def pg_name(db: BenchDatabase) -> str | None:
    """The PostgreSQL database name, whose backends' CPU is measured (``None`` for SQLite)."""
    return db.name if db.kind == "postgres" else None


def all_plugins() -> list[str]:
    """Every plugin name of the entry-point group ``statusflow``."""
    return sorted(ep.name for ep in entry_points(group="statusflow"))


# --- the two modes -------------------------------------------------------------------


def choose_databases(args: argparse.Namespace, runner: Runner) -> list[str]:
    """The databases to run on; PostgreSQL only when reachable."""
    wanted = args.db
    reachable = postgres_reachable(args.postgres_url) if wanted != "sqlite" else False
    if wanted is None:
        if not reachable:
            runner.note(f"PostgreSQL not reachable at {args.postgres_url}: SQLite only")
        return ["sqlite", "postgres"] if reachable else ["sqlite"]
    if wanted in ("postgres", "both") and not reachable:
        raise SystemExit(f"PostgreSQL is not reachable at {args.postgres_url}")
    return ["sqlite", "postgres"] if wanted == "both" else [wanted]


def main_runs(args: argparse.Namespace, runner: Runner) -> dict[str, Any]:
    """Engine and baseline on each database; the workers comparison on PostgreSQL."""
    kinds = choose_databases(args, runner)
    databases: list[dict[str, Any]] = []
    workers: dict[str, Any] | None = None
    pg_version = None
    for kind in kinds:
        point = Point(
            kind,
            kind,
            args.orders,
            args.triggers,
            args.concurrency,
            args.warmup,
            args.duration,
            workers=args.workers,
        )
        try:
            with temporary_database(kind, runner.workdir, args.postgres_url) as db:
                if kind == "postgres":
                    pg_version = postgres_version(str(db.dsn))
                engine, spec = runner.engine(point, db)
                baseline = runner.baseline(kind, db, spec)
        except Exception as exc:  # report it and go on with the next database
            runner.fail(f"{kind} run failed: {type(exc).__name__}: {exc}")
            continue
        ratio = engine["events_per_s"] / baseline["events_per_s"] if baseline["events_per_s"] else 0
        runner.say(f"{kind}: engine/baseline = {ratio:.2f}x")
        label = kind if engine["workers"] == 1 else f"{kind} --workers {engine['workers']}"
        databases.append(
            {
                "label": label,
                "kind": kind,
                "main": True,
                "concurrency": args.concurrency,
                "engine": engine,
                "baseline": baseline,
            }
        )
        if kind == "postgres":
            try:
                workers = compare_workers(args, runner, point, engine, baseline)
            except Exception as exc:
                runner.fail(f"PostgreSQL workers comparison failed: {type(exc).__name__}: {exc}")
                workers = {"reason": "failed"}
            if workers.get("extra"):
                databases.append(workers.pop("extra"))
    return {"databases": databases, "workers": workers, "postgres_version": pg_version}


def compare_workers(
    args: argparse.Namespace,
    runner: Runner,
    point: Point,
    engine: dict[str, Any],
    baseline: dict[str, Any],
) -> dict[str, Any]:
    """PostgreSQL with one process against ``--workers 2`` (the other one of the pair)."""
    if not serve_supports_workers():
        return {"reason": "statusflow serve has no --workers"}
    if engine["workers"] not in (1, 2):
        return {"reason": f"main run used --workers {engine['workers']}"}
    other = 2 if engine["workers"] == 1 else None
    label = "postgres --workers 2" if other == 2 else "postgres (one process)"
    with temporary_database("postgres", runner.workdir, args.postgres_url) as db:
        run, _spec = runner.engine(replace(point, label=label, workers=other), db)
    pair = {"one": engine, "two": run} if other == 2 else {"one": run, "two": engine}
    return {
        **pair,
        "extra": {
            "label": label,
            "kind": "postgres",
            "main": False,
            "concurrency": args.concurrency,
            "engine": run,
            "baseline": baseline,
        },
    }


def series_run(args: argparse.Namespace, runner: Runner) -> dict[str, Any]:
    """The scaling series on SQLite: triggers, orders, open orders per contact."""
    if args.db not in (None, "sqlite"):
        runner.note("the series runs on SQLite only")
    plan = SERIES_POINTS_QUICK if args.quick else SERIES_POINTS
    points: list[dict[str, Any]] = []
    cache: dict[tuple[int, int, int | None, bool], dict[str, Any]] = {}
    baseline: dict[str, Any] | None = None
    for dimension, values in plan.items():
        for value in values:
            orders, triggers, per_contact, fanout = SERIES_ORDERS, SERIES_TRIGGERS, None, False
            if dimension == "triggers":
                triggers = value
            elif dimension == "orders":
                orders = value
            else:
                per_contact, fanout = value, True
            key = (orders, triggers, per_contact, fanout)
            if key not in cache:
                point = Point(
                    f"{dimension}={value:,}",
                    "sqlite",
                    orders,
                    triggers,
                    args.concurrency,
                    args.warmup,
                    args.duration,
                    args.workers,
                    per_contact,
                    fanout,
                    ring=not fanout,
                )
                try:
                    with temporary_database("sqlite", runner.workdir, args.postgres_url) as db:
                        cache[key], spec = runner.engine(point, db)
                        if baseline is None:
                            baseline = runner.baseline("series", db, spec)
                except Exception as exc:  # report it and go on with the next point
                    runner.fail(f"series point {point.label} failed: {type(exc).__name__}: {exc}")
                    continue
            points.append({"dimension": dimension, "value": value, "engine": cache[key]})
    return {"points": points, "baseline": baseline, "design": SERIES_DESIGN}


# --- main ----------------------------------------------------------------------------


def command_line(argv: Sequence[str] | None) -> str:
    """The command that was run, for the report."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "python -m bench.run" + ("" if not args else " " + shlex.join(args))


def load_json(path: Path) -> dict[str, Any] | None:
    """A saved result, or ``None``."""
    try:
        data: dict[str, Any] = orjson.loads(path.read_bytes())
        return data
    except (OSError, orjson.JSONDecodeError):
        return None


def save_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the figures and the summary; 0 when it ran."""
    args = parse_args(argv)
    if args.render:
        return render_docs()
    workdir = Path(tempfile.mkdtemp(prefix="statusflow-bench-"))
    runner = Runner(args, workdir)
    command = command_line(argv)
    mode = "series" if args.series else ("quick" if args.quick else "full")
    runner.say(
        f"statusflow benchmark ({mode}): concurrency {args.concurrency}, "
        + (f"{args.orders:,} orders, {args.triggers:,} triggers, " if not args.series else "")
        + f"{args.warmup:g} s warm-up + {args.duration:g} s per run; work directory {workdir}"
    )
    ok = False
    try:
        if args.series:
            output, summary = finish_series(args, runner, series_run(args, runner), command)
        else:
            output, summary = finish_main(args, runner, main_runs(args, runner), command)
        ok = runner.failures == 0
    except KeyboardInterrupt:
        runner.say("interrupted")
        return 130
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            runner.say(f"logs kept in {workdir}")
    if args.json:
        save_json(Path(args.json), output)
        runner.say(f"figures written to {args.json}")
    runner.say("done" if not runner.failures else f"done, {runner.failures} measurement(s) failed")
    print(summary, flush=True)
    return 1 if runner.failures else 0


def render_docs() -> int:
    """Rewrite ``docs/performance.md`` from the saved series and last full run (after a
    ``make bench`` that followed the series, or an edit of ``bench/analysis.md``)."""
    series = load_json(RESULTS / "last-series.json")
    if series is None:
        print("no saved series (bench/results/last-series.json): run make bench-series first")
        return 1
    last_run = load_json(RESULTS / "last-run.json")
    databases = last_run["databases"] if last_run else []
    workers = last_run.get("workers") if last_run else None
    targets = report.evaluate_targets(databases, {**series, "this_run": True}, workers)
    report.write_docs(DOCS / "performance.md", "performance.png", series, last_run, targets)
    print(report.targets_table(targets))
    print("wrote docs/performance.md")
    return 0


def finish_main(
    args: argparse.Namespace, runner: Runner, runs: dict[str, Any], command: str
) -> tuple[dict[str, Any], str]:
    """The result (also saved for the docs) and the closing summary with the targets."""
    machine = report.machine_info(runs["postgres_version"])
    last_series = load_json(RESULTS / "last-series.json")
    targets = report.evaluate_targets(runs["databases"], last_series, runs["workers"])
    output = {
        "mode": "quick" if args.quick else "full",
        "command": command,
        "machine": machine,
        "options": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "databases": runs["databases"],
        "workers": runs["workers"],
        "targets": targets,
        "notes": runner.notes,
        "code_fingerprint": runner.fingerprint,
    }
    save_json(RESULTS / ("last-quick-run.json" if args.quick else "last-run.json"), output)
    lines = [
        "",
        f"Summary ({machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
        f"concurrency {args.concurrency}, {args.orders:,} orders, {args.triggers:,} triggers, "
        f"{args.warmup:g} s warm-up + {args.duration:g} s per run)",
        report.table(report.SUMMARY_HEADERS, report.summary_rows(runs["databases"])),
        "",
        report.targets_table(targets),
        *(f"note: {text}" for text in runner.notes),
    ]
    return output, "\n".join(lines)


def finish_series(
    args: argparse.Namespace, runner: Runner, series: dict[str, Any], command: str
) -> tuple[dict[str, Any], str]:
    """Write the docs, the plot and the saved result; the series table with the targets."""
    machine = report.machine_info()
    series.update(
        command=command,
        machine=machine,
        date=machine["date"],
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        quick=args.quick,
        notes=runner.notes,
        code_fingerprint=runner.fingerprint,
    )
    last_run = load_json(RESULTS / "last-run.json")
    databases = last_run["databases"] if last_run else []
    workers = last_run.get("workers") if last_run else None
    targets = report.evaluate_targets(databases, {**series, "this_run": True}, workers)
    series["targets"] = targets
    if not series["points"]:
        return series, "\nno point of the series could be measured: nothing written"
    save_json(RESULTS / ("last-quick-series.json" if args.quick else "last-series.json"), series)
    if args.quick:
        doc, plot = RESULTS / "performance-quick.md", RESULTS / "performance-quick.png"
    else:
        doc, plot = DOCS / "performance.md", DOCS / "performance.png"
    report.write_plot(series, plot)
    report.write_docs(doc, plot.name, series, last_run, targets)
    baseline = (series.get("baseline") or {}).get("events_per_s")
    lines = [
        "",
        f"Scaling series (SQLite, concurrency {args.concurrency}, {args.warmup:g} s warm-up + "
        f"{args.duration:g} s per point; baseline {report.fmt_rate(baseline)} events/s)",
        report.table(report.SERIES_HEADERS, report.series_rows(series)),
        "",
        report.targets_table(targets),
        *(f"note: {text}" for text in runner.notes),
        f"wrote {doc.relative_to(ROOT)} and {plot.relative_to(ROOT)}",
    ]
    return series, "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
