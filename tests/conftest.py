"""Shared fixtures: every API test runs on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from kernel.testing import postgres_reachable, settings_for, temporary_postgres_database
from kernel.web import init_app

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
    """A test client with every installed plugin enabled."""
    return await make_client(enable=("payment",))
