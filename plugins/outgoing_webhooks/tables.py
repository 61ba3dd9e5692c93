"""The plugin's three tables (created by ``migrations/``, used with SQLAlchemy Core).

``outgoing_webhooks_endpoints``
    Where to send: from the configuration (``source = "config"``) or the API.
``outgoing_webhooks_moves``
    The outbox of moves: one row per move, written by ``prepare_moves`` in the move's
    own transaction, deleted when the worker has turned it into deliveries (fan-out).
    Its ids order the moves of an order (``move_seq`` of their deliveries), so they are
    never reused: ``AUTOINCREMENT`` on SQLite, where a plain rowid would start over
    once the table is empty.
``outgoing_webhooks_deliveries``
    One row per (move, endpoint): the body to send, its state (``pending``,
    ``delivered``, ``failed``), its schedule and lease, and the last attempt's result.

Times are ISO-8601 UTC strings of one fixed width (``statusflow.utc_now``), so
they compare correctly as strings on both databases.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ENDPOINTS = sa.Table(
    "outgoing_webhooks_endpoints",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("secret", sa.String(500), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

MOVES = sa.Table(
    "outgoing_webhooks_moves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(200), nullable=False, index=True),
    sa.Column("from_status", sa.String(64), nullable=False),
    sa.Column("to_status", sa.String(64), nullable=False),
    sa.Column("trigger_id", sa.Integer, nullable=True),
    sa.Column("event_id", sa.String(200), nullable=True),
    sa.Column("event_type", sa.String(100), nullable=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("action_id", sa.Integer, nullable=True),
    sqlite_autoincrement=True,  # ids order moves: never reuse one (SQLite would)
)

DELIVERIES = sa.Table(
    "outgoing_webhooks_deliveries",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column(
        "endpoint_id",
        sa.String(100),
        sa.ForeignKey("outgoing_webhooks_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("move_seq", sa.Integer, nullable=False),
    sa.Column("order_id", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("next_attempt_at", sa.String(40), nullable=False),
    sa.Column("give_up_at", sa.String(40), nullable=False),
    sa.Column("lease_until", sa.String(40), nullable=True),
    sa.Column("lease_token", sa.String(40), nullable=True),
    sa.Column("last_attempt_at", sa.String(40), nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(1000), nullable=True),
    sa.Column("delivered_at", sa.String(40), nullable=True),
    sa.Column("failed_at", sa.String(40), nullable=True),
    sa.Index("ix_outgoing_webhooks_deliveries_due", "state", "next_attempt_at"),
    sa.Index("ix_outgoing_webhooks_deliveries_chain", "endpoint_id", "order_id", "move_seq"),
    sqlite_autoincrement=True,  # seq is the list's cursor: never reuse one
)

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
STATES = (PENDING, DELIVERED, FAILED)
