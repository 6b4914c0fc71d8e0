"""A chunk's item results, written together: those that finish while a write is running go
in the next write, one transaction for all of them.

An item's upstream call no longer waits on the database (with several workers on one SQLite
file, a write of its own each cost an item tens of milliseconds in lock waits), and a
chunk makes a few commits rather than one per item. Each result is still written once: the
write only matches pending rows and moves the counts in the same transaction.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pipeline.batches.store import BatchStore

# An item's one result: its custom id, whether it succeeded, and its line.
Finished = tuple[str, bool, dict[str, Any]]

# Told that the batch's counts moved (its progress notice).
OnKept = Callable[[], Awaitable[None]]


class ResultWriter:
    """Writes one batch's results, one write at a time, each taking all that are waiting."""

    def __init__(self, store: BatchStore, batch_id: str, on_kept: OnKept | None) -> None:
        self._store = store
        self._batch_id = batch_id
        self._on_kept = on_kept
        self._waiting: list[Finished] = []
        self._writing = asyncio.Lock()

    async def write(self, finished: Finished) -> None:
        """Return once `finished` is written (by this call, or the write that took it along).

        A failed write raises in the call that made it; the results it held stay pending in
        the store, so the lane (which fails with it) runs those items again.
        """
        self._waiting.append(finished)
        async with self._writing:
            if not self._waiting:
                return  # taken along by the write before
            taken, self._waiting = self._waiting, []
            kept = await self._store.finish_items(self._batch_id, taken)
        if kept and self._on_kept is not None:
            await self._on_kept()
