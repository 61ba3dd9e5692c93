"""Shared fixtures: every API test runs on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from statusflow.http import init_app
from statusflow.testing import postgres_reachable, settings_for, temporary_postgres_database

_reachable: bool | None = None


def _postgres_available() -> bool:
    global _reachable
    if _reachable is None:
        _reachable = postgres_reachable()
    return _reachable


def require_postgres() -> None:
    """Skip without PostgreSQL, except under CI=true, where it must be there."""
    if not _postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable, and CI=true requires it")
        pytest.skip("PostgreSQL is not reachable")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'statusflow.db'}"
        return
    require_postgres()
    async with temporary_postgres_database() as url:
        yield url


@pytest.fixture
async def sqlite_url(tmp_path: Any) -> str:
    """A fresh SQLite file only, for tests that need not run on both databases."""
    return f"sqlite:///{tmp_path / 'statusflow.db'}"


MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_client(aiohttp_client: Any, database_url: str) -> MakeClient:
    """``await make_client(**settings)``: a test client of a fresh app on the database."""

    async def make(extra_plugins: Any = (), **overrides: Any) -> TestClient:
        overrides.setdefault("database_url", database_url)
        settings = settings_for(**overrides)
        return await aiohttp_client(init_app(settings, extra_plugins=extra_plugins))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    """A test client with only the `payment` plugin: the kernel seen through one plugin."""
    return await make_client(enable=("payment",))


# --- a faster database_url, for modules that opt in --------------------------------------


def _in_thread(coroutine: Any) -> Any:
    """Run ``coroutine`` to completion on a loop of its own, away from the tests' loops."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class _SharedPostgres:
    """One PostgreSQL database for the session: created on first use, dropped at the end."""

    def __init__(self) -> None:
        self.name: str | None = None

    def url(self) -> str:
        from sqlalchemy.engine import make_url

        from statusflow.testing import postgres_admin_url

        if self.name is None:
            self.name = f"statusflow_test_{os.urandom(6).hex()}"
            _in_thread(self._admin(f'CREATE DATABASE "{self.name}"'))
        admin = make_url(postgres_admin_url())
        url = admin.set(drivername="postgresql+asyncpg", database=self.name)
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        if self.name is not None:
            _in_thread(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    @staticmethod
    async def _admin(statement: str) -> None:
        import asyncpg

        from statusflow.testing import postgres_admin_url

        conn = await asyncpg.connect(postgres_admin_url())
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


async def _empty_postgres(url: str) -> None:
    """Truncate every table but ``alembic_version`` and restart the identities."""
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename <> 'alembic_version'"
        )
        if rows:
            tables = ", ".join(f'"{row["tablename"]}"' for row in rows)
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def _shared_postgres() -> Any:
    shared = _SharedPostgres()
    yield shared
    shared.drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def reused_database_url(
    request: pytest.FixtureRequest, tmp_path: Any, _shared_postgres: _SharedPostgres
) -> str:
    """Like ``database_url`` (a fresh SQLite file, then PostgreSQL), but much faster.

    PostgreSQL is one database for the whole session, emptied before each test (every
    table truncated, identities restarted, the migrations kept), so the app's start-up
    seeds it as on a fresh database; creating and dropping a database per test costs
    about half a second. A module opts in by overriding ``database_url``::

        @pytest.fixture
        def database_url(reused_database_url): return reused_database_url
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'statusflow.db'}"
    require_postgres()
    url = _shared_postgres.url()
    await _empty_postgres(url)
    return url
