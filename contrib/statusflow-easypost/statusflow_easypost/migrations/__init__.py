"""The Alembic revisions of statusflow-easypost (see ``migration_locations``)."""
