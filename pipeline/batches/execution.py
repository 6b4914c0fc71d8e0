"""Running a batch on the Celery workers: lanes of chunks, each item's one result kept.

A batch runs as a Celery group of `batch_slots` lane tasks on the batch queue. A lane task
runs one chunk (`batch_chunk_size` lines, `batch_item_concurrency` at once), then queues
the lane's next chunk, so at most `batch_slots` chunks of a batch run at once; a tenant's
chunks take one of `batch_tenant_slots` leases (in the job store, shared by every worker)
or wait on the broker. Celery's chords need a result backend, which promptbus does not run:
the group's finalizer is instead whichever task finds nothing pending (pipeline.batches.
finalize). A killed worker's task is delivered again (late acks): its finished items are
skipped, the others run, and each item's result is written once (pipeline.batches.store).
"""

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from pipeline.batches.finalize import OnEnd, finalize
from pipeline.batches.items import ItemDeferred, run_item
from pipeline.batches.results import ResultWriter
from pipeline.batches.store import EXPIRED, BatchStore, NewItem
from pipeline.db.batch_tables import BatchRecord
from pipeline.jobs.store import JobStore
from pipeline.ledger import UsageSink
from pipeline.settings import Settings
from pipeline.sync_path import SyncPath
from schemas.batches import BatchStatus

TENANT_LEASE: Final = "batch-tenant"
# Taken by whoever queues a chunk's lane task: a lane run twice (a redelivery, a re-drive)
# queues its next chunk once, so duplicate lanes do not go on in parallel.
CHUNK_CLAIM: Final = "batch-chunk"
REDRIVE_CLAIM: Final = "batch-redrive"
# A chunk that finds its tenant's leases taken waits this long on the broker.
BUSY_WAIT_S: Final = 1.0
# How often a running chunk re-reads its batch's status (a cancel stops it within this).
_STATUS_EVERY_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class Lane:
    """One lane task's work: a chunk of a batch."""

    batch_id: str
    chunk: int


# Queues a lane's next chunk (on the broker, bounded).
Enqueue = Callable[[Lane], Awaitable[None]]
# Told that a batch's counts moved.
OnProgress = Callable[[BatchRecord], Awaitable[None]]


def lease_s(settings: Settings) -> float:
    """How long a chunk may hold its tenant's lease: its items' bound, then it expires."""
    waves = math.ceil(settings.batch_chunk_size / settings.batch_item_concurrency)
    return min(600.0, settings.provider_timeout_s * settings.retry_max_attempts * waves + 60)


class BatchRunner:
    """Runs lanes' chunks against the stage context's one path."""

    def __init__(
        self,
        settings: Settings,
        store: BatchStore,
        sync_path: SyncPath,
        usage: UsageSink,
        jobs: JobStore,
        enqueue: Enqueue,
        *,
        on_progress: OnProgress | None = None,
        on_end: OnEnd | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._sync_path = sync_path
        self._usage = usage
        self._jobs = jobs
        self._enqueue = enqueue
        self._on_progress = on_progress
        self._on_end = on_end
        self._lease_s = lease_s(settings)
        # A chunk's claim outlasts its batch's window.
        self._claim_s = settings.batch_window_s + 3600

    @property
    def on_end(self) -> OnEnd | None:
        """What is told of each batch that ended."""
        return self._on_end

    @property
    def store(self) -> BatchStore:
        """Where batches are kept."""
        return self._store

    async def run(self, lane: Lane) -> float | None:
        """Run a lane's chunk; None when done, else seconds to wait before trying again."""
        store, settings = self._store, self._settings
        batch = await store.batch(lane.batch_id)
        if batch is None:
            return None  # deleted (its retention ended)
        if batch.status != BatchStatus.IN_PROGRESS:
            await finalize(store, batch.id, self._on_end)
            return None
        if time.time() >= batch.expires_at.timestamp():
            await self.expire(batch.id)
            return None
        first = lane.chunk * settings.batch_chunk_size
        if first < batch.total:
            lease = await self._lease(batch.tenant)
            if lease is None:
                return BUSY_WAIT_S
            try:
                items = await store.pending(batch.id, first, first + settings.batch_chunk_size)
                deferred_s = await self._run_items(batch, items)
            finally:
                await self._jobs.release(TENANT_LEASE, lease)
            if deferred_s is not None:
                return deferred_s  # this chunk again, for its items that found no room
            following = lane.chunk + settings.batch_slots
            if following * settings.batch_chunk_size < batch.total:
                await self._follow(Lane(batch.id, following))
        await finalize(store, batch.id, self._on_end)
        return None

    async def _follow(self, lane: Lane) -> None:
        key = f"{lane.batch_id}:{lane.chunk}"
        if not await self._jobs.claim(CHUNK_CLAIM, key, self._claim_s):
            return  # another run of this lane queued it
        try:
            await self._enqueue(lane)
        except BaseException:
            await self._jobs.release(CHUNK_CLAIM, key)
            raise

    async def redrive(self, batch: BatchRecord, stall_s: float) -> bool:
        """Queue lanes again for a running batch no item of which finished for `stall_s`.

        Its lane tasks were lost (an ingress that died before it queued them, a message a
        Redis broker dropped): the first pending chunks get lanes again. A lane that was
        only slow meets the re-driven one at its next chunk's claim, and one goes on.
        """
        last = await self._store.last_finished(batch.id) or batch.in_progress_at
        if last is None or time.time() - last.timestamp() < stall_s:
            return False
        if not await self._jobs.claim(REDRIVE_CLAIM, batch.id, stall_s):
            return False
        size = self._settings.batch_chunk_size
        chunks = await self._store.pending_chunks(batch.id, size, self._settings.batch_slots)
        for chunk in chunks:
            await self._enqueue(Lane(batch.id, chunk))
        return bool(chunks)

    async def expire(self, batch_id: str) -> None:
        """End a batch whose window closed: what did not run gets `batch_expired` lines."""
        await self._store.close_pending(batch_id, EXPIRED)
        await finalize(self._store, batch_id, self._on_end)

    async def _lease(self, tenant: str) -> str | None:
        for slot in range(self._settings.batch_tenant_slots):
            key = f"{tenant}:{slot}"
            if await self._jobs.claim(TENANT_LEASE, key, self._lease_s):
                return key
        return None

    async def _run_items(self, batch: BatchRecord, items: list[NewItem]) -> float | None:
        """Run the items; None, or how long to wait before running those deferred."""
        gate = asyncio.Semaphore(self._settings.batch_item_concurrency)
        on_progress = self._on_progress
        writer = ResultWriter(
            self._store,
            batch.id,
            None if on_progress is None else functools.partial(on_progress, batch),
        )
        waits: list[float] = []
        checked = {"at": time.monotonic(), "running": True}

        async def running() -> bool:
            now = time.monotonic()
            if now - checked["at"] >= _STATUS_EVERY_S:
                current = await self._store.batch(batch.id)
                checked["at"] = now
                checked["running"] = current is not None and (
                    current.status == BatchStatus.IN_PROGRESS
                    and time.time() < current.expires_at.timestamp()
                )
            return bool(checked["running"])

        async def one(item: NewItem) -> None:
            async with gate:
                if not await running():
                    return
                try:
                    ok, result = await run_item(
                        self._sync_path,
                        self._usage,
                        batch_id=batch.id,
                        endpoint=batch.endpoint,
                        tenant=batch.tenant,
                        key_id=batch.key_id,
                        custom_id=item.custom_id,
                        request=item.request,
                    )
                except ItemDeferred as deferred:
                    waits.append(deferred.wait_s)
                    return
            # Written with the gate let go: the next item's call does not wait on the database.
            await writer.write((item.custom_id, ok, result))

        await asyncio.gather(*(one(item) for item in items))
        return max(waits) if waits else None
