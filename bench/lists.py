"""``python -m bench.lists``: what a page of each list costs on a big database.

For each database (SQLite, and PostgreSQL when reachable) a temporary database is
migrated, then filled straight with SQL: ``--orders`` orders (two per contact, each
with a phone and an email in ``order_identifiers`` and a ``created`` timeline entry)
and ``--events`` events (12 types; 5% resolved to no order, 1% to one busy order, the
rest spread over every order; 1 in 7 of the resolved ones moved its order), each
resolved event with its ``event`` timeline entry and, when it moved, its
``status_changed`` entry. The lists' indexes (migration 0003) are dropped for the
fill and built after it, timed: about what the upgrade to 0003 costs on such a
database. PostgreSQL is then analysed (as autovacuum would); SQLite is not (the
service never runs ``ANALYZE``).

The service then runs in this process on a loopback port, and each list and filter is
asked for its first page and for a deep one (a cursor nine tenths of the way down,
made with the service's own key): the median and the slowest of ``--repeat`` requests
(after one warm-up), through HTTP, JSON included; and the plan the database chooses
for the page's statement (the index it reads).

Not run by the tests. ``python -m bench.lists --help``; docs/api.md shows a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import Index
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, DropIndex

from bench.procs import free_port
from bench.report import machine_info, table
from bench.seed import DEFAULT_POSTGRES, BenchDatabase, postgres_reachable, temporary_database

TYPES = (
    "payment.received",
    "call.incoming",
    "call.missed",
    "email.received",
    "email.sent",
    "email.viewed",
    "email.link_clicked",
    "form.submitted",
    "chat.message",
    "visit",
    "shipment.shipped",
    "document.opened",
)
BUSY_ORDER = "b00000001"
LIST_INDEXES = (
    "ix_events_type_seq",
    "ix_events_moved_seq",
    "ix_events_type_moved_seq",
    "ix_orders_created_at_id",
    "ix_orders_status_created_at_id",
    "ix_timeline_order_id_seq",
)


def order_id(i: int) -> str:
    return f"b{i:08d}"


def created_at(i: int) -> str:
    """Order ``i``'s ``created_at``: one order every 30 s from 2025-01-01 (as the fill)."""
    from datetime import UTC, datetime, timedelta

    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=30 * i)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the fill ----------------------------------------------------------------------------
# Order i (1..N): contact c = i % (N // 2), phone +1415 and c on 7 digits, email cC@...;
# status N P S F D by i % 5. Event j (1..M): type TYPES[j * 7 % 12]; no order when
# j % 20 = 0, the busy order when j % 100 = 1, else order 1 + j * 2654435761 % N; moved
# when resolved and j % 7 = 0; received one every 3 s from 2025-01-01.

POSTGRES_FILL = (
    """INSERT INTO orders (id, status, doc, created_at, updated_at)
    SELECT 'b' || lpad(i::text, 8, '0'), (ARRAY['N','P','S','F','D'])[1 + i % 5],
        json_build_object('contact', json_build_object(
            'phones', json_build_array('+1415' || lpad((i % ($1 / 2))::text, 7, '0')),
            'emails', json_build_array('c' || (i % ($1 / 2)) || '@example.com'))),
        to_char(timestamp '2025-01-01' + i * interval '30 seconds',
            'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        to_char(timestamp '2025-01-01' + i * interval '30 seconds',
            'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO order_identifiers (order_id, kind, value)
    SELECT 'b' || lpad(i::text, 8, '0'), k.kind,
        CASE k.kind WHEN 'phone' THEN '+1415' || lpad((i % ($1 / 2))::text, 7, '0')
        ELSE 'c' || (i % ($1 / 2)) || '@example.com' END
    FROM generate_series(1, $1::int) AS i, (VALUES ('phone'), ('email')) AS k(kind)""",
    """INSERT INTO timeline (order_id, at, kind, data)
    SELECT id, created_at, 'created', json_build_object('status', 'N') FROM orders""",
    """INSERT INTO events (id, type, order_id, contact, data, received_at, result, moved)
    SELECT 'e' || lpad(j::text, 9, '0'), (ARRAY[{types}])[1 + j * 7 % 12], o,
        '{}', '{}',
        to_char(timestamp '2025-01-01' + j * interval '3 seconds',
            'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        json_build_object(
            'order_ids', CASE WHEN o IS NULL THEN '[]'::json ELSE json_build_array(o) END,
            'moves', CASE WHEN o IS NOT NULL AND j % 7 = 0 THEN json_build_array(
                json_build_object('order_id', o, 'from', 'N', 'to', 'P', 'trigger_id', 1))
                ELSE '[]'::json END,
            'trace_groups', '[]'::json),
        o IS NOT NULL AND j % 7 = 0
    FROM generate_series(1, $2::int) AS j,
        LATERAL (SELECT CASE WHEN j % 20 = 0 THEN NULL WHEN j % 100 = 1 THEN '{busy}'
            ELSE 'b' || lpad((1 + j::bigint * 2654435761 % $1)::text, 8, '0') END AS o) AS r""",
    """INSERT INTO timeline (order_id, at, kind, data)
    SELECT order_id, received_at, kind, CASE kind WHEN 'event' THEN json_build_object(
            'event_id', id, 'type', type, 'data', '{}'::json, 'moved', moved)
        ELSE json_build_object('from', 'N', 'to', 'P', 'trigger_id', 1, 'event_id', id,
            'manual', false) END
    FROM events, LATERAL (VALUES ('event', 1), ('status_changed', 2)) AS k(kind, n)
    WHERE order_id IS NOT NULL AND (kind = 'event' OR moved) ORDER BY seq, n""",
)

SQLITE_SERIES = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})"
SQLITE_FILL = (
    SQLITE_SERIES.format(count=":orders")
    + """INSERT INTO orders (id, status, doc, created_at, updated_at)
    SELECT 'b' || printf('%08d', i), substr('NPSFD', 1 + i % 5, 1),
        json_object('contact', json_object(
            'phones', json_array('+1415' || printf('%07d', i % (:orders / 2))),
            'emails', json_array('c' || (i % (:orders / 2)) || '@example.com'))),
        strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2025-01-01', '+' || (i * 30) || ' seconds'),
        strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2025-01-01', '+' || (i * 30) || ' seconds')
    FROM n""",
    """INSERT INTO order_identifiers (order_id, kind, value)
    SELECT o.id, k.kind, CASE k.kind WHEN 'phone' THEN json_extract(o.doc, '$.contact.phones[0]')
        ELSE json_extract(o.doc, '$.contact.emails[0]') END
    FROM orders AS o, (SELECT 'phone' AS kind UNION ALL SELECT 'email') AS k""",
    """INSERT INTO timeline (order_id, at, kind, data)
    SELECT id, created_at, 'created', json_object('status', 'N') FROM orders""",
    SQLITE_SERIES.format(count=":events")
    + """, r(j, o) AS (SELECT i, CASE WHEN i % 20 = 0 THEN NULL WHEN i % 100 = 1 THEN '{busy}'
        ELSE 'b' || printf('%08d', 1 + i * 2654435761 % :orders) END FROM n)
    INSERT INTO events (id, type, order_id, contact, data, received_at, result, moved)
    SELECT 'e' || printf('%09d', j), json_extract('[{types}]', '$[' || (j * 7 % 12) || ']'),
        o, '{}', '{}',
        strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2025-01-01', '+' || (j * 3) || ' seconds'),
        json_object(
            'order_ids', CASE WHEN o IS NULL THEN json('[]') ELSE json_array(o) END,
            'moves', CASE WHEN o IS NOT NULL AND j % 7 = 0 THEN json_array(json_object(
                'order_id', o, 'from', 'N', 'to', 'P', 'trigger_id', 1)) ELSE json('[]') END,
            'trace_groups', json('[]')),
        o IS NOT NULL AND j % 7 = 0
    FROM r""",
    """INSERT INTO timeline (order_id, at, kind, data)
    SELECT order_id, received_at, kind, CASE kind WHEN 'event' THEN json_object(
            'event_id', id, 'type', type, 'data', json('{}'),
            'moved', json(iif(moved, 'true', 'false')))
        ELSE json_object('from', 'N', 'to', 'P', 'trigger_id', 1, 'event_id', id,
            'manual', json('false')) END
    FROM events, (SELECT 'event' AS kind, 1 AS n UNION ALL SELECT 'status_changed', 2) AS k
    WHERE order_id IS NOT NULL AND (kind = 'event' OR moved) ORDER BY seq, n""",
)


def _fill_sql(statements: Sequence[str], types: str) -> list[str]:
    return [s.replace("{types}", types).replace("{busy}", BUSY_ORDER) for s in statements]


def _list_indexes() -> list[Index]:
    from statusflow.store.schema import EventRecord, Order, TimelineEntry

    found = []
    for model in (EventRecord, Order, TimelineEntry):
        for index in model.__table__.indexes:  # type: ignore[attr-defined]
            if index.name in LIST_INDEXES:
                found.append(index)
    return found


@dataclass
class Filled:
    seconds: float
    index_seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    megabytes: float = 0.0


async def fill_postgres(db: BenchDatabase, orders: int, events: int) -> Filled:
    import asyncpg
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    conn = await asyncpg.connect(db.dsn)
    try:
        for index in _list_indexes():
            await conn.execute(str(DropIndex(index).compile(dialect=dialect)))
        started = time.perf_counter()
        types = ", ".join(f"'{t}'" for t in TYPES)
        for statement in _fill_sql(POSTGRES_FILL, types):
            args = [a for n, a in (("$1", orders), ("$2", events)) if n in statement]
            await conn.execute(statement, *args)
            log(f"  {statement.split()[2]}: {time.perf_counter() - started:.0f} s")
        filled = time.perf_counter() - started
        started = time.perf_counter()
        for index in _list_indexes():
            await conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
        indexed = time.perf_counter() - started
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")  # the fill's writes are out of the way
        counts = {
            t: int(await conn.fetchval(f"SELECT count(*) FROM {t}"))
            for t in ("orders", "order_identifiers", "events", "timeline")
        }
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()
    return Filled(filled, indexed, counts, size / 2**20)


def fill_sqlite(db: BenchDatabase, orders: int, events: int) -> Filled:
    assert db.path is not None
    conn = sqlite3.connect(db.path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")
        dialect = sqlite_dialect.dialect()
        for index in _list_indexes():
            conn.execute(str(DropIndex(index).compile(dialect=dialect)))
        started = time.perf_counter()
        types = ", ".join(f'"{t}"' for t in TYPES)
        for statement in _fill_sql(SQLITE_FILL, types):
            conn.execute("BEGIN")
            conn.execute(statement, {"orders": orders, "events": events})
            conn.execute("COMMIT")
            log(f"  {statement.split('INSERT INTO ')[1].split()[0]}: "
                f"{time.perf_counter() - started:.0f} s")  # fmt: skip
        filled = time.perf_counter() - started
        started = time.perf_counter()
        for index in _list_indexes():
            conn.execute(str(CreateIndex(index).compile(dialect=dialect)))
        indexed = time.perf_counter() - started
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        counts = {
            t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
            for t in ("orders", "order_identifiers", "events", "timeline")
        }
    finally:
        conn.close()
    return Filled(filled, indexed, counts, db.path.stat().st_size / 2**20)


# --- the pages -----------------------------------------------------------------------------


@dataclass
class Case:
    """One list with one set of filters: its path, query, and where a deep page starts."""

    name: str
    path: str
    params: dict[str, str]
    list_name: str
    filters: dict[str, Any]
    deep: Any
    """The position of the deep page (``None``: only the first page is measured)."""
    statement: Callable[[Any], Any]
    """The page's statement, given the position it starts after (for its plan)."""


def cases(orders: int, events: int) -> list[Case]:
    from statusflow.store import lists
    from statusflow.store import queries as q

    deep_order = orders // 10  # newest first: 90% of the way down
    deep_key = [created_at(deep_order), order_id(deep_order)]
    deep_seq = events // 10
    typical = order_id(orders // 3 + 1)  # events reach it (order N // 2 + 1: none)
    phone = "(415) " + f"{orders // 4:07d}"[:3] + "-" + f"{orders // 4:07d}"[3:]
    email = f"C{orders // 4}@Example.com"
    search_phone = lists.OrderSearch(phone, [("phone", "+1415" + f"{orders // 4:07d}")])
    search_email = lists.OrderSearch(email, [("email", email.lower())])
    f_none: dict[str, Any] = {"status": None, "q": None}
    e_none: dict[str, Any] = {"order_id": None, "type": None, "moved": None}
    cases = [
        Case("orders", "/api/orders", {}, "orders", f_none, deep_key,
             lambda at: lists.orders_statement(50, at)),
        Case("orders ?status=P", "/api/orders", {"status": "P"}, "orders",
             {**f_none, "status": "P"}, deep_key,
             lambda at: lists.orders_statement(50, at, "P")),
        Case("orders ?q=phone", "/api/orders", {"q": phone}, "orders",
             {**f_none, "q": phone}, None,
             lambda at: lists.orders_statement(50, at, None, search_phone)),
        Case("orders ?q=email", "/api/orders", {"q": email}, "orders",
             {**f_none, "q": email}, None,
             lambda at: lists.orders_statement(50, at, None, search_email)),
        Case("orders ?q=id&status=P", "/api/orders", {"q": typical, "status": "P"}, "orders",
             {"q": typical, "status": "P"}, None,
             lambda at: lists.orders_statement(50, at, "P", lists.OrderSearch(typical))),
        Case("events", "/api/events", {}, "events", e_none, deep_seq,
             lambda at: lists.events_statement(50, at)),
        Case("events ?type=call.missed", "/api/events", {"type": "call.missed"}, "events",
             {**e_none, "type": "call.missed"}, deep_seq,
             lambda at: lists.events_statement(50, at, "call.missed")),
        Case("events ?moved=false", "/api/events", {"moved": "false"}, "events",
             {**e_none, "moved": False}, deep_seq,
             lambda at: lists.events_statement(50, at, None, False)),
        Case("events ?moved=true", "/api/events", {"moved": "true"}, "events",
             {**e_none, "moved": True}, deep_seq,
             lambda at: lists.events_statement(50, at, None, True)),
        Case("events ?type=call.missed&moved=true", "/api/events",
             {"type": "call.missed", "moved": "true"}, "events",
             {**e_none, "type": "call.missed", "moved": True}, deep_seq,
             lambda at: lists.events_statement(50, at, "call.missed", True)),
        Case("events ?order_id=(busy order)", "/api/events", {"order_id": BUSY_ORDER},
             "events", {**e_none, "order_id": BUSY_ORDER}, None,
             lambda at: lists.events_statement(50, at, None, None, BUSY_ORDER)),
        Case("events ?order_id=(busy)&moved=false", "/api/events",
             {"order_id": BUSY_ORDER, "moved": "false"}, "events",
             {**e_none, "order_id": BUSY_ORDER, "moved": False}, None,
             lambda at: lists.events_statement(50, at, None, False, BUSY_ORDER)),
        Case("events ?order_id=(typical order)", "/api/events", {"order_id": typical},
             "events", {**e_none, "order_id": typical}, None,
             lambda at: lists.events_statement(50, at, None, None, typical)),
        Case("timeline of the busy order ?limit=50", f"/api/orders/{BUSY_ORDER}/timeline",
             {"limit": "50"}, "timeline", {"order_id": BUSY_ORDER}, None,
             lambda at: lists.timeline_statement(BUSY_ORDER, 50, at)),
        Case("timeline of a typical order (whole)", f"/api/orders/{typical}/timeline", {},
             "", {}, None, lambda at: q.TIMELINE_OF.params(order_id=typical)),
    ]  # fmt: skip
    return cases


async def _busy_positions(app: web.Application, case: Case) -> Any:
    """Deep positions of the by-order lists: a timeline ``seq`` nine tenths of the way."""
    from sqlalchemy import func, select

    from statusflow.http.keys import DATABASE
    from statusflow.store import queries as q

    timeline = q.TIMELINE
    statement = select(
        func.min(timeline.c.seq).label("low"), func.max(timeline.c.seq).label("high")
    ).where(timeline.c.order_id == BUSY_ORDER)
    async with app[DATABASE].read() as sql:
        found = (await sql.rows(statement))[0]
    low, high = int(found["low"]), int(found["high"])
    if case.list_name == "timeline":  # oldest first
        return low + (high - low) * 9 // 10
    return low + (high - low) // 10


async def measure(url: str, orders: int, events: int, repeat: int) -> list[dict[str, Any]]:
    """Each case's first and deep page: timings through HTTP, and the plan."""
    from statusflow.http import init_app
    from statusflow.http.keys import DATABASE, SERVICES
    from statusflow.http.paging import Cursors
    from statusflow.testing import settings_for

    app = init_app(settings_for(url))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        async with aiohttp.ClientSession() as session:
            for case in cases(orders, events):
                deep = case.deep
                if deep is None and "busy" in case.name and case.list_name:
                    deep = await _busy_positions(app, case)
                row: dict[str, Any] = {"case": case.name}
                for depth, position in (("first", None), ("deep", deep)):
                    if depth == "deep" and position is None:
                        continue
                    params = dict(case.params)
                    if position is not None:
                        cursors = Cursors(app[SERVICES], case.list_name, case.filters)
                        params["cursor"] = cursors.make(position)
                    row[depth] = await _time(session, base + case.path, params, repeat)
                    async with app[DATABASE].read() as sql:
                        at = tuple(position) if isinstance(position, list) else position
                        row[f"{depth}_plan"] = await plan(sql, case.statement(at))
                results.append(row)
                log(f"  {case.name}: {row.get('first')} / {row.get('deep')}")
    finally:
        await runner.cleanup()
    return results


async def _time(
    session: aiohttp.ClientSession, url: str, params: dict[str, str], repeat: int
) -> dict[str, Any]:
    times = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        async with session.get(url, params=params) as response:
            body = await response.json()
            assert response.status == 200, body
        if attempt:  # the first one warms up
            times.append((time.perf_counter() - started) * 1000)
    items = body if isinstance(body, list) else body["items"]
    return {"median_ms": statistics.median(times), "max_ms": max(times), "items": len(items)}


async def plan(sql: Any, statement: Any) -> str:
    """The indexes (or scans) the database's plan reads, in plan order."""
    text = str(statement.compile(dialect=sql.dialect, compile_kwargs={"literal_binds": True}))
    if sql.dialect_name == "postgresql":
        _, rows, _ = await sql._query("EXPLAIN " + text, (), True)
        lines = [str(r[0]) for r in rows]
        found = [
            m.group(0)
            for line in lines
            for m in re.finditer(r"(Index Scan(?: Backward)?|Index Only Scan|Seq Scan) "
                                 r"(?:using (\w+) )?on \w+|Bitmap Index Scan on \w+|Sort(?=  \()",
                                 line)
        ]  # fmt: skip
    else:
        _, rows, _ = await sql._query("EXPLAIN QUERY PLAN " + text, (), True)
        found = [
            str(r[3]).split(" (")[0]
            for r in rows
            if str(r[3]).startswith(("SEARCH", "SCAN", "USE TEMP"))
        ]
    return "; ".join(found)


# --- running -------------------------------------------------------------------------------


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def run_one(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if args.measure:  # a database an earlier --keep run filled
        pages = asyncio.run(measure(args.measure, args.orders, args.events, args.repeat))
        return {"kind": kind, "filled": None, "pages": pages}
    with contextlib.ExitStack() as stack:
        if args.keep:
            db = kept_database(kind, args.postgres)
        else:
            db = stack.enter_context(temporary_database(kind, workdir, args.postgres))
        from statusflow.store.database import prepare

        asyncio.run(prepare(db.url, [], True, None))
        log(f"{kind}: filling {args.orders:,} orders and {args.events:,} events")
        if kind == "sqlite":
            filled = fill_sqlite(db, args.orders, args.events)
        else:
            filled = asyncio.run(fill_postgres(db, args.orders, args.events))
        log(f"{kind}: filled in {filled.seconds:.0f} s, indexes in {filled.index_seconds:.0f} s")
        if args.keep:
            log(f"{kind}: kept at {db.url} (measure again with --measure)")
        pages = asyncio.run(measure(db.url, args.orders, args.events, args.repeat))
    return {"kind": kind, "filled": filled.__dict__, "pages": pages}


def kept_database(kind: str, admin_url: str) -> BenchDatabase:
    """A database that outlives the run: ``bench-lists.db`` in the working directory, or
    the PostgreSQL database ``statusflow_bench_lists`` (either replaced if it exists)."""
    if kind == "sqlite":
        path = Path("bench-lists.db").resolve()
        for extra in ("", "-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        return BenchDatabase("sqlite", f"sqlite:///{path}", path=path, name=path.name)
    import asyncpg
    from sqlalchemy.engine import make_url

    name = "statusflow_bench_lists"

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    dsn = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return BenchDatabase("postgres", dsn, dsn=dsn, name=name)


def report(runs: Sequence[dict[str, Any]], command: str) -> str:
    def ms(value: dict[str, Any] | None) -> str:
        if not value:
            return "-"
        return f"{value['median_ms']:.1f} ({value['max_ms']:.1f})"

    out = [f"Ran as `{command}`.", ""]
    for run in runs:
        filled = run["filled"]
        if filled is None:
            out += [f"**{run['kind']}** (measured again on a kept database)", ""]
        else:
            counts = ", ".join(f"{n:,} {t}" for t, n in filled["counts"].items())
            out += [
                f"**{run['kind']}**: {counts}; {filled['megabytes']:,.0f} MB; filled in "
                f"{filled['seconds']:.0f} s, the lists' indexes built in "
                f"{filled['index_seconds']:.0f} s.",
                "",
            ]
        rows = [
            [p["case"], ms(p.get("first")), ms(p.get("deep")), p.get("first_plan", ""),
             p.get("deep_plan", "-")]
            for p in run["pages"]
        ]  # fmt: skip
        headers = ["list", "first page ms", "deep page ms", "plan (first)", "plan (deep)"]
        out += [table(headers, rows, markdown=True), ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lists", description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per page")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="admin URL")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the databases (./bench-lists.db, statusflow_bench_lists) to measure again",
    )
    parser.add_argument(
        "--measure",
        metavar="URL",
        help="only measure, on a database a --keep run filled (same --orders and --events)",
    )
    args = parser.parse_args(argv)
    if args.orders < 20 or args.events < 100:
        parser.error("at least 20 orders and 100 events")
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if args.measure:
        kinds = ["sqlite" if args.measure.startswith("sqlite") else "postgres"]
    if "postgres" in kinds and not postgres_reachable(args.postgres):
        log("PostgreSQL is not reachable: SQLite only")
        kinds.remove("postgres")
    machine = machine_info()
    log(f"machine: {machine.get('cpu')}, {machine.get('cores')} cores")
    runs = []
    with tempfile.TemporaryDirectory(prefix="statusflow-lists-") as workdir:
        for kind in kinds:
            runs.append(run_one(kind, args, Path(workdir)))
    command = "python -m bench.lists " + " ".join(argv if argv is not None else sys.argv[1:])
    sys.stdout.write(report(runs, command.strip()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
