"""Operations: ``GET /readyz`` (database and migrations) and ``GET /metrics`` (Prometheus).

``/healthz`` says the process answers; ``/readyz`` says this instance can serve: the
database answers, and it is not behind this release's migrations (the kernel's and the
plugins'). An instance whose database went away, or a newer release started with
``migrate_on_start = false`` before ``statusflow migrate`` ran, answers 503; a database
ahead of this release (migrated by a newer one during a rolling upgrade) is fine.
Neither needs a token. ``/metrics`` needs one when ``[auth] tokens`` is set (see
``docs/operations.md``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable, Sequence

import pluggy
import structlog
from aiohttp import web
from alembic.script import ScriptDirectory

from statusflow.engine import metrics
from statusflow.errors import ApiError
from statusflow.http.jsonio import json_response
from statusflow.http.keys import DATABASE, MIGRATION_LOCATIONS, PLUGIN_MANAGER, SERVICES
from statusflow.store.database import alembic_config

log = structlog.get_logger("statusflow.ops")

READY_TIMEOUT = 5.0

_scripts: weakref.WeakKeyDictionary[pluggy.PluginManager, ScriptDirectory] = (
    weakref.WeakKeyDictionary()
)


def _ids(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def missing_heads(script: ScriptDirectory, current: Iterable[str]) -> tuple[list[str], list[str]]:
    """The heads of ``script`` that the database's ``current`` revisions do not reach, and
    the current revisions ``script`` does not know.

    ``alembic_version`` keeps only the database's heads: a revision is applied when it
    is one of them or an ancestor of one (through ``down_revision`` or ``depends_on``,
    as a plugin's branch depends on the kernel's). A revision that no migration folder
    on the path holds comes from a newer release (the database is ahead of this code,
    as during a rolling upgrade) or from an uninstalled plugin; its ancestry is unknown.
    """
    applied: set[str] = set()
    unknown: list[str] = []
    stack = list(current)
    while stack:
        name = stack.pop()
        if name in applied:
            continue
        applied.add(name)
        try:
            revision = script.get_revision(name)
        except Exception:  # not in any migration folder on the path
            revision = None
        if revision is None:
            unknown.append(name)
            continue
        applied.add(revision.revision)
        stack.extend(_ids(revision.down_revision))
        stack.extend(_ids(revision.dependencies))
    missing = sorted(head for head in script.get_heads() if head not in applied)
    return missing, sorted(unknown)


async def _script(app: web.Application) -> ScriptDirectory:
    """The migration scripts of the kernel and of the plugins, the folders found at
    start-up (plugins folders included), read once per app."""
    pm = app[PLUGIN_MANAGER]
    script = _scripts.get(pm)
    if script is None:
        locations = app[MIGRATION_LOCATIONS]

        def load() -> ScriptDirectory:
            return ScriptDirectory.from_config(alembic_config(None, locations))

        script = await asyncio.to_thread(load)
        _scripts[pm] = script
    return script


def _not_ready(message: str) -> ApiError:
    return ApiError(503, "not_ready", message)


async def readyz(request: web.Request) -> web.Response:
    script = await _script(request.app)
    try:
        async with asyncio.timeout(READY_TIMEOUT), request.app[DATABASE].read() as sql:
            current = await sql.migration_heads()
    except Exception as exc:  # whatever the driver raises: the database does not answer
        log.warning("readyz.database_failed", error=type(exc).__name__)
        raise _not_ready(f"the database does not answer ({type(exc).__name__})") from None
    missing, unknown = missing_heads(script, current)
    # Behind this release: not ready. Revisions this release does not know mean the
    # database is ahead of it (or holds an uninstalled plugin's branch): still ready.
    if missing and not unknown:
        raise _not_ready(
            "the database's migrations are not at head: run `statusflow migrate` "
            f"(missing: {', '.join(missing)}; current: {', '.join(sorted(current)) or 'none'})"
        )
    return json_response({"status": "ready", "migrations": sorted(current)})


async def metrics_handler(request: web.Request) -> web.Response:
    body = await metrics.render(request.app[SERVICES].gauges)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


READY_SCHEMA = {
    "type": "object",
    "required": ["status", "migrations"],
    "properties": {
        "status": {"const": "ready"},
        "migrations": {"type": "array", "items": {"type": "string"}},
    },
}
