"""The change feed's reads: every committed move once, in ``seq`` order, none skipped.

On SQLite there is one writer, so ``seq`` order is commit order and a reader never sees
a later ``seq`` before an earlier one. On PostgreSQL ``seq`` comes from a sequence,
allocated when the row is inserted, not when its transaction commits: while the group
holding seq 10 is still committing, seq 11 may already be visible. A cursor past 11
would then skip 10 for ever. So:

1. the moves after the cursor are read; when their seqs follow each other without a
   gap (the common case), every seq up to the last one is settled and they are
   answered as they are;
2. on a gap, the missing seqs belong to transactions still in flight, or to ones that
   rolled back (a retried group, a failed request). The feed waits (up to the settle
   timeout) until every transaction that was open on this database after the first
   read has ended, then reads the same range again: every seq in it is now settled,
   committed or gone for good;
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

from statusflow.store.database import Database
from statusflow.store.statements import StoreSQL

SETTLE_POLL = 0.005
"""Seconds between two looks at the transactions still in flight."""


def _contiguous_prefix(after: int, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows before the first gap in their seqs (starting right after ``after``)."""
    prefix = []
    expected = after + 1
    for row in rows:
        if row["seq"] != expected:
            break
        prefix.append(row)
        expected += 1
    return prefix


async def _read(
    sql: StoreSQL, after: int, limit: int, upto: int | None = None
) -> list[dict[str, Any]]:
    rows = await sql.moves(after, limit, upto)
    await sql.end_snapshot()  # the next read sees newer commits
    return rows


async def _settle(sql: StoreSQL, timeout: float) -> bool:
    """Wait until every transaction open on this database now has ended; within time?"""
    xids = await sql.in_flight()
    await sql.end_snapshot()  # pg_stat_activity is a snapshot per transaction
    deadline = time.monotonic() + timeout
    while xids:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(SETTLE_POLL)
        xids = await sql.still_running(xids)
        await sql.end_snapshot()
    return True


async def read_feed(
    db: Database, after: int, limit: int, settle_timeout: float
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` moves after cursor ``after``, every one settled; and the next cursor."""
    async with db.read() as sql:
        rows = await _read(sql, after, limit)
        if not rows or db.is_sqlite:
            return rows, rows[-1]["seq"] if rows else after
        prefix = _contiguous_prefix(after, rows)
        if len(prefix) == len(rows):
            return rows, rows[-1]["seq"]
        last = rows[-1]["seq"]
        if await _settle(sql, settle_timeout):
            rows = await _read(sql, after, limit, upto=last)
            return rows, rows[-1]["seq"] if rows else after
        return prefix, prefix[-1]["seq"] if prefix else after


async def end_cursor(db: Database, settle_timeout: float) -> int:
    """The cursor after every move committed so far (``after=end``)."""
    async with db.read() as sql:
        last = await sql.last_move()
        await sql.end_snapshot()
        if not db.is_sqlite:
            # moves in flight now, with seqs below ``last``, count as committed so far
            await _settle(sql, settle_timeout)
    return last
