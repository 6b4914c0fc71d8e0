"""Bring the database's schema up to date with Alembic, once, whoever else starts with it.

`promptbus db upgrade` runs this, and so does every process at start-up. Processes that
start together take turns: an advisory lock on PostgreSQL, a file lock on SQLite.
"""

import asyncio
import fcntl
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant: the one advisory lock promptbus's migrations take on PostgreSQL.
_PG_LOCK = 0x70627573  # "pbus"


def alembic_config() -> Config:
    """Alembic's configuration, in code: there is no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(engine: AsyncEngine) -> str | None:
    """Apply every migration not yet applied; return the revision the database is at."""
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database not in (None, ":memory:"):
        flags = os.O_CREAT | os.O_RDWR
        lock = await asyncio.to_thread(os.open, f"{database}.migrate-lock", flags, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            return await _upgrade(engine)
        finally:
            os.close(lock)  # closing releases the lock
    return await _upgrade(engine)


async def _upgrade(engine: AsyncEngine) -> str | None:
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        return await connection.run_sync(_run_upgrade)


def _run_upgrade(connection: Connection) -> str | None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    return MigrationContext.configure(connection).get_current_revision()


def head() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
