"""The database tables, as sqlmodel models.

The store builds every statement of the kernel from their SQLAlchemy ``__table__``
(:mod:`statusflow.store.queries`, :mod:`statusflow.store.statements`). Times
are ISO-8601 strings in UTC (``2026-11-27T10:00:00.000000Z``), which sort as they read.
The schema itself comes from the Alembic migrations in ``kernel/store/migrations``; a test
checks that they agree with these models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, UniqueConstraint, false
from sqlmodel import Field, SQLModel


class Status(SQLModel, table=True):
    """A status of the pipeline."""

    __tablename__ = "statuses"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    sort: int = Field(unique=True)
    semantics: str = Field(max_length=16)


class Order(SQLModel, table=True):
    """An order; ``doc`` holds every client-visible field but ``id`` and ``status``."""

    __tablename__ = "orders"
    __table_args__ = (  # the lists' keyset (newest first), with or without a status
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=200)
    status: str = Field(max_length=64)
    doc: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: str = Field(max_length=40)
    updated_at: str = Field(max_length=40)
    status_epoch: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    """Counts the order's moves: a run scheduled at one epoch acts only while the order
    is still at it (still in the status it entered then)."""


class OrderIdentifier(SQLModel, table=True):
    """One identifier of an order's contact or company, normalised, for fan-out."""

    __tablename__ = "order_identifiers"
    __table_args__ = (Index("ix_order_identifiers_kind_value", "kind", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="orders.id", index=True, max_length=200)
    kind: str = Field(max_length=16)
    value: str = Field(max_length=320)


class Trigger(SQLModel, table=True):
    """A trigger attached to a target status."""

    __tablename__ = "triggers"
    # ids are kept in event results, moves and timelines: never reuse a deleted one
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(index=True, max_length=100)
    status: str = Field(max_length=64)
    name: str = Field(default="", max_length=200)
    allow_backwards: bool = False
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    conditions: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    secret: str = Field(unique=True, max_length=64)
    created_at: str = Field(max_length=40)


class EventRecord(SQLModel, table=True):
    """A processed event with its result (orders, moves, trace); ``id`` is unique.
    ``moved``: whether it moved an order (its result has moves)."""

    __tablename__ = "events"
    __table_args__ = (  # the lists' keyset (newest first) by type, by moved, by both
        Index("ix_events_type_seq", "type", "seq"),
        Index("ix_events_moved_seq", "moved", "seq"),
        Index("ix_events_type_moved_seq", "type", "moved", "seq"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True, max_length=200)
    type: str = Field(max_length=100)
    order_id: str | None = Field(default=None, max_length=200)
    contact: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: str | None = Field(default=None, max_length=40)
    received_at: str = Field(max_length=40)
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    moved: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class MoveRecord(SQLModel, table=True):
    """A committed move, in commit order (``seq``); manual moves have no trigger."""

    __tablename__ = "moves"

    seq: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True, max_length=200)
    from_status: str = Field(max_length=64)
    to_status: str = Field(max_length=64)
    trigger_id: int | None = None
    event_id: str | None = Field(default=None, max_length=200)
    event_type: str | None = Field(default=None, max_length=100)
    at: str = Field(max_length=40)
    action_id: int | None = Field(default=None, index=True)
    """The action whose run made the move (``None``: a trigger's or a manual move)."""


class TimelineEntry(SQLModel, table=True):
    """One entry of an order's timeline."""

    __tablename__ = "timeline"
    __table_args__ = (Index("ix_timeline_order_id_seq", "order_id", "seq"),)  # paged, in order

    seq: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=200)
    at: str = Field(max_length=40)
    kind: str = Field(max_length=40)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class PluginMark(SQLModel, table=True):
    """A key a plugin claimed in a namespace (``StateStore.claim``)."""

    __tablename__ = "plugin_marks"
    __table_args__ = (UniqueConstraint("namespace", "key", name="uq_plugin_marks"),)

    id: int | None = Field(default=None, primary_key=True)
    namespace: str = Field(max_length=100)
    key: str = Field(max_length=500)
    created_at: str = Field(max_length=40)


class KernelSetting(SQLModel, table=True):
    """Values the kernel keeps for itself, e.g. the generated signing secret."""

    __tablename__ = "kernel_settings"

    key: str = Field(primary_key=True, max_length=100)
    value: str = Field(max_length=1000)


class Action(SQLModel, table=True):
    """An action attached to a status: what happens when an order enters it."""

    __tablename__ = "actions"
    # ids are kept by runs, moves and timelines: never reuse a deleted one
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(index=True, max_length=64)
    type: str = Field(max_length=100)
    name: str = Field(default="", max_length=200)
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    conditions: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    delay: str | None = Field(default=None, max_length=64)
    after_previous: bool = False
    enabled: bool = True
    position: int = 0
    created_at: str = Field(max_length=40)


class ActionRun(SQLModel, table=True):
    """A run of an action for an order that entered its status: a durable job.

    ``next_at`` is when the scheduler must look at it next (its due time or its retry
    while ``pending``, its lease's end while ``running``, none once it ended or while it
    waits for the run before it); ``epoch`` is the order's ``status_epoch`` when it was
    scheduled."""

    __tablename__ = "action_runs"
    __table_args__ = (
        Index("ix_action_runs_order_id_state", "order_id", "state"),
        Index("ix_action_runs_action_id_state", "action_id", "state"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    action_id: int
    order_id: str = Field(max_length=200)
    status: str = Field(max_length=64)
    epoch: int
    state: str = Field(max_length=16)
    entered_at: str = Field(max_length=40)
    counts_from: str | None = Field(default=None, max_length=40)
    due_at: str | None = Field(default=None, max_length=40)
    next_at: str | None = Field(default=None, index=True, max_length=40)
    after_action_id: int | None = None
    event_id: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    started_at: str | None = Field(default=None, max_length=40)
    finished_at: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=1000)
    lease_token: str | None = Field(default=None, max_length=40)


class AuditEntry(SQLModel, table=True):
    """One change to the definitions (triggers, statuses, plugins' endpoints, ...) or
    one privacy operation, with the key that made it; ids are never reused."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_kind_id", "kind", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    at: str = Field(max_length=40)
    key_name: str | None = Field(default=None, max_length=100)
    action: str = Field(max_length=40)
    kind: str = Field(max_length=60)
    resource_id: str | None = Field(default=None, max_length=200)
    before: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: Any = Field(default=None, sa_column=Column(JSON, nullable=True))


RUN_STATES = ("pending", "running", "done", "skipped", "canceled", "failed")
ENDED_STATES = frozenset({"done", "skipped", "canceled", "failed"})

DEFAULT_PIPELINE = (
    ("N", "New", 100, "process"),
    ("P", "Paid", 150, "process"),
    ("S", "Shipped", 175, "process"),
    ("F", "Completed", 200, "success"),
    ("D", "Canceled", 250, "failure"),
)
SEMANTICS = ("process", "success", "failure")
FINAL_SEMANTICS = frozenset({"success", "failure"})
