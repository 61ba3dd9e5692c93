"""``python -m bench.roundtrips``: PostgreSQL round trips per event group (issue 17).

Starts ``statusflow serve`` on a temporary PostgreSQL database as ``bench.run`` does
(the same seed, triggers and event mix, one process), with a ``sitecustomize`` module
on its ``PYTHONPATH`` that wraps ``asyncpg``'s connection methods (``execute``,
``fetch``, ``fetchval``, ``fetchrow``, ``executemany``: each is one round trip, ``BEGIN``
and ``COMMIT`` included). Statements are followed per connection from ``BEGIN`` to
``COMMIT``; a transaction that inserts into ``events`` is an event group. The server
writes the tally to a file every half second; this prints round trips per group and per
event, and the statements that make them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.run import Point, Runner, parse_args
from bench.seed import temporary_database

COUNTER = textwrap.dedent(
    r'''
    """Counts asyncpg round trips per transaction (bench.roundtrips)."""
    import atexit, json, os, re, threading
    import asyncpg.connection

    OUT = os.environ["STATUSFLOW_ROUNDTRIPS"]
    tally = {"groups": 0, "events": 0, "statements": 0, "kinds": {}, "other": 0}
    open_tx = {}

    def kind(sql):
        text = " ".join(str(sql).split())[:200]
        if text.upper().startswith("WITH"):
            tables = re.findall(r"(?:INSERT INTO|UPDATE) \"?(\w+)", str(sql))
            return "WITH " + "+".join(tables)
        found = re.match(
            r"(BEGIN|COMMIT|ROLLBACK|SELECT .*? FROM (\w+)|INSERT INTO (\w+)|UPDATE (\w+)"
            r"|DELETE FROM (\w+)|WITH|\w+)", text, re.I)
        if not found:
            return text[:40]
        word = found.group(1).split()[0].upper()
        table = next((g for g in found.groups()[1:] if g), "")
        if word == "SELECT" and " FOR UPDATE" in str(sql).upper():
            word = "SELECT FOR UPDATE"
        return f"{word} {table}".strip()

    def note(conn, sql, args):
        key = id(conn)
        k = kind(sql)
        if k.startswith("BEGIN"):
            open_tx[key] = [[k], 0]
            return
        tx = open_tx.get(key)
        if tx is None:
            tally["other"] += 1
            return
        tx[0].append(k)
        if k.startswith(("INSERT events", "WITH events")) and args and isinstance(args[0], list):
            tx[1] = len(args[0])
        if k in ("COMMIT", "ROLLBACK"):
            del open_tx[key]
            if any(s.startswith(("INSERT events", "WITH events")) for s in tx[0]):
                tally["groups"] += 1
                tally["events"] += tx[1]
                tally["statements"] += len(tx[0])
                for s in tx[0]:
                    tally["kinds"][s] = tally["kinds"].get(s, 0) + 1

    for name in ("execute", "fetch", "fetchval", "fetchrow", "executemany"):
        original = getattr(asyncpg.connection.Connection, name)

        def wrap(original=original):
            async def counted(self, query, *args, **kwargs):
                note(self, query, args)
                return await original(self, query, *args, **kwargs)
            return counted

        setattr(asyncpg.connection.Connection, name, wrap())

    def dump():
        tmp = OUT + ".tmp"
        with open(tmp, "w") as f:
            json.dump(tally, f)
        os.replace(tmp, OUT)

    def loop():
        while True:
            threading.Event().wait(0.5)
            dump()

    threading.Thread(target=loop, daemon=True).start()
    atexit.register(dump)
    '''
)
"""The ``sitecustomize`` module the server imports at start."""


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One run on PostgreSQL; the server's tally."""
    workdir = Path(tempfile.mkdtemp(prefix="statusflow-roundtrips-"))
    (workdir / "site").mkdir()
    (workdir / "site" / "sitecustomize.py").write_text(COUNTER)
    out = workdir / "roundtrips.json"
    runner = Runner(args, workdir)
    runner.env["PYTHONPATH"] = str(workdir / "site")
    runner.env["STATUSFLOW_ROUNDTRIPS"] = str(out)
    point = Point(
        "roundtrips", "postgres", args.orders, args.triggers, args.concurrency, args.warmup,
        args.duration,
    )  # fmt: skip
    with temporary_database("postgres", workdir, args.postgres_url) as db:
        result, _spec = runner.engine(point, db)
    tally: dict[str, Any] = json.loads(out.read_text())
    tally["events_per_s"] = result["events_per_s"]
    return tally


def report(tally: dict[str, Any]) -> str:
    """Round trips per group and per event, and per statement kind."""
    groups, events = max(tally["groups"], 1), max(tally["events"], 1)
    lines = [
        f"postgres: {tally['groups']:,} event groups, {tally['events']:,} events "
        f"({events / groups:.1f} per group), {tally['events_per_s']:,.0f} events/s",
        f"  round trips per group {tally['statements'] / groups:.2f}, "
        f"per event {tally['statements'] / events:.2f}",
    ]
    for kind, count in sorted(tally["kinds"].items(), key=lambda item: -item[1]):
        lines.append(f"  {kind:40} {count / groups:6.2f} per group")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Count the round trips of a short PostgreSQL run and print them."""
    import sys

    given = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(["--db", "postgres", "--quick", "--duration", "6", "--warmup", "1", *given])
    print(report(measure(args)), flush=True)
    return 0


__all__ = ["COUNTER", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
