"""The Alembic revisions of statusflow-reviews (see ``migration_locations``)."""
