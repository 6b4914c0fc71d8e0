"""Telling a batch's tenant how it goes: `batch.progress` on the bus (at most one per
interval per batch, across every worker), and its end on the bus and to its webhooks.

Both are notices, tried once: the batch record is the truth (GET /v1/batches/{id} and its
SSE read it). An end is told by whoever ended the batch (one of them: the end is a
compare-and-set), so each batch's end goes out once, unless its teller dies first.
"""

import time
from typing import Final, Protocol

import structlog
from kombu.exceptions import OperationalError

from pipeline.batches.shapes import counts
from pipeline.batches.store import BatchStore
from pipeline.db.batch_tables import BatchRecord
from pipeline.errors import PromptbusError
from pipeline.jobs.store import JobStore
from pipeline.webhooks.scheduler import WebhookScheduler
from schemas.batches import BatchFinished, BatchProgress, BatchStatus, RequestCounts

log = structlog.get_logger("promptbus.batches")

PROGRESS_CLAIM: Final = "batch-progress"
_ENDS: Final = {
    BatchStatus.COMPLETED: "batch.completed",
    BatchStatus.FAILED: "batch.failed",
    BatchStatus.EXPIRED: "batch.expired",
    BatchStatus.CANCELLED: "batch.cancelled",
}


class BatchEvents(Protocol):
    """Where batch events are published (the bus)."""

    async def publish_batch_event(self, event: BatchProgress | BatchFinished) -> None:
        """Publish one event."""
        ...


class BatchNotices:
    """Sends a batch's progress and its end."""

    def __init__(
        self,
        store: BatchStore,
        events: BatchEvents,
        webhooks: WebhookScheduler,
        jobs: JobStore,
        *,
        interval_s: float,
    ) -> None:
        self._store = store
        self._events = events
        self._webhooks = webhooks
        self._jobs = jobs
        self._interval_s = interval_s

    async def progress(self, batch: BatchRecord) -> None:
        """The batch's counts moved: tell the bus, unless it was told within the interval."""
        if not await self._jobs.claim(PROGRESS_CLAIM, batch.id, self._interval_s):
            return
        current = await self._store.batch(batch.id)
        if current is None:
            return
        event = BatchProgress(
            batch_id=current.id,
            tenant=current.tenant,
            status=BatchStatus(current.status),
            request_counts=RequestCounts(**counts(current)),
            at=time.time(),
        )
        await self._tell(event)

    async def ended(self, batch: BatchRecord) -> None:
        """The batch ended: tell the bus and the tenant's subscribed webhooks."""
        status = BatchStatus(batch.status)
        event = BatchFinished(
            type=_ENDS[status],
            batch_id=batch.id,
            tenant=batch.tenant,
            status=status,
            request_counts=RequestCounts(**counts(batch)),
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            at=time.time(),
        )
        await self._tell(event)
        try:
            await self._webhooks.schedule_batch(event)
        except (PromptbusError, OperationalError, OSError) as exc:
            log.warning("batch webhooks not queued", batch_id=batch.id, error=str(exc))

    async def _tell(self, event: BatchProgress | BatchFinished) -> None:
        try:
            await self._events.publish_batch_event(event)
        except PromptbusError as exc:
            log.warning("batch event not published", batch_id=event.batch_id, error=exc.message)
