"""When each key was last used: noted on the request path, written off it, once a minute.

A request notes its key in a dict (no I/O); a background task writes what was noted to the
database shortly after. A key is noted again only `interval_s` after its last note, so
a busy key costs one write a minute, however many requests it makes.
"""

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import structlog

from pipeline.tenancy.store import TenantStore

log = structlog.get_logger("promptbus.tenancy")

# How soon after a note it is written.
FLUSH_DELAY_S: Final = 1.0


class LastUsed:
    """Notes key uses and writes `last_used_at` in the background (bounded: `max_keys`)."""

    def __init__(
        self,
        store: TenantStore,
        *,
        interval_s: float,
        max_keys: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._interval_s = interval_s
        self._max_keys = max_keys
        self._clock = clock
        self._noted: OrderedDict[str, float] = OrderedDict()
        self._pending: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def note(self, key_id: str) -> None:
        """`key_id` was used now (written later, unless it was noted within the interval)."""
        now = self._clock()
        last = self._noted.get(key_id)
        if last is not None and now - last < self._interval_s:
            return
        self._noted[key_id] = now
        self._noted.move_to_end(key_id)
        if len(self._noted) > self._max_keys:
            self._noted.popitem(last=False)
        if len(self._pending) < self._max_keys:
            self._pending[key_id] = now
            self._wake.set()

    def start(self) -> None:
        """Start writing in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="promptbus-key-last-used")

    async def stop(self) -> None:
        """Stop, after writing what is noted."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write what is noted now; on failure it is kept for the next try."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        stamps = {key: datetime.fromtimestamp(at, UTC) for key, at in batch.items()}
        try:
            await self._store.touch(stamps)
        except Exception as exc:  # the database is away: the next flush tries again
            log.warning("could not record when keys were last used", error=type(exc).__name__)
            for key, at in batch.items():
                self._pending.setdefault(key, at)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(FLUSH_DELAY_S)
            await self.flush()
