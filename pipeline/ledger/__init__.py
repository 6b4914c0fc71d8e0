"""The usage ledger: one record per answered or failed request, written off the request path.

`Ledger.record` is what the request paths call; a background task writes the records to
`usage_records` in batches, spooling them while the database is away. `usage` reads them
back, aggregated.
"""

from pipeline.ledger.entries import Caller, ChainTag, answered, answered_model, caller, failed
from pipeline.ledger.entry import CANCELLED, COALESCED, ERROR, OK, UsageEntry
from pipeline.ledger.ledger import Ledger, LedgerLimits, LedgerObserver
from pipeline.ledger.sink import DISCARD, UsageSink
from pipeline.ledger.sqlite_writer import SqliteRowWriter, row_writer
from pipeline.ledger.writer import RowWriter

__all__ = [
    "CANCELLED",
    "COALESCED",
    "DISCARD",
    "ERROR",
    "OK",
    "Caller",
    "ChainTag",
    "Ledger",
    "LedgerLimits",
    "LedgerObserver",
    "RowWriter",
    "SqliteRowWriter",
    "UsageEntry",
    "UsageSink",
    "answered",
    "answered_model",
    "caller",
    "failed",
    "row_writer",
]
