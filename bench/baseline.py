"""The baseline: a bare aiohttp app doing one durable, group-committed INSERT per event.

``python -m bench.baseline --database URL --port P`` serves ``POST /api/events`` (and
``GET /healthz``, ``GET /stats``). The handler parses the JSON event and hands one row
to a single writer task; the writer takes every request that is waiting, inserts them
all in one transaction, commits, and only then are those requests answered. While a
transaction commits, new requests queue up for the next one (group commit).

SQLite: the stdlib ``sqlite3`` driver in one dedicated thread, WAL, ``synchronous=FULL``
and the other pragmas of ``kernel/store/database.py``. PostgreSQL: one asyncpg connection,
one ``executemany`` and one commit per group.

This is the machine's own limit for "durably store each event" through Python and
aiohttp: the engine is measured against it in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiohttp import web

TABLE = "bench_baseline_events"
Row = tuple[str, str, str, str]


def utc_now() -> str:
    """Now in the engine's ISO-8601 UTC format."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Backend(Protocol):
    """Writes one group of rows in one committed transaction."""

    async def open(self) -> None:
        """Connect and create the table."""

    async def write(self, rows: Sequence[Row]) -> None:
        """Insert ``rows`` and commit."""

    async def close(self) -> None:
        """Disconnect."""


class SqliteBackend:
    """stdlib sqlite3 in a dedicated thread (one connection, used only from that thread)."""

    SQL = (
        f"INSERT INTO {TABLE} (id, type, body, received_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING"
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self.conn: sqlite3.Connection | None = None

    def _open(self) -> None:
        from bench.seed import SQLITE_PRAGMAS

        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (seq INTEGER PRIMARY KEY, id TEXT NOT NULL "
            "UNIQUE, type TEXT NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL)"
        )
        self.conn = conn

    def _write(self, rows: Sequence[Row]) -> None:
        assert self.conn is not None
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(self.SQL, rows)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.thread, self._open)

    async def write(self, rows: Sequence[Row]) -> None:
        await asyncio.get_running_loop().run_in_executor(self.thread, self._write, rows)

    async def close(self) -> None:
        if self.conn is not None:
            await asyncio.get_running_loop().run_in_executor(self.thread, self.conn.close)
        self.thread.shutdown()


class PostgresBackend:
    """One asyncpg connection: ``executemany`` and commit per group."""

    SQL = (
        f"INSERT INTO {TABLE} (id, type, body, received_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (id) DO NOTHING"
    )

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: Any = None

    async def open(self) -> None:
        import asyncpg

        self.conn = await asyncpg.connect(self.dsn)
        await self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (seq BIGSERIAL PRIMARY KEY, "
            "id VARCHAR(200) NOT NULL UNIQUE, type VARCHAR(100) NOT NULL, body JSON NOT NULL, "
            "received_at VARCHAR(40) NOT NULL)"
        )

    async def write(self, rows: Sequence[Row]) -> None:
        async with self.conn.transaction():
            await self.conn.executemany(self.SQL, rows)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


class GroupCommitter:
    """The single writer: every waiting request goes into the next transaction."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.queue: asyncio.Queue[tuple[Row, asyncio.Future[None]]] = asyncio.Queue()
        self.groups = 0
        self.rows = 0
        self.largest = 0
        self.task: asyncio.Task[None] | None = None

    async def submit(self, row: Row) -> None:
        """Queue ``row``; return once the transaction holding it has committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((row, done))
        await done

    async def run(self) -> None:
        """Forever: take what is waiting, write it in one transaction, answer it."""
        while True:
            group = [await self.queue.get()]
            while not self.queue.empty():
                group.append(self.queue.get_nowait())
            try:
                await self.backend.write([row for row, _ in group])
            except Exception as exc:
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            self.groups += 1
            self.rows += len(group)
            self.largest = max(self.largest, len(group))
            for _, done in group:
                if not done.done():
                    done.set_result(None)


COMMITTER = web.AppKey("committer", GroupCommitter)


async def post_event(request: web.Request) -> web.Response:
    """Parse the event, store it durably (group commit), answer after the commit."""
    try:
        event = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return web.json_response({"error": {"code": "bad_json"}}, status=400)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return web.json_response({"error": {"code": "invalid"}}, status=422)
    event_id = str(event.get("id") or "")
    if not event_id:
        return web.json_response({"error": {"code": "invalid"}}, status=422)
    row = (event_id, event["type"], orjson.dumps(event).decode(), utc_now())
    await request.app[COMMITTER].submit(row)
    return web.Response(
        body=orjson.dumps({"event_id": event_id, "stored": True}),
        content_type="application/json",
    )


async def healthz(request: web.Request) -> web.Response:
    """``{"status": "ok"}``."""
    return web.json_response({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    """How many groups were committed and how large they were."""
    committer = request.app[COMMITTER]
    mean = committer.rows / committer.groups if committer.groups else 0.0
    return web.json_response(
        {
            "groups": committer.groups,
            "rows": committer.rows,
            "mean_group": mean,
            "largest_group": committer.largest,
        }
    )


def make_app(database_url: str) -> web.Application:
    """The baseline app on ``sqlite:///PATH`` or ``postgresql://...``."""
    if database_url.startswith("sqlite:///"):
        backend: Backend = SqliteBackend(database_url.removeprefix("sqlite:///"))
    elif database_url.startswith(("postgresql://", "postgres://")):
        backend = PostgresBackend(database_url)
    else:
        raise SystemExit(f"unsupported database URL {database_url!r}")
    app = web.Application()
    committer = GroupCommitter(backend)
    app[COMMITTER] = committer

    async def lifecycle(app: web.Application) -> Any:
        await backend.open()
        committer.task = asyncio.create_task(committer.run())
        yield
        committer.task.cancel()
        await backend.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/api/events", post_event)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/stats", stats)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.baseline --database URL --port P``."""
    parser = argparse.ArgumentParser(prog="bench.baseline", description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True, help="sqlite:///PATH or postgresql://...")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    web.run_app(
        make_app(args.database), host=args.host, port=args.port, print=None, access_log=None
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
