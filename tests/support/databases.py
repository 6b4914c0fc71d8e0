"""Databases for tests: a SQLite file of the test's own, or a PostgreSQL database made for it.

PostgreSQL is the machine's (127.0.0.1:5432, trust auth, see ../shared/SERVICES.md): each
test gets a database of its own, dropped afterwards. A test that needs it fails when the
server is down; it is never skipped.
"""

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

POSTGRES_DSN = os.environ.get("PROMPTBUS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
BACKENDS = ("sqlite", "postgres")


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database; yields its URL and drops it afterwards."""
    name = f"pbtest_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(f"{POSTGRES_DSN}/postgres", timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{POSTGRES_DSN}/{name}"
    finally:
        admin = await asyncpg.connect(f"{POSTGRES_DSN}/postgres", timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'promptbus.db'}"
        return
    async with postgres_database() as url:
        yield url
