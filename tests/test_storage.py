"""Storage: migrations build exactly the models' schema; URLs get their driver."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import statusflow.store.schema  # noqa: F401
from statusflow.store.database import Database, in_transaction, migrate, normalize_url, seed


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite:///x.db"),  # as configured before 0.2
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected


def test_normalize_url_refuses_other_databases():
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")


async def test_migrations_match_models(database_url):
    await migrate(database_url)
    await migrate(database_url)  # a second run is a no-op

    def diff(sync_conn):
        context = MigrationContext.configure(sync_conn)
        return compare_metadata(context, SQLModel.metadata)

    assert await in_transaction(database_url, diff) == []
    tables = await in_transaction(database_url, lambda c: set(inspect(c).get_table_names()))
    assert {"orders", "triggers", "events", "timeline", "alembic_version"} <= tables


async def test_seed_only_on_empty_database(database_url):
    await migrate(database_url)
    await seed(database_url)
    db = Database(database_url)
    try:
        async with db.write() as conn:
            await conn.execute(text("DELETE FROM statuses WHERE id = 'S'"))
        await seed(database_url)  # not empty: nothing is added back
        async with db.read() as conn:
            rows = await conn.execute(text("SELECT id FROM statuses ORDER BY sort"))
            ids = [r[0] for r in rows]
        assert ids == ["N", "P", "F", "D"]
    finally:
        await db.dispose()


def test_the_checkpointer_copies_the_wal_into_the_database_file(tmp_path) -> None:
    """The event writer never checkpoints in its COMMIT; the checkpointer thread does."""
    import shutil
    import sqlite3
    import time

    from statusflow.store.sqlite import CHECKPOINT_EVERY, Checkpointer, sqlite_pragmas

    path = str(tmp_path / "wal.db")

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(conn)
        return conn

    writer = connect()
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])

    def rows_in_the_database_file_alone() -> int:
        copy = tmp_path / "copy.db"
        shutil.copyfile(path, copy)  # without its -wal file: only what was checkpointed
        try:
            return sqlite3.connect(copy).execute("SELECT count(*) FROM t").fetchone()[0]
        except sqlite3.OperationalError:  # the table itself is still only in the WAL
            return 0
        finally:
            copy.unlink()

    assert rows_in_the_database_file_alone() == 0
    checkpointer = Checkpointer(connect)
    try:
        deadline = time.monotonic() + 20 * CHECKPOINT_EVERY
        while rows_in_the_database_file_alone() < 1000 and time.monotonic() < deadline:
            time.sleep(CHECKPOINT_EVERY / 2)
        assert rows_in_the_database_file_alone() == 1000
    finally:
        checkpointer.stop()
        writer.close()


def _table_t_and_event_connections(path: Any) -> tuple[Any, Any]:
    """A database with a table ``t (x)``: a plain connection to it (autocommit), and the
    event path's connections."""
    import sqlite3

    from statusflow.store.sqlite import SQLiteConnections, sqlite_pragmas

    setup = sqlite3.connect(str(path), isolation_level=None)
    sqlite_pragmas(setup)
    setup.execute("CREATE TABLE t (x INTEGER)")
    return setup, SQLiteConnections(str(path))


async def test_the_sqlite_event_writer_begins_at_once_or_waits_for_a_busy_database(
    tmp_path,
) -> None:
    """A free database is written without leaving the event loop's thread; one whose
    write lock another connection holds (an admin write of another process) is waited
    for, on the database thread, and the group then commits."""
    import asyncio

    setup, events = _table_t_and_event_connections(tmp_path / "busy.db")
    try:
        for x in (1, 2):  # the first makes the connection on the database thread
            async with events.write() as sql:
                sql.conn.execute("INSERT INTO t VALUES (?)", (x,))
        assert events._begin_at_once() is not None  # free: begun here, on the loop
        events._end(events._writer, False)  # type: ignore[arg-type]

        setup.execute("BEGIN IMMEDIATE")  # another writer holds SQLite's write lock
        setup.execute("INSERT INTO t VALUES (3)")
        assert events._begin_at_once() is None  # never waits on the loop...

        async def write_four() -> None:
            async with events.write() as sql:
                sql.conn.execute("INSERT INTO t VALUES (4)")

        waiting = asyncio.create_task(write_four())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # ...but on the database thread
        setup.execute("COMMIT")
        await asyncio.wait_for(waiting, 5)
        rows = [x for (x,) in setup.execute("SELECT x FROM t ORDER BY rowid")]
        assert rows == [1, 2, 3, 4]
    finally:
        await events.close()
        setup.close()


async def test_the_upgrade_to_0002_keeps_the_triggers_and_never_reuses_their_ids(tmp_path):
    """A database made at 0001 (SQLite reused a deleted trigger's id) keeps its triggers,
    their index and unique secret, and hands out only new ids afterwards."""
    from alembic import command

    from statusflow.store.database import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    row = (
        "INSERT INTO triggers (id, type, status, name, allow_backwards, enabled, settings,"
        " conditions, secret, created_at) VALUES (:id, 'call.incoming', 'P', '', 0, 1, '{}',"
        " '[]', :secret, '2026-01-01T00:00:00Z')"
    )
    await in_transaction(url, lambda sync: command.upgrade(alembic_config(sync), "0001"))
    db = Database(url)
    try:
        async with db.write() as conn:
            for trigger_id in (1, 2, 3, 4):
                await conn.execute(text(row), {"id": trigger_id, "secret": f"s{trigger_id}"})
            await conn.execute(text("DELETE FROM triggers WHERE id IN (3, 4)"))
            await conn.execute(  # trigger 4 moved an order before it was deleted
                text(
                    "INSERT INTO orders (id, status, doc, created_at, updated_at)"
                    " VALUES ('o1', 'P', '{}', 'x', 'x')"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO moves (order_id, event_id, from_status, to_status,"
                    " trigger_id, at) VALUES ('o1', 'e1', 'N', 'P', 4, 'x')"
                )
            )
        await migrate(url)
        async with db.write() as conn:
            assert [r[0] for r in await conn.execute(text("SELECT id FROM triggers"))] == [1, 2]
            await conn.execute(text(row), {"id": None, "secret": "s-new"})
            await conn.execute(text("DELETE FROM triggers WHERE secret = 's-new'"))
            await conn.execute(text(row), {"id": None, "secret": "s-newer"})
            ids = [r[0] for r in await conn.execute(text("SELECT id FROM triggers ORDER BY id"))]
            # 3, deleted before the upgrade and named nowhere, may be given again; 4 is
            # named by a move, so the count goes on after it; 5, deleted after, is not
            assert ids == [1, 2, 6]
            names = {r[1] for r in await conn.execute(text("PRAGMA index_list('triggers')"))}
            assert "ix_triggers_type" in names
            with pytest.raises(Exception, match="UNIQUE"):
                await conn.execute(text(row), {"id": None, "secret": "s1"})
    finally:
        await db.dispose()


async def test_a_writer_cancelled_while_it_waits_leaves_no_transaction_behind(tmp_path):
    """Cancelled while its BEGIN waits on the database thread, the writer waits for
    that BEGIN to finish and rolls it back: the lock is free for the next group."""
    import asyncio

    setup, events = _table_t_and_event_connections(tmp_path / "cancel.db")
    try:
        async with events.write() as sql:  # the writer connection exists from here on
            sql.conn.execute("INSERT INTO t VALUES (1)")
        setup.execute("BEGIN IMMEDIATE")  # another writer holds the lock...

        async def write(x: int) -> None:
            async with events.write() as sql:
                sql.conn.execute("INSERT INTO t VALUES (?)", (x,))

        waiting = asyncio.create_task(write(2))
        await asyncio.sleep(0.2)
        waiting.cancel()  # ...while this one waits for it
        await asyncio.sleep(0.1)
        setup.execute("COMMIT")  # its BEGIN now succeeds on the thread, for nobody
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.wait_for(write(3), 5)  # not stuck behind a forgotten transaction
        rows = [x for (x,) in setup.execute("SELECT x FROM t ORDER BY rowid")]
        assert rows == [1, 3]
        setup.execute("BEGIN IMMEDIATE")  # and SQLite's write lock is free too
        setup.execute("ROLLBACK")
    finally:
        await events.close()
        setup.close()


async def test_every_sqlite_writer_of_every_process_queues_at_one_gate(tmp_path) -> None:
    """Admin writes and event writes, of this process or another, hold the one gate of the
    file (an asyncio lock and an flock): a second writer waits for the first to commit,
    on the flock rather than in SQLite's busy handler, and a waiter cancelled meanwhile
    takes nothing with it."""
    import asyncio

    url = f"sqlite:///{tmp_path / 'gate.db'}"
    await migrate(url)
    one, other = Database(url), Database(url)  # two instances: two flocks
    try:
        async with one.write() as conn:  # an admin write of one instance...
            await conn.execute(text("INSERT INTO kernel_settings (key, value) VALUES ('a', '1')"))

            async def event_write() -> None:
                async with other.write() as sql:  # ...holds off the other's events
                    await sql.write_rows("INSERT INTO kernel_settings (key, value) VALUES (?, ?)",
                                         [("b", "2")])  # fmt: skip

            waiting = asyncio.create_task(event_write())
            cancelled = asyncio.create_task(event_write())
            await asyncio.sleep(0.3)
            assert not waiting.done()
            assert other._connections.gate._lock.locked()  # type: ignore[union-attr]
            cancelled.cancel()
        await asyncio.wait_for(waiting, 5)
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        async with other.write() as conn:  # the gate is free again, both ways
            await conn.execute(text("INSERT INTO kernel_settings (key, value) VALUES ('c', '3')"))
        async with one.read() as conn:
            found = await conn.execute(text("SELECT key FROM kernel_settings ORDER BY key"))
            assert [k for k in found.scalars() if k in "abc"] == ["a", "b", "c"]
    finally:
        await one.dispose()
        await other.dispose()


async def test_the_wal_stays_bounded_under_sustained_writes(tmp_path, monkeypatch) -> None:
    """A writer that never pauses keeps a passive checkpoint from ever resetting the WAL;
    past the threshold the checkpointer truncates it under the write gate, so the file
    stays bounded while the writes go on, and every row is kept."""
    import asyncio
    import os

    from statusflow.store import sqlite as store

    monkeypatch.setattr(store, "WAL_TRUNCATE_AT", 256 * 1024)
    monkeypatch.setattr(store, "CHECKPOINT_EVERY", 0.02)
    path = tmp_path / "bounded.db"
    setup, events = _table_t_and_event_connections(path)
    setup.execute("CREATE TABLE big (x BLOB)")
    reader = store.SQLiteSQL(events._connect())
    wal = f"{path}-wal"
    peak = 0
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        rows = 0
        while loop.time() < deadline:
            async with events.write() as sql:
                sql.conn.executemany("INSERT INTO big VALUES (?)", [(os.urandom(2000),)] * 20)
            rows += 20
            reader.conn.execute("SELECT count(*) FROM big").fetchone()  # a reader too
            peak = max(peak, os.path.getsize(wal) if os.path.exists(wal) else 0)
            await asyncio.sleep(0)
            checkpointer = events._checkpointer
            if rows >= 4000 and checkpointer is not None and checkpointer.truncations >= 2:
                break
        assert events._checkpointer is not None
        assert events._checkpointer.truncations >= 2  # 8 MB written past a 256 KiB mark
        assert peak < 4 * 1024 * 1024, peak  # far from the 8 MB an unchecked WAL reaches
        assert setup.execute("SELECT count(*) FROM big").fetchone()[0] == rows
    finally:
        reader.conn.close()
        await events.close()
        setup.close()


def test_a_reset_wal_keeps_at_most_the_journal_size_limit(tmp_path) -> None:
    """Every kernel connection sets ``journal_size_limit`` to :data:`WAL_LIMIT`."""
    import sqlite3

    from statusflow.store.sqlite import WAL_LIMIT, sqlite_pragmas

    conn = sqlite3.connect(str(tmp_path / "limit.db"))
    sqlite_pragmas(conn)
    assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == WAL_LIMIT == 64 << 20
    conn.close()


async def test_a_checked_write_knows_whether_anyone_wrote_since(tmp_path) -> None:
    """``write_checked`` tells its transaction whether anything was written to the file
    since the last checked transaction that committed: by another connection (another
    process), or by this process's other writers; one rolled back leaves it as it was."""
    from statusflow.store.sqlite import SQLiteConnections

    path = tmp_path / "checked.db"
    setup, events = _table_t_and_event_connections(path)
    other = SQLiteConnections(str(path))  # another process's connections
    seen: list[bool] = []

    async def checked(x: int, keep: bool = True) -> None:
        try:
            async with events.write_checked() as (sql, alone):
                seen.append(alone)
                sql.conn.execute("INSERT INTO t VALUES (?)", (x,))
                if not keep:
                    raise LookupError("roll it back")
        except LookupError:
            pass

    try:
        await checked(1)
        await checked(2)
        await checked(3, keep=False)
        await checked(4)
        async with other.write() as sql:
            sql.conn.execute("INSERT INTO t VALUES (5)")
        await checked(6)
        async with events.write() as sql:  # this process's admin API
            sql.conn.execute("INSERT INTO t VALUES (7)")
        await checked(8)
        await checked(9)
        assert seen == [False, True, True, True, False, False, True]
        rows = [x for (x,) in setup.execute("SELECT x FROM t ORDER BY rowid")]
        assert rows == [1, 2, 4, 5, 6, 7, 8, 9]
    finally:
        await events.close()
        await other.close()
        setup.close()
