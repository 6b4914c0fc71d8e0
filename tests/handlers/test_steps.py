"""One step of a job's chain (`run_step`): skipped when moot, recorded, its failure captured.

A failure of the request or the upstream, and a bug, become the job's error so that its
chain still ends in one completion; a failure of the infrastructure is raised for the
task to retry.
"""

from typing import Any

import pytest

from handlers import CANCELLED, StageDeferred, finish, identified
from pipeline.catalog import ModelCatalog, ModelSpec
from pipeline.errors import ServiceBusy
from pipeline.jobs.memory import MemoryJobStore
from pipeline.worker.steps import run_step
from schemas import ErrorDetail, GenerateRequest, JobState, StageEnvelope
from schemas.jobs import Job
from tests.handlers.stage_support import Stages, stage_context
from tests.support.emulator import Emulator
from tests.support.envelopes import answer

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
UPSTREAM_DOWN = ErrorDetail(
    type="upstream_unavailable", message="503 from upstream", retryable=True
)


def request(prompt: str = "name a colour", **fields: object) -> GenerateRequest:
    return GenerateRequest.model_validate({"model": "flash", "prompt": prompt, **fields})


async def job(stages: Stages, job_id: str, req: GenerateRequest | None = None) -> StageEnvelope:
    """A submitted job's envelope as dispatch hands it to its chain: identified."""
    envelope = await stages.submit(req or request(), job_id)
    return await identified(envelope, stages.ctx)


async def chain(stages: Stages, envelope: StageEnvelope) -> StageEnvelope:
    """The job's chain: each step in turn, as the Celery chain runs them."""
    for name in ("generate", "postprocess", "emit"):
        envelope = await run_step(name, envelope, stages.ctx)
    return envelope


async def test_a_chain_of_steps_answers_the_job_once(stages: Stages) -> None:
    # Given a dispatched job
    envelope = await job(stages, "job-chain")

    # When its chain runs
    done = await chain(stages, envelope)

    # Then it is answered by one call and ends succeeded with one completion
    assert done.response is not None
    assert await stages.emulator.calls() == 1
    record = await stages.job("job-chain")
    assert (record.state, record.stage) == (JobState.SUCCEEDED, "emit")
    assert record.result == done.response
    [event] = stages.sink.of("job-chain")
    assert event.result == done.response


async def test_the_generate_step_is_recorded(stages: Stages) -> None:
    # Given a queued job
    envelope = await job(stages, "job-record")
    assert (await stages.job("job-record")).stage is None

    # When its generate step runs
    generated = await run_step("generate", envelope, stages.ctx)

    # Then the record says it is running at generate, and the envelope holds the answer
    record = await stages.job("job-record")
    assert (record.state, record.stage) == (JobState.RUNNING, "generate")
    assert generated.generation is not None
    assert generated.error is None


@pytest.mark.parametrize("step", ["generate", "postprocess"])
async def test_a_step_after_an_error_is_skipped(stages: Stages, step: str) -> None:
    # Given a job whose chain met an error already
    envelope = (await job(stages, "job-skip")).model_copy(update={"error": UPSTREAM_DOWN})

    # When a later step runs, Then it passes the envelope on untouched, calling nothing
    assert await run_step(step, envelope, stages.ctx) == envelope
    assert await stages.emulator.calls() == 0
    record = await stages.job("job-skip")
    assert (record.state, record.stage) == (JobState.QUEUED, None)


async def test_a_step_after_an_answer_is_skipped(stages: Stages) -> None:
    # Given a job answered already (from the cache, or by an earlier run of the step)
    envelope = (await job(stages, "job-answered")).model_copy(update={"response": answer()})

    # When generate and post-process run, Then neither calls the model or changes the answer
    assert await run_step("generate", envelope, stages.ctx) == envelope
    assert await run_step("postprocess", envelope, stages.ctx) == envelope
    assert await stages.emulator.calls() == 0


async def test_a_cancelled_job_stops_before_the_upstream_call(stages: Stages) -> None:
    # Given a job cancelled before its generate step runs
    envelope = await job(stages, "job-cancelled")
    assert await finish(stages.ctx, "job-cancelled", JobState.CANCELLED, error=CANCELLED)
    calls_before = await stages.emulator.calls()

    # When the rest of its chain runs
    stopped = await run_step("generate", envelope, stages.ctx)
    await run_step("postprocess", stopped, stages.ctx)
    await run_step("emit", stopped, stages.ctx)

    # Then the step returns the cancellation as the error, without paying for a call,
    # and the only completion is the cancellation's own
    assert stopped.error == CANCELLED
    assert stopped.generation is None
    assert await stages.emulator.calls() == calls_before
    assert len(stages.sink.of("job-cancelled")) == 1
    assert (await stages.job("job-cancelled")).state is JobState.CANCELLED


@pytest.mark.parametrize(
    ("prompt", "schema", "error_type", "calls"),
    [
        ("[[emulator:block=safety]] say it", None, "content_blocked", 1),
        ("[[emulator:empty]] say nothing", None, "empty_answer", 1),
        ("[[emulator:status=400]] a bad request", None, "upstream_rejected", 1),
        # One repair call after the first invalid answer, then no more
        ("[[emulator:json=invalid]] describe someone", PERSON, "invalid_model_output", 2),
    ],
    ids=["blocked", "empty", "rejected", "invalid-json"],
)
async def test_a_promptbus_error_becomes_the_jobs_error(
    stages: Stages, prompt: str, schema: dict[str, object] | None, error_type: str, calls: int
) -> None:
    # Given a job whose model misbehaves in a way no retry mends
    envelope = await job(stages, "job-fails", request(prompt, response_schema=schema))

    # When its chain runs
    done = await chain(stages, envelope)

    # Then the error is the envelope's, after no more calls than it took to see it, and the
    # job fails with it in one completion
    assert done.error is not None
    assert done.error.type == error_type
    assert done.error.attempts == calls
    assert done.response is None
    assert await stages.emulator.calls() == calls
    [event] = stages.sink.of("job-fails")
    assert event.state is JobState.FAILED
    assert event.error == done.error
    assert (await stages.job("job-fails")).error == done.error


async def test_a_bug_in_a_stage_becomes_an_internal_error(emulator: Emulator) -> None:
    # Given a catalogue listing a price no answer can be priced at (config/models.toml
    # loads one today: see tests/pipeline/test_catalog_prices.py)
    negative = ModelSpec(
        provider="gemini",
        provider_model="gemini-2.5-flash",
        aliases=("flash",),
        input_per_million=-0.30,
        output_per_million=2.50,
    )
    catalog = ModelCatalog([negative])
    async with stage_context(emulator, catalog=catalog) as stages:
        envelope = await job(stages, "job-bug")

        # When its chain runs (the model answers; pricing the answer raises)
        done = await chain(stages, envelope)

        # Then the failure is the job's internal error, naming the step, and the job ends
        # with one completion.failed rather than a task that dies
        assert done.error is not None
        assert done.error.type == "internal_error"
        assert done.error.message == "the postprocess stage failed: ValidationError"
        assert done.error.retryable is False
        [event] = stages.sink.of("job-bug")
        assert event.state is JobState.FAILED
        assert event.error == done.error
        assert await emulator.calls() == 1


async def test_a_deferred_generate_is_raised_for_the_task_to_retry(stages: Stages) -> None:
    # Given a job whose model answers 503
    envelope = await job(stages, "job-later", request("[[emulator:status=503]] hello"))

    # When its generate step runs, Then it is deferred (a Celery retry), recorded as begun
    with pytest.raises(StageDeferred) as deferred:
        await run_step("generate", envelope, stages.ctx)
    assert deferred.value.envelope.routing is not None
    assert deferred.value.envelope.routing.attempts == 1
    assert (await stages.job("job-later")).stage == "generate"
    assert stages.sink.events == []


class BusyJobStore(MemoryJobStore):
    """A memory job store that, while `busy`, is full when a job is moved on."""

    busy = False

    async def transition(self, job_id: str, state: JobState, **changes: Any) -> Job | None:
        if self.busy:
            raise ServiceBusy("the job store is full; try again later")
        return await super().transition(job_id, state, **changes)


async def test_a_failing_store_at_the_recorded_step_is_raised(emulator: Emulator) -> None:
    # Given a job, and a store that then cannot record it moving on
    async with stage_context(emulator, job_store=BusyJobStore) as stages:
        envelope = await job(stages, "job-busy")
        assert isinstance(stages.jobs, BusyJobStore)
        stages.jobs.busy = True

        # When its generate step runs, Then the failure is raised (the task retries the
        # step) and the model is not called
        with pytest.raises(ServiceBusy):
            await run_step("generate", envelope, stages.ctx)
        assert await emulator.calls() == 0


async def test_a_failing_store_at_emit_is_raised_not_made_the_jobs_error(
    emulator: Emulator,
) -> None:
    # Given a job answered, and a store that then cannot record its end
    async with stage_context(emulator, job_store=BusyJobStore) as stages:
        generated = await run_step("generate", await job(stages, "job-busy-end"), stages.ctx)
        answered = await run_step("postprocess", generated, stages.ctx)
        assert isinstance(stages.jobs, BusyJobStore)
        stages.jobs.busy = True

        # When emit runs, Then the failure is raised for a retry, with nothing published
        with pytest.raises(ServiceBusy):
            await run_step("emit", answered, stages.ctx)
        assert stages.sink.events == []

        # And the retry, once the store is back, ends the job with its answer
        stages.jobs.busy = False
        await run_step("emit", answered, stages.ctx)
        [event] = stages.sink.of("job-busy-end")
        assert event.state is JobState.SUCCEEDED


async def test_a_step_needs_a_job(stages: Stages) -> None:
    with pytest.raises(ValueError, match="job id"):
        await run_step("generate", stages.envelope(request()), stages.ctx)
