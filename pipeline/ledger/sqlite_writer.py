"""Writing usage rows into a SQLite file, on the event loop, a slice at a time.

Through SQLAlchemy's async engine a row cost ~28 us of CPU (aiosqlite hands every call to a
thread of its own, and its adapter layers add theirs). A thread of the writer's own did not
help: Python in a second thread costs the loop far more than its own CPU, since the loop
waits for the GIL each time that thread wants it (cache hits fell to ~0.75x of the ledger
off). So the stdlib driver runs here, on the loop, many rows to a statement, in slices of
`_ROWS_PER_SLICE` with the loop let through between them, all in one transaction.

What could make the loop wait is kept out of it: the connection does not wait for another
writer's lock (`_BUSY_TIMEOUT_S`: the batch fails, and the ledger retries it later), and it
never checkpoints the WAL itself; a checkpoint runs in a thread every `_CHECKPOINT_EVERY`
batches (SQLite's C code, which holds no GIL while it copies and syncs).
"""

import asyncio
import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.ledger.entry import UsageEntry
from pipeline.ledger.writer import RowShape, RowWriter

# Rows to one statement, and between two turns of the loop (~0.3 ms of work).
_ROWS_PER_SLICE: Final = 25
# A lock held by another writer (an admin change, a key's last use) fails the batch at once.
_BUSY_TIMEOUT_S: Final = 0.005
_CHECKPOINT_EVERY: Final = 200


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
        self._connection: sqlite3.Connection | None = None
        self._batches = 0
        self._checkpoint: asyncio.Task[None] | None = None

    async def write(self, entries: Sequence[UsageEntry]) -> None:
        """Insert `entries` in one transaction; raises what the database raised."""
        rows = self._shape.rows(entries)
        connection = self._connection or self._connect()
        try:
            connection.execute("BEGIN")
            for start in range(0, len(rows), _ROWS_PER_SLICE):
                if start:
                    await asyncio.sleep(0)  # let the requests waiting on the loop through
                piece = rows[start : start + _ROWS_PER_SLICE]
                connection.execute(self._statement(len(piece)), list(chain(*piece)))
            connection.commit()
        except BaseException:
            # Rolled back whole, however it failed (a cancel included): retried whole.
            self._close()
            raise
        self._batches += 1
        if self._batches % _CHECKPOINT_EVERY == 0 and self._checkpoint is None:
            self._checkpoint = asyncio.create_task(asyncio.to_thread(self._checkpoint_wal))
            self._checkpoint.add_done_callback(self._checkpointed)

    async def close(self) -> None:
        """Wait for a checkpoint in progress, then close the connection."""
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        self._close()

    def _statement(self, rows: int) -> str:
        """The INSERT of `rows` rows in one statement."""
        statement = self._statements.get(rows)
        if statement is None:
            statement = self._head + ", ".join([self._values] * rows)
            self._statements[rows] = statement  # bounded: one per size up to the slice's
        return statement

    def _connect(self) -> sqlite3.Connection:
        # isolation_level None: the transaction is this writer's own BEGIN and commit.
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _checkpoint_wal(self) -> None:
        """Copy the WAL back into the file (PASSIVE: readers and the writer go on)."""
        connection = sqlite3.connect(self._path, timeout=1.0)
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    def _checkpointed(self, task: "asyncio.Task[None]") -> None:
        self._checkpoint = None
        if not task.cancelled():
            task.exception()  # a failed checkpoint is retried after the next batches

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
