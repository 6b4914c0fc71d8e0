"""The ledger writes what it is given in batches, bounds what it keeps, and counts its losses."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import fields

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.ledger import Ledger, LedgerLimits, UsageEntry
from pipeline.ledger.writer import COLUMNS
from tests.support.ledger import (
    FLUSH_S,
    CountingWriter,
    entry,
    flushed,
    migrated_engine,
    usage_rows,
)
from tests.support.polling import poll


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(database_url) as engine:
        yield engine


class Unreachable:
    """A writer whose database is never there."""

    def __init__(self) -> None:
        self.attempts = 0

    async def write(self, entries: Sequence[UsageEntry]) -> None:
        self.attempts += 1
        raise ConnectionRefusedError("no database")

    async def close(self) -> None:
        """Nothing held."""


async def test_entries_are_written_in_batches(engine: AsyncEngine):
    # Given ten entries waiting before the writer starts, batches of four
    writer = CountingWriter(engine)
    ledger = Ledger(writer, LedgerLimits(batch_size=4, flush_interval_s=5))
    for i in range(10):
        ledger.record(entry(f"req-{i}", input_tokens=i))

    # When the writer runs
    ledger.start()
    await flushed(ledger)

    # Then they went in three statements, every row as recorded
    assert writer.batches == [4, 4, 2]
    rows = await usage_rows(engine)
    assert [r["request_id"] for r in rows] == [f"req-{i}" for i in range(10)]
    assert [r["input_tokens"] for r in rows] == list(range(10))
    assert rows[0]["at"] is not None
    assert rows[0]["status"] == "ok"
    assert (ledger.written, ledger.dropped, ledger.pending) == (10, 0, 0)
    await ledger.stop(FLUSH_S)


async def test_a_part_batch_is_written_after_the_flush_interval(engine: AsyncEngine):
    ledger = Ledger(CountingWriter(engine), LedgerLimits(batch_size=500, flush_interval_s=0.05))
    ledger.start()

    # When fewer entries than a batch are recorded, the interval writes them anyway
    ledger.record(entry("alone"))
    rows = await poll(
        lambda: usage_rows(engine),
        lambda r: len(r) == 1,
        timeout_s=FLUSH_S,
        what="the lone entry written",
    )
    assert rows[0]["request_id"] == "alone"
    await ledger.stop(FLUSH_S)


async def test_a_full_spool_drops_its_oldest_and_counts_them(engine: AsyncEngine):
    # Given a spool of five and no writer running yet
    ledger = Ledger(CountingWriter(engine), LedgerLimits(batch_size=100, spool_max=5))

    # When eight are recorded
    for i in range(8):
        ledger.record(entry(f"req-{i}"))

    # Then the three oldest were dropped, counted; the five newest are written
    assert (ledger.dropped, ledger.pending, ledger.spool_size) == (3, 5, 5)
    ledger.start()
    await flushed(ledger)
    assert [r["request_id"] for r in await usage_rows(engine)] == [f"req-{i}" for i in range(3, 8)]
    assert (ledger.written, ledger.dropped) == (5, 3)
    await ledger.stop(FLUSH_S)


async def test_record_never_raises_nor_waits_when_the_database_is_away():
    # Given a database that never answers
    writer = Unreachable()
    ledger = Ledger(writer, LedgerLimits(batch_size=2, spool_max=10, retry_max_s=0.05))
    ledger.start()

    # When many more entries than the spool holds are recorded
    for i in range(25):
        ledger.record(entry(f"req-{i}"))
    await poll(lambda: _value(writer.attempts), lambda n: n >= 3, timeout_s=FLUSH_S, what="retries")

    # Then nothing was raised; what is kept is bounded (spool plus the batch in hand)
    assert ledger.written == 0
    assert ledger.pending <= 10 + 2
    assert ledger.dropped + ledger.pending == 25
    assert not ledger.database_up

    # And a stop gives up within its bound, counting what it could not write
    await ledger.stop(0.2)
    assert (ledger.pending, ledger.dropped) == (0, 25)


async def test_stop_writes_what_is_pending(engine: AsyncEngine):
    ledger = Ledger(CountingWriter(engine), LedgerLimits(batch_size=1000, flush_interval_s=60))
    ledger.start()
    for i in range(7):
        ledger.record(entry(f"req-{i}"))

    await ledger.stop(FLUSH_S)

    assert len(await usage_rows(engine)) == 7
    assert (ledger.written, ledger.dropped, ledger.pending) == (7, 0, 0)


async def test_values_longer_than_their_column_are_cut_not_refused(engine: AsyncEngine):
    # A bus event's job id may be 128 characters; the column holds 64
    ledger = Ledger(CountingWriter(engine), LedgerLimits(flush_interval_s=0.05))
    ledger.start()
    ledger.record(entry("long", job_id="j" * 128, error_type="e" * 100))
    await flushed(ledger)

    (row,) = await usage_rows(engine)
    assert row["job_id"] == "j" * 64
    assert row["error_type"] == "e" * 64
    assert ledger.refused == 0
    await ledger.stop(FLUSH_S)


async def _value(value: int) -> int:
    return value


def test_an_entry_has_every_column_of_the_table():
    assert {f.name for f in fields(UsageEntry)} == set(COLUMNS)


async def test_an_entry_that_cannot_be_a_row_is_refused_not_retried_forever(engine: AsyncEngine):
    # Given a batch holding an entry whose tenant is not text, then a good one
    ledger = Ledger(CountingWriter(engine), LedgerLimits(batch_size=1, flush_interval_s=0.05))
    ledger.record(entry("bad", tenant=12345))
    ledger.record(entry("good"))
    ledger.start()
    await flushed(ledger)

    # Then the bad one is counted as refused and the good one written after it
    assert [r["request_id"] for r in await usage_rows(engine)] == ["good"]
    assert (ledger.refused, ledger.written) == (1, 1)
    await ledger.stop(FLUSH_S)


class Observer:
    """Notes what the ledger tells the metrics."""

    def __init__(self) -> None:
        self.spool: list[int] = []
        self.dropped = 0

    def ledger_spool(self, records: int) -> None:
        self.spool.append(records)

    def ledger_dropped(self, records: int = 1) -> None:
        self.dropped += records


async def test_the_metrics_are_told_the_spool_size_and_every_drop(engine: AsyncEngine):
    observer = Observer()
    limits = LedgerLimits(batch_size=2, spool_max=3, flush_interval_s=0.05)
    ledger = Ledger(CountingWriter(engine), limits, observer)
    for i in range(5):
        ledger.record(entry(f"req-{i}"))
    assert observer.dropped == 2

    ledger.start()
    await flushed(ledger)
    assert observer.spool[-1] == 0
    assert observer.dropped == ledger.dropped == 2
    await ledger.stop(FLUSH_S)
