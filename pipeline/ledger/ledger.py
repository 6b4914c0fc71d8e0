"""The usage ledger: records taken off the request path, written to the database in batches.

`record` only appends to a bounded in-memory spool: it never waits, never raises, and a
request never notices the database. A background task takes batches off the spool and
inserts each in one statement. While the database is away the batch in hand is retried
with capped exponential backoff and new records wait in the spool; a full spool drops its
oldest records, and counts them.
"""

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import structlog

from pipeline.ledger.entry import UsageEntry
from pipeline.ledger.writer import REFUSED

log = structlog.get_logger("promptbus.ledger")

_FIRST_RETRY_S: Final = 0.05


class Writer(Protocol):
    """Where batches go: `row_writer`'s over the database."""

    async def write(self, entries: Sequence[UsageEntry]) -> None:
        """Write every entry of the batch, or raise."""
        ...

    async def close(self) -> None:
        """Release what the writer holds (called once the ledger has stopped)."""
        ...


class LedgerObserver(Protocol):
    """Who is told of the spool's size and of drops (the metrics)."""

    def ledger_spool(self, records: int) -> None:
        """The spool now holds `records`."""
        ...

    def ledger_dropped(self, records: int = 1) -> None:
        """`records` were dropped."""
        ...


class _Unobserved:
    def ledger_spool(self, records: int) -> None:
        """Nobody listens."""

    def ledger_dropped(self, records: int = 1) -> None:
        """Nobody listens."""


@dataclass(frozen=True, slots=True)
class LedgerLimits:
    """How big a batch is, how often the spool is flushed, and how much of it is kept."""

    batch_size: int = 100
    flush_interval_s: float = 0.5
    spool_max: int = 100_000
    retry_max_s: float = 10.0
    # A database that stops answering (not refusing) must not hold the writer forever.
    write_timeout_s: float = 10.0


class Ledger:
    """Takes usage entries from any thread of the process; writes them from its own task.

    `written`, `dropped` (the spool was full) and `refused` (the database rejected the
    rows' content) count entries; `pending` is what waits to be written.
    """

    def __init__(
        self,
        writer: Writer,
        limits: LedgerLimits | None = None,
        observer: LedgerObserver | None = None,
    ) -> None:
        self.limits = limits or LedgerLimits()
        self._writer = writer
        # Told the spool's size after each write attempt (not per record: that is the hit path).
        self._observer: LedgerObserver = observer or _Unobserved()
        self._spool: deque[UsageEntry] = deque(maxlen=self.limits.spool_max)
        self._in_hand: list[UsageEntry] = []
        self._lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        # Set once a full batch has asked for the writer, until the writer wakes: one call
        # across threads per batch, not one per record.
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Set when stop() gave up waiting: the writer ends at its next step, cancelled or not.
        self._abandoned = False
        self.written = 0
        self.dropped = 0
        self.refused = 0
        self.failed_writes = 0
        self.database_up = True

    @property
    def pending(self) -> int:
        """Entries recorded and not written yet (the spool and the batch being written)."""
        return len(self._spool) + len(self._in_hand)

    @property
    def spool_size(self) -> int:
        """Entries waiting in the spool."""
        return len(self._spool)

    def record(self, entry: UsageEntry) -> None:
        """Keep `entry` for writing; never blocks, never raises (a full spool drops its oldest)."""
        try:
            with self._lock:
                dropping = len(self._spool) == self.limits.spool_max
                if dropping:
                    self.dropped += 1
                self._spool.append(entry)
                full = len(self._spool) >= self.limits.batch_size
            if dropping:
                self._observer.ledger_dropped(1)
            if full and not self._signalled:
                self._signalled = True
                self._wake_up()
        except Exception:
            log.exception("usage record lost")

    def start(self) -> None:
        """Start the writing task on the running loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="promptbus-ledger")

    async def stop(self, timeout_s: float) -> None:
        """Write what is pending, for at most `timeout_s`; what is left then is dropped."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        self._wake_up()
        if self._stop is not None:
            self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            self._abandoned = True
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._task = None
        await self._writer.close()
        left = self.pending
        if left:
            with self._lock:
                self.dropped += left
                self._spool.clear()
                self._in_hand = []
            self._observer.ledger_dropped(left)
            self._observer.ledger_spool(0)
            log.warning("usage records not written before stop", dropped=left)

    async def flush(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until everything recorded so far is written or given up.

        True when it was; False on timeout (the database is away, say).
        """
        target = self.written + self.dropped + self.refused + self.pending
        self._wake_up()
        deadline = time.monotonic() + timeout_s
        while self.written + self.dropped + self.refused < target:
            if self._task is None or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        limits = self.limits
        while True:
            if not self._stopping and len(self._spool) < limits.batch_size:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(limits.flush_interval_s):
                        await self._wake.wait()
                self._wake.clear()
                self._signalled = False
            await self._drain()
            if self._abandoned or (self._stopping and not self.pending):
                return

    async def _drain(self) -> None:
        """Write batches until the spool is empty; a batch that fails is retried, in hand."""
        delay = _FIRST_RETRY_S
        while (self._spool or self._in_hand) and not self._abandoned:
            if not self._in_hand:
                with self._lock:
                    count = min(len(self._spool), self.limits.batch_size)
                    self._in_hand = [self._spool.popleft() for _ in range(count)]
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # lands as the write ends, and stop() would wait on this task for ever.
                async with asyncio.timeout(self.limits.write_timeout_s):
                    await self._writer.write(self._in_hand)
            except REFUSED as exc:
                self.refused += len(self._in_hand)
                self._observer.ledger_dropped(len(self._in_hand))
                log.error(
                    "usage records refused by the database",
                    rows=len(self._in_hand),
                    error=f"{type(exc).__name__}: {exc}",
                )
                self._in_hand = []
                continue
            except Exception as exc:
                self.failed_writes += 1
                if self.database_up:
                    log.warning(
                        "usage ledger cannot write; spooling",
                        pending=self.pending,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                self.database_up = False
                self._observer.ledger_spool(self.pending)
                await self._sleep(delay)
                delay = min(delay * 2, self.limits.retry_max_s)
                continue
            if not self.database_up:
                log.info("usage ledger writes again", pending=self.pending)
            self.database_up = True
            self.written += len(self._in_hand)
            self._in_hand = []
            self._observer.ledger_spool(self.pending)
            delay = _FIRST_RETRY_S

    async def _sleep(self, delay_s: float) -> None:
        """Back off; a stop cuts the wait short, to try once more."""
        assert self._stop is not None
        if self._stopping:
            await asyncio.sleep(min(delay_s, 0.1))
            return
        try:
            async with asyncio.timeout(delay_s):
                await self._stop.wait()
        except TimeoutError:
            return
