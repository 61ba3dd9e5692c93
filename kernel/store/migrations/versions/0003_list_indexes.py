"""the lists' indexes and events.moved

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:00:00

``GET /api/orders``, ``GET /api/events`` and the paged timeline read keyset pages
(docs/api.md, "Lists"): every filter they take has an index that gives its rows in the
list's order, so a page costs an index range scan of the page's rows whatever the
tables hold. ``events.moved`` (whether the event moved an order) is new, filled here
from the stored results. ``ix_orders_status`` and ``ix_timeline_order_id`` give way
to indexes that start with the same column.

On PostgreSQL the indexes are built in the migration's transaction, which blocks writes
to the tables meanwhile (about a minute for ten million events): migrate before
starting the new release (``statusflow migrate``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("moved", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    if op.get_bind().dialect.name == "postgresql":
        has_moves = "json_array_length(result -> 'moves') > 0"
    else:
        has_moves = "json_array_length(result, '$.moves') > 0"
    op.execute(f"UPDATE events SET moved = true WHERE {has_moves}")
    with op.batch_alter_table("events") as batch:
        batch.create_index("ix_events_type_seq", ["type", "seq"])
        batch.create_index("ix_events_moved_seq", ["moved", "seq"])
        batch.create_index("ix_events_type_moved_seq", ["type", "moved", "seq"])
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_status")
        batch.create_index("ix_orders_created_at_id", ["created_at", "id"])
        batch.create_index("ix_orders_status_created_at_id", ["status", "created_at", "id"])
    with op.batch_alter_table("timeline") as batch:
        batch.drop_index("ix_timeline_order_id")
        batch.create_index("ix_timeline_order_id_seq", ["order_id", "seq"])


def downgrade() -> None:
    with op.batch_alter_table("timeline") as batch:
        batch.drop_index("ix_timeline_order_id_seq")
        batch.create_index("ix_timeline_order_id", ["order_id"])
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_status_created_at_id")
        batch.drop_index("ix_orders_created_at_id")
        batch.create_index("ix_orders_status", ["status"])
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_type_moved_seq")
        batch.drop_index("ix_events_moved_seq")
        batch.drop_index("ix_events_type_seq")
        batch.drop_column("moved")
