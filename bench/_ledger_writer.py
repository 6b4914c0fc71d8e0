"""The ledger writer alone: N entries spooled up front, then timed until all are written.

Runs in a process of its own and prints one JSON line:
`python -P bench/_ledger_writer.py DATABASE_URL ROWS DATA_DIR` (`-P`: bench/pipeline.py must not
shadow the package).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from pipeline.db import create_engine, upgrade
from pipeline.ledger import Ledger, LedgerLimits, UsageEntry, row_writer
from pipeline.settings import Settings

BATCH: int = Settings.model_fields["ledger_batch_size"].default


def _entry(n: int) -> UsageEntry:
    return UsageEntry(
        tenant="bench",
        request_id=f"bench-{n:09d}",
        surface="generate",
        model="flash",
        status="ok",
        latency_ms=0.8,
        deployment="gemini/gemini-2.5-flash",
        provider="gemini",
        provider_model="gemini-2.5-flash",
        input_tokens=12,
        output_tokens=48,
        saved_usd=0.00002,
        cache_tier="l1",
    )


async def measure(url: str, rows: int, data_dir: Path) -> dict[str, float]:
    """Rows per second the ledger's writer sustains into `url`'s database."""
    engine = create_engine(Settings(database_url=url, data_dir=data_dir))
    try:
        await upgrade(engine)
        ledger = Ledger(row_writer(engine), LedgerLimits(batch_size=BATCH, spool_max=rows))
        for n in range(rows):
            ledger.record(_entry(n))
        started = time.perf_counter()
        ledger.start()
        if not await ledger.flush(600):
            raise RuntimeError(f"the writer did not finish: {ledger.pending} pending")
        elapsed = time.perf_counter() - started
        await ledger.stop(5)
        return {
            "rows": ledger.written,
            "seconds": elapsed,
            "rows_per_s": ledger.written / elapsed,
            "batch": BATCH,
        }
    finally:
        await engine.dispose()


if __name__ == "__main__":
    url, rows, data_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    print(json.dumps(asyncio.run(measure(url, rows, data_dir))))
