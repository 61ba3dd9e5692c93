"""Figures into words: tables, the targets of issue 4, the machine, docs and the plot."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

from bench.procs import ROOT

ANALYSIS = ROOT / "bench" / "analysis.md"
"""The hand-written part of ``docs/performance.md``: where the time goes."""

PACKAGES = (
    "statusflow",
    "aiohttp",
    "SQLAlchemy",
    "sqlmodel",
    "asyncpg",
    "orjson",
    "pluggy",
    "psutil",
    "matplotlib",
)

MET, NOT_MET, NOT_MEASURED = "met", "NOT MET", "not measured"


# --- the machine ---------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model from ``/proc/cpuinfo`` (or what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> str:
    """``git describe``-like: the short commit, ``+dirty`` with uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def machine_info(postgres_version: str | None = None) -> dict[str, Any]:
    """The machine and the versions that matter for the figures."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "-"
    versions["SQLite (library)"] = sqlite3.sqlite_version
    if postgres_version:
        versions["PostgreSQL (server)"] = postgres_version
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "revision": git_revision(),
    }


# --- tables --------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False) -> str:
    """A text table (aligned columns) or a Markdown pipe table."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def fmt_rate(value: float | None) -> str:
    """Events per second, no decimals."""
    return "-" if value is None else f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    """Milliseconds with one decimal."""
    return "-" if value is None else f"{value:.1f}"


def fmt_errors(errors: Mapping[str, int]) -> str:
    """``0`` or ``422:3, timeout:1``."""
    return ", ".join(f"{k}:{v}" for k, v in errors.items()) or "0"


def run_line(run: Mapping[str, Any]) -> str:
    """One line about one measurement."""
    lat = run["latency_ms"]
    return (
        f"{run['events_per_s']:,.0f} events/s  p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  "
        f"p99 {lat['p99']:.1f} ms  server CPU {run['cpu_seconds']:.1f} s "
        f"({run['cpu_percent']:.0f}%)  peak RSS {run['peak_rss_mb']:.0f} MB  "
        + (
            f"database CPU {run['database_cpu_seconds']:.1f} s  "
            if run.get("database_cpu_seconds")
            else ""
        )
        + f"client CPU {run['client_cpu_seconds']:.1f} s  other CPU "
        f"{run.get('other_cpu_seconds', 0.0):.1f} s  errors {fmt_errors(run['errors'])}"
    )


SUMMARY_HEADERS = (
    "database",
    "engine ev/s",
    "baseline ev/s",
    "ratio",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "CPU s (%)",
    "PG CPU s",
    "peak RSS MB",
    "errors",
    "baseline p50/p99 ms",
)


def summary_rows(databases: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Rows of the closing table: engine against baseline, per database (and workers)."""
    rows = []
    for entry in databases:
        engine, baseline = entry["engine"], entry.get("baseline")
        ratio = (
            f"{engine['events_per_s'] / baseline['events_per_s']:.2f}x"
            if baseline and baseline["events_per_s"]
            else "-"
        )
        lat = engine["latency_ms"]
        rows.append(
            [
                entry["label"],
                fmt_rate(engine["events_per_s"]),
                fmt_rate(baseline["events_per_s"]) if baseline else "-",
                ratio,
                fmt_ms(lat["p50"]),
                fmt_ms(lat["p95"]),
                fmt_ms(lat["p99"]),
                f"{engine['cpu_seconds']:.1f} ({engine['cpu_percent']:.0f}%)",
                f"{engine['database_cpu_seconds']:.1f}" if entry["kind"] == "postgres" else "-",
                f"{engine['peak_rss_mb']:.0f}",
                fmt_errors(engine["errors"]),
                (
                    f"{baseline['latency_ms']['p50']:.1f}/{baseline['latency_ms']['p99']:.1f}"
                    if baseline
                    else "-"
                ),
            ]
        )
    return rows


# --- the targets of issue 4 ----------------------------------------------------------


def _target(name: str, status: str, value: str) -> dict[str, str]:
    return {"target": name, "status": status, "value": value}


def _check(ok: bool) -> str:
    return MET if ok else NOT_MET


def evaluate_targets(
    databases: Sequence[Mapping[str, Any]],
    series: Mapping[str, Any] | None,
    workers: Mapping[str, Any] | None,
) -> list[dict[str, str]]:
    """Each target of issue 4 with ``met``, ``NOT MET`` or ``not measured``.

    :param databases: the main runs (``label``, ``kind``, ``engine``, ``baseline``).
    :param series: a scaling series result (this run's or the last saved one).
    :param workers: ``{"one": run, "two": run}`` on PostgreSQL, or ``None``.
    """
    targets = []
    sqlite_run = next((d for d in databases if d["kind"] == "sqlite" and d.get("main")), None)
    pg_run = next((d for d in databases if d["kind"] == "postgres" and d.get("main")), None)
    if sqlite_run and sqlite_run.get("baseline"):
        engine, base = sqlite_run["engine"], sqlite_run["baseline"]
        ratio = engine["events_per_s"] / base["events_per_s"] if base["events_per_s"] else 0.0
        where = f" (concurrency {sqlite_run['concurrency']})"
        targets.append(
            _target(
                "SQLite: >= 0.5x the in-run group-commit baseline",
                _check(ratio >= 0.5),
                f"{ratio:.2f}x{where}",
            )
        )
        targets.append(
            _target(
                "SQLite: >= 2,500 events/s",
                _check(engine["events_per_s"] >= 2500),
                f"{engine['events_per_s']:,.0f} events/s{where}",
            )
        )
        p99 = engine["latency_ms"]["p99"]
        targets.append(_target("SQLite: p99 <= 50 ms", _check(p99 <= 50), f"{p99:.1f} ms{where}"))
    else:
        for name in (
            "SQLite: >= 0.5x the in-run group-commit baseline",
            "SQLite: >= 2,500 events/s",
            "SQLite: p99 <= 50 ms",
        ):
            targets.append(_target(name, NOT_MEASURED, "no SQLite run"))
    targets += _series_targets(series)
    if pg_run and pg_run.get("baseline"):
        engine, base = pg_run["engine"], pg_run["baseline"]
        ratio = engine["events_per_s"] / base["events_per_s"] if base["events_per_s"] else 0.0
        targets.append(
            _target(
                "PostgreSQL: >= 0.5x the in-run asyncpg baseline",
                _check(ratio >= 0.5),
                f"{ratio:.2f}x",
            )
        )
    else:
        targets.append(
            _target(
                "PostgreSQL: >= 0.5x the in-run asyncpg baseline", NOT_MEASURED, "no PostgreSQL run"
            )
        )
    if workers and workers.get("one") and workers.get("two"):
        one, two = workers["one"]["events_per_s"], workers["two"]["events_per_s"]
        targets.append(
            _target(
                "PostgreSQL: --workers 2 faster than one",
                _check(two > one),
                f"{two:,.0f} vs {one:,.0f} events/s",
            )
        )
    else:
        reason = (workers or {}).get("reason", "not run")
        targets.append(_target("PostgreSQL: --workers 2 faster than one", NOT_MEASURED, reason))
    return targets


def _series_point(series: Mapping[str, Any], dimension: str, value: int) -> Any:
    for point in series.get("points", ()):
        if point["dimension"] == dimension and point["value"] == value:
            return point
    return None


CPU_GROWTH = 0.20
"""The most CPU per event may grow across a series dimension (issue 17)."""

CPU_TARGETS = (
    ("triggers", 10, 10_000, "triggers"),
    ("orders", 1_000, 1_000_000, "orders"),
)
"""``(dimension, first point, last point, unit)`` of the CPU-per-event targets."""


def _series_targets(series: Mapping[str, Any] | None) -> list[dict[str, str]]:
    targets = [_cpu_target(series, *target) for target in CPU_TARGETS]
    name = f"fan-out to 50 open orders per contact: >= {FANOUT_TARGET:,} order evaluations/s"
    point = _series_point(series, "fanout", 50) if series else None
    rate = evaluations_per_s(point["engine"]) if point else None
    if point is None or rate is None:
        targets.append(_target(name, NOT_MEASURED, "run the series (make bench-series)"))
    else:
        value = f"{rate:,.0f} order evaluations/s ({point['engine']['events_per_s']:,.0f} events/s)"
        targets.append(_target(name, _check(rate >= FANOUT_TARGET), value))
    return targets


def _cpu_target(
    series: Mapping[str, Any] | None, dimension: str, small: int, large: int, unit: str
) -> dict[str, str]:
    """CPU per event grows by at most :data:`CPU_GROWTH` from ``small`` to ``large``.

    Judged only on a series of the ring design (the same moves per event at each
    point). A series without the ``large`` point (``--quick``) shows its figures up to
    its largest point, not measured.
    """
    name = f"CPU per event grows by at most {CPU_GROWTH:.0%} from {small:,} to {large:,} {unit}"
    if not series:
        return _target(name, NOT_MEASURED, "run the series (make bench-series)")
    source = "" if series.get("this_run") else f" (series of {series.get('date', '?')})"
    if series.get("design") != "ring":
        return _target(
            name, NOT_MEASURED, f"series of the earlier design, moves/event differ{source}"
        )
    points = [p for p in series.get("points", ()) if p["dimension"] == dimension]
    low = _series_point(series, dimension, small)
    high = _series_point(series, dimension, large) or max(
        points, key=lambda p: p["value"], default=None
    )
    if not low or not high or high is low:
        return _target(name, NOT_MEASURED, f"series without both points{source}")
    first, last = cpu_ms_per_event(low["engine"]), cpu_ms_per_event(high["engine"])
    if first is None or last is None:
        return _target(name, NOT_MEASURED, f"no CPU figures{source}")
    growth = last / first - 1
    value = (
        f"{first:.3f} -> {last:.3f} ms/event ({growth:+.0%}) from {small:,} to "
        f"{high['value']:,} {unit}; moves/event {_moves_per_event(low['engine'])} and "
        f"{_moves_per_event(high['engine'])}{source}"
    )
    if high["value"] != large:
        return _target(name, NOT_MEASURED, f"quick series, up to {high['value']:,} only: {value}")
    return _target(name, _check(growth <= CPU_GROWTH), value)


def cpu_ms_per_event(engine: Mapping[str, Any]) -> float | None:
    """The server's CPU milliseconds per request answered in the window."""
    if not engine.get("requests"):
        return None
    return 1000 * float(engine["cpu_seconds"]) / engine["requests"]


FANOUT_TARGET = 2_000
"""Order evaluations per second with 50 open orders per contact (issue 17)."""


def targets_table(targets: Sequence[Mapping[str, str]], markdown: bool = False) -> str:
    """The targets as a table."""
    return table(
        ("target of issue 4", "status", "measured"),
        [(t["target"], t["status"], t["value"]) for t in targets],
        markdown,
    )


# --- the scaling series --------------------------------------------------------------

SERIES_HEADERS = (
    "dimension",
    "value",
    "events/s",
    "vs first",
    "vs baseline",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "CPU %",
    "peak RSS MB",
    "errors",
    "moves/event",
    "CPU ms/event",
    "order evals/s",
)

DIMENSION_TITLES = {
    "triggers": "triggers (10,000 orders, ring pipeline)",
    "orders": "orders (100 triggers, ring pipeline)",
    "fanout": "open orders per contact (fan-out events only)",
}


def series_rows(series: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the series table."""
    rows = []
    first: dict[str, float] = {}
    baseline = (series.get("baseline") or {}).get("events_per_s")
    for point in series["points"]:
        engine = point["engine"]
        rate = engine["events_per_s"]
        first.setdefault(point["dimension"], rate)
        lat = engine["latency_ms"]
        rows.append(
            [
                point["dimension"],
                f"{point['value']:,}",
                fmt_rate(rate),
                f"{rate / first[point['dimension']]:.2f}" if first[point["dimension"]] else "-",
                f"{rate / baseline:.2f}x" if baseline else "-",
                fmt_ms(lat["p50"]),
                fmt_ms(lat["p95"]),
                fmt_ms(lat["p99"]),
                f"{engine['cpu_percent']:.0f}",
                f"{engine['peak_rss_mb']:.0f}",
                fmt_errors(engine["errors"]),
                _moves_per_event(engine),
                f"{cpu:.2f}" if (cpu := cpu_ms_per_event(engine)) is not None else "-",
                fmt_rate(evaluations_per_s(engine)),
            ]
        )
    return rows


def evaluations_per_s(engine: Mapping[str, Any]) -> float | None:
    """Orders decided per second: events/s times the orders each stored event resolved to
    (``None`` when the run stored no count of them)."""
    stored = engine.get("stored") or {}
    if not stored.get("events") or "evaluations" not in stored:
        return None
    return float(engine["events_per_s"]) * stored["evaluations"] / stored["events"]


def _moves_per_event(engine: Mapping[str, Any]) -> str:
    """Moves stored per event stored: how much work the point's events did."""
    stored = engine.get("stored") or {}
    return f"{stored['moves'] / stored['events']:.2f}" if stored.get("events") else "-"


def write_plot(series: Mapping[str, Any], path: Path) -> None:
    """Three panels (triggers, orders, fan-out): events/s and p99 against the value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    points = series["points"]
    dimensions = [d for d in DIMENSION_TITLES if any(p["dimension"] == d for p in points)]
    fig, axes = plt.subplots(
        1, len(dimensions), figsize=(5.2 * len(dimensions), 4.4), squeeze=False
    )
    baseline: float = (series.get("baseline") or {}).get("events_per_s") or 0.0
    fastest = max((p["engine"]["events_per_s"] for p in points), default=0.0)
    draw_baseline = 0 < baseline <= 3 * fastest  # a far-off line would flatten the curves
    for ax, dimension in zip(axes[0], dimensions, strict=True):
        chosen = [p for p in points if p["dimension"] == dimension]
        xs = [p["value"] for p in chosen]
        rates = [p["engine"]["events_per_s"] for p in chosen]
        p99 = [p["engine"]["latency_ms"]["p99"] for p in chosen]
        ax.plot(xs, rates, "o-", color="tab:blue", label="engine events/s")
        top = max(rates) * 1.3 if rates else 1.0
        if draw_baseline:
            ax.axhline(baseline, color="tab:green", linestyle="--", label="baseline events/s")
            top = max(top, baseline * 1.1)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.set_xlabel(DIMENSION_TITLES[dimension])
        ax.set_ylabel("events/s")
        ax.set_ylim(0, top)
        ax.grid(True, alpha=0.3)
        twin = ax.twinx()
        twin.plot(xs, p99, "s:", color="tab:red", label="engine p99 ms")
        twin.set_ylabel("p99 latency (ms)")
        twin.set_ylim(0, max(p99, default=1.0) * 1.3 or 1.0)
        handles, labels = ax.get_legend_handles_labels()
        twin_handles, twin_labels = twin.get_legend_handles_labels()
        ax.legend(handles + twin_handles, labels + twin_labels, loc="upper right", fontsize="small")
    title = (
        f"statusflow scaling: SQLite, concurrency {series['concurrency']}, "
        f"{series['duration']:g} s per point; {series['machine']['cpu']}, "
        f"{series['machine']['cores']} cores"
    )
    if baseline:
        title += f"; group-commit baseline {baseline:,.0f} events/s"
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def machine_table(machine: Mapping[str, Any]) -> str:
    """The machine as a Markdown table."""
    rows = [
        ("date", machine["date"]),
        ("CPU", machine["cpu"]),
        ("cores", machine["cores"]),
        ("memory", f"{machine['memory_gib']} GiB"),
        ("OS", machine["os"]),
        ("Python", machine["python"]),
        ("statusflow revision", machine["revision"]),
    ]
    rows += [(name, v) for name, v in machine["versions"].items()]
    return table(("", ""), rows, markdown=True)


def _caution(notes: Sequence[str]) -> list[str]:
    """A warning paragraph when the run's notes say its figures are not to be trusted."""
    disturbed = any("disturbed" in n for n in notes)
    mixed = any("changed during the run" in n for n in notes)
    if not disturbed and not mixed:
        return []
    reasons = []
    if disturbed:
        reasons.append("other processes took CPU during some measurements")
    if mixed:
        reasons.append("statusflow's code changed between points")
    return [
        f"**Provisional figures:** {' and '.join(reasons)} (see the notes below); rerun "
        "`make bench-series` on a quiet machine for figures to compare.",
        "",
    ]


def _ring_prose(series: Mapping[str, Any]) -> list[str]:
    """How the triggers and orders points do the same work per event (the ring design)."""
    if series.get("design") != "ring":
        return []
    point = next((p for p in series["points"] if p["engine"].get("ring")), None)
    engine: Mapping[str, Any] = point["engine"] if point else {}
    steps = engine.get("ring") or []
    ring = ", ".join(f"`{s['event_type']}` {s['source']} -> {s['target']}" for s in steps)
    share = engine["mix"].get(f"{steps[0]['event_type']} (order)") if steps else None
    each = f"{share:.0%}" if share else "the same share"
    return [
        "The triggers and orders points do the same work per event: their orders never "
        "end. Every order is seeded in an open status, and the open statuses form a ring, "
        "one trigger per status, each listening to an event type of its own sent by order "
        "id, with the condition `status eq` its status"
        + (f" ({ring}, the last allowed backwards)" if ring else "")
        + ". An event of a ring type moves its order exactly when its type is the step of "
        f"the order's status; with each ring type at {each} of the events, {each} of the "
        "events move one order whatever the statuses: the same moves per event at every "
        "point (`moves/event`). The other triggers are those `make bench` creates (every "
        "type, the same settings, conditions and targets), each that could move an order "
        "given one more condition no seeded order meets (`amount gt 1000000`): they listen "
        "and are evaluated (as many classes of alike triggers as the same number of `make "
        "bench` triggers make), and never win. The targets on these dimensions are on "
        "`CPU ms/event`, the server's CPU per request.",
        "",
    ]


def write_docs(
    path: Path,
    plot_name: str,
    series: Mapping[str, Any],
    last_run: Mapping[str, Any] | None,
    targets: Sequence[Mapping[str, str]],
) -> None:
    """``docs/performance.md``: machine, series table and plot, last full run, targets."""
    machine = series["machine"]
    parts = [
        "# Performance",
        "",
        "Written by `make bench-series` (`python -m bench.run --series`); the numbers below",
        "are from the machine described here. Rerun the commands to measure yours.",
        "",
        "## How to run",
        "",
        "```sh",
        "make bench          # SQLite and PostgreSQL (when reachable): engine, baseline, ratio",
        "make bench-quick    # the same in under two minutes",
        "make bench-series   # the scaling series: this page and performance.png",
        "make bench-ui       # the board's heaviest pages, idle and while the engine is loaded",
        "make bench BENCH_ARGS='--db sqlite --concurrency 64 --duration 60 --json out.json'",
        "```",
        "",
        "Each measurement starts `statusflow serve` on a free loopback port with a temporary",
        "database (a SQLite file, or a PostgreSQL database `statusflow_bench_<random>`",
        "created and dropped), seeds the orders with bulk INSERTs (contacts with phones,",
        "emails, visitor ids, some with several open orders) and the triggers through",
        "`POST /api/triggers` (every type of `GET /api/trigger-types`, a few with settings or",
        "conditions), then a separate load process keeps C connections busy for D seconds",
        "after a warm-up: about half the events name an order (payments, shipments,",
        "documents, emails...), half fan out by contact (calls by phone in various formats,",
        "emails, chat messages, visits, forms), every event with a unique id except about 2%",
        "deliberate duplicates. Only 2xx answers count. CPU and peak RSS are the server's",
        "process tree (psutil). The baseline (`bench/baseline.py`) is a bare aiohttp app that",
        "parses each event and stores it with one durable INSERT, group-committed by a single",
        "writer, on the same kind of database, driven by the same generator with the same",
        "event bodies.",
        "",
        "## Machine",
        "",
        machine_table(machine),
        "",
        "## Scaling series",
        "",
        f"SQLite, concurrency {series['concurrency']}, {series['warmup']:g} s warm-up and "
        f"{series['duration']:g} s measured per point. Triggers: 10,000 orders; orders: "
        "100 triggers; fan-out: 10,000 orders where every contact has N open orders, 100 "
        "triggers with non-final targets, fan-out events only. `vs baseline` is against the "
        "group-commit baseline measured in the same series "
        f"({fmt_rate((series.get('baseline') or {}).get('events_per_s'))} events/s).",
        "",
        *_ring_prose(series),
        table(SERIES_HEADERS, series_rows(series), markdown=True),
        "",
        *_caution(series.get("notes") or ()),
        f"![scaling series]({plot_name})",
        "",
        f"Ran as `{series['command']}`.",
        "",
    ]
    if series.get("notes"):
        parts += ["Notes of that run:", ""]
        parts += [f"- {text}" for text in series["notes"]]
        parts += [""]
    if last_run:
        parts += [
            "## Last full run",
            "",
            f"{last_run['machine']['date']}, concurrency {last_run['options']['concurrency']}, "
            f"{last_run['options']['orders']:,} orders, {last_run['options']['triggers']:,} "
            f"triggers, {last_run['options']['duration']:g} s measured; ran as "
            f"`{last_run['command']}`.",
            "",
            table(SUMMARY_HEADERS, summary_rows(last_run["databases"]), markdown=True),
            "",
        ]
    parts += [
        "## Targets of issue 4",
        "",
        targets_table(targets, markdown=True),
        "",
    ]
    if ANALYSIS.exists():  # written by hand: what the profiles show
        parts += [ANALYSIS.read_text().rstrip(), ""]
    path.write_text("\n".join(parts))
