"""easypost: tracking numbers on record, shipped claims, the orders' tracking-number index

Revision ID: easypost_0001
Revises:
Depends on: 0001 (the kernel's first revision: the orders table)
"""

import sqlalchemy as sa
from alembic import op

revision = "easypost_0001"
down_revision = None
branch_labels = ("easypost",)
depends_on = "0001"

# The comparison form of an order's fields.tracking_number (statusflow_easypost.tables
# writes the same expression in its lookup, so that the lookup uses this index).
ORDERS_INDEX = {
    "sqlite": "upper(replace(json_extract(doc, '$.fields.tracking_number'), ' ', ''))",
    "postgresql": "upper(replace((doc -> 'fields') ->> 'tracking_number', ' ', ''))",
}


def upgrade() -> None:
    op.create_table(
        "easypost_tracking_numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tracking_number", sa.String(length=200), nullable=False),
        sa.Column("carrier", sa.String(length=100), nullable=True),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_easypost_tracking_numbers_tracking_number",
        "easypost_tracking_numbers",
        ["tracking_number"],
    )
    op.create_table(
        "easypost_shipped",
        sa.Column("tracker_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("tracker_id", "order_id"),
    )
    expression = ORDERS_INDEX[op.get_bind().dialect.name]
    op.execute(f"CREATE INDEX ix_easypost_orders_tracking_number ON orders (({expression}))")


def downgrade() -> None:
    op.execute("DROP INDEX ix_easypost_orders_tracking_number")
    op.drop_table("easypost_shipped")
    op.drop_index(
        "ix_easypost_tracking_numbers_tracking_number", table_name="easypost_tracking_numbers"
    )
    op.drop_table("easypost_tracking_numbers")
