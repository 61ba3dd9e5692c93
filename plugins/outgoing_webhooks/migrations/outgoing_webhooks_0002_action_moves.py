"""outgoing_webhooks: moves made by actions

Revision ID: outgoing_webhooks_0002
Revises: outgoing_webhooks_0001

The outbox keeps which action made a move (``action_id``), so that a delivery of such a
move says so rather than calling it manual.
"""

import sqlalchemy as sa
from alembic import op

revision = "outgoing_webhooks_0002"
down_revision = "outgoing_webhooks_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outgoing_webhooks_moves") as batch_op:
        batch_op.add_column(sa.Column("action_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outgoing_webhooks_moves") as batch_op:
        batch_op.drop_column("action_id")
