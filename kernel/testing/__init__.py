"""Helpers for testing statusflow and its plugins: temporary databases and apps.

Used by statusflow's own tests, and by the pytest plugin :mod:`statusflow.testing.pytest_plugin`,
which exposes them as fixtures for plugin authors (``statusflow_app``, ...).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import make_url


def __getattr__(name: str) -> Any:
    """``ManualClock`` (the action scheduler's clock that tests move by hand), imported
    when first asked for: the engine is not loaded with the pytest plugin."""
    if name == "ManualClock":
        from statusflow.engine.scheduler import ManualClock

        return ManualClock
    raise AttributeError(f"module 'statusflow.testing' has no attribute {name!r}")


__all__ = [
    "ManualClock",
    "postgres_admin_url",
    "postgres_reachable",
    "settings_for",
    "temporary_postgres_database",
]

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_admin_url() -> str:
    """Where tests reach PostgreSQL: ``$STATUSFLOW_TEST_POSTGRES`` or the local default."""
    return os.environ.get("STATUSFLOW_TEST_POSTGRES", DEFAULT_ADMIN_URL)


def postgres_reachable() -> bool:
    """Whether something listens where the test PostgreSQL should be."""
    url = make_url(postgres_admin_url())
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=3):
            return True
    except OSError:
        return False


@asynccontextmanager
async def temporary_postgres_database() -> AsyncIterator[str]:
    """Create a fresh database, yield its ``postgresql+asyncpg://`` URL, drop it after."""
    import asyncpg

    admin_url = postgres_admin_url()
    name = f"statusflow_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def settings_for(database_url: str, **overrides: Any) -> Any:
    """:class:`statusflow.serving.config.Settings` for a test app on ``database_url``."""
    from statusflow.serving.config import Settings

    base: dict[str, Any] = {"database_url": database_url, "public_url": "http://testserver"}
    base.update(overrides)
    for key in ("disable", "tokens", "keys"):
        if key in base and not isinstance(base[key], tuple):
            base[key] = tuple(base[key])
    if base.get("enable") is not None and not isinstance(base["enable"], tuple):
        base["enable"] = tuple(base["enable"])
    return Settings(**base)
