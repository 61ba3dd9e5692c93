"""notes: the ledger of moves

Revision ID: notes_0001
Revises:
Depends on: 0002 (the kernel's head: alembic_version then records notes_0001 alone)
"""

import sqlalchemy as sa
from alembic import op

revision = "notes_0001"
down_revision = None
branch_labels = ("notes",)
depends_on = "0002"


def upgrade() -> None:
    op.create_table(
        "notes_moves",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("to_status", sa.String(length=50), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("notes_moves")
