"""What the order page shows, read without a request: the order's summary, one page of
its timeline (newest first, each event with its trace and the names of the triggers it
weighed), its action runs, and the small *version* the live stream compares.

The timeline is paged (:data:`TIMELINE_PAGE` entries): an order with thousands of
entries costs the same as one with fifty. Timelines are reached only through
:mod:`statusflow.store.lists`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from statusflow.engine.decide import group_ids, trace_of
from statusflow.http.actions import run_json
from statusflow.http.keys import DATABASE, ENGINE, REGISTRY, SERVICES
from statusflow.http.orders import load_order, order_json
from statusflow.http.paging import Cursors, is_seq
from statusflow.store.lists import event_results, timeline_page, trigger_labels
from statusflow.store.runs import PENDING
from statusflow.ui.labels import title_of

TIMELINE_PAGE = 50
SHOWN_AT_MOST = 500
"""Entries a live refresh reads again at most: the pages a person loaded with ``More``
stay on the page when it follows a change (up to this many)."""
"""Timeline entries per page of the order page."""
ENDED_RUNS_SHOWN = 20
"""Finished runs listed (the newest ones); pending and running ones are always listed."""
TRACE_BUDGET = 300
"""Trace lines a page of the timeline shows inline: newest events first, the newest
always; an older event whose trace would go past it shows its counts and a ``Why?``
link that loads it (a store whose event types have few triggers sees every trace)."""
SUMMARY_LENGTH = 160
"""The longest data summary shown for an event (the rest is cut, with an ellipsis)."""


@dataclass
class TimelinePage:
    """One page of an order's timeline, newest first."""

    entries: list[dict[str, Any]]
    names: dict[int, str]
    """Trigger id to what the board calls it (its name, or its type's title)."""
    more: str | None
    """The cursor of the next (older) page, ``None`` on the last one."""


@dataclass
class OrderView:
    """Everything the order page shows."""

    order: dict[str, Any]
    statuses: list[dict[str, Any]]
    status_names: dict[str, str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    timeline: TimelinePage | None = None
    version: str = ""
    """The live version the page was read at (see :func:`live_version`)."""


def data_summary(data: Any, length: int = SUMMARY_LENGTH) -> str:
    """``key: value, ...`` of an event's data in one line (plain text, cut at ``length``)."""
    if not isinstance(data, Mapping):
        text = "" if data is None else str(data)
    else:
        text = ", ".join(f"{key}: {_scalar(value)}" for key, value in data.items())
    return text if len(text) <= length else text[: length - 1] + "…"


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + data_summary(value) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return str(value)


def timeline_cursors(app: web.Application, order_id: str) -> Cursors:
    """The cursors of the order page's timeline (newest first), signed for this order."""
    return Cursors(app[SERVICES], "ui-timeline", {"order_id": order_id})


async def status_list(app: web.Application) -> list[dict[str, Any]]:
    """The pipeline, in ``sort`` order."""
    async with app[DATABASE].read() as sql:
        return [dict(row) for row in await sql.pipeline()]


async def load_view(
    app: web.Application,
    order_id: str,
    *,
    runs: bool = True,
    timeline: bool = True,
    cursor: str | None = None,
    size: int = TIMELINE_PAGE,
    oldest: int | None = None,
) -> OrderView:
    """The order page's parts (``runs``, ``timeline`` only when asked for).

    :raises ApiError: 404 for an unknown order, 422 for a cursor this page did not give.
    """
    after = timeline_cursors(app, order_id).position(cursor, is_seq) if cursor else None
    async with app[DATABASE].read() as sql:
        order = order_json(await load_order(sql, order_id))
        statuses = [dict(row) for row in await sql.pipeline()]
        view = OrderView(order, statuses, {s["id"]: s["name"] for s in statuses})
        if runs:
            view.runs = await _runs(app, sql, order_id)
        if timeline:
            view.timeline = await _timeline(app, sql, order_id, after, size, oldest)
        head = await timeline_page(sql, order_id, 1, None, newest_first=True)
    view.version = _version(order["status"], order["updated_at"], head)
    return view


async def timeline_only(app: web.Application, order_id: str, cursor: str | None) -> OrderView:
    """The order with one page of its timeline (the ``More`` link's answer)."""
    return await load_view(app, order_id, runs=False, cursor=cursor)


async def _action_labels(app: web.Application, sql: Any) -> dict[int, str]:
    """Action id to what the board calls it: its name, or its type's title."""
    index = (await app[ENGINE].planner(sql)).index
    types = app[REGISTRY].action_types
    return {
        action_id: action.view.name or title_of(types, action.view.type)
        for action_id, action in index.by_id.items()
    }


async def _runs(app: web.Application, sql: Any, order_id: str) -> list[dict[str, Any]]:
    """The order's open runs and its newest finished ones, newest first, each with the
    name of its action."""
    rows = await sql.runs_of_order(order_id)
    open_runs = [r for r in rows if r["state"] in (PENDING, "running")]
    ended = [r for r in rows if r["state"] not in (PENDING, "running")][-ENDED_RUNS_SHOWN:]
    labels = await _action_labels(app, sql)
    shown = []
    for row in reversed(open_runs + ended):
        run = run_json(row)
        run["label"] = labels.get(run["action_id"], f"Action {run['action_id']}")
        shown.append(run)
    return shown


async def _timeline(
    app: web.Application,
    sql: Any,
    order_id: str,
    after: int | None,
    size: int = TIMELINE_PAGE,
    oldest: int | None = None,
) -> TimelinePage:
    """Up to ``size`` entries, newest first, older than ``after``; with ``oldest``, only
    those from the newest down to the entry ``oldest`` (a live refresh of a page showing
    down to it)."""
    rows = await timeline_page(sql, order_id, size, after, newest_first=True)
    shown = rows[:size]
    if oldest is not None:
        shown = [row for row in shown if row["seq"] >= oldest]
    event_ids = [
        str(row["data"]["event_id"])
        for row in shown
        if row["kind"] == "event"
        and isinstance(row["data"], Mapping)
        and row["data"].get("event_id")
    ]
    results = await event_results(sql, event_ids)
    entries = [_entry(row) for row in shown]
    _add_traces(entries, results, order_id)
    trigger_ids = sorted(
        {
            int(item["trigger_id"])
            for entry in entries
            for item in (*entry.get("trace", ()), entry)
            if isinstance(item.get("trigger_id"), int)
        }
    )
    names = _names(app, await trigger_labels(sql, trigger_ids))
    if any(entry.get("action_id") is not None for entry in entries):
        labels = await _action_labels(app, sql)
        for entry in entries:
            if entry.get("action_id") is not None:
                entry["action"] = labels.get(entry["action_id"], f"action {entry['action_id']}")
    more = None
    if len(rows) > len(shown):
        more = timeline_cursors(app, order_id).make(shown[-1]["seq"])
    return TimelinePage(entries, names, more)


def _entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """A timeline row as the page shows it (an event's trace is added by
    :func:`_add_traces`)."""
    data = dict(row["data"] or {}) if isinstance(row["data"], Mapping) else {}
    entry: dict[str, Any] = {"seq": row["seq"], "at": row["at"], "kind": row["kind"], **data}
    if row["kind"] == "event":
        entry["summary"] = data_summary(data.get("data"))
        entry["trace"] = []
    return entry


def _outcomes(result: Any, order_id: str) -> tuple[int, int]:
    """How many triggers an event's stored ``result`` weighed for the order, and how
    many of them moved it, without expanding the trace when its groups say it."""
    if not isinstance(result, Mapping):
        return 0, 0
    groups = result.get("trace_groups")
    if isinstance(groups, list):
        weighed = moved = 0
        for group_order, outcome, _reason, ids in groups:
            if group_order == order_id:
                count = sum(1 for _ in group_ids(ids))
                weighed += count
                moved += count if outcome == "moved" else 0
        return weighed, moved
    trace = [t for t in trace_of(result) if t.get("order_id") == order_id]
    return len(trace), sum(1 for t in trace if t.get("outcome") == "moved")


def _add_traces(
    entries: Sequence[dict[str, Any]],
    results: Mapping[str, Any],
    order_id: str,
    budget: int | None = None,
) -> None:
    """Give the newest events their trace for the order inline, within ``budget`` lines
    (the newest event's always); fold the others to their counts (``folded``)."""
    budget = TRACE_BUDGET if budget is None else budget
    first = True
    for entry in entries:
        if entry["kind"] != "event":
            continue
        result = results.get(str(entry.get("event_id")))
        weighed, moved = _outcomes(result, order_id)
        if first or weighed <= budget:
            budget -= weighed
            first = False
            if weighed and isinstance(result, Mapping):
                entry["trace"] = [t for t in trace_of(result) if t.get("order_id") == order_id]
            continue
        entry["folded"] = {"weighed": weighed, "moved": moved, "skipped": weighed - moved}
        budget = 0  # older events fold too, so the page reads newest-first


async def event_trace(
    app: web.Application, order_id: str, event_id: str
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """An event's trace for the order ``order_id`` and the names of its triggers (the
    ``Why?`` of a folded timeline entry).

    :raises ApiError: 404 for an unknown order.
    """
    async with app[DATABASE].read() as sql:
        await load_order(sql, order_id)
        results = await event_results(sql, [event_id])
        result = results.get(event_id)
        trace = trace_of(result) if isinstance(result, Mapping) else []
        trace = [t for t in trace if t.get("order_id") == order_id]
        ids = sorted({int(t["trigger_id"]) for t in trace if isinstance(t.get("trigger_id"), int)})
        names = _names(app, await trigger_labels(sql, ids))
    return trace, names


def _names(app: web.Application, rows: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    types = app[REGISTRY].trigger_types
    return {
        int(row["id"]): row["name"] or f"{title_of(types, row['type'])} (trigger {row['id']})"
        for row in rows
    }


def _version(status: str, updated_at: Any, newest: Sequence[Mapping[str, Any]]) -> str:
    head = newest[0]["seq"] if newest else 0
    return f"{status}|{updated_at}|{head}"


async def live_version(app: web.Application, order_id: str) -> str:
    """What changes when the order page should refresh: the order's status and last
    change, and its newest timeline entry (a move, an event, a run that ended); two
    indexed reads."""
    async with app[DATABASE].read() as sql:
        row = await sql.order(order_id)
        if row is None:
            return "gone"
        newest = await timeline_page(sql, order_id, 1, None, newest_first=True)
    return _version(row["status"], row["updated_at"], newest)


__all__ = [
    "TIMELINE_PAGE",
    "OrderView",
    "TimelinePage",
    "data_summary",
    "event_trace",
    "live_version",
    "load_view",
    "status_list",
    "timeline_cursors",
    "timeline_only",
]
