"""One step of a job: the stage, wrapped with job state and error capture."""

from collections.abc import Awaitable, Callable

import structlog

from handlers import StageContext, cache_lookup, dedupe, emit, generate, postprocess
from pipeline.errors import PromptbusError
from schemas import ErrorDetail, JobState, StageEnvelope

Stage = Callable[[StageEnvelope, StageContext], Awaitable[StageEnvelope]]

log = structlog.get_logger("promptbus.worker")


async def lookup(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """The dedupe and cache lookup stages, as one step."""
    return await cache_lookup(await dedupe(envelope, ctx), ctx)


# The chain a job runs, in order: (step name, stage, whether a cached answer skips it).
CHAIN: tuple[tuple[str, Stage, bool], ...] = (
    ("lookup", lookup, False),
    ("generate", generate, True),
    ("postprocess", postprocess, True),
    ("emit", emit, False),
)
STEPS = {name: (stage, skip_when_answered) for name, stage, skip_when_answered in CHAIN}


async def run_step(name: str, envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Run one step for a job: record it, skip it when moot, and capture its failure."""
    stage, skip_when_answered = STEPS[name]
    if name == "emit":
        return await stage(envelope, ctx)
    if envelope.error is not None or (skip_when_answered and envelope.response is not None):
        return envelope
    if envelope.job_id is None or ctx.jobs is None:
        raise ValueError("a job step needs a job id and a job store")
    if await ctx.jobs.transition(envelope.job_id, JobState.RUNNING, stage=name) is None:
        # Cancelled or gone: stop here; emit will find it finished and stay silent.
        cancelled = ErrorDetail(type="cancelled", message="the job was cancelled", retryable=False)
        return envelope.model_copy(update={"error": cancelled})
    with structlog.contextvars.bound_contextvars(job_id=envelope.job_id, stage=name):
        try:
            return await stage(envelope, ctx)
        except PromptbusError as exc:
            log.info("stage failed", error=exc.type, message=exc.message)
            return envelope.model_copy(update={"error": exc.detail()})
