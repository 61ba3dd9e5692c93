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

from statusflow.engine.decide import trace_of
from statusflow.http.actions import run_json
from statusflow.http.keys import DATABASE, ENGINE, REGISTRY, SERVICES
from statusflow.http.orders import load_order, order_json
from statusflow.http.paging import Cursors, is_seq
from statusflow.store.lists import event_results, timeline_page, trigger_labels
from statusflow.store.runs import PENDING

TIMELINE_PAGE = 50
"""Timeline entries per page of the order page."""
ENDED_RUNS_SHOWN = 20
"""Finished runs listed (the newest ones); pending and running ones are always listed."""
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
            view.timeline = await _timeline(app, sql, order_id, after)
        head = await timeline_page(sql, order_id, 1, None, newest_first=True)
    view.version = _version(order["status"], order["updated_at"], head)
    return view


async def timeline_only(app: web.Application, order_id: str, cursor: str | None) -> OrderView:
    """The order with one page of its timeline (the ``More`` link's answer)."""
    return await load_view(app, order_id, runs=False, cursor=cursor)


async def _runs(app: web.Application, sql: Any, order_id: str) -> list[dict[str, Any]]:
    """The order's open runs and its newest finished ones, newest first, each with the
    name of its action."""
    rows = await sql.runs_of_order(order_id)
    open_runs = [r for r in rows if r["state"] in (PENDING, "running")]
    ended = [r for r in rows if r["state"] not in (PENDING, "running")][-ENDED_RUNS_SHOWN:]
    index = (await app[ENGINE].planner(sql)).index
    registry = app[REGISTRY]
    shown = []
    for row in reversed(open_runs + ended):
        run = run_json(row)
        action = index.by_id.get(run["action_id"])
        if action is None:
            label = f"Action {run['action_id']}"
        else:
            action_type = registry.action_types.get(action.view.type)
            title = action_type.title if action_type is not None else action.view.type
            label = action.view.name or title
        run["label"] = label
        shown.append(run)
    return shown


async def _timeline(
    app: web.Application, sql: Any, order_id: str, after: int | None
) -> TimelinePage:
    rows = await timeline_page(sql, order_id, TIMELINE_PAGE, after, newest_first=True)
    shown = rows[:TIMELINE_PAGE]
    event_ids = [
        str(row["data"]["event_id"])
        for row in shown
        if row["kind"] == "event"
        and isinstance(row["data"], Mapping)
        and row["data"].get("event_id")
    ]
    results = await event_results(sql, event_ids)
    entries = [_entry(row, results, order_id) for row in shown]
    trigger_ids = sorted(
        {
            int(item["trigger_id"])
            for entry in entries
            for item in (*entry.get("trace", ()), entry)
            if isinstance(item.get("trigger_id"), int)
        }
    )
    names = _names(app, await trigger_labels(sql, trigger_ids))
    more = None
    if len(rows) > TIMELINE_PAGE:
        more = timeline_cursors(app, order_id).make(shown[-1]["seq"])
    return TimelinePage(entries, names, more)


def _entry(row: Mapping[str, Any], results: Mapping[str, Any], order_id: str) -> dict[str, Any]:
    """A timeline row as the page shows it: its data, and for an event its trace for
    this order."""
    data = dict(row["data"] or {}) if isinstance(row["data"], Mapping) else {}
    entry: dict[str, Any] = {"seq": row["seq"], "at": row["at"], "kind": row["kind"], **data}
    if row["kind"] == "event":
        entry["summary"] = data_summary(data.get("data"))
        result = results.get(str(data.get("event_id")))
        trace = trace_of(result) if isinstance(result, Mapping) else []
        entry["trace"] = [t for t in trace if t.get("order_id") == order_id]
    return entry


def _names(app: web.Application, rows: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    registry = app[REGISTRY]
    names = {}
    for row in rows:
        trigger_type = registry.trigger_types.get(row["type"])
        title = trigger_type.title if trigger_type is not None else row["type"]
        names[int(row["id"])] = row["name"] or f"{title} (trigger {row['id']})"
    return names


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
    "live_version",
    "load_view",
    "status_list",
    "timeline_cursors",
    "timeline_only",
]
