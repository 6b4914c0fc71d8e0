"""Writing usage rows: many rows in one INSERT, in one transaction."""

from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.db.tables import UsageRecord
from pipeline.ledger.entry import UsageEntry

# A batch the database refuses for its content (not for being unreachable): writing it
# again cannot succeed, so it is dropped rather than retried forever.
REFUSED = (DataError, IntegrityError)


class RowWriter:
    """Inserts batches of usage entries into `usage_records`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = insert(UsageRecord)

    async def write(self, entries: Sequence[UsageEntry]) -> None:
        """Insert `entries` in one statement and transaction; raises what the database raised."""
        rows = [entry.row() for entry in entries]
        async with self._engine.begin() as connection:
            await connection.execute(self._insert, rows)
