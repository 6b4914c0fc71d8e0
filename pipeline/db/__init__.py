"""The database: tenants, API keys, budgets and the usage ledger, under Alembic migrations.

SQLite (aiosqlite, a file under the data directory) on the embedded default;
PostgreSQL (asyncpg) with `PROMPTBUS_DATABASE_URL`.
"""

from pipeline.db.engine import create_engine, database_url
from pipeline.db.migrate import upgrade

__all__ = ["create_engine", "database_url", "upgrade"]
