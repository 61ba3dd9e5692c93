"""The kernel's statements, as SQLAlchemy Core on the tables of :mod:`.schema`.

Each is built once, with named parameters (``bindparam``: ``v_column`` for a value
written, ``w_column`` for a WHERE beside them), never with values: the tables stay the
one definition of the schema, and a statement is the same object for every call. The
admin API's run through :class:`statusflow.store.admin.AdminSQL`, compiled when a store
class is made; the event path's are compiled into the dialect stores' SQL text at
import (:mod:`statusflow.store.sqlite`, :mod:`statusflow.store.postgres`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Text,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import BindParameter

from statusflow.store.schema import (
    Action,
    ActionRun,
    AuditEntry,
    EventRecord,
    KernelSetting,
    MoveRecord,
    Order,
    OrderIdentifier,
    PluginMark,
    Status,
    TimelineEntry,
    Trigger,
)

STATUSES = Status.__table__  # type: ignore[attr-defined]
ORDERS = Order.__table__  # type: ignore[attr-defined]
IDENTIFIERS = OrderIdentifier.__table__  # type: ignore[attr-defined]
TRIGGERS = Trigger.__table__  # type: ignore[attr-defined]
EVENTS = EventRecord.__table__  # type: ignore[attr-defined]
MOVES = MoveRecord.__table__  # type: ignore[attr-defined]
TIMELINE = TimelineEntry.__table__  # type: ignore[attr-defined]
SETTINGS = KernelSetting.__table__  # type: ignore[attr-defined]
MARKS = PluginMark.__table__  # type: ignore[attr-defined]
AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]
ACTIONS = Action.__table__  # type: ignore[attr-defined]
RUNS = ActionRun.__table__  # type: ignore[attr-defined]
ALEMBIC_VERSION = table("alembic_version", column("version_num"))

TRIGGER_FIELDS = ("type", "status", "name", "allow_backwards", "enabled", "settings", "conditions")
"""A trigger's columns that the API edits."""
TRIGGER_COLUMNS = ("id", *TRIGGER_FIELDS, "secret")
"""A trigger's columns that the engine reads."""
EVENT_COLUMNS = (
    "id",
    "type",
    "order_id",
    "contact",
    "data",
    "occurred_at",
    "received_at",
    "result",
    "moved",
)
MOVE_COLUMNS = (
    "order_id",
    "from_status",
    "to_status",
    "trigger_id",
    "event_id",
    "event_type",
    "at",
    "action_id",
)
TIMELINE_COLUMNS = ("order_id", "at", "kind", "data")
ACTION_FIELDS = (
    "status",
    "type",
    "name",
    "settings",
    "conditions",
    "delay",
    "after_previous",
    "enabled",
    "position",
)
"""An action's columns that the API edits."""
RUN_COLUMNS = (
    "action_id",
    "order_id",
    "status",
    "epoch",
    "state",
    "entered_at",
    "counts_from",
    "due_at",
    "next_at",
    "after_action_id",
    "event_id",
    "attempts",
    "finished_at",
    "reason",
)
"""A new run's columns, in the order of the rows the engine makes."""
CANCEL_COLUMNS = ("order_id", "status", "reason", "at")
"""What cancels an order's pending runs of a status it left."""


def _values(*names: str) -> dict[str, object]:
    """``column=bindparam("v_column")`` for each name (a SET or VALUES clause)."""
    return {name: bindparam(f"v_{name}") for name in names}


def value_params(columns: tuple[str, ...]) -> tuple[str, ...]:
    """The names of the parameters :func:`_values` gives ``columns``, in order."""
    return tuple(f"v_{name}" for name in columns)


# statuses
STATUSES_BY_SORT = select(STATUSES).order_by(STATUSES.c.sort)
STATUS_IDS = select(STATUSES.c.id)
STATUS_BY_ID = select(STATUSES.c.id).where(STATUSES.c.id == bindparam("id"))
FIRST_STATUS = select(STATUSES.c.id).order_by(STATUSES.c.sort).limit(1)
ORDER_IN_STATUS = select(ORDERS.c.id).where(ORDERS.c.status == bindparam("status")).limit(1)
TRIGGERS_TO_STATUS = select(TRIGGERS.c.id).where(TRIGGERS.c.status == bindparam("status"))
DELETE_STATUSES = delete(STATUSES)
INSERT_STATUS = insert(STATUSES).inline().values(_values("id", "name", "sort", "semantics"))

# triggers
TRIGGERS_BY_ID = select(TRIGGERS).order_by(TRIGGERS.c.id)
TRIGGER_BY_ID = select(TRIGGERS).where(TRIGGERS.c.id == bindparam("id"))
TRIGGER_BY_SECRET = select(TRIGGERS).where(TRIGGERS.c.secret == bindparam("secret"))
INSERT_TRIGGER = (
    insert(TRIGGERS)
    .values(_values(*TRIGGER_FIELDS, "secret", "created_at"))
    .returning(TRIGGERS.c.id)
)
UPDATE_TRIGGER = (
    update(TRIGGERS).where(TRIGGERS.c.id == bindparam("w_id")).values(_values(*TRIGGER_FIELDS))
)
DELETE_TRIGGER = delete(TRIGGERS).where(TRIGGERS.c.id == bindparam("id"))

# orders
ORDER_BY_ID = select(ORDERS).where(ORDERS.c.id == bindparam("id"))
ORDER_BY_ID_LOCKED = ORDER_BY_ID.with_for_update()
ORDER_ID = select(ORDERS.c.id).where(ORDERS.c.id == bindparam("id"))
INSERT_ORDER = (
    insert(ORDERS).inline().values(_values("id", "status", "doc", "created_at", "updated_at"))
)
UPDATE_ORDER = (
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("w_id"))
    .values(_values("status", "doc", "updated_at"))
)
DELETE_IDENTIFIERS = delete(IDENTIFIERS).where(IDENTIFIERS.c.order_id == bindparam("order_id"))
INSERT_IDENTIFIER = insert(IDENTIFIERS).inline().values(_values("order_id", "kind", "value"))
INSERT_TIMELINE = insert(TIMELINE).inline().values(_values("order_id", "at", "kind", "data"))
TIMELINE_OF = (
    select(TIMELINE.c.at, TIMELINE.c.kind, TIMELINE.c.data)
    .where(TIMELINE.c.order_id == bindparam("order_id"))
    .order_by(TIMELINE.c.seq)
)

# events and moves
EVENT_BY_ID = select(EVENTS).where(EVENTS.c.id == bindparam("id"))
MOVES_AFTER = (
    select(MOVES)
    .where(MOVES.c.seq > bindparam("after"))
    .order_by(MOVES.c.seq)
    .limit(bindparam("limit"))
)
MOVES_BETWEEN = (
    select(MOVES)
    .where(MOVES.c.seq > bindparam("after"), MOVES.c.seq <= bindparam("upto"))
    .order_by(MOVES.c.seq)
    .limit(bindparam("limit"))
)
LAST_MOVE = select(func.coalesce(func.max(MOVES.c.seq), 0))
IN_FLIGHT = text(
    "SELECT backend_xid::text FROM pg_stat_activity "
    "WHERE datname = current_database() AND backend_xid IS NOT NULL "
    "AND pid <> pg_backend_pid()"
)
"""(PostgreSQL) the transaction ids of the other sessions on this database that hold one."""
STILL_RUNNING = text(
    "SELECT backend_xid::text FROM pg_stat_activity WHERE backend_xid::text = ANY(:xids)"
)
"""(PostgreSQL) which of ``xids`` are still running."""

# the audit log
AUDIT_COLUMNS = ("at", "key_name", "action", "kind", "resource_id", "before", "after")
INSERT_AUDIT = insert(AUDIT).values(_values(*AUDIT_COLUMNS)).returning(AUDIT.c.id)
UPDATE_AUDIT_AFTER = update(AUDIT).where(AUDIT.c.id == bindparam("w_id")).values(_values("after"))
AUDIT_PAGE = (
    select(AUDIT)
    .where(AUDIT.c.id < bindparam("below"))
    .order_by(AUDIT.c.id.desc())
    .limit(bindparam("limit"))
)
AUDIT_PAGE_OF_KIND = AUDIT_PAGE.where(AUDIT.c.kind == bindparam("kind"))

# privacy: an order deleted, a person's identifiers erased, old events expired
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
DELETE_ORDER = delete(ORDERS).where(ORDERS.c.id == bindparam("id"))
DELETE_TIMELINE_OF = delete(TIMELINE).where(TIMELINE.c.order_id == bindparam("order_id"))
DELETE_MOVES_OF = delete(MOVES).where(MOVES.c.order_id == bindparam("order_id"))
TIMELINE_ROWS_OF = select(TIMELINE.c.seq, TIMELINE.c.kind, TIMELINE.c.data).where(
    TIMELINE.c.order_id == bindparam("order_id")
)
UPDATE_TIMELINE_DATA = (
    update(TIMELINE).where(TIMELINE.c.seq == bindparam("w_seq")).values(_values("data"))
)
EVENT_REFS = select(EVENTS.c.seq, EVENTS.c.result)
EVENT_REFS_BY_ID = EVENT_REFS.where(EVENTS.c.id == bindparam("id"))
EVENTS_BY_SEQS = select(
    EVENTS.c.seq, EVENTS.c.id, EVENTS.c.contact, EVENTS.c.data, EVENTS.c.result
).where(EVENTS.c.seq.in_(_IDS))
DELETE_EVENTS = delete(EVENTS).where(EVENTS.c.seq.in_(_IDS))
UPDATE_EVENT_RESULT = (
    update(EVENTS).where(EVENTS.c.seq == bindparam("w_seq")).values(_values("result"))
)
UPDATE_EVENT_PERSONAL = (
    update(EVENTS)
    .where(EVENTS.c.seq == bindparam("w_seq"))
    .values(_values("contact", "data", "result"))
)
ORDERS_WITH_IDENTIFIER = select(IDENTIFIERS.c.order_id).where(
    IDENTIFIERS.c.kind == bindparam("kind"), IDENTIFIERS.c.value == bindparam("value")
)
EVENTS_MENTIONING = (
    select(EVENTS.c.seq)
    .where(
        EVENTS.c.seq > bindparam("after"),
        or_(
            *(
                func.lower(cast(EVENTS.c[name], Text)).like(bindparam("pattern"), escape="\\")
                for name in ("contact", "data", "result")
            )
        ),
    )
    .order_by(EVENTS.c.seq)
)
"""Events whose contact, data or result holds ``pattern`` (a lower-case ``LIKE``): the
candidates of an erasure, checked one by one after."""
LAST_EVENT = select(func.coalesce(func.max(EVENTS.c.seq), 0))
MARKS_MENTIONING = select(MARKS.c.id).where(
    func.lower(MARKS.c.key).like(bindparam("pattern"), escape="\\")
)
DELETE_MARKS = delete(MARKS).where(MARKS.c.id.in_(_IDS))
OLDEST_EVENTS = (
    select(EVENTS.c.seq, EVENTS.c.received_at, EVENTS.c.result)
    .order_by(EVENTS.c.seq)
    .limit(bindparam("limit"))
)
DELETE_EXPIRED_EVENTS = delete(EVENTS).where(
    EVENTS.c.seq.in_(_IDS), EVENTS.c.received_at < bindparam("cutoff")
)
DELETE_EXPIRED_ENTRIES = delete(TIMELINE).where(
    TIMELINE.c.order_id.in_(_IDS),
    TIMELINE.c.kind == "event",
    TIMELINE.c.at < bindparam("cutoff"),
)
"""The ``event`` timeline entries older than ``cutoff`` of some orders: their events are
older too (an entry's ``at`` is its event's ``received_at``)."""

# the event path: run on the bare drivers with positional arguments (``v_column``, in
# the order of the columns named here); the lookups of lists of ids are the dialects'
SETTING = select(SETTINGS.c.value).where(SETTINGS.c.key == bindparam("key"))
PIPELINE_ROWS = select(STATUSES.c.id, STATUSES.c.sort, STATUSES.c.semantics, STATUSES.c.name)
TRIGGER_ROWS = select(*(TRIGGERS.c[name] for name in TRIGGER_COLUMNS)).order_by(TRIGGERS.c.id)
STORED_RESULTS = select(EVENTS.c.id, EVENTS.c.result)
IDENTIFIED_ORDERS = select(IDENTIFIERS.c.kind, IDENTIFIERS.c.value, IDENTIFIERS.c.order_id)
ORDER_STATES = select(ORDERS.c.id, ORDERS.c.status, ORDERS.c.doc, ORDERS.c.status_epoch)
MARK = select(MARKS.c.id).where(
    MARKS.c.namespace == bindparam("namespace"), MARKS.c.key == bindparam("key")
)
INSERT_EVENT = insert(EVENTS).inline().values(_values(*EVENT_COLUMNS))
MOVE_ORDER = (
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("w_id"))
    .values(_values("status", "updated_at", "status_epoch"))
)
INSERT_MOVE = insert(MOVES).inline().values(_values(*MOVE_COLUMNS))
INSERT_RUN = insert(RUNS).inline().values(_values(*RUN_COLUMNS))
CANCEL_LEFT = (  # (SQLite; PostgreSQL's takes arrays) an order's pending runs of a status
    update(RUNS)
    .where(
        RUNS.c.order_id == bindparam("w_order_id"),
        RUNS.c.status == bindparam("w_status"),
        RUNS.c.state == bindparam("w_state"),
    )
    .values(
        state=bindparam("v_state"),
        reason=bindparam("v_reason"),
        finished_at=bindparam("v_finished_at"),
        next_at=null(),
    )
    .returning(RUNS.c.id, RUNS.c.action_id, RUNS.c.order_id)
)
ACTION_ROWS = select(ACTIONS).order_by(ACTIONS.c.id)

# actions and runs: the admin API's and the scheduler's
ACTION_BY_ID = select(ACTIONS).where(ACTIONS.c.id == bindparam("id"))
ACTIONS_IN_ORDER = (
    select(ACTIONS)
    .join(STATUSES, STATUSES.c.id == ACTIONS.c.status, isouter=True)
    .order_by(STATUSES.c.sort, ACTIONS.c.position, ACTIONS.c.id)
)
ACTIONS_OF_STATUS = ACTIONS_IN_ORDER.where(ACTIONS.c.status == bindparam("status"))
LAST_POSITION = select(func.max(ACTIONS.c.position)).where(ACTIONS.c.status == bindparam("status"))
ACTIONS_AT = select(ACTIONS.c.id).where(ACTIONS.c.status == bindparam("status"))
INSERT_ACTION = (
    insert(ACTIONS).values(_values(*ACTION_FIELDS, "created_at")).returning(ACTIONS.c.id)
)
UPDATE_ACTION = (
    update(ACTIONS).where(ACTIONS.c.id == bindparam("w_id")).values(_values(*ACTION_FIELDS))
)
DELETE_ACTION = delete(ACTIONS).where(ACTIONS.c.id == bindparam("id"))
RUN_BY_ID = select(RUNS).where(RUNS.c.id == bindparam("id"))
LISTED_RUNS = select(RUNS).order_by(RUNS.c.id.desc()).limit(bindparam("limit"))
RUNS_OF_ORDER = select(RUNS).where(RUNS.c.order_id == bindparam("order_id")).order_by(RUNS.c.id)
NEXT_RUN = select(func.min(RUNS.c.next_at))
SCHEDULED_RUN_COUNT = select(func.count()).select_from(RUNS).where(RUNS.c.next_at.is_not(None))
"""Runs waiting for their time (pending, or running under a lease)."""
DUE_RUN_COUNT = select(func.count()).select_from(RUNS).where(RUNS.c.next_at <= bindparam("now"))
"""Runs whose time has come (pending and due, or running with an expired lease)."""
_DUE = (
    select(RUNS.c.id)
    .where(RUNS.c.next_at <= bindparam("now"))
    .order_by(RUNS.c.next_at, RUNS.c.id)
    .limit(bindparam("limit"))
)
_CLAIM_VALUES = {
    "state": bindparam("v_state"),
    "attempts": RUNS.c.attempts + 1,
    "lease_token": bindparam("v_token"),
    "next_at": bindparam("v_lease_until"),
    "started_at": func.coalesce(RUNS.c.started_at, bindparam("v_started_at")),
}
CLAIM_RUNS = {
    "sqlite": update(RUNS)
    .where(RUNS.c.id.in_(_DUE.scalar_subquery()))
    .values(_CLAIM_VALUES)
    .returning(*RUNS.c),
    "postgresql": update(RUNS)
    .where(RUNS.c.id.in_(_DUE.with_for_update(skip_locked=True).scalar_subquery()))
    .values(_CLAIM_VALUES)
    .returning(*RUNS.c),
}
"""By dialect name: lease up to ``limit`` due runs (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so that concurrent instances never claim the same run)."""
END_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("w_id"), RUNS.c.lease_token == bindparam("w_token"))
    .values({**_values("state", "finished_at", "reason", "next_at"), "lease_token": null()})
)
"""A claimed run ends (or waits for a retry), if its lease is still this claim's."""
CANCEL_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("w_id"), RUNS.c.state == bindparam("w_state"))
    .values({**_values("state", "finished_at", "reason"), "next_at": null(), "lease_token": null()})
)
RUN_NOW = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("w_id"), RUNS.c.state == bindparam("w_state"))
    .values(_values("due_at", "next_at", "counts_from"))
)
PENDING_OF_ACTION = select(RUNS).where(
    RUNS.c.action_id == bindparam("action_id"), RUNS.c.state == bindparam("state")
)
RESCHEDULE_RUN = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("w_id"), RUNS.c.state == bindparam("w_state"))
    .values(_values("due_at", "next_at"))
)
WAITING_AFTER = select(RUNS.c.id, RUNS.c.action_id).where(
    RUNS.c.order_id == bindparam("order_id"),
    RUNS.c.epoch == bindparam("epoch"),
    RUNS.c.after_action_id == bindparam("after_action_id"),
    RUNS.c.state == bindparam("state"),
    RUNS.c.due_at.is_(None),
)
"""The runs waiting for the run of ``after_action_id`` (``after_previous``)."""
LEASES = (
    select(RUNS.c.id, RUNS.c.lease_token)
    .where(RUNS.c.id.in_(bindparam("ids", expanding=True)), RUNS.c.state == bindparam("state"))
    .order_by(RUNS.c.id)
)
LEASES_LOCKED = LEASES.with_for_update()
ORDERS_BY_IDS = select(ORDERS).where(ORDERS.c.id.in_(bindparam("ids", expanding=True)))
ORDERS_BY_IDS_LOCKED = ORDERS_BY_IDS.order_by(ORDERS.c.id).with_for_update()
ACTION_MOVES_SINCE = (
    select(func.count())
    .select_from(MOVES)
    .where(
        MOVES.c.order_id == bindparam("order_id"),
        MOVES.c.action_id.is_not(None),
        MOVES.c.at >= bindparam("since"),
    )
)
ORDERS_ENTERED = select(
    ORDERS.c.id,
    ORDERS.c.status_epoch,
    func.coalesce(
        select(func.max(MOVES.c.at))
        .where(MOVES.c.order_id == ORDERS.c.id, MOVES.c.to_status == ORDERS.c.status)
        .scalar_subquery(),
        ORDERS.c.created_at,
    ).label("entered_at"),
).where(ORDERS.c.status == bindparam("status"))
EVENT_DATA = select(EVENTS.c.data).where(EVENTS.c.id == bindparam("id"))
SAVE_ORDER_DOC = (
    update(ORDERS).where(ORDERS.c.id == bindparam("w_id")).values(_values("doc", "updated_at"))
)

# the kernel's settings and migrations
MIGRATION_HEADS = select(ALEMBIC_VERSION.c.version_num)


def _upsert_setting(dialect: str) -> Insert:
    """Store a ``kernel_settings`` value, replacing the one stored (``key``, ``value``)."""
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make(SETTINGS).values(_values("key", "value"))
    return statement.on_conflict_do_update(
        index_elements=["key"], set_={"value": statement.excluded.value}
    )


UPSERT_SETTING = {name: _upsert_setting(name) for name in ("sqlite", "postgresql")}
"""By dialect name: store a ``kernel_settings`` value, replacing the one stored."""


def _claim(dialect: str) -> Insert:
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make(MARKS).inline().values(_values("namespace", "key", "created_at"))
    return statement.on_conflict_do_nothing(index_elements=["namespace", "key"])


CLAIM = {name: _claim(name) for name in ("sqlite", "postgresql")}
"""By dialect name: a plugin's mark, inserted unless it exists."""


def prepared(dialect: str) -> list[Executable]:
    """Every statement of this module that runs on ``dialect``, to compile up front."""
    found = [v for v in globals().values() if isinstance(v, Executable)]
    return [*found, UPSERT_SETTING[dialect], CLAIM[dialect], CLAIM_RUNS[dialect]]
