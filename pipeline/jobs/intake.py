"""Accepting jobs over HTTP: idempotency, the cache fast path, publish, and cancel."""

import hashlib
import os
import time

import orjson

from handlers import StageContext, completion_event, failed_event
from handlers.arrival import arrive
from handlers.emit import EMIT_CLAIM
from pipeline.bus.admission import DISPATCH_CLAIM, envelope_for, new_job
from pipeline.bus.publisher import EventPublisher
from pipeline.errors import Conflict, JobNotFound, PromptbusError
from pipeline.jobs.store import JobStore
from pipeline.worker.steps import lookup
from schemas import ErrorDetail, JobState, RequestEvent
from schemas.jobs import Job, JobSubmission


def new_job_id() -> str:
    """A fresh job id: time-ordered, then random."""
    return f"job_{time.time_ns():x}{os.urandom(6).hex()}"


def fingerprint(submission: JobSubmission) -> str:
    """What an idempotency key is bound to: the canonical JSON of the submission."""
    canonical = orjson.dumps(
        submission.model_dump(mode="json", exclude_none=True), option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


class JobIntake:
    """Turns submissions into jobs: at once from the cache, else through the bus."""

    def __init__(
        self,
        ctx: StageContext,
        jobs: JobStore,
        publisher: EventPublisher,
        *,
        idempotency_ttl_s: float,
    ) -> None:
        self._ctx = ctx
        self._jobs = jobs
        self._publisher = publisher
        self._idempotency_ttl_s = idempotency_ttl_s

    async def submit(
        self,
        submission: JobSubmission,
        *,
        tenant: str,
        correlation_id: str | None,
        idempotency_key: str | None,
    ) -> Job:
        """The accepted job (or the earlier job under the same idempotency key)."""
        # Expanded first: the fingerprint, the event and the job record carry the rendered
        # messages and the pinned version, and a bad template changes nothing.
        submission = arrive(submission, self._ctx.templates)
        job_id = new_job_id()
        if idempotency_key is not None:
            held = await self._jobs.reserve_idempotency_key(
                tenant, idempotency_key, fingerprint(submission), job_id, self._idempotency_ttl_s
            )
            if held is not None:
                return await self._replay(held, fingerprint(submission))
        try:
            return await self._accept(submission, job_id, tenant, correlation_id)
        except BaseException:
            if idempotency_key is not None:
                await self._jobs.drop_idempotency_key(tenant, idempotency_key)
            raise

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; its completion event says so, once."""
        # Take the one-time right to emit first: a job that is finishing holds it already,
        # so cancel and completion can never both speak for the same job.
        if not await self._jobs.claim(EMIT_CLAIM, job_id, self._ctx.claim_ttl_s):
            return await self._not_cancellable(job_id)
        finished_at = time.time()
        job = await self._jobs.transition(job_id, JobState.CANCELLED, finished_at=finished_at)
        if job is None:
            await self._jobs.release(EMIT_CLAIM, job_id)
            return await self._not_cancellable(job_id)
        error = ErrorDetail(type="cancelled", message="the job was cancelled", retryable=False)
        event = failed_event(job_id, job.correlation_id, error, finished_at=finished_at)
        if self._ctx.webhooks is not None:
            await self._ctx.webhooks.schedule(event, job)
        await self._publisher.publish_completion(event)
        return job

    async def _not_cancellable(self, job_id: str) -> Job:
        job = await self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        raise Conflict(f"job {job_id!r} is finished or finishing ({job.state.value})")

    async def _replay(self, held: tuple[str, str], print_: str) -> Job:
        held_print, held_job = held
        if held_print != print_:
            raise Conflict("this Idempotency-Key was used with a different request body")
        job = await self._jobs.get(held_job)
        if job is None:
            raise Conflict("a request with this Idempotency-Key is still being accepted")
        return job

    async def _accept(
        self, submission: JobSubmission, job_id: str, tenant: str, correlation_id: str | None
    ) -> Job:
        event = RequestEvent(
            job_id=job_id,
            tenant=tenant,
            correlation_id=correlation_id or submission.correlation_id or job_id,
            request=submission.generate_request(),
            webhook=submission.webhook,
            metadata=submission.metadata,
        )
        envelope = await lookup(envelope_for(event), self._ctx)  # a bad model fails here, first
        now = time.time()
        if envelope.response is not None:
            # Cache hit: the job is done before it starts; no Celery task runs. It is
            # recorded before its event goes out, so a consumer that reacts at once finds it.
            completion = completion_event(envelope, finished_at=now)
            await self._jobs.claim(DISPATCH_CLAIM, job_id, self._ctx.claim_ttl_s)
            await self._jobs.claim(EMIT_CLAIM, job_id, self._ctx.claim_ttl_s)
            await self._jobs.create(new_job(event, now=now))
            job = await self._jobs.transition(
                job_id,
                JobState.SUCCEEDED,
                stage="lookup",
                result=completion.result,
                finished_at=completion.finished_at,
            )
            try:
                if self._ctx.webhooks is not None and job is not None:
                    await self._ctx.webhooks.schedule(completion, job)
                await self._publisher.publish_completion(completion)
            except BaseException:
                await self._jobs.delete(job_id)  # not accepted after all: leave nothing
                raise
        else:
            await self._publisher.publish_request(event)
            await self._jobs.create(new_job(event, now=now))
            job = await self._jobs.get(job_id)
        if job is None:
            raise PromptbusError(f"job {job_id} vanished while being accepted")
        return job
