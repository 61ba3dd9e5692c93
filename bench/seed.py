"""Temporary databases and seeding: orders straight into the tables, triggers via the API.

Orders go in with bulk INSERTs (SQLite) or COPY (PostgreSQL) after the server has
migrated the database, written exactly as ``POST /api/orders`` writes them (see
``kernel/http/orders.py``) but without the ``created`` timeline entry. Triggers go
through ``POST /api/triggers``, so the server validates them and refreshes its cache.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import dataset
from bench.dataset import EventFactory, Pipeline, RingStep, SeedOrder, Template

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)
"""The pragmas of ``kernel/store/database.py``'s SQLite connections (the baseline uses them too)."""

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
CHUNK = 20_000


# --- databases -----------------------------------------------------------------------


@dataclass
class BenchDatabase:
    """A temporary database: its kind, the URL for statusflow, and how to reach it."""

    kind: str  # "sqlite" or "postgres"
    url: str  # statusflow's database_url
    path: Path | None = None  # SQLite file
    dsn: str | None = None  # asyncpg DSN (PostgreSQL)
    name: str = ""


def postgres_reachable(admin_url: str) -> bool:
    """Whether PostgreSQL answers at ``admin_url`` (connect and ``SELECT 1``)."""

    async def probe() -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(admin_url, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        try:
            await conn.fetchval("SELECT 1")
            return True
        finally:
            await conn.close()

    return asyncio.run(probe())


def databases_to_measure(choice: str, admin_url: str) -> list[str]:
    """The kinds ``--db`` names (``sqlite``, ``postgres`` or ``both``), PostgreSQL left
    out (and said so on stderr) when it is not reachable."""
    kinds = ["sqlite", "postgres"] if choice == "both" else [choice]
    if "postgres" in kinds and not postgres_reachable(admin_url):
        kinds.remove("postgres")
        sys.stderr.write("PostgreSQL is not reachable: SQLite only\n")
    return kinds


def postgres_version(dsn: str) -> str:
    """``SHOW server_version``."""

    async def query() -> str:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(query())


@contextmanager
def temporary_database(kind: str, workdir: Path, admin_url: str) -> Iterator[BenchDatabase]:
    """A fresh database, removed afterwards: a SQLite file in ``workdir``, or a
    PostgreSQL database ``statusflow_bench_<random>`` created and dropped on ``admin_url``."""
    suffix = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        path = workdir / f"bench-{suffix}.db"
        try:
            yield BenchDatabase("sqlite", f"sqlite:///{path}", path=path, name=path.name)
        finally:
            for extra in ("", "-wal", "-shm"):
                Path(f"{path}{extra}").unlink(missing_ok=True)
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"statusflow_bench_{suffix}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield BenchDatabase("postgres", dsn, dsn=dsn, name=name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- orders --------------------------------------------------------------------------


@dataclass
class SeedInfo:
    """What was seeded."""

    orders: int
    contacts: int
    identifiers: int
    seconds: float


def _rows(
    orders: Sequence[SeedOrder],
) -> tuple[list[tuple[str, str, str, str, str]], list[tuple[str, str, str]]]:
    order_rows = []
    identifier_rows: list[tuple[str, str, str]] = []
    for order in orders:
        doc = orjson.dumps(order.doc).decode()
        order_rows.append((order.id, order.status, doc, dataset.SEEDED_AT, dataset.SEEDED_AT))
        identifier_rows += dataset.order_identifier_rows(order.id, order.contact)
    return order_rows, identifier_rows


def check_identifiers(region: str = "US", samples: int = 50) -> None:
    """Check that the seeded identifiers are what the kernel would compute for the docs.

    :raises AssertionError: they differ (the kernel's normalisation changed).
    """
    import random

    from statusflow.engine.contacts import order_identifiers

    rng = random.Random(5)
    for index in [0, 1, 7, 10**6 - 1, *rng.sample(range(10**7), samples)]:
        contact = index * 13 + 5
        oid = dataset.order_id(index)
        doc = dataset.order_doc(index, contact, rng)
        expected = [(oid, k, v) for k, v in order_identifiers(doc, region)]
        actual = dataset.order_identifier_rows(oid, contact)
        assert expected == actual, f"identifier mismatch: {expected} != {actual}"


def seed_orders(
    db: BenchDatabase,
    pipeline: Pipeline,
    count: int,
    seed: int,
    orders_per_contact: int | None = None,
    ring: bool = False,
) -> SeedInfo:
    """Insert ``count`` orders with their identifiers; return what was seeded (``ring``:
    all open, see :func:`bench.dataset.plan_orders`)."""
    check_identifiers()
    started = time.perf_counter()
    contacts, orders = dataset.plan_orders(count, pipeline, seed, orders_per_contact, ring=ring)
    if db.kind == "sqlite":
        identifiers = _seed_sqlite(db, orders)
    else:
        identifiers = asyncio.run(_seed_postgres(db, orders))
    return SeedInfo(count, contacts, identifiers, time.perf_counter() - started)


def _chunks(orders: Iterator[SeedOrder]) -> Iterator[list[SeedOrder]]:
    while chunk := list(islice(orders, CHUNK)):
        yield chunk


def _seed_sqlite(db: BenchDatabase, orders: Iterator[SeedOrder]) -> int:
    assert db.path is not None
    conn = sqlite3.connect(db.path, timeout=30, isolation_level=None)
    identifiers = 0
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        for chunk in _chunks(orders):
            order_rows, identifier_rows = _rows(chunk)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO orders (id, status, doc, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                order_rows,
            )
            conn.executemany(
                "INSERT INTO order_identifiers (order_id, kind, value) VALUES (?, ?, ?)",
                identifier_rows,
            )
            conn.execute("COMMIT")
            identifiers += len(identifier_rows)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return identifiers


async def _seed_postgres(db: BenchDatabase, orders: Iterator[SeedOrder]) -> int:
    import asyncpg

    conn = await asyncpg.connect(db.dsn)
    identifiers = 0
    try:
        for chunk in _chunks(orders):
            order_rows, identifier_rows = _rows(chunk)
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "orders",
                    records=order_rows,
                    columns=["id", "status", "doc", "created_at", "updated_at"],
                )
                await conn.copy_records_to_table(
                    "order_identifiers",
                    records=identifier_rows,
                    columns=["order_id", "kind", "value"],
                )
            identifiers += len(identifier_rows)
        # What autovacuum would do shortly after a bulk load: give the planner statistics.
        await conn.execute("ANALYZE orders")
        await conn.execute("ANALYZE order_identifiers")
    finally:
        await conn.close()
    return identifiers


CHECK_ORDER = "bench-format-check"
CHECK_CONTACT = 99_999_999  # beyond any seeded or generated contact: no event reaches it


def check_seed_format(db: BenchDatabase, base_url: str, pipeline: Pipeline) -> None:
    """Create one order through ``POST /api/orders`` and compare its rows with seeded ones.

    :raises RuntimeError: the API stores an order differently from the bulk seeding
        (the kernel changed: adapt :mod:`bench.dataset`).
    """
    import random

    doc = dataset.order_doc(0, CHECK_CONTACT, random.Random(3))
    status, answer = post_json(
        base_url,
        "/api/orders",
        orjson.dumps({"id": CHECK_ORDER, "status": pipeline.lowest, **doc}),
    )
    if status != 201:
        raise RuntimeError(f"POST /api/orders refused the benchmark's order: {status} {answer}")
    expected_identifiers = [
        row[1:] for row in dataset.order_identifier_rows(CHECK_ORDER, CHECK_CONTACT)
    ]
    order_sql = "SELECT status, doc FROM orders WHERE id = {}"
    ident_sql = "SELECT kind, value FROM order_identifiers WHERE order_id = {} ORDER BY id"
    if db.kind == "sqlite":
        assert db.path is not None
        conn = sqlite3.connect(db.path, timeout=30)
        try:
            row = conn.execute(order_sql.format("?"), (CHECK_ORDER,)).fetchone()
            stored_status, stored_doc = row[0], orjson.loads(row[1])
            identifiers = [tuple(r) for r in conn.execute(ident_sql.format("?"), (CHECK_ORDER,))]
        finally:
            conn.close()
    else:

        async def read() -> tuple[str, Any, list[tuple[str, str]]]:
            import asyncpg

            conn = await asyncpg.connect(db.dsn)
            try:
                row = await conn.fetchrow(order_sql.format("$1"), CHECK_ORDER)
                rows = await conn.fetch(ident_sql.format("$1"), CHECK_ORDER)
                return row[0], orjson.loads(row[1]), [(r[0], r[1]) for r in rows]
            finally:
                await conn.close()

        stored_status, stored_doc, identifiers = asyncio.run(read())
    problems = []
    if stored_status != pipeline.lowest:
        problems.append(f"status {stored_status!r} != {pipeline.lowest!r}")
    if stored_doc != doc:
        problems.append(f"doc {stored_doc} != {doc}")
    if identifiers != expected_identifiers:
        problems.append(f"identifiers {identifiers} != {expected_identifiers}")
    if problems:
        raise RuntimeError("seeded orders would differ from API orders: " + "; ".join(problems))


def stored_counts(db: BenchDatabase) -> dict[str, int]:
    """Rows in the engine's tables after a run: events, moves, timeline, plugin marks;
    ``evaluations``: the orders the events were decided for (one ``event`` timeline entry
    per event and order it resolved to)."""
    counts = {
        t: f"SELECT count(*) FROM {t}" for t in ("events", "moves", "timeline", "plugin_marks")
    }
    counts["evaluations"] = "SELECT count(*) FROM timeline WHERE kind = 'event'"
    if db.kind == "sqlite":
        assert db.path is not None
        conn = sqlite3.connect(db.path, timeout=30)
        try:
            return {t: int(conn.execute(sql).fetchone()[0]) for t, sql in counts.items()}
        finally:
            conn.close()

    async def count() -> dict[str, int]:
        import asyncpg

        conn = await asyncpg.connect(db.dsn)
        try:
            return {t: int(await conn.fetchval(sql)) for t, sql in counts.items()}
        finally:
            await conn.close()

    return asyncio.run(count())


# --- the API -------------------------------------------------------------------------


def get_json(base_url: str, path: str) -> Any:
    """``GET`` a JSON document from the server."""
    with urllib.request.urlopen(f"{base_url}{path}", timeout=30) as answer:
        return orjson.loads(answer.read())


def post_json(base_url: str, path: str, body: bytes) -> tuple[int, Any]:
    """``POST`` a JSON body; the status and the decoded answer (errors too)."""
    request = urllib.request.Request(
        f"{base_url}{path}", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, orjson.loads(text)
        except orjson.JSONDecodeError:
            return exc.code, text.decode(errors="replace")


@dataclass
class TriggerSeed:
    """What happened to the planned triggers."""

    created: int = 0
    simplified: int = 0  # refused with settings or conditions, created without them
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)


def seed_triggers(
    base_url: str,
    bodies: Sequence[dict[str, Any]],
    parallel: int = 8,
    *,
    keep_conditions: bool = False,
) -> TriggerSeed:
    """Create the triggers through ``POST /api/triggers`` (``parallel`` at a time).

    A trigger refused is tried again without settings and conditions, or without
    settings only with ``keep_conditions`` (the ring plan's conditions keep its extra
    triggers from winning).
    """
    outcome = TriggerSeed()
    started = time.perf_counter()

    async def create_all() -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)
        async with aiohttp.ClientSession(base_url) as session:

            async def post(body: dict[str, Any]) -> tuple[int, str]:
                async with session.post("/api/triggers", data=orjson.dumps(body)) as answer:
                    return answer.status, await answer.text()

            async def worker() -> None:
                while not queue.empty():
                    body = queue.get_nowait()
                    status, text = await post(body)
                    drop_conditions = bool(body.get("conditions")) and not keep_conditions
                    if status != 201 and (body.get("settings") or drop_conditions):
                        simpler = {**body, "settings": {}}
                        if drop_conditions:
                            simpler["conditions"] = []
                        status, text = await post(simpler)
                        outcome.simplified += status == 201
                    if status == 201:
                        outcome.created += 1
                        outcome.by_type[body["type"]] = outcome.by_type.get(body["type"], 0) + 1
                    else:
                        outcome.failed.append(f"{body['type']}: {status} {text[:200]}")

            await asyncio.gather(*(worker() for _ in range(parallel)))

    asyncio.run(create_all())
    outcome.seconds = time.perf_counter() - started
    return outcome


def probe_mix(
    base_url: str, templates: Sequence[Template], orders: int, contacts: int
) -> tuple[list[Template], list[str]]:
    """Dry-run one event of each template; keep those the server accepts.

    A template refused with its data is kept without data; one refused even so is
    dropped. Returns the templates to use and notes on what was changed.
    """
    kept: list[Template] = []
    notes: list[str] = []
    for template in templates:
        candidates = [template]
        if template.with_data:
            candidates.append(replace(template, with_data=False))
        refusal = ""
        for candidate in candidates:
            factory = EventFactory(
                [candidate],
                orders=orders,
                contacts=contacts,
                seed=1,
                worker=0,
                tag="probe",
                unknown_share=0.0,
            )
            _type, body, _dup = factory.next()
            status, answer = post_json(base_url, "/api/events?dry_run=true", body)
            if 200 <= status < 300:
                kept.append(candidate)
                if candidate is not template:
                    notes.append(f"{template.type} ({template.mode}) sent without data: {refusal}")
                break
            refusal = f"{status} {str(answer)[:200]}"
        else:
            notes.append(f"{template.type} ({template.mode}) dropped: {refusal}")
    return kept, notes


def event_data_schemas(enable: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """Each event type's ``data_schema``, from the plugins the server loads (``enable``,
    ``None``: all), read in this process: the API does not list them."""
    from statusflow.registry import build_registry, make_plugin_manager

    registry = build_registry(make_plugin_manager(enable=enable))
    return {code: dict(t.data_schema) for code, t in registry.event_types.items()}


def check_ring(base_url: str, ring: Sequence[RingStep], templates: Sequence[Template]) -> list[str]:
    """Dry-run each ring event type for an order in each ring status (orders created
    for it, which no generated event names): each must move exactly the order in its
    step's status, to the step's target. Returns what went otherwise (empty: the ring
    works).
    """
    import random

    by_type = {t.type: t for t in templates if t.mode == dataset.ORDER}
    rng = random.Random(11)
    problems = []
    for step in ring:
        order = f"bench-ring-{step.source}"
        doc = dataset.order_doc(0, CHECK_CONTACT, random.Random(3))
        status, answer = post_json(
            base_url, "/api/orders", orjson.dumps({"id": order, "status": step.source, **doc})
        )
        if status != 201:
            return [f"POST /api/orders refused a ring check order: {status} {answer}"]
    for step in ring:
        for source in (other.source for other in ring):
            event = {
                "id": f"ring-check-{step.event_type}-{source}",
                "type": step.event_type,
                "order_id": f"bench-ring-{source}",
                "occurred_at": dataset.SEEDED_AT,
                "data": by_type[step.event_type].data(rng),
            }
            status, answer = post_json(base_url, "/api/events?dry_run=true", orjson.dumps(event))
            answered = 200 <= status < 300 and isinstance(answer, dict)
            moved = [m.get("to") for m in answer.get("moves", ())] if answered else None
            expected = [step.target] if source == step.source else []
            if moved != expected:
                problems.append(
                    f"{step.event_type} for an order in {source}: moved to {moved}, "
                    f"expected {expected} ({status} {str(answer)[:200]})"
                )
    return problems
