"""The database: engine factory, migrations at start, first-start seeding."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import column, delete, event, insert, select, table
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)

from statusflow.errors import StartupError
from statusflow.store.connections import (
    PostgresEventConnections,
    SQLiteEventConnections,
    sqlite_code,
    sqlite_pragmas,
)
from statusflow.store.schema import DEFAULT_PIPELINE, KernelSetting, Status
from statusflow.store.statements import CommitOutcomeUnknown, EventSQL

MIGRATIONS = Path(__file__).with_name("migrations")
ALEMBIC_VERSION = table("alembic_version", column("version_num"))
SETTINGS = KernelSetting.__table__  # type: ignore[attr-defined]
KERNEL_BASE = "0001"
"""The kernel's first revision: where databases migrated before ``KERNEL_REVISION`` stand."""
KERNEL_REVISION = "kernel_revision"
"""``kernel_settings`` key: the kernel's revision after the last migration."""

log = structlog.get_logger("statusflow.storage")

POSTGRES_WRITERS = 3
"""Event groups in flight at once per process on PostgreSQL: a group mostly waits for
round trips, and its orders are locked, so a few overlap safely."""


def normalize_url(url: str) -> str:
    """Give a database URL its async driver: ``sqlite+aiosqlite``, ``postgresql+asyncpg``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    shown = parsed.render_as_string(hide_password=True)  # error messages reach the logs
    raise ValueError(f"unsupported database URL {shown!r}: use sqlite:/// or postgresql://")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    url = normalize_url(url)
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if not is_sqlite:
        kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        path = engine.url.database
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            raise StartupError(f"cannot open the database {path}: its folder does not exist")
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


_UNREACHABLE = (
    ConnectionError,  # refused, reset, aborted
    socket.gaierror,  # the host name does not resolve
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, not accepting yet
    asyncpg.TooManyConnectionsError,
)


_NETWORK_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from: SQLAlchemy's wrapped driver error
    (``.orig``) or the explicit ``__cause__`` (never the context: an error raised while
    another was handled is not caused by it)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the database cannot be reached
    right now (down, restarting, out of connections, an SQLite file locked past the busy
    timeout), rather than that a request or the code is wrong: worth a 503 and a retry.

    Never for :class:`CommitOutcomeUnknown` (the transaction may have committed) nor for
    an HTTP client's error (a plugin calling another service)."""
    for cause in causes(exc):
        if isinstance(cause, CommitOutcomeUnknown | aiohttp.ClientError):
            return False
        if isinstance(cause, _UNREACHABLE):
            return True
        if isinstance(cause, OSError) and cause.errno in _NETWORK_ERRNOS:
            return True  # "Connect call failed" comes as a bare OSError
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if sqlite_code(cause) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return True
    return False


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def alembic_config(
    connection: Connection | None = None, plugin_locations: Sequence[str] = ()
) -> Config:
    """An Alembic configuration for the kernel's migrations and the plugins'."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    locations = [str(MIGRATIONS / "versions"), *plugin_locations]
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(locations))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection, plugin_locations: Sequence[str]) -> None:
    if connection.dialect.name == "postgresql":
        # Several instances may start at once: one migrates, the others wait.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7346151)")
    cfg = alembic_config(connection, plugin_locations)
    script = ScriptDirectory.from_config(cfg)
    recorded = MigrationContext.configure(connection).get_current_heads()
    orphans = [revision for revision in recorded if not _locatable(script, revision)]
    stand_in = None
    if orphans:
        # An uninstalled plugin's head is recorded but its revisions are gone, and Alembic
        # refuses to start. Its tables are kept, unused: upgrade around its head and keep
        # it recorded, so that reinstalling the plugin resumes from it.
        log.warning("migrations.plugin_missing", revisions=orphans)
        connection.execute(
            delete(ALEMBIC_VERSION).where(ALEMBIC_VERSION.c.version_num.in_(orphans))
        )
        # Alembic records no kernel revision that a plugin head depends on (it is implied):
        # without the orphans, say where the kernel is, or its migrations would run again.
        kernel_at = _setting(connection, KERNEL_REVISION) or KERNEL_BASE
        kept = [revision for revision in recorded if revision not in orphans]
        if kernel_at not in _implied(script, kept):
            connection.execute(insert(ALEMBIC_VERSION).values(version_num=kernel_at))
            stand_in = kernel_at
    command.upgrade(cfg, "heads")
    if orphans:
        if stand_in is not None:  # the orphans imply it again (unless it was upgraded)
            connection.execute(
                delete(ALEMBIC_VERSION).where(ALEMBIC_VERSION.c.version_num == stand_in)
            )
        connection.execute(insert(ALEMBIC_VERSION), [{"version_num": r} for r in orphans])
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is not None and _setting(connection, KERNEL_REVISION) != head:
        connection.execute(delete(SETTINGS).where(SETTINGS.c.key == KERNEL_REVISION))
        connection.execute(insert(SETTINGS).values(key=KERNEL_REVISION, value=head))


def _locatable(script: ScriptDirectory, revision: str) -> bool:
    try:
        script.get_revision(revision)
    except CommandError:
        return False
    return True


def _implied(script: ScriptDirectory, heads: Sequence[str]) -> set[str]:
    """The revisions that recorded ``heads`` stand for: theirs, their ancestors and the
    revisions they depend on."""
    implied: set[str] = set()
    todo = list(heads)
    while todo:
        revision = script.get_revision(todo.pop())
        if revision is None or revision.revision in implied:
            continue
        implied.add(revision.revision)
        for above in (revision.down_revision, revision.dependencies):
            if isinstance(above, str):
                todo.append(above)
            elif above:
                todo.extend(above)
    return implied


def _setting(connection: Connection, key: str) -> str | None:
    query = select(SETTINGS.c.value).where(SETTINGS.c.key == key)
    value = connection.execute(query).scalar()
    return None if value is None else str(value)


async def migrate(engine: AsyncEngine, plugin_locations: Sequence[str] = ()) -> None:
    """Apply every pending migration, the kernel's and the plugins' (never ``create_all``)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, plugin_locations)


async def seed(engine: AsyncEngine) -> None:
    """On first start with an empty database, store the contract's default pipeline."""
    table = Status.__table__  # type: ignore[attr-defined]
    async with engine.begin() as conn:
        existing = (await conn.execute(select(table.c.id).limit(1))).first()
        if existing is None:
            await conn.execute(
                insert(table),
                [
                    {"id": i, "name": n, "sort": s, "semantics": sem}
                    for i, n, s, sem in DEFAULT_PIPELINE
                ],
            )


async def signing_secret(engine: AsyncEngine, configured: str | None) -> bytes:
    """The HMAC key of tracking tokens: configured, or made once and stored."""
    if configured:
        return configured.encode()
    table = KernelSetting.__table__  # type: ignore[attr-defined]
    query = select(table.c.value).where(table.c.key == "signing_secret")
    for _attempt in range(2):
        try:
            async with engine.begin() as conn:
                row = (await conn.execute(query)).first()
                if row is not None:
                    return str(row[0]).encode()
                value = secrets.token_urlsafe(32)
                await conn.execute(insert(table).values(key="signing_secret", value=value))
                return value.encode()
        except IntegrityError:
            continue  # another instance stored one first: read it
    raise RuntimeError("could not read or store the signing secret")


class Database:
    """The engine plus the write discipline.

    SQLite has one writer: every write transaction, the event path's and this one's,
    holds the file's :class:`~statusflow.store.connections.SQLiteWriteGate` and starts
    with ``BEGIN IMMEDIATE`` (never on a stale snapshot). PostgreSQL writes run
    concurrently; the engine locks rows.
    The event path has connections of its own (:mod:`statusflow.store.connections`).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = is_sqlite(engine)
        self._events: SQLiteEventConnections | PostgresEventConnections
        self.event_writers = 1
        """Event groups written at once: one on SQLite (one writer), a few on PostgreSQL."""
        if self.is_sqlite:
            _explicit_sqlite_begin(engine.sync_engine)
            path = engine.url.database
            if not path or path == ":memory:":
                raise StartupError("statusflow needs an SQLite file, not an in-memory database")
            self._events = SQLiteEventConnections(path)
        else:
            self._events = PostgresEventConnections(engine.url)
            self.event_writers = POSTGRES_WRITERS

    @asynccontextmanager
    async def event_writes(self) -> AsyncIterator[EventSQL]:
        """The event path's write transaction, committed when the block ends.

        :raises StorageConflict: (PostgreSQL) it lost a race and rolled back: run it again.
        """
        async with self._events.write() as statements:
            yield statements

    @asynccontextmanager
    async def event_reads(self) -> AsyncIterator[EventSQL]:
        """The event path's statements in a read transaction that is rolled back (dry runs)."""
        async with self._events.read() as statements:
            yield statements

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a write transaction, committed when the block ends."""
        async with contextlib.AsyncExitStack() as stack:
            if isinstance(self._events, SQLiteEventConnections):
                await stack.enter_async_context(self._events.gate.hold())
            conn = await stack.enter_async_context(self.engine.connect())
            if self.is_sqlite:
                conn = await conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            transaction = await conn.begin()
            try:
                yield conn
            except BaseException:
                await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except Exception as exc:
                raise CommitOutcomeUnknown(f"COMMIT failed: {exc}") from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading."""
        async with self.engine.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self._events.close()
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    sqlite_pragmas(dbapi_conn)


def _explicit_sqlite_begin(engine: Engine) -> None:
    """Let SQLAlchemy, not the driver, emit BEGIN (the documented aiosqlite recipe)."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
