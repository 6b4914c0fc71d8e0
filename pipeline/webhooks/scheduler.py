"""Which deliveries a completion makes: the job's own URL and the subscribed endpoints."""

import asyncio
import os
from collections.abc import Callable

from pipeline.tracing import current_trace
from pipeline.webhooks.registry import WebhookRegistry
from schemas import CompletionEvent, JobState
from schemas.batches import BatchFinished
from schemas.budgets import BudgetThreshold
from schemas.jobs import Job
from schemas.webhooks import DeliveryTask, Endpoint, EventType


def event_type(event: CompletionEvent) -> EventType:
    """The event's type, which is also its routing key."""
    return "completion.succeeded" if event.state is JobState.SUCCEEDED else "completion.failed"


def message_id(job_id: str, endpoint_id: str | None) -> str:
    """The `webhook-id` of a job's message to one target: the same on every retry."""
    return f"msg_{job_id}" if endpoint_id is None else f"msg_{job_id}.{endpoint_id}"


class WebhookScheduler:
    """Queues one delivery task per target of a completion event."""

    def __init__(self, registry: WebhookRegistry, enqueue: Callable[[DeliveryTask], None]) -> None:
        self._registry = registry
        self._enqueue = enqueue

    async def schedule(self, event: CompletionEvent, job: Job) -> list[DeliveryTask]:
        """Queue the deliveries of `event` for `job`; the tasks queued."""
        tasks = []
        if job.webhook is not None:
            tasks.append(self._task(event, job, None, str(job.webhook.url), replay=False))
        for endpoint in await self._registry.subscribers(job.tenant, event_type(event)):
            tasks.append(self._task(event, job, endpoint.id, endpoint.url, replay=False))
        for task in tasks:
            # Publishing is blocking Kombu I/O: keep it off the event loop.
            await asyncio.to_thread(self._enqueue, task)
        return tasks

    async def schedule_batch(self, event: BatchFinished) -> list[DeliveryTask]:
        """Queue the deliveries of a batch's end to the tenant's subscribed endpoints."""
        return await self._to_subscribers(event.tenant, event.type, event.batch_id, event)

    async def schedule_budget(self, event: BudgetThreshold) -> list[DeliveryTask]:
        """Queue a budget's threshold notice to the tenant's subscribed endpoints."""
        scope = event.key_id or "tenant"
        subject = f"budget_{event.tenant}.{scope}.{event.period}.{event.window}"
        return await self._to_subscribers(event.tenant, event.type, subject, event)

    async def _to_subscribers(
        self,
        tenant: str,
        kind: EventType,
        subject: str,
        event: BatchFinished | BudgetThreshold,
    ) -> list[DeliveryTask]:
        """One delivery of `event` (about `subject`) per endpoint of `tenant` subscribed to it."""
        tasks = [
            DeliveryTask(
                delivery_id=message_id(subject, endpoint.id),
                message_id=message_id(subject, endpoint.id),
                tenant=tenant,
                job_id=subject,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                event=event,
                trace=current_trace(),
            )
            for endpoint in await self._registry.subscribers(tenant, kind)
        ]
        for task in tasks:
            await asyncio.to_thread(self._enqueue, task)
        return tasks

    async def replay(self, event: CompletionEvent, job: Job, endpoint: Endpoint) -> DeliveryTask:
        """Deliver a finished job's message to an endpoint again, from its first attempt."""
        task = self._task(event, job, endpoint.id, endpoint.url, replay=True)
        await asyncio.to_thread(self._enqueue, task)
        return task

    @staticmethod
    def _task(
        event: CompletionEvent, job: Job, endpoint_id: str | None, url: str, *, replay: bool
    ) -> DeliveryTask:
        msg_id = message_id(job.id, endpoint_id)
        return DeliveryTask(
            # A completion's own deliveries are named by their message: queued again (after a
            # failed publish), they are the same deliveries, whose attempts are each made once.
            delivery_id=os.urandom(8).hex() if replay else msg_id,
            message_id=msg_id,
            tenant=job.tenant,
            job_id=job.id,
            endpoint_id=endpoint_id,
            url=url,
            event=event,
            # Its attempts join the trace of what queued it (the job's emit, or a replay).
            trace=current_trace(),
        )
