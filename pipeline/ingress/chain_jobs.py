"""POST /v1/jobs with `chain`: a chain run as a job, each step a task on the workers.

Checked here, before anything is queued: the chain and version exist (404), the variables
are the ones it takes (422), the key may call every model its steps call (403) and has room
under its rate limits for one more request (429). The job's
record then shows each step's state as it runs (GET /v1/jobs/{id}, its SSE), and the job
ends like any other (its completion event, its webhooks), its result the chain's output.
"""

import asyncio

from aiohttp import web

from pipeline.chains.spec import LlmStep
from pipeline.chains.stepwise import first_llm_step, input_text
from pipeline.errors import ValidationFailed
from pipeline.ingress.body import parse_model
from pipeline.ingress.chains import check_variables
from pipeline.ingress.keys import SEND, SERVICES
from pipeline.ingress.permit import check_model, permit
from pipeline.ingress.principal import principal_of
from schemas import GenerateRequest, GenerationParams
from schemas.jobs import ChainJobSubmission, Job


async def submit_chain_job(request: web.Request, data: object, key: str | None) -> Job:
    """Accept the chain job `data` describes (under the Idempotency-Key `key`, if any)."""
    submission = parse_model(ChainJobSubmission, data)
    ref = submission.chain
    chain = request.app[SERVICES].chains.get(ref.id, ref.version)
    spec = chain.spec
    if spec.custom:
        raise ValidationFailed(
            f"chain {spec.id!r} is written in Python: it runs by POST /v1/chains/{spec.id}"
            "/invoke, not as a job (a job runs a config chain's steps as tasks)",
            field="chain.id",
        )
    check_variables(spec, ref.variables)
    for step in spec.steps.values():
        if isinstance(step, LlmStep):
            check_model(request, step.model)
    first = first_llm_step(spec)
    if first is not None:
        # Counted under the key's limits as one request of its first model call, by its
        # input's estimate (a job's calls are made in a worker, which holds no key limits).
        model = spec.steps[first]
        assert isinstance(model, LlmStep)
        counted = GenerateRequest.model_construct(
            model=model.model, prompt=input_text(ref.variables), params=GenerationParams()
        )
        await permit(request, counted)
    principal = principal_of(request)
    # Shielded: a caller that hangs up must not cut a submit between its store and its publish.
    return await asyncio.shield(
        request.app[SEND].submitter.submit_chain(
            submission,
            spec,
            tenant=principal.tenant,
            key_id=principal.key_id,
            correlation_id=request.headers.get("X-Correlation-Id"),
            idempotency_key=key,
        )
    )
