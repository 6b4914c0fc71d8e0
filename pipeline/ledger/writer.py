"""Writing usage rows: one INSERT over a whole batch, in one transaction.

The statement is SQLAlchemy core's `insert()`, compiled once for the engine's dialect; each
batch goes to the driver's executemany as plain tuples. Compiling and processing every row
through the ORM cost ~200 us a row, on the loop that answers requests; this costs a few.
A SQLite file is written by `SqliteRowWriter` (pipeline/ledger/sqlite_writer.py) instead.
"""

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Final, cast

from sqlalchemy import Boolean, DateTime, Dialect, Float, Integer, String, Table, insert
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.db.tables import UsageRecord
from pipeline.ledger.entry import UsageEntry


class UnwritableRows(Exception):
    """Raised when entries cannot be made into rows (a value of the wrong type)."""


# A batch refused for its content (not for the database being away): writing it again cannot
# succeed, so it is dropped rather than retried forever.
REFUSED = (DataError, IntegrityError, sqlite3.DataError, sqlite3.IntegrityError, UnwritableRows)

TABLE: Final = cast(Table, UsageRecord.__table__)
COLUMNS: Final = tuple(column.name for column in TABLE.columns if column.name != "id")


def sqlite_time(at: datetime) -> str:
    """`at` as SQLAlchemy's SQLite DATETIME stores it (its fields as they are, any zone
    dropped), by the C `isoformat` instead of its Python formatting: a third of the cost."""
    return at.isoformat(" ", "microseconds")[:26]


class RowShape:
    """The INSERT statement for a dialect, and entries made into its parameter tuples."""

    def __init__(self, dialect: Dialect) -> None:
        compiled = insert(TABLE).compile(dialect=dialect, column_keys=list(COLUMNS))
        self.sql = str(compiled)
        order = tuple(compiled.positiontup or COLUMNS)
        # An entry's values as a tuple, in the statement's order.
        self.values = attrgetter(*order)
        # What the dialect does to a value before the driver sees it (SQLite: times as text);
        # numbers and flags go as they are (every driver takes Python's bool as a number).
        self._processors: list[tuple[int, Callable[[Any], Any]]] = []
        # PostgreSQL refuses a string longer than its column, and one refused row would hold
        # back its whole batch: a too-long value is cut instead.
        self.limits: list[tuple[int, int]] = []
        # Where SQLite's times are (made text by `sqlite_time`).
        self.times: list[int] = []
        for index, name in enumerate(order):
            column = TABLE.c[name]
            processor: Callable[[Any], Any] | None = sqlite_time
            if dialect.name != "sqlite" or not isinstance(column.type, DateTime):
                processor = column.type._cached_bind_processor(dialect)
            plain = isinstance(column.type, Float | Integer | Boolean)
            if processor is not None and not plain:
                self._processors.append((index, processor))
                if processor is sqlite_time:
                    self.times.append(index)
            if isinstance(column.type, String) and column.type.length is not None:
                self.limits.append((index, column.type.length))

    @property
    def only_times_processed(self) -> bool:
        """Whether the only values the dialect changes are SQLite's times."""
        return len(self._processors) == len(self.times)

    def rows(self, entries: Sequence[UsageEntry]) -> list[tuple[Any, ...]]:
        """The entries as the driver's parameter tuples, in the statement's order.

        Raises UnwritableRows when an entry holds a value of the wrong type.
        """
        try:
            return [self._row(entry) for entry in entries]
        except (TypeError, ValueError, AttributeError) as exc:
            raise UnwritableRows(f"{type(exc).__name__}: {exc}") from exc

    def _row(self, entry: UsageEntry) -> tuple[Any, ...]:
        row: tuple[Any, ...] = self.values(entry)
        for index, limit in self.limits:
            value = row[index]
            if value is not None and len(value) > limit:
                row = self._cut(row)
                break
        if self._processors:
            cells = list(row)
            for index, processor in self._processors:
                cells[index] = processor(cells[index])
            row = tuple(cells)
        return row

    def _cut(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        cells = list(row)
        for index, limit in self.limits:
            value = cells[index]
            if value is not None and len(value) > limit:
                cells[index] = value[:limit]
        return tuple(cells)


class RowWriter:
    """Inserts batches of usage entries into `usage_records` through an async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._shape = RowShape(engine.dialect)

    async def write(self, entries: Sequence[UsageEntry]) -> None:
        """Insert `entries` in one statement and transaction; raises what the database raised."""
        rows = self._shape.rows(entries)
        async with self._engine.begin() as connection:
            await connection.exec_driver_sql(self._shape.sql, rows)

    async def close(self) -> None:
        """Nothing to release: the engine is its owner's."""
