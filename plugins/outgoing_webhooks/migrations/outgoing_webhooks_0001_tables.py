"""outgoing_webhooks: endpoints, the outbox of moves, deliveries

Revision ID: outgoing_webhooks_0001
Revises:
Depends on: 0001 (the kernel's first revision)
"""

import sqlalchemy as sa
from alembic import op

revision = "outgoing_webhooks_0001"
down_revision = None
branch_labels = ("outgoing_webhooks",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "outgoing_webhooks_endpoints",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=500), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("updated_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "outgoing_webhooks_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("from_status", sa.String(length=64), nullable=False),
        sa.Column("to_status", sa.String(length=64), nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("event_type", sa.String(length=100), nullable=True),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outgoing_webhooks_moves_order_id", "outgoing_webhooks_moves", ["order_id"])
    op.create_table(
        "outgoing_webhooks_deliveries",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_id", sa.String(length=100), nullable=False),
        sa.Column("move_seq", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(length=40), nullable=False),
        sa.Column("next_attempt_at", sa.String(length=40), nullable=False),
        sa.Column("give_up_at", sa.String(length=40), nullable=False),
        sa.Column("lease_until", sa.String(length=40), nullable=True),
        sa.Column("lease_token", sa.String(length=40), nullable=True),
        sa.Column("last_attempt_at", sa.String(length=40), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("delivered_at", sa.String(length=40), nullable=True),
        sa.Column("failed_at", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["outgoing_webhooks_endpoints.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_outgoing_webhooks_deliveries_due",
        "outgoing_webhooks_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_index(
        "ix_outgoing_webhooks_deliveries_chain",
        "outgoing_webhooks_deliveries",
        ["endpoint_id", "order_id", "move_seq"],
    )


def downgrade() -> None:
    op.drop_table("outgoing_webhooks_deliveries")
    op.drop_table("outgoing_webhooks_moves")
    op.drop_table("outgoing_webhooks_endpoints")
