"""the audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00

Every change to triggers, statuses and plugins' definitions (webhook endpoints, actions),
and every deletion or erasure of personal data, with the API key that made it.
AUTOINCREMENT on SQLite, so that an id (and a cursor holding it) is never reused.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("key_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("resource_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_kind_id", ["kind", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_kind_id")
    op.drop_table("audit_log")
