"""The in-memory delta feed of the embedded default: bounded per job and in jobs kept."""

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import islice

from pipeline.jobs.deltas import MAX_WAIT_S, START, FeedEntry, FeedPage, RunEnded
from schemas import CompletionDelta

_PURGE_EVERY_S = 1.0


class _Feed:
    """One job's entries: the newest `max_deltas`, numbered from 0 since the feed began."""

    def __init__(self, max_deltas: int, now: float) -> None:
        self.entries: deque[FeedEntry] = deque(maxlen=max_deltas)
        self.appended = 0
        self.runs = 0
        self.touched = now
        # Set (and replaced) on every append, so each reader waits for the next one.
        self.changed = asyncio.Event()

    @property
    def first(self) -> int:
        """The number of the oldest entry still kept."""
        return self.appended - len(self.entries)

    def add(self, entry: FeedEntry, now: float) -> None:
        self.entries.append(entry)
        self.appended += 1
        self.touched = now
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class MemoryDeltaFeed:
    """Feeds in a dict, least recently written first: at most `max_jobs` of them.

    A feed is dropped `retention_s` after its last write, or sooner when `max_jobs` newer
    feeds push it out.
    """

    def __init__(
        self,
        *,
        max_deltas: int,
        max_jobs: int,
        retention_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_deltas = max_deltas
        self._max_jobs = max_jobs
        self._retention_s = retention_s
        self._clock = clock
        self._feeds: OrderedDict[str, _Feed] = OrderedDict()
        # Readers waiting for a job's first run, woken when its feed is made.
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._purged_at = 0.0

    async def open_run(self, job_id: str) -> int:
        """A new run of the job's generation: its number, 1 for the first."""
        self._purge()
        feed = self._feed(job_id)
        feed.runs += 1
        return feed.runs

    async def append(self, delta: CompletionDelta) -> None:
        """Add one delta of a run to its job's feed."""
        self._feed(delta.job_id).add(delta, self._clock())

    async def end_run(self, job_id: str, run: int, *, answered: bool) -> None:
        """Mark the end of a run in the job's feed."""
        self._feed(job_id).add(RunEnded(run, answered), self._clock())

    async def read(
        self, job_id: str, cursor: str = START, *, wait_s: float = 0.0, limit: int = 256
    ) -> FeedPage:
        """Up to `limit` entries after `cursor`, waiting up to `wait_s` (at most 5 s) for one."""
        seen = int(cursor)
        wait_s = min(wait_s, MAX_WAIT_S)
        feed = self._live(job_id)
        if feed is None and wait_s > 0:
            # Before the first run: wait for the feed to be made (readers never make one).
            await self._made(job_id, wait_s)
            feed, wait_s = self._live(job_id), 0.0
        if feed is None:
            return FeedPage((), cursor)
        if seen > feed.appended:
            seen = 0  # the feed was dropped and begun again since this reader's last read
        if wait_s > 0 and seen == feed.appended:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await feed.changed.wait()
        start = max(seen, feed.first)
        offset = start - feed.first
        entries = tuple(islice(feed.entries, offset, offset + limit))
        return FeedPage(entries, str(start + len(entries)))

    async def close(self) -> None:
        """Nothing to release."""

    def _feed(self, job_id: str) -> _Feed:
        """The job's feed, made if need be, as the most recently written one."""
        feed = self._live(job_id)
        if feed is None:
            feed = self._feeds[job_id] = _Feed(self._max_deltas, self._clock())
            while len(self._feeds) > self._max_jobs:
                self._feeds.popitem(last=False)
            for waiter in self._waiting.pop(job_id, ()):
                waiter.set()
        self._feeds.move_to_end(job_id)
        return feed

    async def _made(self, job_id: str, wait_s: float) -> None:
        """Wait up to `wait_s` for the job's feed to be made."""
        waiter = asyncio.Event()
        waiters = self._waiting.setdefault(job_id, set())
        waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await waiter.wait()
        finally:
            waiters.discard(waiter)
            if not waiters and self._waiting.get(job_id) is waiters:
                del self._waiting[job_id]

    def _live(self, job_id: str) -> _Feed | None:
        feed = self._feeds.get(job_id)
        if feed is not None and feed.touched + self._retention_s < self._clock():
            del self._feeds[job_id]
            return None
        return feed

    def _purge(self) -> None:
        """Drop expired feeds: the oldest written first, so the scan stops at a live one."""
        now = self._clock()
        if now - self._purged_at < _PURGE_EVERY_S:
            return
        self._purged_at = now
        while self._feeds:
            job_id, feed = next(iter(self._feeds.items()))
            if feed.touched + self._retention_s >= now:
                return
            del self._feeds[job_id]
