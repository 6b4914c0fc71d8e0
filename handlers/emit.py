"""Emit: record the job's outcome and publish its one completion event."""

import time
from typing import Protocol

from handlers.context import StageContext
from schemas import CompletionEvent, ErrorDetail, JobState, StageEnvelope
from schemas.jobs import Job

EMIT_CLAIM = "emit"


class CompletionSink(Protocol):
    """Where completion events go (the bus)."""

    async def publish_completion(self, event: CompletionEvent) -> None:
        """Publish one completion event."""
        ...


def completion_event(envelope: StageEnvelope, *, finished_at: float) -> CompletionEvent:
    """The completion event for an envelope that carries a response or an error."""
    if envelope.job_id is None:
        raise ValueError("only jobs have completion events")
    response = envelope.response
    if response is not None and envelope.error is None:
        return CompletionEvent(
            job_id=envelope.job_id,
            correlation_id=envelope.correlation_id or envelope.job_id,
            state=JobState.SUCCEEDED,
            result=response,
            usage=response.usage,
            cost=response.cost,
            cache=response.cache,
            finished_at=finished_at,
        )
    return failed_event(
        envelope.job_id,
        envelope.correlation_id or envelope.job_id,
        envelope.error or ErrorDetail(type="internal_error", message="no result", retryable=False),
        finished_at=finished_at,
    )


def failed_event(
    job_id: str, correlation_id: str, error: ErrorDetail, *, finished_at: float
) -> CompletionEvent:
    """A `completion.failed` event."""
    return CompletionEvent(
        job_id=job_id,
        correlation_id=correlation_id,
        state=JobState.FAILED,
        error=error,
        finished_at=finished_at,
    )


def job_completion(job: Job) -> CompletionEvent:
    """The completion event of a finished job, rebuilt from its record."""
    if job.finished_at is None:
        raise ValueError("only a finished job has a completion event")
    if job.state is JobState.SUCCEEDED and job.result is not None:
        result = job.result
        return CompletionEvent(
            job_id=job.id,
            correlation_id=job.correlation_id,
            state=JobState.SUCCEEDED,
            result=result,
            usage=result.usage,
            cost=result.cost,
            cache=result.cache,
            finished_at=job.finished_at,
        )
    error = job.error or ErrorDetail(
        type="cancelled", message="the job was cancelled", retryable=False
    )
    return failed_event(job.id, job.correlation_id, error, finished_at=job.finished_at)


async def emit(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Publish the job's completion once, then record its final state."""
    jobs, events = ctx.jobs, ctx.events
    if envelope.job_id is None or jobs is None or events is None:
        raise ValueError("emit needs a job id, a job store and an event sink")
    job = await jobs.get(envelope.job_id)
    if job is None or job.finished:
        # Cancelled (its event already went out) or expired: nothing more to say.
        return envelope
    if not await jobs.claim(EMIT_CLAIM, envelope.job_id, ctx.claim_ttl_s):
        return envelope
    event = completion_event(envelope, finished_at=time.time())
    try:
        # Webhooks first: they are at-least-once (a stable webhook-id lets receivers
        # drop a repeat), so a retried emit may queue them twice but never loses them.
        if ctx.webhooks is not None:
            await ctx.webhooks.schedule(event, job)
        await events.publish_completion(event)
    except BaseException:
        await jobs.release(EMIT_CLAIM, envelope.job_id)
        raise
    await jobs.transition(
        envelope.job_id,
        event.state,
        stage="emit",
        result=event.result,
        error=event.error,
        finished_at=event.finished_at,
    )
    return envelope
