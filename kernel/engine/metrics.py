"""Prometheus metrics: events by type and outcome, moves, latency, plugin errors.

The metric objects are process-wide (``prometheus_client``'s default registry): one
process counts every app it runs. The event path only increments counters and observes
one histogram per request, through label children cached here (no per-event work past
a dictionary lookup).

Several workers (``statusflow serve --workers N``) share one port, so a scrape reaches
whichever worker the kernel picks: the workers run in ``prometheus_client``'s
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor before it starts
them), and every worker's ``/metrics`` reports the sum over all workers. Separate
instances (other hosts, other ports) each report their own; Prometheus adds them up.

Gauges whose value lives elsewhere (an outbox's backlog in the database) are computed at
scrape time from callbacks that plugins register (:meth:`GaugeCallbacks.register`).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

log = structlog.get_logger("statusflow.metrics")

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
GAUGE_TIMEOUT = 5.0
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")

EVENTS = Counter(
    "statusflow_events",
    "Events posted, by type and outcome (moved, not_moved, duplicate, rejected)",
    ["type", "outcome"],
)
MOVES = Counter(
    "statusflow_moves",
    "Committed moves, by target status and cause (trigger, manual or action)",
    ["to", "cause"],
)
LATENCY = Histogram(
    "statusflow_event_request_seconds",
    "Time to process one request of events, from validation to the committed answer",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PLUGIN_ERRORS = Counter(
    "statusflow_plugin_errors",
    "Plugin failures isolated by the kernel, by plugin and hook",
    ["plugin", "hook"],
)
RUNS = Counter(
    "statusflow_action_runs",
    "Action runs ended in this process, by state (done, skipped, canceled, failed)",
    ["state"],
)
RUN_LATENESS = Histogram(
    "statusflow_action_run_lateness_seconds",
    "How late runs started after they were due (started_at - due_at), first attempts",
    buckets=(0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86400.0),
)
GROUPS_DECIDED_AGAIN = Counter(
    "statusflow_groups_decided_again",
    "SQLite event groups decided again inside the write lock: what they had read "
    "changed before they could be written",
)
RATE_LIMITED = Counter(
    "statusflow_rate_limited",
    "Requests to public endpoints refused with a 429",
)

UNKNOWN_TYPE = "unknown"
_events: dict[tuple[str, str], Any] = {}
_moves: dict[tuple[str, str], Any] = {}


def _child(cache: dict[tuple[str, str], Any], metric: Counter, key: tuple[str, str]) -> Any:
    child = cache.get(key)
    if child is None:
        child = cache[key] = metric.labels(*key)
    return child


def count_event(event_type: str, result: Mapping[str, Any]) -> None:
    """Count one processed event (and its moves) by its result."""
    if result["duplicate"]:
        _child(_events, EVENTS, (event_type, "duplicate")).inc()
        return
    moves = result["moves"]
    _child(_events, EVENTS, (event_type, "moved" if moves else "not_moved")).inc()
    for move in moves:
        _child(_moves, MOVES, (move["to"], "trigger")).inc()


def count_rejected(bodies: Sequence[Any], known_types: Mapping[str, Any]) -> None:
    """Count the events of a rejected request (422 or 404); unknown types as ``unknown``."""
    for body in bodies:
        event_type = body.get("type") if isinstance(body, dict) else None
        if not isinstance(event_type, str) or event_type not in known_types:
            event_type = UNKNOWN_TYPE
        _child(_events, EVENTS, (event_type, "rejected")).inc()


def count_manual_move(to_status: str, by_action: bool = False) -> None:
    """Count a move made through ``PATCH /api/orders`` (or by an action's run)."""
    _child(_moves, MOVES, (to_status, "action" if by_action else "manual")).inc()


def count_run(state: str) -> None:
    """Count a run that ended (``done``, ``skipped``, ``canceled``, ``failed``)."""
    RUNS.labels(state).inc()


def plugin_error(plugin: str, hook: str) -> None:
    """Count a plugin failure the kernel isolated (logged as ``plugin.*_failed``)."""
    PLUGIN_ERRORS.labels(plugin, hook).inc()


GaugeCallback = Callable[[], "float | Awaitable[float]"]


class GaugeCallbacks:
    """Gauges computed at scrape time (for example an outbox's backlog)."""

    def __init__(self) -> None:
        self._gauges: dict[str, tuple[str, GaugeCallback]] = {}

    def register(self, name: str, documentation: str, callback: GaugeCallback) -> None:
        """Report ``callback()`` (a number, or an awaitable of one) as the gauge ``name``.

        :raises ValueError: a malformed or already registered name.
        """
        if not NAME.match(name):
            raise ValueError(f"{name!r} is not a valid Prometheus metric name")
        if name in self._gauges:
            raise ValueError(f"gauge {name!r} is already registered")
        self._gauges[name] = (documentation, callback)

    async def collect(self) -> list[GaugeMetricFamily]:
        """Every gauge's current value; a failing or slow callback is logged and left out."""
        families = []
        for name, (documentation, callback) in self._gauges.items():
            try:
                async with asyncio.timeout(GAUGE_TIMEOUT):
                    value = callback()
                    if inspect.isawaitable(value):
                        value = await value
                families.append(GaugeMetricFamily(name, documentation, value=float(value)))
            except Exception:
                log.exception("metrics.gauge_failed", gauge=name)
        return families


class _Families:
    def __init__(self, families: Sequence[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> Sequence[GaugeMetricFamily]:
        return self._families


def multiprocess_dir() -> str | None:
    """The multiprocess mode's directory, when this process runs in that mode."""
    return os.environ.get(MULTIPROCESS_ENV) or None


async def render(gauges: GaugeCallbacks) -> bytes:
    """The text exposition of every metric (all workers' sum in multiprocess mode)."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    families = await gauges.collect()
    if families:
        extra = CollectorRegistry()
        extra.register(_Families(families))
        text += generate_latest(extra)
    return text


def prepare_multiprocess_dir(path: str) -> None:
    """Empty the directory of a previous run's files (done before the workers start)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def worker_exited(pid: int) -> None:
    """Forget the live gauges of a worker that exited (multiprocess mode)."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
