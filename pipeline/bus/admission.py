"""Admission: whether a request may become a job, checked once, where it enters.

An HTTP job is admitted by the ingress that accepts it (bad input is its 4xx), a bus event
by the bridge that takes it (bad input is a dead letter). Either way the admitted request is
expanded (its template rendered, its version pinned), its schema checked and its model
known; it is recorded with the job, and everything after reads it from the job's record.
"""

import re
from typing import Final, TypeVar

import orjson
from pydantic import ValidationError

from handlers.arrival import arrive
from pipeline.catalog import ModelCatalog
from pipeline.errors import PromptbusError, ValidationFailed
from pipeline.templates import TemplateCatalog
from schemas import (
    DEFAULT_TENANT,
    REQUEST_SCHEMA,
    GenerateRequest,
    JobState,
    RequestEvent,
    StageEnvelope,
)
from schemas.jobs import Job

_JOB_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# An event over the size limit is not parsed: its job id is looked for in its head alone.
_HEAD_BYTES: Final = 4096
_HEAD_JOB_ID: Final = re.compile(rb'"job_id"\s*:\s*"([A-Za-z0-9_.:-]{1,128})"')

R = TypeVar("R", bound=GenerateRequest)


class Refused(Exception):
    """Raised when a bus event cannot be admitted; `job_id` is set when it named a usable one."""

    def __init__(self, reason: str, job_id: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.job_id = job_id


def admit(request: R, catalog: ModelCatalog, templates: TemplateCatalog) -> R:
    """`request` admitted: schema checked, template expanded, model known; or a PromptbusError."""
    admitted = arrive(request, templates)
    catalog.route(admitted.model)
    return admitted


def parse_event(body: bytes, max_bytes: int | None = None) -> RequestEvent:
    """The request event in a raw bus body; Refused saying why it is not one (or that it is
    over `max_bytes`)."""
    if max_bytes is not None and len(body) > max_bytes:
        found = _HEAD_JOB_ID.search(body, 0, _HEAD_BYTES)
        raise Refused(
            f"event is {len(body)} bytes, over the {max_bytes}-byte limit",
            found.group(1).decode() if found else None,
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(f"invalid JSON: {exc}", None) from None
    job_id = data.get("job_id") if isinstance(data, dict) else None
    # fullmatch: `$` alone would let a trailing newline through, which JobId refuses.
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        job_id = None
    if not isinstance(data, dict) or data.get("schema") != REQUEST_SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise Refused(f"unknown schema {schema!r}; expected {REQUEST_SCHEMA}", job_id)
    try:
        return RequestEvent.model_validate(data)
    except ValidationError as exc:
        summary = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise Refused(f"invalid event: {summary}", job_id) from None


def admit_event(
    event: RequestEvent, catalog: ModelCatalog, templates: TemplateCatalog
) -> RequestEvent:
    """The event with its request admitted; Refused saying why it cannot be."""
    try:
        if event.request.session_id is not None:
            # A session is kept by the ingress that takes a turn; the bus has none.
            raise ValidationFailed(
                "session_id is for HTTP requests and jobs; a bus event does not take one",
                field="session_id",
            )
        request = admit(event.request, catalog, templates)
    except PromptbusError as exc:
        raise Refused(f"invalid event: {exc}", event.job_id) from None
    return event.model_copy(update={"request": request})


def new_job(event: RequestEvent, *, now: float, key_id: str | None = None) -> Job:
    """The queued job an admitted request event stands for (`key_id`: the API key it came
    with over HTTP; a bus event has none)."""
    # Every part was validated already (the event, its admitted request): no second pass.
    return Job.model_construct(
        id=event.job_id,
        state=JobState.QUEUED,
        tenant=event.tenant or DEFAULT_TENANT,
        key_id=key_id,
        correlation_id=event.correlation_id or event.job_id,
        created_at=now,
        updated_at=now,
        request=event.request,
        webhook=event.webhook,
        metadata=event.metadata,
    )


def envelope_for(job: Job, *, deadline: float) -> StageEnvelope:
    """The stage envelope a job's stages start from, read off its record (a request's job)."""
    if job.request is None:
        raise ValueError(f"job {job.id} runs a chain: it has no stage envelope")
    return StageEnvelope.model_construct(
        request_id=job.id,
        job_id=job.id,
        tenant=job.tenant,
        key_id=job.key_id,
        correlation_id=job.correlation_id,
        request=job.request,
        max_age_s=job.request.cache.max_age,
        deadline=deadline,
    )
