"""The schema comes from Alembic migrations, on SQLite and on the real PostgreSQL."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from pipeline.db import create_engine, database_url, upgrade
from pipeline.db.migrate import head
from pipeline.db.tables import Base
from tests.support.settings import settings_for_test

TABLES = {"tenants", "api_keys", "budgets", "usage_records", "alembic_version"}


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_upgrade_makes_every_table_and_matches_the_models(database_url: str) -> None:
    engine = create_engine(settings_for_test(database_url=database_url))
    try:
        assert await upgrade(engine) == head()
        # A second run finds nothing to do.
        assert await upgrade(engine) == head()
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            differences = await connection.run_sync(_differences)
        assert names >= TABLES
        assert differences == []
    finally:
        await engine.dispose()


async def test_processes_that_start_together_migrate_once(database_url: str) -> None:
    engines = [create_engine(settings_for_test(database_url=database_url)) for _ in range(3)]
    try:
        revisions = await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert revisions == [head()] * 3
    finally:
        for engine in engines:
            await engine.dispose()


def test_the_default_database_is_a_file_under_the_data_directory(tmp_path: Path) -> None:
    url = database_url(settings_for_test(data_dir=tmp_path / "data"))
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str((tmp_path / "data" / "promptbus.db").resolve())


def test_postgres_urls_use_asyncpg() -> None:
    settings = settings_for_test(database_url="postgresql://u:secret@db.internal:5432/pb")
    url = database_url(settings)
    assert url.drivername == "postgresql+asyncpg"
    assert "secret" not in url.render_as_string(hide_password=True)


def test_the_cli_upgrades_and_names_the_revision(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PROMPTBUS_DATABASE_URL": database_url, "PROMPTBUS_LOG_LEVEL": "error"}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"is at revision {head()}" in done.stdout
