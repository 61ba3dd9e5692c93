"""reviews: the moves made by review triggers

Revision ID: reviews_0001
Revises:
Depends on: 0001 (the kernel's first revision)
"""

import sqlalchemy as sa
from alembic import op

revision = "reviews_0001"
down_revision = None
branch_labels = ("reviews",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "reviews_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("trigger_type", sa.String(length=100), nullable=False),
        sa.Column("from_status", sa.String(length=64), nullable=False),
        sa.Column("to_status", sa.String(length=64), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_reviews_moves_trigger_type", "reviews_moves", ["trigger_type"])


def downgrade() -> None:
    op.drop_index("ix_reviews_moves_trigger_type", table_name="reviews_moves")
    op.drop_table("reviews_moves")
