"""The admin API's database work: every read and write of ``/api/statuses``,
``/api/triggers``, ``/api/orders``, ``/api/events``, the change feed and ``/readyz``.

:class:`AdminSQL` holds the methods, each running statements of
:mod:`statusflow.store.queries` inside the caller's transaction; rows come back as
dicts, JSON columns decoded. A subclass says how a statement runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.sql import Executable

from statusflow.store import queries as q
from statusflow.store.audit import log_committed, redact
from statusflow.store.timeline import expand
from statusflow.timestamps import utc_now

Row = dict[str, Any]
Params = Mapping[str, Any]


class AdminSQL(ABC):
    """The admin API's statements in one transaction (see the module docstring)."""

    dialect_name: str
    _audited: list[Row] | None = None
    """Entries recorded in this transaction, logged once it commits (:meth:`audit_done`)."""

    @abstractmethod
    async def rows(self, statement: Executable, params: Params | None = None) -> list[Row]:
        """The rows ``statement`` answers, as dicts."""

    @abstractmethod
    async def run(self, statement: Executable, params: Params | Sequence[Params]) -> None:
        """Run ``statement`` once, or once per parameter set.

        :raises ConstraintViolated: a unique or foreign key constraint refused a row.
        """

    @abstractmethod
    async def end_snapshot(self) -> None:
        """(reads) End the transaction: the next statement sees what committed since."""

    async def _first(self, statement: Executable, params: Params | None = None) -> Row | None:
        found = await self.rows(statement, params)
        return found[0] if found else None

    async def _column(self, statement: Executable, params: Params | None = None) -> list[Any]:
        return [next(iter(row.values())) for row in await self.rows(statement, params)]

    # statuses -----------------------------------------------------------------------

    async def pipeline(self) -> list[Row]:
        """Every status (``id``, ``name``, ``sort``, ``semantics``), in pipeline order."""
        return await self.rows(q.STATUSES_BY_SORT)

    async def status_exists(self, status_id: str) -> bool:
        return await self._first(q.STATUS_BY_ID, {"id": status_id}) is not None

    async def first_status(self) -> str | None:
        """The id of the pipeline's first status."""
        found = await self._column(q.FIRST_STATUS)
        return str(found[0]) if found else None

    async def status_ids(self) -> set[str]:
        return set(await self._column(q.STATUS_IDS))

    async def statuses_with_orders(self, status_ids: Iterable[str]) -> list[str]:
        """Those of ``status_ids`` that some order is in, sorted."""
        used = []
        for status in sorted(set(status_ids)):
            if await self._first(q.ORDER_IN_STATUS, {"status": status}) is not None:
                used.append(status)
        return used

    async def triggers_to(self, status_ids: Iterable[str]) -> list[tuple[int, str]]:
        """``(trigger id, status)`` of the triggers moving orders to any of ``status_ids``."""
        found: list[tuple[int, str]] = []
        for status in sorted(set(status_ids)):
            found.extend(
                (i, status) for i in await self._column(q.TRIGGERS_TO_STATUS, {"status": status})
            )
        return found

    async def replace_statuses(self, statuses: Sequence[Mapping[str, Any]]) -> None:
        """Replace the whole pipeline."""
        await self.run(q.DELETE_STATUSES, {})
        await self.run(
            q.INSERT_STATUS, [_v(s, ("id", "name", "sort", "semantics")) for s in statuses]
        )

    # triggers -----------------------------------------------------------------------

    async def all_triggers(self) -> list[Row]:
        """Every trigger, oldest first."""
        return await self.rows(q.TRIGGERS_BY_ID)

    async def trigger(self, trigger_id: int) -> Row | None:
        return await self._first(q.TRIGGER_BY_ID, {"id": trigger_id})

    async def trigger_by_secret(self, secret: str) -> Row | None:
        return await self._first(q.TRIGGER_BY_SECRET, {"secret": secret})

    async def insert_trigger(self, values: Mapping[str, Any]) -> int:
        """Store a new trigger (every column but ``id``); its id."""
        columns = (*q.TRIGGER_FIELDS, "secret", "created_at")
        return int((await self._column(q.INSERT_TRIGGER, _v(values, columns)))[0])

    async def update_trigger(self, trigger_id: int, values: Mapping[str, Any]) -> None:
        """Set a trigger's editable fields (all of them)."""
        await self.run(q.UPDATE_TRIGGER, {"w_id": trigger_id, **_v(values, q.TRIGGER_FIELDS)})

    async def delete_trigger(self, trigger_id: int) -> None:
        await self.run(q.DELETE_TRIGGER, {"id": trigger_id})

    # orders -------------------------------------------------------------------------

    async def order(self, order_id: str, lock: bool = False) -> Row | None:
        """An order's row; with ``lock``, locked until the transaction ends (PostgreSQL:
        on SQLite the write transaction holds the whole database)."""
        locked = lock and self.dialect_name == "postgresql"
        return await self._first(
            q.ORDER_BY_ID_LOCKED if locked else q.ORDER_BY_ID, {"id": order_id}
        )

    async def order_exists(self, order_id: str) -> bool:
        return await self._first(q.ORDER_ID, {"id": order_id}) is not None

    async def insert_order(
        self, order_id: str, status: str, doc: Mapping[str, Any], at: str
    ) -> None:
        """:raises ConstraintViolated: an order with this id exists."""
        values = {
            "id": order_id,
            "status": status,
            "doc": dict(doc),
            "created_at": at,
            "updated_at": at,
        }
        await self.run(q.INSERT_ORDER, _v(values, tuple(values)))

    async def save_order(self, order_id: str, status: str, doc: Mapping[str, Any], at: str) -> None:
        values = {"status": status, "doc": dict(doc), "updated_at": at}
        await self.run(q.UPDATE_ORDER, {"w_id": order_id, **_v(values, tuple(values))})

    async def add_identifiers(self, rows: Sequence[Mapping[str, str]]) -> None:
        """Store ``order_id``, ``kind``, ``value`` rows (an order's contact identifiers)."""
        if rows:
            await self.run(
                q.INSERT_IDENTIFIER, [_v(r, ("order_id", "kind", "value")) for r in rows]
            )

    async def replace_identifiers(self, order_id: str, rows: Sequence[Mapping[str, str]]) -> None:
        await self.run(q.DELETE_IDENTIFIERS, {"order_id": order_id})
        await self.add_identifiers(rows)

    async def add_timeline(
        self, order_id: str, at: str, kind: str, data: Mapping[str, Any]
    ) -> None:
        values = {"order_id": order_id, "at": at, "kind": kind, "data": dict(data)}
        await self.run(q.INSERT_TIMELINE, _v(values, tuple(values)))

    async def timeline(self, order_id: str) -> list[Row]:
        """An order's timeline entries (``at``, ``kind``, ``data``), oldest first."""
        return await expand(self, await self.rows(q.TIMELINE_OF, {"order_id": order_id}))

    # the audit log ------------------------------------------------------------------------

    async def record_audit(
        self,
        *,
        action: str,
        kind: str,
        resource_id: str | int | None = None,
        before: Any = None,
        after: Any = None,
        key_name: str | None = None,
    ) -> int:
        """Add an entry to the audit log, in this transaction; its id. It is logged (who,
        what, which resource: never ``before`` and ``after``) once the transaction
        commits.

        :param action: what was done: ``create``, ``update``, ``delete``, ``replace``,
            ``erase``, ``expire``, ...
        :param kind: the kind of resource: ``trigger``, ``statuses``, ``order``,
            ``webhook_endpoint``, ...
        :param before: the resource before the change (JSON, ``None`` for a creation);
            values of keys named like secrets (``secret``, ``token``, ``password``, ...)
            are stored as ``"[redacted]"``.
        :param after: the resource after the change (``None`` for a deletion).
        :param key_name: the API key that made the change
            (``statusflow.api_key_name(request)``), ``None`` when auth is off.
        """
        entry: Row = {
            "at": utc_now(),
            "key_name": key_name,
            "action": action,
            "kind": kind,
            "resource_id": None if resource_id is None else str(resource_id),
            "before": redact(before),
            "after": redact(after),
        }
        entry["id"] = int((await self._column(q.INSERT_AUDIT, _v(entry, q.AUDIT_COLUMNS)))[0])
        if self._audited is None:
            self._audited = []
        self._audited.append(entry)
        return int(entry["id"])

    async def update_audit_after(self, entry_id: int, after: Any) -> None:
        """Replace the ``after`` of an entry (a long operation's running totals)."""
        await self.run(q.UPDATE_AUDIT_AFTER, {"w_id": entry_id, "v_after": redact(after)})

    def audit_done(self, committed: bool) -> None:
        """The transaction ended: log its entries if it committed, and forget them."""
        entries, self._audited = self._audited, None
        if committed and entries:
            log_committed(entries)

    async def audit_page(self, below: int, limit: int, kind: str | None = None) -> list[Row]:
        """Up to ``limit`` entries with ``id < below``, newest first (of ``kind`` only)."""
        if kind is None:
            return await self.rows(q.AUDIT_PAGE, {"below": below, "limit": limit})
        return await self.rows(q.AUDIT_PAGE_OF_KIND, {"below": below, "limit": limit, "kind": kind})

    # events, moves, settings ------------------------------------------------------------

    async def event(self, event_id: str) -> Row | None:
        return await self._first(q.EVENT_BY_ID, {"id": event_id})

    async def moves(self, after: int, limit: int, upto: int | None = None) -> list[Row]:
        """Up to ``limit`` moves with ``after < seq (<= upto)``, in ``seq`` order."""
        if upto is None:
            return await self.rows(q.MOVES_AFTER, {"after": after, "limit": limit})
        return await self.rows(q.MOVES_BETWEEN, {"after": after, "upto": upto, "limit": limit})

    async def last_move(self) -> int:
        """The highest move ``seq`` (0 without moves)."""
        return int((await self._column(q.LAST_MOVE))[0] or 0)

    async def in_flight(self) -> list[str]:
        """(PostgreSQL) the ids of the other transactions open on this database."""
        return [str(x) for x in await self._column(q.IN_FLIGHT)]

    async def still_running(self, xids: Sequence[str]) -> list[str]:
        """(PostgreSQL) those of ``xids`` still running."""
        return [str(x) for x in await self._column(q.STILL_RUNNING, {"xids": list(xids)})]

    async def set_setting(self, key: str, value: str) -> None:
        """Store a ``kernel_settings`` value (replacing the stored one)."""
        await self.run(q.UPSERT_SETTING[self.dialect_name], {"v_key": key, "v_value": value})

    async def migration_heads(self) -> set[str]:
        """The revisions ``alembic_version`` records."""
        return {str(v) for v in await self._column(q.MIGRATION_HEADS)}


def _v(values: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """``values`` of ``columns`` as the ``v_column`` parameters of :mod:`.queries`."""
    return {f"v_{c}": values[c] for c in columns}
