"""actions and their runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 09:00:00

``actions`` (what happens when an order enters a status) and ``action_runs`` (one
durable job per action and order that entered its status); ``orders.status_epoch``
counts an order's moves, so that a run acts only while its order is still where it was
scheduled; ``moves.action_id`` names the action whose run made a move.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

String = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(
            sa.Column("status_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("moves") as batch_op:
        batch_op.add_column(sa.Column("action_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_moves_action_id"), ["action_id"], unique=False)
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", String(length=64), nullable=False),
        sa.Column("type", String(length=100), nullable=False),
        sa.Column("name", String(length=200), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("delay", String(length=64), nullable=True),
        sa.Column("after_previous", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_actions_status"), "actions", ["status"], unique=False)
    op.create_table(
        "action_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("order_id", String(length=200), nullable=False),
        sa.Column("status", String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("state", String(length=16), nullable=False),
        sa.Column("entered_at", String(length=40), nullable=False),
        sa.Column("counts_from", String(length=40), nullable=True),
        sa.Column("due_at", String(length=40), nullable=True),
        sa.Column("next_at", String(length=40), nullable=True),
        sa.Column("after_action_id", sa.Integer(), nullable=True),
        sa.Column("event_id", String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", String(length=40), nullable=True),
        sa.Column("finished_at", String(length=40), nullable=True),
        sa.Column("reason", String(length=1000), nullable=True),
        sa.Column("lease_token", String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_action_runs_next_at"), "action_runs", ["next_at"], unique=False)
    op.create_index(
        "ix_action_runs_order_id_state", "action_runs", ["order_id", "state"], unique=False
    )
    op.create_index(
        "ix_action_runs_action_id_state", "action_runs", ["action_id", "state"], unique=False
    )


def downgrade() -> None:
    op.drop_table("action_runs")
    op.drop_table("actions")
    with op.batch_alter_table("moves") as batch_op:
        batch_op.drop_index(batch_op.f("ix_moves_action_id"))
        batch_op.drop_column("action_id")
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("status_epoch")
