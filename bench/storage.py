"""``python -m bench.storage``: stored bytes per event (issue 17), on both databases.

For each database: start ``statusflow serve`` on a temporary database, seed the orders
and triggers as ``bench.run`` does (20 triggers by default, the bench's event shapes),
drive the load for a few seconds, stop the server, then measure what stays:

* SQLite: ``PRAGMA wal_checkpoint(TRUNCATE)``, then the pages of every table and index
  (the ``dbstat`` virtual table) and the file's size; while the load runs, the largest
  WAL file seen (sampled every 50 ms);
* PostgreSQL: ``CHECKPOINT``, then ``pg_total_relation_size`` of every table (its
  indexes and TOAST included).

Bytes per event are the bytes of the tables the event path writes (``EVENT_TABLES``,
with their indexes) divided by the stored events; the seeded tables (orders, their
identifiers, triggers) are shown beside them but not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.run import Point, Runner, parse_args
from bench.seed import BenchDatabase, postgres_reachable, temporary_database

EVENT_TABLES = (
    "events",
    "moves",
    "timeline",
    "action_runs",
    "plugin_marks",
    "outgoing_webhooks_moves",
    "outgoing_webhooks_deliveries",
)
"""The tables written per event; every other table is seeded or configuration."""


class WalWatcher:
    """The largest size of a SQLite WAL file while the load runs (a sampling thread)."""

    def __init__(self, path: Path, every: float = 0.05) -> None:
        self.path = Path(f"{path}-wal")
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self.path.stat().st_size)

    def __enter__(self) -> WalWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def sqlite_sizes(path: Path) -> dict[str, Any]:
    """Bytes per table (its indexes folded in) after a truncating checkpoint."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        owners = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema").fetchall())
        tables: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owners.get(name, name)
            tables[table] = tables.get(table, 0) + int(size)
        events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()
    return {"tables": tables, "file": os.path.getsize(path), "events": events}


def postgres_sizes(dsn: str) -> dict[str, Any]:
    """Bytes per table (``pg_total_relation_size``) after a ``CHECKPOINT``."""

    async def measure() -> dict[str, Any]:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CHECKPOINT")
            rows = await conn.fetch(
                "SELECT tablename, pg_total_relation_size(quote_ident(tablename)) AS size "
                "FROM pg_tables WHERE schemaname = 'public'"
            )
            events = int(await conn.fetchval("SELECT count(*) FROM events"))
            total = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        finally:
            await conn.close()
        return {
            "tables": {r["tablename"]: int(r["size"]) for r in rows},
            "file": total,
            "events": events,
        }

    return asyncio.run(measure())


def measure(runner: Runner, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Seed, load, stop, and measure one database."""
    point = Point(
        f"storage-{kind}",
        kind,
        args.orders,
        args.triggers,
        args.concurrency,
        args.warmup,
        args.duration,
    )
    with temporary_database(kind, runner.workdir, args.postgres_url) as db:
        wal_peak = None
        if kind == "sqlite":
            assert db.path is not None
            with WalWatcher(db.path) as watcher:
                runner.engine(point, db)
            wal_peak = watcher.peak
            sizes = sqlite_sizes(db.path)
        else:
            assert db.dsn is not None
            runner.engine(point, db)
            sizes = postgres_sizes(db.dsn)
    sizes["wal_peak"] = wal_peak
    return sizes


def report(kind: str, sizes: dict[str, Any]) -> str:
    """The figures of one database, as lines of text."""
    events = max(sizes["events"], 1)
    written = sum(sizes["tables"].get(t, 0) for t in EVENT_TABLES)
    lines = [
        f"{kind}: {sizes['events']:,} events; event-path tables {written / events:,.0f} B/event"
        f" (whole database {sizes['file'] / 1024 / 1024:,.1f} MiB"
        + (
            f", largest WAL during the load {sizes['wal_peak'] / 1024 / 1024:,.1f} MiB"
            if sizes.get("wal_peak") is not None
            else ""
        )
        + ")"
    ]
    for table, size in sorted(sizes["tables"].items(), key=lambda item: -item[1]):
        mark = "  per event" if table in EVENT_TABLES else "  (seeded)"
        per = f"{size / events:8,.0f} B/event" if table in EVENT_TABLES else " " * 16
        lines.append(f"  {table:32} {size:>12,} B {per}{mark if size else ''}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each database; print bytes per event and per table."""
    args = parse_args(
        [
            "--orders", "10000", "--triggers", "20", "--duration", "8", "--warmup", "1",
            *(argv if argv is not None else __import__("sys").argv[1:]),
        ]
    )  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="statusflow-storage-"))
    runner = Runner(args, workdir)
    kinds = ["sqlite"] if args.db == "sqlite" else ["postgres"] if args.db == "postgres" else []
    if not kinds:
        kinds = ["sqlite"] + (["postgres"] if postgres_reachable(args.postgres_url) else [])
    for kind in kinds:
        print(report(kind, measure(runner, kind, args)), flush=True)
    return 0


__all__ = ["BenchDatabase", "main", "postgres_sizes", "sqlite_sizes"]

if __name__ == "__main__":
    raise SystemExit(main())
