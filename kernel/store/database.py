"""The database: the store's connections (:class:`Database`), and the start-up work on
SQLAlchemy (migrations, first-start seeding, the signing key, :func:`in_transaction`)."""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import socket
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import orjson
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, delete, event, insert, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from statusflow.errors import StartupError
from statusflow.store.postgres import RUNS_CHANNEL, Listener, PostgresConnections
from statusflow.store.queries import ALEMBIC_VERSION, SETTING, SETTINGS
from statusflow.store.schema import DEFAULT_PIPELINE, Status
from statusflow.store.sqlite import (
    SQLiteConnections,
    sqlite_code,
    sqlite_pragmas,
)
from statusflow.store.statements import CommitOutcomeUnknown, StoreSQL, dumps

MIGRATIONS = Path(__file__).with_name("migrations")
KERNEL_BASE = "0001"
"""The kernel's first revision: where databases migrated before ``KERNEL_REVISION`` stand."""
KERNEL_REVISION = "kernel_revision"
"""``kernel_settings`` key: the kernel's revision after the last migration."""

log = structlog.get_logger("statusflow.storage")

T = TypeVar("T")

POSTGRES_WRITERS = 3
"""Event groups in flight at once per process on PostgreSQL: a group mostly waits for
round trips, and its orders are locked, so a few overlap safely."""


def normalize_url(url: str) -> str:
    """Check a database URL and give it the driver of the start-up work: SQLAlchemy's
    ``sqlite`` (the stdlib ``sqlite3``; ``sqlite+aiosqlite`` URLs are read as it) or
    ``postgresql+asyncpg``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite"))
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    shown = parsed.render_as_string(hide_password=True)  # error messages reach the logs
    raise ValueError(f"unsupported database URL {shown!r}: use sqlite:/// or postgresql://")


async def in_transaction(url: str, work: Callable[[Connection], T]) -> T:
    """``work(connection)`` in one transaction on a SQLAlchemy connection of its own,
    committed when it returns: the start-up work (migrations, seeding), which Alembic
    does on a synchronous connection. SQLite's runs on SQLAlchemy's synchronous engine
    (the stdlib ``sqlite3``) in a thread, starting with ``BEGIN IMMEDIATE``; PostgreSQL's
    on the asyncpg engine (``run_sync``). The engine is closed afterwards."""
    url = normalize_url(url)
    options: dict[str, Any] = {
        "poolclass": NullPool,
        "json_serializer": dumps,
        "json_deserializer": orjson.loads,
    }
    if make_url(url).get_backend_name() == "sqlite":
        path = make_url(url).database
        if path and path != ":memory:" and not Path(path).parent.is_dir():
            raise StartupError(f"cannot open the database {path}: its folder does not exist")
        return await asyncio.to_thread(_sqlite_transaction, url, options, work)
    engine = create_async_engine(url, **options)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _sqlite_transaction(url: str, options: dict[str, Any], work: Callable[[Connection], T]) -> T:
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy, not the driver, begins
        sqlite_pragmas(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # a writer from the start

    try:
        with engine.begin() as conn:
            return work(conn)
    finally:
        engine.dispose()


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
    value = connection.execute(SETTING, {"key": key}).scalar()
    return None if value is None else str(value)


async def migrate(url: str, plugin_locations: Sequence[str] = ()) -> None:
    """Apply every pending migration, the kernel's and the plugins' (never ``create_all``)."""
    await in_transaction(url, lambda conn: _upgrade(conn, plugin_locations))


def _seed(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Instances starting at once on an empty database: one seeds, the others wait
        # for its commit and then find the pipeline (SQLite's BEGIN IMMEDIATE does this).
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7346151)")
    table = Status.__table__  # type: ignore[attr-defined]
    if conn.execute(select(table.c.id).limit(1)).first() is None:
        rows = [
            {"id": i, "name": n, "sort": s, "semantics": sem} for i, n, s, sem in DEFAULT_PIPELINE
        ]
        conn.execute(insert(table), rows)


async def seed(url: str) -> None:
    """On first start with an empty database, store the contract's default pipeline."""
    await in_transaction(url, _seed)


def _stored_secret(conn: Connection) -> bytes:
    """The stored signing secret, made and stored first if there is none."""
    value = _setting(conn, "signing_secret")
    if value is None:
        value = secrets.token_urlsafe(32)
        conn.execute(insert(SETTINGS).values(key="signing_secret", value=value))
    return value.encode()


async def signing_secret(url: str, configured: str | None) -> bytes:
    """The HMAC key of tracking tokens: configured, or made once and stored."""
    if configured:
        return configured.encode()
    for _attempt in range(2):
        try:
            return await in_transaction(url, _stored_secret)
        except IntegrityError:
            continue  # another instance stored one first: read it
    raise RuntimeError("could not read or store the signing secret")


async def prepare(
    url: str, plugin_locations: Sequence[str], migrate_first: bool, secret: str | None
) -> bytes:
    """The start-up work: migrate and seed (when ``migrate_first``), then read the
    signing key (:func:`signing_secret`).

    :raises StartupError: not migrating, the database has no statusflow schema yet.
    """
    if migrate_first:
        await migrate(url, plugin_locations)
        await seed(url)
    try:
        return await signing_secret(url, secret)
    except DBAPIError as exc:
        if migrate_first:
            raise
        raise StartupError(
            "the database has no statusflow schema yet: run `statusflow migrate` first "
            f"([server] migrate_on_start is false): {exc.orig}"
        ) from exc


class Database:
    """The store of one database: its connections (one set, :mod:`.sqlite` or
    :mod:`.postgres`), on
    which every statement of the kernel and of its plugins runs.

    SQLite has one writer: every write transaction holds the file's
    :class:`~statusflow.store.sqlite.SQLiteWriteGate` and starts with
    ``BEGIN IMMEDIATE`` (never on a stale snapshot). PostgreSQL writes run concurrently;
    the engine locks rows.
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(normalize_url(url))
        self.dialect_name = "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        self.is_sqlite = self.dialect_name == "sqlite"
        self._connections: SQLiteConnections | PostgresConnections
        self.event_writers = 1
        """Event groups written at once: one on SQLite (one writer), a few on PostgreSQL."""
        if self.is_sqlite:
            path = self.url.database
            if not path or path == ":memory:":
                raise StartupError("statusflow needs an SQLite file, not an in-memory database")
            self.path = path
            self._connections = SQLiteConnections(path)
        else:
            self._connections = PostgresConnections(self.url)
            self.event_writers = POSTGRES_WRITERS

    def write(self) -> AbstractAsyncContextManager[StoreSQL]:
        """A write transaction, committed when the block ends: an event group's, an admin
        API request's, a plugin's (``kernel.write()``).

        :raises StorageConflict: (PostgreSQL) it lost a race and rolled back: run it again.
        :raises CommitOutcomeUnknown: ``COMMIT`` failed: it may have committed or not.
        """
        return self._connections.write()

    def write_checked(self) -> AbstractAsyncContextManager[tuple[StoreSQL, bool]]:
        """(SQLite) :meth:`write`, also saying whether nothing was written since the last
        transaction this method committed: see
        :meth:`~statusflow.store.sqlite.SQLiteConnections.write_checked`.

        :raises TypeError: on PostgreSQL, whose writers lock rows instead.
        """
        if not isinstance(self._connections, SQLiteConnections):
            raise TypeError("write_checked is SQLite's")
        return self._connections.write_checked()

    def read(self) -> AbstractAsyncContextManager[StoreSQL]:
        """A read transaction (one snapshot), rolled back when the block ends."""
        return self._connections.read()

    def runs_listener(self, callback: Callable[[str | None], None]) -> Listener | None:
        """(PostgreSQL) a :class:`~statusflow.store.postgres.Listener` of the runs other
        instances write (the soonest ``next_at`` of each transaction's); ``None`` on
        SQLite, whose writers all run in processes that tell their own scheduler."""
        if isinstance(self._connections, PostgresConnections):
            return Listener(self._connections.dsn, RUNS_CHANNEL, callback)
        return None

    async def dispose(self) -> None:
        """Close every connection."""
        await self._connections.close()
