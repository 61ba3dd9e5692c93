"""Alembic environment: runs on the connection that
:func:`statusflow.store.database.migrate` passes."""

from alembic import context
from sqlmodel import SQLModel

import statusflow.store.schema  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `statusflow migrate` or statusflow.store.database.migrate"
    )
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
