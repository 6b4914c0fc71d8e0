"""Admitting a request event from the bus: validate it, record its job once."""

import re
import time
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from handlers import StageContext, failed_event
from handlers.arrival import arrive
from handlers.emit import EMIT_CLAIM, CompletionSink
from pipeline.errors import PromptbusError
from pipeline.jobs.store import JobStore
from schemas import REQUEST_SCHEMA, ErrorDetail, JobState, RequestEvent, StageEnvelope
from schemas.jobs import Job

DISPATCH_CLAIM = "dispatch"
DEFAULT_TENANT = "default"
_JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class Admission:
    """An event's fate: run (envelope), dead-letter (reason), or drop as a duplicate (neither)."""

    envelope: StageEnvelope | None = None
    dead_reason: str | None = None


def new_job(event: RequestEvent, *, now: float) -> Job:
    """The queued job a request event stands for."""
    return Job(
        id=event.job_id,
        state=JobState.QUEUED,
        tenant=event.tenant or DEFAULT_TENANT,
        correlation_id=event.correlation_id or event.job_id,
        created_at=now,
        updated_at=now,
        request=event.request,
        webhook=event.webhook,
        metadata=event.metadata,
    )


def envelope_for(event: RequestEvent) -> StageEnvelope:
    """The stage envelope a job starts its chain with."""
    return StageEnvelope(
        request_id=event.job_id,
        job_id=event.job_id,
        tenant=event.tenant or DEFAULT_TENANT,
        correlation_id=event.correlation_id or event.job_id,
        request=event.request,
        max_age_s=event.request.cache.max_age,
    )


class Admitter:
    """Decides an event's fate and records admitted jobs."""

    def __init__(self, ctx: StageContext, jobs: JobStore, events: CompletionSink) -> None:
        self._ctx = ctx
        self._jobs = jobs
        self._events = events

    async def admit(self, body: bytes) -> Admission:
        """Validate one raw event body and, the first time its job is seen, record it."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return Admission(dead_reason=f"invalid JSON: {exc}")
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            job_id = None
        if not isinstance(data, dict) or data.get("schema") != REQUEST_SCHEMA:
            schema = data.get("schema") if isinstance(data, dict) else None
            return await self._dead(f"unknown schema {schema!r}; expected {REQUEST_SCHEMA}", job_id)
        try:
            event = RequestEvent.model_validate(data)
        except ValidationError as exc:
            summary = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            return await self._dead(f"invalid event: {summary}", job_id)
        try:
            self._ctx.catalog.resolve(event.request.model)
        except Exception as exc:
            return await self._dead(f"invalid event: {exc}", job_id)
        try:
            # A publisher's template request is expanded here, as the ingress expands its own.
            event = event.model_copy(update={"request": arrive(event.request, self._ctx.templates)})
        except PromptbusError as exc:
            return await self._dead(f"invalid event: {exc}", job_id)
        if not await self._jobs.claim(DISPATCH_CLAIM, event.job_id, self._ctx.claim_ttl_s):
            return Admission()
        await self._jobs.create(new_job(event, now=time.time()))
        return Admission(envelope=envelope_for(event))

    async def _dead(self, reason: str, job_id: str | None) -> Admission:
        # Only a job id not yet dispatched gets the failure, and it is then spent: a bad event
        # must not take the completion of a job already running under that id, and a later
        # event under it is a duplicate (else its job would run but never be allowed to emit).
        ttl_s = self._ctx.claim_ttl_s
        if (
            job_id is not None
            and await self._jobs.claim(DISPATCH_CLAIM, job_id, ttl_s)
            and await self._jobs.claim(EMIT_CLAIM, job_id, ttl_s)
        ):
            error = ErrorDetail(type="invalid_event", message=reason, retryable=False)
            event = failed_event(job_id, job_id, error, finished_at=time.time())
            await self._events.publish_completion(event)
        return Admission(dead_reason=reason)
