"""The async job routes: submit, status (long-poll), cancel, list (events: job_events.py)."""

import asyncio

import orjson
from aiohttp import web

from pipeline.errors import JobNotFound, ValidationFailed
from pipeline.ingress.body import parse_model, read_json
from pipeline.ingress.chain_jobs import submit_chain_job
from pipeline.ingress.keys import SEND, SERVICES, SETTINGS
from pipeline.ingress.permit import permit
from pipeline.ingress.principal import principal_of
from pipeline.jobs.store import JobStore
from schemas import JobState
from schemas.jobs import Job, JobSubmission
from schemas.webhooks import Attempt

MAX_WAIT_S = 60.0
MAX_PAGE = 100


def _job_response(
    job: Job, status: int = 200, attempts: list[Attempt] | None = None
) -> web.Response:
    body = job.public()
    if attempts:
        body["webhook_attempts"] = [a.model_dump(mode="json", exclude_none=True) for a in attempts]
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def post_job(request: web.Request) -> web.Response:
    """Accept a job: 202 with its record and Location, once the bus has the event.

    A body with `chain` runs a chain (pipeline/ingress/chain_jobs.py).
    """
    data = await read_json(request, request.app[SETTINGS].max_body_bytes)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key"
        )
    if isinstance(data, dict) and "chain" in data:
        job = await submit_chain_job(request, data, key)
    else:
        job = await _submit(request, parse_model(JobSubmission, data), key)
    response = _job_response(job, status=202)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response


async def _submit(request: web.Request, submission: JobSubmission, key: str | None) -> Job:
    await permit(request, submission)
    principal = principal_of(request)
    # Shielded: a caller that hangs up must not cut a submit between its store and its publish.
    return await asyncio.shield(
        request.app[SEND].submitter.submit(
            submission,
            tenant=principal.tenant,
            key_id=principal.key_id,
            correlation_id=request.headers.get("X-Correlation-Id"),
            idempotency_key=key,
        )
    )


async def get_job(request: web.Request) -> web.Response:
    """The job; with `?wait=S`, held until it finishes or S seconds (at most 60) pass."""
    services = request.app[SERVICES]
    jobs = services.ctx.jobs
    job_id = request.match_info["job_id"]
    wait_s = _wait_param(request)
    job = await own_job(request, jobs, job_id)
    if wait_s > 0 and not job.finished:
        waited = await jobs.wait(job_id, wait_s)
        if waited is None:
            raise JobNotFound(f"no job {job_id!r}")
        job = waited
    attempts = await services.backends.webhooks.attempts_for_job(job_id)
    return _job_response(job, attempts=attempts)


async def delete_job(request: web.Request) -> web.Response:
    """Cancel a queued or running job."""
    job_id = request.match_info["job_id"]
    await own_job(request, request.app[SERVICES].ctx.jobs, job_id)
    job = await asyncio.shield(request.app[SEND].submitter.cancel(job_id))
    return _job_response(job)


async def list_jobs(request: web.Request) -> web.Response:
    """Recent jobs, newest first: `?state=&limit=&cursor=`."""
    query = request.query
    state = None
    if "state" in query:
        try:
            state = JobState(query["state"])
        except ValueError as exc:
            raise ValidationFailed(
                f"state must be one of {', '.join(s.value for s in JobState)}", field="state"
            ) from exc
    limit = _int_param(request, "limit", default=20, low=1, high=MAX_PAGE)
    page = await request.app[SERVICES].ctx.jobs.list(
        tenant=principal_of(request).tenant, state=state, limit=limit, cursor=query.get("cursor")
    )
    body = {"data": [job.public() for job in page.data], "next_cursor": page.next_cursor}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def own_job(request: web.Request, jobs: JobStore, job_id: str) -> Job:
    """The job, if it is the request's tenant's: another tenant's job is a 404, like none."""
    job = await jobs.get(job_id)
    if job is None or job.tenant != principal_of(request).tenant:
        raise JobNotFound(f"no job {job_id!r}")
    return job


def _wait_param(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None:
        return 0.0
    try:
        wait_s = float(raw)
    except ValueError as exc:
        raise ValidationFailed("wait must be a number of seconds", field="wait") from exc
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise ValidationFailed(f"wait must be between 0 and {MAX_WAIT_S:g} s", field="wait")
    return wait_s


def _int_param(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationFailed(f"{name} must be an integer from {low} to {high}", field=name)
    return int(raw)
