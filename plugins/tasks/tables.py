"""The plugin's one table, ``tasks`` (created by ``migrations/``, used with SQLAlchemy Core).

One row per task a ``task.create`` run made: inserted in the run's own transaction
(``ActionContext.insert``), so a retried run never makes a task twice; ``completed_at``
is set by ``POST /api/tasks/{id}/complete``. Ids are never reused (``AUTOINCREMENT`` on
SQLite), so that a task's id always names the same task.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

TASKS = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(200), nullable=False, index=True),
    sa.Column("action_id", sa.Integer, nullable=True),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("responsible_id", sa.String(200), nullable=True),
    sa.Column("deadline_at", sa.String(40), nullable=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("completed_at", sa.String(40), nullable=True),
    sqlite_autoincrement=True,
)
