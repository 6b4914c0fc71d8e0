"""The async SQLAlchemy engine for the configured database."""

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pipeline.settings import Settings

DATABASE_FILE = "promptbus.db"
# How long a writer waits for SQLite's lock held by another process before it gives up.
SQLITE_BUSY_TIMEOUT_S = 30.0
# Connections each process keeps to PostgreSQL: the ledger writer, the key lookups, the API.
POOL_SIZE = 5
POOL_OVERFLOW = 5
POOL_TIMEOUT_S = 10.0


def database_url(settings: Settings) -> URL:
    """The database's URL, with its async driver: asyncpg or aiosqlite.

    Unset, it is a SQLite file under the data directory. `postgresql://` and
    `postgres://` are taken to mean asyncpg; `sqlite://` aiosqlite.
    """
    if settings.database_url is None:
        path = (settings.data_dir / DATABASE_FILE).resolve()
        return URL.create("sqlite+aiosqlite", database=str(path))
    url = make_url(settings.database_url.get_secret_value())
    driver = url.drivername
    if driver in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    if driver == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if driver in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        return url
    raise ValueError(f"unsupported database {driver!r}: use postgresql:// or sqlite://")


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for `settings`' database; a SQLite file's directory is made if missing."""
    url = database_url(settings)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_async_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,
    )


def _sqlite_engine(url: URL) -> AsyncEngine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
        # WAL: readers (the usage API) never block the ledger's writer, nor it them.
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
