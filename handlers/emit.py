"""Emit: how every job ends. Its final state is recorded once, then its completion delivered.

Every way a job can end (its chain's last stage, a cancel, a cached answer found at
dispatch, the sweeper giving up on it) goes through `finish`. Recording the end is atomic
and final in the job store, so only the first finisher speaks; it also puts the job in the
outbox. `deliver` then queues the job's webhooks and publishes its one completion event, and
takes the job out of the outbox; when the bus fails, the job stays there and the sweeper
delivers it later.
"""

import time
from typing import Final, Protocol

import structlog

from handlers.context import StageContext
from pipeline.errors import JobCancelled, PromptbusError
from pipeline.ledger import CANCELLED as CANCELLED_STATUS
from pipeline.ledger import ERROR, UsageEntry, answered_model, caller, failed
from pipeline.transient import TRANSIENT
from schemas import (
    CompletionDelta,
    CompletionEvent,
    ErrorDetail,
    GenerateResponse,
    JobState,
    Message,
    Role,
    StageEnvelope,
)
from schemas.jobs import Job

log = structlog.get_logger("promptbus.emit")

CANCELLED: Final = JobCancelled("the job was cancelled").detail()
_NO_RESULT: Final = ErrorDetail(type="internal_error", message="no result", retryable=False)


class CompletionSink(Protocol):
    """Where completion events and a streaming job's deltas go (the bus)."""

    async def publish_completion(self, event: CompletionEvent) -> None:
        """Publish one completion event."""
        ...

    async def publish_delta(self, delta: CompletionDelta) -> None:
        """Publish one delta of a streaming job."""
        ...


def job_completion(job: Job) -> CompletionEvent:
    """The completion event of a finished job, built from its record."""
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
    error = job.error or (CANCELLED if job.state is JobState.CANCELLED else _NO_RESULT)
    return failed_event(job.id, job.correlation_id, error, finished_at=job.finished_at)


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


async def finish(
    ctx: StageContext,
    job_id: str,
    state: JobState,
    *,
    result: GenerateResponse | None = None,
    error: ErrorDetail | None = None,
    stage: str | None = None,
) -> Job | None:
    """End the job and deliver its completion; None if it was unknown or had ended already.

    Only the first finisher gets the job back: it alone records the job's usage (a chain
    job's calls were recorded each as they were made: it has no record of its own).
    """
    job = await ctx.jobs.transition(
        job_id, state, stage=stage, result=result, error=error, finished_at=time.time()
    )
    if job is not None:
        if job.request is not None:
            ctx.ledger.record(usage_entry(job))
        if job.session is not None and job.result is not None and state is JobState.SUCCEEDED:
            await keep_turn(ctx, job, job.result)
        await deliver(ctx, job)
    return job


async def keep_turn(ctx: StageContext, job: Job, result: GenerateResponse) -> None:
    """Keep a session's turn made by a job: its own turn, then the answer (once: the job's
    one finisher keeps it). A store that fails loses the turn, not the job's answer."""
    if job.session is None or ctx.sessions is None:
        return
    said = [*job.session.turn]
    if result.text:
        said.append(Message(role=Role.ASSISTANT, content=result.text))
    try:
        async with ctx.sessions.turn(job.tenant, job.session.id):
            await ctx.sessions.append(job.tenant, job.session.id, said)
    except (PromptbusError, *TRANSIENT) as exc:
        log.warning("session turn not kept", job_id=job.id, error=type(exc).__name__)


def usage_entry(job: Job) -> UsageEntry:
    """The usage record of a finished job: from its answer, or the error it ended with."""
    if job.request is None:
        raise ValueError(f"job {job.id} runs a chain: its calls are its usage records")
    who = caller(
        job.request,
        tenant=job.tenant,
        key_id=job.key_id,
        request_id=job.id,
        surface="job",
        job_id=job.id,
    )
    latency_ms = max(0.0, ((job.finished_at or job.updated_at) - job.created_at) * 1000.0)
    if job.state is JobState.SUCCEEDED and job.result is not None:
        return answered_model(who, job.result, latency_ms)
    error = job.error or (CANCELLED if job.state is JobState.CANCELLED else _NO_RESULT)
    status = CANCELLED_STATUS if job.state is JobState.CANCELLED else ERROR
    return failed(who, error.type, latency_ms, status=status)


async def deliver(ctx: StageContext, job: Job) -> bool:
    """Queue an ended job's webhooks and publish its completion; False if left in the outbox."""
    event = job_completion(job)
    try:
        # Webhooks first: each target's first attempt is claimed by its message id, so a
        # delivery made again after a failure here queues nothing twice.
        await ctx.webhooks.schedule(event, job)
        await ctx.events.publish_completion(event)
    except TRANSIENT as exc:
        log.warning(
            "completion not delivered; the sweeper retries it",
            job_id=job.id,
            error=f"{type(exc).__name__}: {exc}",
        )
        return False
    await ctx.jobs.delivered(job.id)
    return True


async def emit(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """The chain's last stage: end the job with its answer, or with the error it met."""
    if envelope.job_id is None:
        raise ValueError("emit needs a job id")
    response = envelope.response
    if response is not None and envelope.error is None:
        ended = await finish(
            ctx, envelope.job_id, JobState.SUCCEEDED, result=response, stage="emit"
        )
        # Counted by the job's one finisher; a cached or shared answer spent nothing.
        if ended is not None and not (response.cache.hit or response.cache.coalesced):
            ctx.metrics.spent(
                response.provider_model, envelope.tenant, response.usage, response.cost
            )
    else:
        error = envelope.error or _NO_RESULT
        await finish(ctx, envelope.job_id, JobState.FAILED, error=error, stage="emit")
    return envelope
