"""The SQLite file's own writer: rows read back by the engine, a locked file and a killed
writing process survived."""

import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.ledger import Ledger, LedgerLimits, RowWriter, SqliteRowWriter, row_writer
from pipeline.ledger.sqlite_child import stored_time
from pipeline.ledger.writer import sqlite_time
from tests.support.ledger import FLUSH_S, entry, flushed, migrated_engine, usage_rows
from tests.support.polling import poll


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}") as engine:
        yield engine


async def _value(value: int) -> int:
    return value


async def test_a_sqlite_file_gets_its_process_writer_and_other_databases_the_engine_one(
    engine: AsyncEngine,
):
    writer = row_writer(engine)
    assert isinstance(writer, SqliteRowWriter)
    await writer.close()
    async with migrated_engine("sqlite+aiosqlite:///:memory:") as in_memory:
        # An in-memory database is the engine connection's own: no other connection sees it.
        assert isinstance(row_writer(in_memory), RowWriter)


async def test_rows_written_by_the_writer_read_back_through_the_engine(engine: AsyncEngine):
    ledger = Ledger(row_writer(engine), LedgerLimits(batch_size=3, flush_interval_s=0.05))
    ledger.start()
    for i in range(7):
        ledger.record(entry(f"r-{i}", tenant="acme", cache_tier="l1", saved_usd=0.25))
    await flushed(ledger)
    await ledger.stop(FLUSH_S)

    rows = await usage_rows(engine)
    assert [r["request_id"] for r in rows] == [f"r-{i}" for i in range(7)]
    assert {(r["tenant"], r["cache_tier"], r["saved_usd"]) for r in rows} == {("acme", "l1", 0.25)}
    assert rows[0]["at"].year >= 2026


async def test_a_locked_file_spools_the_records_and_writes_them_once_it_is_free(
    engine: AsyncEngine,
):
    # Given a writer whose lock waits are short, and another connection holding the file
    assert engine.url.database is not None
    writer = SqliteRowWriter(engine, busy_timeout_s=0.05)
    ledger = Ledger(writer, LedgerLimits(batch_size=2, flush_interval_s=0.05, retry_max_s=0.1))
    ledger.start()
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")

        # When records arrive while the file is locked
        for i in range(5):
            ledger.record(entry(f"locked-{i}"))
        await poll(
            lambda: _value(ledger.failed_writes),
            lambda n: n >= 2,
            timeout_s=FLUSH_S,
            what="failed writes",
        )
        assert ledger.pending == 5
        assert not ledger.database_up

        # Then once the lock is gone every one of them is written, once
        holder.execute("ROLLBACK")
        await flushed(ledger)
    finally:
        holder.close()
        await ledger.stop(FLUSH_S)
    ids = [r["request_id"] for r in await usage_rows(engine)]
    assert sorted(ids) == [f"locked-{i}" for i in range(5)]
    assert ledger.dropped == 0


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 12, 7, 18, 32, 39, 470149, tzinfo=UTC),
        datetime(2026, 12, 7, 0, 0, 0, 0, tzinfo=UTC),
        datetime(2027, 1, 1, 9, 5, 3, 7),
    ],
)
def test_times_are_stored_as_sqlalchemys_sqlite_datetime_stores_them(at: datetime):
    # The usage API compares and cuts these texts: they must be SQLAlchemy's own format,
    # from the writing process (which gets orjson's text of the time) as from the loop.
    dialect = sqlite.dialect()
    stored_by_sqlalchemy = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert stored_by_sqlalchemy is not None
    assert sqlite_time(at) == stored_by_sqlalchemy(at)
    assert stored_time(orjson.loads(orjson.dumps(at))) == stored_by_sqlalchemy(at)


async def test_a_killed_writing_process_is_replaced_and_its_batch_written_once(
    engine: AsyncEngine,
):
    # Given a ledger whose writing process has written a batch
    writer = SqliteRowWriter(engine)
    ledger = Ledger(writer, LedgerLimits(batch_size=2, flush_interval_s=0.05, retry_max_s=0.1))
    ledger.start()
    try:
        ledger.record(entry("before-0"))
        ledger.record(entry("before-1"))
        await flushed(ledger)
        first = writer.child_pid
        assert first is not None

        # When that process is killed and more records arrive
        os.kill(first, signal.SIGKILL)
        for i in range(5):
            ledger.record(entry(f"after-{i}"))
        await flushed(ledger)

        # Then a new process wrote every one of them, once
        assert writer.child_pid not in (None, first)
    finally:
        await ledger.stop(FLUSH_S)
    ids = sorted(r["request_id"] for r in await usage_rows(engine))
    assert ids == ["after-0", "after-1", "after-2", "after-3", "after-4", "before-0", "before-1"]
    assert ledger.dropped == 0
    assert writer.child_pid is None  # stopped with the ledger


async def test_a_row_too_long_for_its_column_is_cut_by_the_writing_process(engine: AsyncEngine):
    ledger = Ledger(row_writer(engine), LedgerLimits(batch_size=1, flush_interval_s=0.05))
    ledger.start()
    ledger.record(entry("long", error_type="x" * 5000))
    await flushed(ledger)
    await ledger.stop(FLUSH_S)
    (row,) = await usage_rows(engine)
    assert 0 < len(row["error_type"]) < 5000
    assert set(row["error_type"]) == {"x"}
