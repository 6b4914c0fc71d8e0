"""Alembic's environment: migrations run on the connection `pipeline.db.migrate` hands in."""

from alembic import context

from pipeline.db import batch_tables  # noqa: F401 - its tables join the metadata
from pipeline.db.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `promptbus db upgrade` (pipeline.db.migrate)")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it: batch mode does that for every migration.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
