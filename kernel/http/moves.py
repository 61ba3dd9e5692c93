"""``GET /api/moves?after=CURSOR&limit=N``: the change feed, every committed move once.

A cursor is a move's ``seq`` (as a string; clients treat it as opaque). The feed answers
the moves after the cursor in ``seq`` order, and a ``next`` cursor to resume from, and
never answers a move after a cursor that it has already passed: nothing is skipped.

On SQLite there is one writer, so ``seq`` order is commit order and a reader never sees
a later ``seq`` before an earlier one. On PostgreSQL ``seq`` comes from a sequence,
allocated when the row is inserted, not when its transaction commits: while the group
holding seq 10 is still committing, seq 11 may already be visible. A cursor past 11
would then skip 10 for ever. So:

1. the moves after the cursor are read; when their seqs follow each other without a
   gap (the common case), every seq up to the last one is settled and they are
   answered as they are;
2. on a gap, the missing seqs belong to transactions still in flight, or to ones that
   rolled back (a retried group, a failed request). The feed waits (up to
   :data:`SETTLE_TIMEOUT`) until every transaction that was open on this database
   after the first read has ended, then reads the same range again: every seq in it
   is now settled, committed or gone for good;
3. if that wait times out (a long transaction), only the moves before the first gap
   are answered, and the cursor stops there; the next call tries again.

This relies on each transaction that writes moves holding a transaction id before it
allocates a seq, which is how ``pg_stat_activity.backend_xid`` knows it as in flight: the
engine locks and updates the order rows (and inserts the events) before the moves, and a
manual move updates its order first.

For the moves of one order, ``seq`` order is their commit order on both databases (the
order's row lock serialises them); across orders on PostgreSQL, moves that committed at
the same moment may appear in the order their seqs were allocated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from statusflow.errors import invalid
from statusflow.http.jsonio import json_response
from statusflow.http.keys import DATABASE
from statusflow.store.database import Database
from statusflow.store.schema import MoveRecord

MOVES = MoveRecord.__table__  # type: ignore[attr-defined]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SETTLE_TIMEOUT = 2.0
"""Seconds the feed waits for in-flight transactions before answering a shorter page."""
SETTLE_POLL = 0.005
END = "end"

_IN_FLIGHT = text(
    "SELECT backend_xid::text FROM pg_stat_activity "
    "WHERE datname = current_database() AND backend_xid IS NOT NULL "
    "AND pid <> pg_backend_pid()"
)
_STILL_RUNNING = text(
    "SELECT backend_xid::text FROM pg_stat_activity WHERE backend_xid::text IN :xids"
).bindparams(bindparam("xids", expanding=True))


def move_json(row: Any) -> dict[str, Any]:
    """A stored move as the feed shows it."""
    return {
        "cursor": str(row.seq),
        "order_id": row.order_id,
        "from": row.from_status,
        "to": row.to_status,
        "trigger_id": row.trigger_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "manual": row.trigger_id is None and row.event_id is None,
        "at": row.at,
    }


def _contiguous_prefix(after: int, rows: Sequence[Any]) -> list[Any]:
    """The rows before the first gap in their seqs (starting right after ``after``)."""
    prefix = []
    expected = after + 1
    for row in rows:
        if row.seq != expected:
            break
        prefix.append(row)
        expected += 1
    return prefix


async def _read(
    conn: AsyncConnection, after: int, limit: int, upto: int | None = None
) -> list[Any]:
    query = select(MOVES).where(MOVES.c.seq > after)
    if upto is not None:
        query = query.where(MOVES.c.seq <= upto)
    rows = (await conn.execute(query.order_by(MOVES.c.seq).limit(limit))).all()
    await conn.rollback()  # end the snapshot: the next read sees newer commits
    return list(rows)


async def _settle(conn: AsyncConnection, timeout: float) -> bool:
    """Wait until every transaction open on this database now has ended; within time?"""
    xids = list((await conn.execute(_IN_FLIGHT)).scalars())
    await conn.rollback()  # pg_stat_activity is a snapshot per transaction
    deadline = time.monotonic() + timeout
    while xids:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(SETTLE_POLL)
        xids = list((await conn.execute(_STILL_RUNNING, {"xids": xids})).scalars())
        await conn.rollback()
    return True


async def read_feed(
    db: Database, after: int, limit: int, settle_timeout: float | None = None
) -> tuple[list[Any], int]:
    """Up to ``limit`` moves after cursor ``after``, every one settled; and the next cursor."""
    if settle_timeout is None:
        settle_timeout = SETTLE_TIMEOUT
    async with db.read() as conn:
        rows = await _read(conn, after, limit)
        if not rows or db.is_sqlite:
            return rows, rows[-1].seq if rows else after
        if len(_contiguous_prefix(after, rows)) == len(rows):
            return rows, rows[-1].seq
        last = rows[-1].seq
        if await _settle(conn, settle_timeout):
            rows = await _read(conn, after, limit, upto=last)
            return rows, rows[-1].seq if rows else after
        prefix = _contiguous_prefix(after, rows)
        return prefix, prefix[-1].seq if prefix else after


async def end_cursor(db: Database, settle_timeout: float | None = None) -> int:
    """The cursor after every move committed so far (``after=end``)."""
    if settle_timeout is None:
        settle_timeout = SETTLE_TIMEOUT
    async with db.read() as conn:
        last = int((await conn.scalar(select(func.coalesce(func.max(MOVES.c.seq), 0)))) or 0)
        await conn.rollback()
        if not db.is_sqlite:
            # moves in flight now, with seqs below ``last``, count as committed so far
            await _settle(conn, settle_timeout)
    return last


def _cursor(request: web.Request) -> str:
    raw = request.query.get("after", "0").strip()
    if raw != END and (not (raw.isascii() and raw.isdigit()) or len(raw) > 18):
        raise invalid(
            "after must be a cursor from an earlier answer's next, 0 or end", {"field": "after"}
        )
    return raw


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT)).strip()
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid(f"limit must be an integer from 1 to {MAX_LIMIT}", {"field": "limit"})
    return int(raw)


async def list_moves(request: web.Request) -> web.Response:
    """``GET /api/moves``: ``{"moves": [...], "next": CURSOR}``."""
    db = request.app[DATABASE]
    cursor = _cursor(request)
    limit = _limit(request)
    if cursor == END:
        return json_response({"moves": [], "next": str(await end_cursor(db))})
    rows, last = await read_feed(db, int(cursor), limit)
    return json_response({"moves": [move_json(r) for r in rows], "next": str(last)})


FEED_PARAMETERS = [
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "a cursor (an answer's next, or a move's cursor); 0 or absent: the "
        "first move; end: the moves committed from now on",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    },
]

FEED_SCHEMA = {
    "type": "object",
    "required": ["moves", "next"],
    "properties": {
        "moves": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "cursor": {"type": "string"},
                    "order_id": {"type": "string"},
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "trigger_id": {"type": ["integer", "null"]},
                    "event_id": {"type": ["string", "null"]},
                    "event_type": {"type": ["string", "null"]},
                    "manual": {"type": "boolean"},
                    "at": {"type": "string"},
                },
            },
        },
        "next": {"type": "string", "description": "the cursor to pass as after next time"},
    },
}
