"""Writing usage rows into a SQLite file from a thread of the writer's own.

Through SQLAlchemy's async engine a row cost ~28 us of CPU (aiosqlite hands every call to
its thread, and the adapter layers add their own); the stdlib driver on one thread that
also builds the rows costs ~15 us, and SQLite does its part of that with the GIL released.
The statement is the same compiled one (`RowShape`); the connection is the writer's alone
and shares the engine's database file, in WAL mode so that readers never wait on it.
"""

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.ledger.entry import UsageEntry
from pipeline.ledger.writer import RowShape, RowWriter

# Rows to one statement: SQLite binds at most 32,766 values to one (21 a row).
_ROWS_PER_STATEMENT: Final = 500
# Below the ledger's write timeout (10 s by default): a locked file fails the write in the
# thread, to be retried, before the ledger stops waiting for it.
_BUSY_TIMEOUT_S: Final = 5.0


class SqliteRowWriter:
    """Inserts batches of usage entries into a SQLite file, one transaction a batch."""

    def __init__(self, engine: AsyncEngine, *, busy_timeout_s: float = _BUSY_TIMEOUT_S) -> None:
        database = engine.url.database
        if not database or database == ":memory:":
            raise ValueError("SqliteRowWriter needs a SQLite file, not an in-memory database")
        self._path = database
        self._busy_timeout_s = busy_timeout_s
        self._shape = RowShape(engine.dialect)
        head, values, one = self._shape.sql.partition(" VALUES ")
        if not values:
            raise ValueError("the compiled INSERT has no VALUES clause")
        self._head, self._values = f"{head}{values}", one
        self._statements: dict[int, str] = {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptbus-ledger")
        self._connection: sqlite3.Connection | None = None

    async def write(self, entries: Sequence[UsageEntry]) -> None:
        """Insert `entries` in one transaction; raises what the database raised."""
        batch = list(entries)  # the ledger's list is its own: the thread gets a copy
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write, batch)

    async def close(self) -> None:
        """Close the connection and end the thread (after a write in progress)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _write(self, entries: list[UsageEntry]) -> None:
        rows = self._shape.rows(entries)
        connection = self._connection or self._connect()
        try:
            with connection:  # one transaction: committed, or rolled back on an error
                for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                    chunk = rows[start : start + _ROWS_PER_STATEMENT]
                    connection.execute(self._statement(len(chunk)), list(chain(*chunk)))
        except sqlite3.Error:
            # A connection that failed may be broken (a file replaced, say): a fresh one next.
            self._close()
            raise

    def _statement(self, rows: int) -> str:
        """The INSERT of `rows` rows in one statement."""
        statement = self._statements.get(rows)
        if statement is None:
            statement = self._head + ", ".join([self._values] * rows)
            self._statements[rows] = statement  # bounded: one per size up to the chunk's
        return statement

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout_s)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def row_writer(engine: AsyncEngine) -> SqliteRowWriter | RowWriter:
    """The writer for `engine`'s database: a SQLite file's own, else the async engine's."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return SqliteRowWriter(engine)
    return RowWriter(engine)
