"""Dispatch: a job's first stage, run where the job is taken up, then the rest of its chain.

The bridge dispatches the job of each request event it takes, and the sweeper re-drives a
stalled job the same way. Dispatch identifies the request (its cache key) and looks it up:
a cached answer ends the job on the spot, with no Celery task; otherwise the job's chain
(generate, post-process, emit) goes on the bus and the record says so (stage `lookup`).
The record is what makes a job start once: an event whose job has started or ended is a
duplicate, whoever sent it (a redelivery, a publisher sending twice). While one event of a
job is being dispatched, it holds a lease (released when the dispatch ends, or expiring if
its holder died), so that a copy arriving meanwhile waits (`BUSY`: back to the queue)
instead of starting the job a second time.
"""

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import structlog
from opentelemetry.trace import SpanKind

from handlers import StageContext, cache_lookup, failed_event, finish, identified
from pipeline.bus.admission import Refused, admit_event, envelope_for, new_job, parse_event
from pipeline.tracing import current_trace, from_headers, names, span, stage_span
from schemas import DEFAULT_TENANT, ErrorDetail, JobState, RequestEvent, StageEnvelope
from schemas.jobs import Job

log = structlog.get_logger("promptbus.dispatch")

# A job id that a dead event used: taken, so that no later event runs a job under it.
SPENT: Final = "spent"
# Held while one event of a job is dispatched; it outlives a dispatch's bound (a holder that
# died frees it by expiring).
LEASE: Final = "dispatch"
LEASE_S: Final = 60.0

ChainStarter = Callable[[StageEnvelope], Awaitable[None]]
# Starts a chain job's next step again (its own tasks, not the request's chain).
ChainJobRedrive = Callable[[Job], Awaitable[None]]
# Whether a bus event may act for a tenant (the tenants configured; any while there are none).
TenantCheck = Callable[[str], Awaitable[bool]]

# The span of taking one request event (messaging conventions: `process` the destination).
_PROCESS_SPAN: Final = "process promptbus.requests"
_PROCESS_ATTRIBUTES: Final = {
    names.MESSAGING_OPERATION_NAME: "process",
    names.MESSAGING_OPERATION_TYPE: "process",
    names.MESSAGING_DESTINATION: "promptbus.requests",
}


class Fate(StrEnum):
    """What became of a request event."""

    STARTED = "started"
    ANSWERED = "answered"
    DUPLICATE = "duplicate"
    DEAD = "dead"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Dispatched:
    """An event's fate, and why a dead event is dead."""

    fate: Fate
    reason: str | None = None


_DUPLICATE: Final = Dispatched(Fate.DUPLICATE)


def _not_started(job: Job) -> bool:
    return job.stage is None


class Dispatcher:
    """Starts each job once: its request identified and looked up, then its chain or its end."""

    def __init__(
        self,
        ctx: StageContext,
        start_chain: ChainStarter,
        tenants: TenantCheck | None = None,
        *,
        redrive_chain_job: ChainJobRedrive | None = None,
        max_event_bytes: int | None = None,
    ) -> None:
        self._ctx = ctx
        self._start_chain = start_chain
        self._tenants = tenants
        self._redrive_chain_job = redrive_chain_job
        self._max_event_bytes = max_event_bytes

    async def event(self, body: bytes, headers: Mapping[str, Any] | None = None) -> Dispatched:
        """Take one raw request event: dispatch its job once, or say why it is not run.

        Its span continues the trace its headers carry (a W3C `traceparent`), if any.
        """
        with span(
            self._ctx.tracer,
            _PROCESS_SPAN,
            kind=SpanKind.CONSUMER,
            attributes=_PROCESS_ATTRIBUTES,
            parent=from_headers(headers),
        ) as current:
            dispatched = await self._event(body)
            current.set_attribute(names.DISPATCH_FATE, dispatched.fate.value)
            return dispatched

    async def _event(self, body: bytes) -> Dispatched:
        ctx = self._ctx
        try:
            event = parse_event(body, self._max_event_bytes)
        except Refused as refused:
            return await self._dead(refused)
        if not await ctx.jobs.claim(LEASE, event.job_id, LEASE_S):
            held = await ctx.jobs.get(event.job_id)
            if held is not None and (held.finished or held.stage is not None):
                return _DUPLICATE
            if held is None and await ctx.jobs.claimed(SPENT, event.job_id):
                return _DUPLICATE  # a dead event spent the id, and its lease is still held
            return Dispatched(Fate.BUSY, "another copy of this event is being dispatched")
        try:
            return await self._dispatch(event)
        finally:
            # Once dispatched, the record (or a spent id) tells a later copy it is a duplicate.
            await ctx.jobs.release(LEASE, event.job_id)

    async def _dispatch(self, event: RequestEvent) -> Dispatched:
        ctx = self._ctx
        job = await ctx.jobs.get(event.job_id)
        if job is None:
            # A publisher's event (an ingress records its jobs before it publishes them).
            if await ctx.jobs.claimed(SPENT, event.job_id):
                return _DUPLICATE
            try:
                event = admit_event(event, ctx.catalog, ctx.templates)
            except Refused as refused:
                return await self._dead(refused)
            tenant = event.tenant or DEFAULT_TENANT
            if self._tenants is not None and not await self._tenants(tenant):
                # The bus is trusted, but not to invent tenants: the event speaks for none.
                return await self._dead(Refused(f"unknown tenant {tenant!r}", event.job_id))
            job = new_job(event, now=time.time())
            if not await ctx.jobs.create(job):
                job = await ctx.jobs.get(event.job_id)  # a copy of this event came first
                if job is None:
                    return _DUPLICATE
        if job.finished or job.stage is not None:
            return _DUPLICATE
        return await self.start(job)

    async def redrive(self, job: Job) -> Dispatched:
        """Dispatch a recorded job again (a stalled one), unless a dispatch of it is under way."""
        if not await self._ctx.jobs.claim(LEASE, job.id, LEASE_S):
            return Dispatched(Fate.BUSY, "a dispatch of this job is under way")
        try:
            return await self.start(job)
        finally:
            await self._ctx.jobs.release(LEASE, job.id)

    async def start(self, job: Job) -> Dispatched:
        """Run the job's first stage, then start its chain or end it with the cached answer.

        A chain job (no request of its own) has its next step started again instead.
        """
        ctx = self._ctx
        if job.chain is not None:
            if self._redrive_chain_job is None:
                return Dispatched(Fate.BUSY, "this process runs no chain jobs")
            await self._redrive_chain_job(job)
            return Dispatched(Fate.STARTED)
        envelope = envelope_for(job, deadline=time.time() + ctx.job_deadline_s)
        with stage_span(ctx.tracer, names.LOOKUP, envelope) as current:
            envelope = await cache_lookup(await identified(envelope, ctx), ctx)
            current.set_attribute(names.CACHE_HIT, envelope.response is not None)
        if envelope.response is not None:
            await finish(ctx, job.id, JobState.SUCCEEDED, result=envelope.response, stage="lookup")
            return Dispatched(Fate.ANSWERED)
        if ctx.tracer is not None:
            # The chain's steps join this trace: their messages carry it in the envelope.
            envelope = envelope.model_copy(update={"trace": current_trace()})
        await self._start_chain(envelope)
        # Recorded once the chain is on the bus (a failure before leaves the job to start
        # again), and only if its chain has not got further meanwhile.
        await ctx.jobs.transition(job.id, JobState.RUNNING, stage="lookup", when=_not_started)
        return Dispatched(Fate.STARTED)

    async def _dead(self, refused: Refused) -> Dispatched:
        """Dead-letter an event; tell its publisher when it named a job id no job holds."""
        ctx, job_id = self._ctx, refused.job_id
        log.info("event refused", job_id=job_id, reason=refused.reason)
        # A bad event must not speak for a job that exists, and its id is then spent: a later
        # event under it is a duplicate, or the publisher would hear of one job id twice.
        if (
            job_id is not None
            and await ctx.jobs.get(job_id) is None
            and await ctx.jobs.claim(SPENT, job_id, ctx.claim_ttl_s)
        ):
            error = ErrorDetail(type="invalid_event", message=refused.reason, retryable=False)
            event = failed_event(job_id, job_id, error, finished_at=time.time())
            try:
                await ctx.events.publish_completion(event)
            except BaseException:
                await ctx.jobs.release(SPENT, job_id)
                raise
        return Dispatched(Fate.DEAD, refused.reason)
