"""The database: schema, connections, statements, migrations."""
