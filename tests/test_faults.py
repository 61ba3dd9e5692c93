"""Faults, with real ``statusflow serve`` processes on one real PostgreSQL database.

- Two instances under concurrent load on shared orders (events by order and by contact,
  the same event id posted to both at once): every acknowledged event is stored with
  what it answered, duplicates are answered once, and replaying each order's events in
  the order they committed through a sequential model of the contract's rules gives
  exactly the stored moves and the final status.
- One instance SIGKILLed in the middle of the load: every event that got a 2xx is in the
  database with its moves and timeline entries, nothing is half-applied, and the other
  instance keeps serving.
- SIGTERM drains the requests in flight (each answered 200 and stored), then the
  process exits 0.

Skipped without PostgreSQL, except under CI=true (tests/conftest.py). Each test runs a
few seconds of load.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from statusflow.testing import temporary_postgres_database
from tests.conftest import require_postgres

pytestmark = pytest.mark.postgres

BIN = Path(sys.executable).parent
PLUGINS = ["payment", "shipment", "orders", "calls"]
SORT = {"N": 100, "P": 150, "S": 175, "F": 200, "D": 250}
FINAL = {"F", "D"}
# (type, target, allow_backwards), created in this order (ids 1..5)
TRIGGERS = [
    ("payment.received", "P", False),
    ("shipment.shipped", "S", False),
    ("shipment.shipped", "F", False),  # loses to S unless the order is already in S
    ("order.canceled", "D", False),
    ("call.incoming", "N", True),  # moves orders back to New
]
ORDERS = 24
PHONES = [f"+1202555{100 + group:04d}" for group in range(4)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    require_postgres()
    async with temporary_postgres_database() as url:
        yield url


class Instance:
    """One ``statusflow serve`` process on a free loopback port."""

    def __init__(self, database_url: str, tmp_path: Path, name: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'database_url = "{database_url}"\n'
            f"[server]\nport = {self.port}\npublic_rate_per_second = 0\n"
            f"[plugins]\nenable = {json.dumps(PLUGINS)}\n"
        )
        self.log_path = tmp_path / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [BIN / "statusflow", "serve", "--config", str(config)],
                stdout=log,
                stderr=log,
                env={**os.environ, "STATUSFLOW_LOG_LEVEL": "warning"},
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    async def ready(self, seconds: float = 60) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(int(seconds * 20)):
                assert self.process.poll() is None, f"the server exited:\n{self.log()}"
                try:
                    async with session.get(f"{self.base}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the server never got ready:\n{self.log()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


@pytest.fixture
async def instances(postgres_url: str, tmp_path: Path) -> AsyncIterator[list[Instance]]:
    """Two instances on one fresh database (they migrate at start, taking turns)."""
    started = [Instance(postgres_url, tmp_path, name) for name in ("a", "b")]
    try:
        await asyncio.gather(*(instance.ready() for instance in started))
        yield started
    finally:
        for instance in started:
            instance.stop()


# --- the scenario --------------------------------------------------------------------------


@dataclass
class Posted:
    """One POST of one event: where to, and what came back (``None``: no answer)."""

    event_id: str
    instance: int
    status: int | None = None
    body: dict[str, Any] | None = None


async def setup_store(base: str) -> dict[str, str]:
    """Orders (every 4th shares a phone; some start in P) and the triggers; initial statuses."""
    initial = {}
    async with aiohttp.ClientSession() as session:
        for index in range(ORDERS):
            order_id = f"o{index:02d}"
            status = "P" if index % 5 == 0 else "N"
            body = {"id": order_id, "status": status, "contact": {"phones": [PHONES[index % 4]]}}
            async with session.post(f"{base}/api/orders", json=body) as response:
                assert response.status == 201, await response.text()
            initial[order_id] = status
        for type_, status, backwards in TRIGGERS:
            body = {"type": type_, "status": status, "allow_backwards": backwards}
            async with session.post(f"{base}/api/triggers", json=body) as response:
                assert response.status == 201, await response.text()
    return initial


def make_events(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for index in range(count):
        type_ = rng.choice(
            ["payment.received"] * 3
            + ["shipment.shipped"] * 3
            + ["order.canceled", "call.incoming"]
        )
        body: dict[str, Any] = {"id": f"ev{seed}-{index:04d}", "type": type_}
        if type_ in ("call.incoming", "payment.received") and rng.random() < 0.3:
            body["contact"] = {"phone": rng.choice(PHONES)}
        else:
            body["order_id"] = f"o{rng.randrange(ORDERS):02d}"
        events.append(body)
    return events


async def post(session: aiohttp.ClientSession, base: str, record: Posted, body: Any) -> None:
    try:
        async with session.post(f"{base}/api/events", json=body) as response:
            record.status = response.status
            record.body = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError):
        record.status = None  # no answer: not acknowledged


async def run_load(
    bases: list[str],
    events: list[dict[str, Any]],
    posts: list[Posted],
    *,
    seed: int,
    concurrency: int = 16,
    alive: Callable[[], list[int]] | None = None,
) -> list[Posted]:
    """Post every event (a third of them to both instances at once), recording each
    post in ``posts`` as it goes; ``alive()`` says which instances may still be used."""
    rng = random.Random(seed)
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    sessions = [aiohttp.ClientSession(timeout=timeout) for _ in bases]

    async def one(body: dict[str, Any]) -> None:
        async with gate:
            targets = alive() if alive else list(range(len(bases)))
            chosen = targets if rng.random() < 0.33 else [rng.choice(targets)]
            records = [Posted(body["id"], i) for i in chosen]
            posts.extend(records)
            await asyncio.gather(
                *(post(sessions[r.instance], bases[r.instance], r, body) for r in records)
            )

    try:
        await asyncio.gather(*(one(body) for body in events))
    finally:
        for session in sessions:
            await session.close()
    return posts


# --- reading the database back, and the sequential model -----------------------------------


@dataclass
class Stored:
    events: dict[str, dict[str, Any]]  # id -> {"type", "order_id", "result"}
    moves: list[dict[str, Any]]  # in seq order
    timeline: list[dict[str, Any]]  # in seq order
    statuses: dict[str, str]


async def read_back(url: str) -> Stored:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        events = {
            row["id"]: {
                "type": row["type"],
                "order_id": row["order_id"],
                "result": json.loads(row["result"]),
            }
            for row in await conn.fetch("SELECT id, type, order_id, result FROM events")
        }
        moves = [
            dict(row)
            for row in await conn.fetch(
                "SELECT seq, order_id, from_status, to_status, trigger_id, event_id FROM moves "
                "ORDER BY seq"
            )
        ]
        timeline = [
            {"order_id": row["order_id"], "kind": row["kind"], "data": json.loads(row["data"])}
            for row in await conn.fetch("SELECT order_id, kind, data FROM timeline ORDER BY seq")
        ]
        statuses = {
            row["id"]: row["status"] for row in await conn.fetch("SELECT id, status FROM orders")
        }
    finally:
        await conn.close()
    return Stored(events, moves, timeline, statuses)


def model_move(current: str, event_type: str) -> tuple[int, str] | None:
    """Contract §2 for one order: the winning trigger ``(id, target)``, or ``None``."""
    eligible = [
        (SORT[target], trigger_id, target)
        for trigger_id, (type_, target, backwards) in enumerate(TRIGGERS, start=1)
        if type_ == event_type and target != current and (SORT[target] > SORT[current] or backwards)
    ]
    if not eligible:
        return None
    _, trigger_id, target = min(eligible)
    return trigger_id, target


def check_consistency(stored: Stored, initial: Mapping[str, str]) -> None:
    """Nothing half-applied, and each order's history is what the rules give in the
    order its events committed (per order, row locks serialise them: the timeline's
    order is the commit order)."""
    moves_by_event: dict[str, list[dict[str, Any]]] = {}
    for move in stored.moves:
        assert move["event_id"] in stored.events, f"a move of an unstored event: {move}"
        moves_by_event.setdefault(move["event_id"], []).append(move)
    for event_id, event in stored.events.items():
        result = event["result"]
        rows = moves_by_event.get(event_id, [])
        assert [(m["order_id"], m["from_status"], m["to_status"]) for m in rows] == [
            (m["order_id"], m["from"], m["to"]) for m in result["moves"]
        ], f"event {event_id}: stored moves differ from its result"
        assert len({m["order_id"] for m in rows}) == len(rows), f"{event_id} moved an order twice"
    # each order: a chain of moves from its initial status to its current one
    chains: dict[str, list[dict[str, Any]]] = {}
    for move in stored.moves:
        chains.setdefault(move["order_id"], []).append(move)
    for order_id, status in stored.statuses.items():
        current = initial[order_id]
        for move in chains.get(order_id, []):
            assert move["from_status"] == current, f"{order_id}: broken chain at {move}"
            current = move["to_status"]
        assert current == status, f"{order_id}: status {status}, last move says {current}"
    # the sequential model, replayed over each order's timeline
    model = dict(initial)
    seen_events: dict[str, list[str]] = {}
    for entry in stored.timeline:
        order_id, data = entry["order_id"], entry["data"]
        if entry["kind"] == "created":
            continue
        event = stored.events.get(data.get("event_id"))
        assert event is not None, f"a timeline entry of an unstored event: {entry}"
        if entry["kind"] == "status_changed":
            continue
        assert entry["kind"] == "event", entry
        seen_events.setdefault(data["event_id"], []).append(order_id)
        if event["order_id"] is None:  # by contact: open orders only
            assert model[order_id] not in FINAL, f"{data['event_id']} fanned out to a final order"
        expected = model_move(model[order_id], event["type"])
        actual = [m for m in event["result"]["moves"] if m["order_id"] == order_id]
        if expected is None:
            assert actual == [], f"{data['event_id']} on {order_id} in {model[order_id]}: {actual}"
        else:
            trigger_id, target = expected
            assert actual == [
                {
                    "order_id": order_id,
                    "from": model[order_id],
                    "to": target,
                    "trigger_id": trigger_id,
                }
            ], f"{data['event_id']} on {order_id} in {model[order_id]}: {actual}, not {expected}"
            model[order_id] = target
    assert model == stored.statuses
    # every stored event has an `event` entry for each order it resolved to, and no other
    for event_id, event in stored.events.items():
        assert sorted(seen_events.get(event_id, [])) == sorted(event["result"]["order_ids"]), (
            event_id
        )


def check_acknowledged(stored: Stored, posts: Iterable[Posted]) -> Counter[str]:
    """Every 2xx is stored as answered; an id answered twice was processed once."""
    fresh: Counter[str] = Counter()
    for record in posts:
        if record.status is None:
            continue
        assert record.status == 200, (record, record.body)
        assert record.body is not None
        event = stored.events.get(record.event_id)
        assert event is not None, f"{record.event_id} was acknowledged but is not stored"
        result = event["result"]
        assert record.body["moves"] == result["moves"], record
        assert record.body["order_ids"] == result["order_ids"], record
        if not record.body["duplicate"]:
            fresh[record.event_id] += 1
    assert [event_id for event_id, count in fresh.items() if count > 1] == []
    return fresh


# --- the tests -----------------------------------------------------------------------------


async def test_two_instances_under_concurrent_load_match_a_sequential_model(
    instances: list[Instance], postgres_url: str
) -> None:
    initial = await setup_store(instances[0].base)
    events = make_events(360, seed=1)
    posts = await run_load([i.base for i in instances], events, [], seed=1)
    stored = await read_back(postgres_url)
    fresh = check_acknowledged(stored, posts)
    assert set(fresh) == {e["id"] for e in events} == set(stored.events)  # all answered
    doubles = Counter(p.event_id for p in posts)
    raced = [event_id for event_id, count in doubles.items() if count == 2]
    assert len(raced) > 60  # enough concurrent duplicates to mean something
    assert len(stored.moves) > 100
    check_consistency(stored, initial)
    for instance in instances:
        assert instance.stop() == 0, instance.log()


async def test_a_sigkill_under_load_loses_no_acknowledged_event(
    instances: list[Instance], postgres_url: str
) -> None:
    initial = await setup_store(instances[0].base)
    events = make_events(400, seed=2)
    victim, survivor = instances
    killed = False
    posts: list[Posted] = []
    load = asyncio.create_task(
        run_load(
            [i.base for i in instances],
            events,
            posts,
            seed=2,
            concurrency=24,
            alive=lambda: [1] if killed else [0, 1],
        )
    )
    while sum(1 for p in posts if p.instance == 0 and p.status == 200) < 60:
        assert not load.done(), "the load ended before the kill"
        await asyncio.sleep(0.005)
    victim.process.send_signal(signal.SIGKILL)  # in the middle of the load
    killed = True
    await load
    assert victim.process.wait(timeout=10) == -signal.SIGKILL
    assert len(posts) > 400
    stored = await read_back(postgres_url)
    check_acknowledged(stored, posts)
    check_consistency(stored, initial)
    # the survivor answered everything sent to it, before and after the kill
    assert all(p.status == 200 for p in posts if p.instance == 1)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{survivor.base}/api/events", json=events[0]) as response,
    ):
        assert response.status == 200
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{survivor.base}/readyz") as response,
    ):
        assert response.status == 200
    assert survivor.stop() == 0, survivor.log()


async def test_sigterm_drains_requests_in_flight_and_exits_0(
    postgres_url: str, tmp_path: Path
) -> None:
    instance = Instance(postgres_url, tmp_path, "drain")
    try:
        await instance.ready()
        await setup_store(instance.base)
        bodies = [
            json.dumps(
                {"id": f"drain-{i}", "type": "payment.received", "order_id": f"o{i:02d}"}
            ).encode()
            for i in range(6)
        ]
        streams = [await asyncio.open_connection("127.0.0.1", instance.port) for _ in bodies]
        for (_, writer), body in zip(streams, bodies, strict=True):
            writer.write(
                b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body[:12]
            )
            await writer.drain()
        await asyncio.sleep(0.3)  # every request is now in its handler, reading the body
        instance.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert instance.process.poll() is None, "it stopped without draining"
        for (_, writer), body in zip(streams, bodies, strict=True):
            writer.write(body[12:])
            await writer.drain()
        answers = [await asyncio.wait_for(reader.read(), timeout=10) for reader, _ in streams]
        for _, writer in streams:
            writer.close()
        for answer in answers:
            assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert instance.process.wait(timeout=30) == 0, instance.log()
        stored = await read_back(postgres_url)
        assert {f"drain-{i}" for i in range(6)} <= set(stored.events)
        assert all(stored.statuses[f"o{i:02d}"] == "P" for i in range(6))
    finally:
        instance.stop()
