"""The database: engine factory, migrations at start, first-start seeding."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from kernel.models import DEFAULT_PIPELINE, KernelSetting, Status

MIGRATIONS = Path(__file__).with_name("migrations")


def normalize_url(url: str) -> str:
    """Give a database URL its async driver: ``sqlite+aiosqlite``, ``postgresql+asyncpg``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")


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

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """sqlmodel sessions for the admin API."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


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
    command.upgrade(alembic_config(connection, plugin_locations), "heads")


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

    SQLite has one writer: write transactions take an in-process lock and start with
    ``BEGIN IMMEDIATE`` (so a second process waits on ``busy_timeout`` instead of failing
    on a stale snapshot). PostgreSQL writes run concurrently; the engine locks rows.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = is_sqlite(engine)
        self._write_lock = asyncio.Lock()
        if self.is_sqlite:
            _explicit_sqlite_begin(engine)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a write transaction, committed when the block ends."""
        if self.is_sqlite:
            async with self._write_lock, self.engine.connect() as conn:
                conn = await conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                async with conn.begin():
                    yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reading."""
        async with self.engine.connect() as conn:
            yield conn

    def session(self, conn: AsyncConnection) -> AsyncSession:
        """A sqlmodel session on ``conn``, joining its transaction."""
        return AsyncSession(bind=conn, expire_on_commit=False)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _explicit_sqlite_begin(engine: AsyncEngine) -> None:
    """Let SQLAlchemy, not the driver, emit BEGIN (the documented aiosqlite recipe)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
