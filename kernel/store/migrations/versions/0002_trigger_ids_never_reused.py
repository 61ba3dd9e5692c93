"""trigger ids are never reused

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:30:00

Event results, moves and timelines keep the ids of the triggers that moved orders; a
deleted trigger's id handed to a new trigger would make them name the wrong one. SQLite
reuses the highest rowid once its row is deleted, unless the table is AUTOINCREMENT
(which needs the table rebuilt); PostgreSQL's sequences never hand out an id twice.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _rebuild_triggers(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "triggers", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild_triggers(autoincrement=True)
    if op.get_bind().dialect.name == "sqlite":
        # the rebuild counts from the highest id left; a deleted trigger may have had a
        # higher one, which moves still name: count from there
        op.execute(
            "UPDATE sqlite_sequence SET seq = max(seq,"
            " (SELECT coalesce(max(trigger_id), 0) FROM moves)) WHERE name = 'triggers'"
        )
        op.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'triggers', max(trigger_id)"
            " FROM moves WHERE trigger_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'triggers')"
            " HAVING max(trigger_id) IS NOT NULL"
        )


def downgrade() -> None:
    _rebuild_triggers(autoincrement=False)
