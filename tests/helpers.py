"""Helpers for tests that drive statusflow through its HTTP API.

``Api`` wraps an aiohttp test client: each call checks the HTTP status it expects and
returns the decoded JSON. The functions below build event bodies and read traces.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from statusflow.http.keys import DATABASE
from statusflow.store.schema import EventRecord

HANG_GUARD = 60.0
"""Seconds a wait gives up after: a guard against hanging, never a timing assertion."""


async def until(check: Callable[[], Awaitable[Any]], what: str, guard: float = HANG_GUARD) -> Any:
    """Wait until ``await check()`` answers something truthy, and answer it; it returns as
    soon as the check holds. After ``guard`` seconds (a hang, on any machine) it fails
    saying what it waited for."""
    try:
        async with asyncio.timeout(guard):
            while not (answer := await check()):
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None
    return answer


EVENTS = EventRecord.__table__  # type: ignore[attr-defined]


BUILT_IN_PLUGINS = frozenset(
    {
        "responsible",
        "email",
        "calls",
        "forms",
        "payment",
        "shipment",
        "orders",
        "webhook",
        "visits",
        "chat",
        "documents",
    }
)
"""The 11 plugins of contract §3."""


class Api:
    """statusflow's HTTP API through an aiohttp test client; every call checks its status."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int = 200,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send ``body`` as JSON (``None``: no body); assert the status; the JSON answer."""
        response = await self.client.request(method, path, json=body, params=params)
        text = await response.text()
        assert response.status == expect, f"{method} {path} -> {response.status}: {text}"
        return json.loads(text) if text else None

    async def error(
        self, method: str, path: str, body: Any = None, *, expect: int, **kwargs: Any
    ) -> dict[str, Any]:
        """The ``error`` object of a call that must fail with ``expect``."""
        answer = await self.call(method, path, body, expect=expect, **kwargs)
        assert set(answer) == {"error"}, answer
        assert set(answer["error"]) == {"code", "message", "details"}, answer
        return dict(answer["error"])

    # orders -----------------------------------------------------------------------

    async def create_order(self, order_id: str, **fields: Any) -> dict[str, Any]:
        """``POST /api/orders``; 201 expected."""
        return dict(await self.call("POST", "/api/orders", {"id": order_id, **fields}, expect=201))

    async def create_orders(self, orders: Mapping[str, Mapping[str, Any]]) -> None:
        """Create each ``{order_id: fields}``."""
        for order_id, fields in orders.items():
            await self.create_order(order_id, **fields)

    async def order(self, order_id: str) -> dict[str, Any]:
        """``GET /api/orders/{id}``."""
        return dict(await self.call("GET", f"/api/orders/{order_id}"))

    async def status_of(self, order_id: str) -> str:
        """The order's current status."""
        return str((await self.order(order_id))["status"])

    async def statuses_of(self, order_ids: Iterable[str]) -> dict[str, str]:
        """``{order_id: status}`` for each order."""
        return {order_id: await self.status_of(order_id) for order_id in order_ids}

    async def patch_order(self, order_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /api/orders/{id}`` with a merge patch; 200 expected."""
        return dict(await self.call("PATCH", f"/api/orders/{order_id}", dict(patch)))

    async def timeline(self, order_id: str) -> list[dict[str, Any]]:
        """``GET /api/orders/{id}/timeline``, oldest first."""
        return list(await self.call("GET", f"/api/orders/{order_id}/timeline"))

    async def timeline_kinds(self, order_id: str) -> list[str]:
        """The ``kind`` of each timeline entry, oldest first."""
        return [entry["kind"] for entry in await self.timeline(order_id)]

    # triggers ---------------------------------------------------------------------

    async def create_trigger(
        self, status: str, type: str = "payment.received", **fields: Any
    ) -> dict[str, Any]:
        """``POST /api/triggers``; 201 expected."""
        body = {"type": type, "status": status, **fields}
        return dict(await self.call("POST", "/api/triggers", body, expect=201))

    async def trigger_id(self, status: str, type: str = "payment.received", **fields: Any) -> int:
        """Create a trigger; its id."""
        return int((await self.create_trigger(status, type, **fields))["id"])

    async def triggers(self) -> list[dict[str, Any]]:
        """``GET /api/triggers``."""
        return list(await self.call("GET", "/api/triggers"))

    async def delete_all_triggers(self) -> None:
        """Delete every trigger (between the cases of a table that share one app)."""
        for trigger in await self.triggers():
            await self.call("DELETE", f"/api/triggers/{trigger['id']}", expect=204)

    # events -----------------------------------------------------------------------

    async def post_events(self, body: Any, *, dry_run: bool = False, expect: int = 200) -> Any:
        """``POST /api/events`` (one event or a list), optionally as a dry run."""
        params = {"dry_run": "true"} if dry_run else None
        return await self.call("POST", "/api/events", body, expect=expect, params=params)

    async def get_event(self, event_id: str, *, expect: int = 200) -> dict[str, Any]:
        """``GET /api/events/{id}``."""
        return dict(await self.call("GET", f"/api/events/{event_id}", expect=expect))

    async def stored_event_count(self) -> int:
        """How many events the database holds (the API has no list of events)."""
        async with self.client.app[DATABASE].read() as conn:
            rows = (await conn.execute(select(EVENTS.c.id))).all()
        return len(rows)


def event(type: str = "payment.received", **fields: Any) -> dict[str, Any]:
    """An event body: ``event(order_id="o1", id="e1", data={"amount": 10})``."""
    return {"type": type, **fields}


def move(order_id: str, from_: str, to: str, trigger_id: int) -> dict[str, Any]:
    """A move as results and stored events show it."""
    return {"order_id": order_id, "from": from_, "to": to, "trigger_id": trigger_id}


def trace_by_key(trace: Sequence[Mapping[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """A trace keyed by ``(order_id, trigger_id)``; fails on a key seen twice."""
    keyed: dict[tuple[str, int], dict[str, Any]] = {}
    for entry in trace:
        assert set(entry) == {"order_id", "trigger_id", "outcome", "reason"}, entry
        key = (entry["order_id"], entry["trigger_id"])
        assert key not in keyed, f"trace lists {key} twice: {trace}"
        keyed[key] = dict(entry)
    return keyed


def assert_trace(
    trace: Sequence[Mapping[str, Any]],
    expected: Mapping[tuple[str, int], tuple[str, Sequence[str]]],
) -> None:
    """Assert a trace has exactly the expected entries.

    :param expected: ``{(order_id, trigger_id): (outcome, fragments)}``; the entry's
        reason must contain every fragment (case-insensitively).
    """
    keyed = trace_by_key(trace)
    assert set(keyed) == set(expected), trace
    for key, (outcome, fragments) in expected.items():
        entry = keyed[key]
        assert entry["outcome"] == outcome, entry
        assert isinstance(entry["reason"], str) and entry["reason"], entry
        for fragment in fragments:
            assert fragment.lower() in entry["reason"].lower(), (fragment, entry)


def assert_recent_utc(at: str, *, within: timedelta = timedelta(minutes=5)) -> None:
    """``at`` is an ISO-8601 time in UTC, close to now."""
    assert isinstance(at, str) and "T" in at, at
    parsed = datetime.fromisoformat(at)
    assert parsed.utcoffset() == timedelta(0), at
    assert abs(datetime.now(UTC) - parsed) < within, at


# --- plugin routes: tracking links, webhooks -----------------------------------------------


def path_of(url: str) -> str:
    """The path and query of an absolute URL (``webhook_url``, tracked links), for a client."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def tracking_links(
    api: Api, order_id: str, urls: Sequence[str], message_id: str | None = None
) -> dict[str, Any]:
    """``POST /api/tracking-links``; 201 expected; the answer."""
    body: dict[str, Any] = {"order_id": order_id, "urls": list(urls)}
    if message_id is not None:
        body["message_id"] = message_id
    return dict(await api.call("POST", "/api/tracking-links", body, expect=201))


async def event_ids_in_timeline(api: Api, order_id: str) -> list[str]:
    """The ``event_id`` of each ``event`` entry of an order's timeline, oldest first."""
    return [e["event_id"] for e in await api.timeline(order_id) if e["kind"] == "event"]


# --- whole-database reads, for "nothing else changed" checks in big tables ----------------


async def stored_statuses(api: Api) -> dict[str, str]:
    """Every order's status, ``{order_id: status}``, in one query (no list API exists)."""
    from statusflow.store.schema import Order

    orders = Order.__table__  # type: ignore[attr-defined]
    async with api.client.app[DATABASE].read() as conn:
        rows = (await conn.execute(select(orders.c.id, orders.c.status))).all()
    return {row.id: row.status for row in rows}


async def timeline_kinds_by_event(api: Api, event_id: str) -> dict[str, list[str]]:
    """``{order_id: [kind, ...]}`` of the timeline entries naming ``event_id``, oldest first."""
    from statusflow.store.schema import TimelineEntry

    timeline = TimelineEntry.__table__  # type: ignore[attr-defined]
    query = select(timeline.c.order_id, timeline.c.kind, timeline.c.data).order_by(timeline.c.seq)
    async with api.client.app[DATABASE].read() as conn:
        rows = (await conn.execute(query)).all()
    kinds: dict[str, list[str]] = {}
    for row in rows:
        if (row.data or {}).get("event_id") == event_id:
            kinds.setdefault(row.order_id, []).append(row.kind)
    return kinds


PING_SOURCE = """
from statusflow import EventType, TriggerType, hookimpl


@hookimpl
def register_event_types(register):
    register(EventType("ping", "Ping"))


@hookimpl
def register_trigger_types(register):
    register(TriggerType("ping", "Ping", ("ping",)))
"""
"""A plugin module: the event type and the trigger type ``ping``."""


def write_distribution(site: Path, entry_name: str, source: str, version: str = "1.0") -> str:
    """A distribution ``statusflow-ENTRY_NAME`` as pip leaves one in ``site``: a module
    holding ``source`` and a ``.dist-info`` whose entry point ``ENTRY_NAME`` loads it, found
    by ``importlib.metadata`` once ``site`` is on the path. The module's (unique) name."""
    module = f"throwaway_{uuid.uuid4().hex[:10]}"
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist_name = f"statusflow-{entry_name}"
    info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n"
    )
    (info / "entry_points.txt").write_text(f"[statusflow]\n{entry_name} = {module}\n")
    return module


def pip_install_copy(distribution: Path, root: Path) -> Path:
    """``pip install --no-deps --target ROOT/site`` of a copy of ``distribution`` (built
    from the copy, so the build leaves nothing in the source tree): the site folder."""
    source = root / "src"
    shutil.copytree(
        distribution, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = root / "site"
    # --no-build-isolation: build with the venv's setuptools instead of downloading one
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*pip, "--target", str(site), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return site


def assert_error_shape(answer: Any, code: str) -> dict[str, Any]:
    """``answer`` is the contract's error envelope with this ``code`` (one of the table of
    codes), its ``details`` a list of ``{"path", "message"}``; its ``error``."""
    from statusflow.http.codes import ERROR_CODES

    assert isinstance(answer, dict) and set(answer) == {"error"}, answer
    assert set(answer["error"]) == {"code", "message", "details"}, answer
    assert answer["error"]["code"] == code, answer
    assert code in ERROR_CODES, f"{code!r} is not in the table of error codes"
    details = answer["error"]["details"]
    assert isinstance(details, list), answer
    for problem in details:
        assert isinstance(problem, dict) and set(problem) == {"path", "message"}, answer
        assert isinstance(problem["path"], str) and isinstance(problem["message"], str)
        assert problem["path"] == "" or problem["path"][0] in "/?", answer
    return dict(answer["error"])
