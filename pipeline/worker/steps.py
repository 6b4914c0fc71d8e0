"""One step of a job's chain: its stage, with the job's progress recorded and failures captured.

A failure of the request or the upstream (a PromptbusError) and a bug (any other exception)
both become the job's error, so the chain still reaches emit and the job ends with one
`completion.failed`. A failure of the infrastructure (TRANSIENT) is raised instead: the
Celery task retries the step. A deferred step (StageDeferred) is raised to be retried too.
"""

from collections.abc import Awaitable, Callable
from typing import Final

import structlog

from handlers import CANCELLED, StageContext, StageDeferred, emit, generate_job, postprocess
from pipeline.errors import PromptbusError
from pipeline.tracing import failed, from_trace, names, stage_span
from pipeline.transient import TRANSIENT
from schemas import ErrorDetail, JobState, StageEnvelope

Stage = Callable[[StageEnvelope, StageContext], Awaitable[StageEnvelope]]

log = structlog.get_logger("promptbus.worker")

# Each step: its stage, and whether an answer already in the envelope skips it. A job that
# asked for `stream` has its deltas sent as they come (handlers.job_stream).
STEPS: Final[dict[str, tuple[Stage, bool]]] = {
    "generate": (generate_job, True),
    "postprocess": (postprocess, True),
    "emit": (emit, False),
}
# The step whose start is recorded: the long upstream call, and the last point at which a
# cancelled job can stop before paying for it.
RECORDED: Final = "generate"


async def run_step(name: str, envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Run one step for a job: skip it when moot, record it, and capture its failure.

    The step has a span of its own, in the trace the envelope carries (the job's dispatch).
    """
    with stage_span(
        ctx.tracer, name, envelope, parent=from_trace(envelope.trace), passing=(StageDeferred,)
    ) as current:
        try:
            done = await _run_step(name, envelope, ctx)
        except StageDeferred:
            current.set_attribute(names.DEFERRED, True)
            raise
        if done.error is not None and envelope.error is None:
            failed(current, done.error.type, done.error.message)
        return done


async def _run_step(name: str, envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    stage, skip_when_answered = STEPS[name]
    if envelope.job_id is None:
        raise ValueError("a job step needs a job id")
    if name != "emit":
        if envelope.error is not None or (skip_when_answered and envelope.response is not None):
            return envelope
        if name == RECORDED and (
            await ctx.jobs.transition(envelope.job_id, JobState.RUNNING, stage=name) is None
        ):
            # Cancelled (or ended by another run of its chain): stop; emit stays silent.
            return envelope.model_copy(update={"error": CANCELLED})
    with structlog.contextvars.bound_contextvars(job_id=envelope.job_id, stage=name):
        try:
            return await stage(envelope, ctx)
        except (StageDeferred, *TRANSIENT):
            raise
        except PromptbusError as exc:
            log.info("stage failed", error=exc.type, message=exc.message)
            return envelope.model_copy(update={"error": exc.detail()})
        except Exception as exc:
            log.exception("stage raised; the job fails with an internal error")
            error = ErrorDetail(
                type="internal_error",
                message=f"the {name} stage failed: {type(exc).__name__}",
                retryable=False,
            )
            return envelope.model_copy(update={"error": error})
