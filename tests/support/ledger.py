"""Usage ledger helpers: entries to record, the rows the database holds, a counting writer."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.db import create_engine, upgrade
from pipeline.db.tables import UsageRecord
from pipeline.ledger import OK, Ledger, UsageEntry, row_writer
from tests.support.settings import settings_for_test

# Long enough for a writer on a loaded machine; a test waits this long at most.
FLUSH_S = 30.0


def entry(request_id: str, **fields: Any) -> UsageEntry:
    """An answered request's entry, with `fields` overriding the defaults."""
    values: dict[str, Any] = {
        "tenant": "default",
        "request_id": request_id,
        "surface": "generate",
        "model": "flash",
        "status": OK,
        "latency_ms": 1.5,
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_usd": 0.001,
    }
    values.update(fields)
    return UsageEntry(**values)


@asynccontextmanager
async def migrated_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on `url` with the schema up to date; disposed afterwards."""
    engine = create_engine(settings_for_test(database_url=url))
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


async def usage_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every usage record in the database, oldest id first."""
    table = UsageRecord.__table__
    async with engine.connect() as connection:
        rows = (await connection.execute(select(table).order_by(table.c.id))).mappings().all()
    return [dict(row) for row in rows]


async def flushed(ledger: Ledger | None) -> None:
    """Wait until the ledger wrote what it was given."""
    assert ledger is not None, "the ledger is on"
    assert await ledger.flush(FLUSH_S), f"ledger did not flush: {ledger.pending} pending"


class CountingWriter:
    """The real row writer of the engine's database, noting the size of each batch it wrote."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._writer = row_writer(engine)
        self.batches: list[int] = []

    async def write(self, entries: Sequence[UsageEntry]) -> None:
        await self._writer.write(entries)
        self.batches.append(len(entries))

    async def close(self) -> None:
        await self._writer.close()


def at(text: str) -> datetime:
    """A UTC time from ISO-8601."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
