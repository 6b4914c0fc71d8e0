"""A chain job's record as its steps move on: each change a `JobChange` for the job store's
atomic `amend`, so that tasks of one job running at once (a map's chunks) lose no update.

A change that finds its work already recorded (a task delivered twice) changes nothing:
it returns None, and whoever made the change is the one that reports it.
"""

import time
from collections.abc import Sequence
from typing import Any

from pipeline.chains.spec import Step
from pipeline.chains.stepwise import known
from pipeline.chains.usage import usage_of
from pipeline.chains.values import as_text
from pipeline.jobs.store import JobChange
from schemas import CacheInfo, Cost, ErrorDetail, GenerateResponse, JobState, Usage
from schemas.chains import ChainCall, ChainRun, ChainStepEvent, StepState
from schemas.jobs import Job


def run_of(job: Job) -> ChainRun:
    """The chain a job runs (ValueError for a request's job)."""
    if job.chain is None:
        raise ValueError(f"job {job.id} runs no chain")
    return job.chain


def started(step: str) -> JobChange:
    """The step is running (and so is the job); no change if it had started already."""

    def change(job: Job) -> dict[str, object] | None:
        run = run_of(job)
        if run.status(step).state is not StepState.PENDING:
            return None
        return {"state": JobState.RUNNING, "stage": step, "chain": _step(run, step, "running")}

    return change


def succeeded(step: str, value: Any, calls: Sequence[ChainCall]) -> JobChange:
    """The step's value is known; no change if it was already."""

    def change(job: Job) -> dict[str, object] | None:
        run = run_of(job)
        if step in run.values:
            return None
        run = _step(run, step, "succeeded")
        values = {**run.values, step: value}
        return {"chain": run.model_copy(update={"values": values, "calls": (*run.calls, *calls)})}

    return change


def failed(step: str, error: ErrorDetail) -> JobChange:
    """The step failed with `error`."""

    def change(job: Job) -> dict[str, object] | None:
        run = run_of(job)
        return {"chain": _step(run, step, "failed", error=error)}

    return change


def items_counted(step: str, count: int) -> JobChange:
    """A map's items are known: `count` of them."""

    def change(job: Job) -> dict[str, object] | None:
        run = run_of(job)
        status = run.status(step)
        if status.items is not None:
            return None
        done = len(run.items.get(step, {}))
        return {"chain": _step(run, step, status.state, items=count, items_done=done)}

    return change


def item_done(step: str, index: int, value: Any, calls: Sequence[ChainCall]) -> JobChange:
    """A map's item at `index` has its value; no change if it had it already."""

    def change(job: Job) -> dict[str, object] | None:
        run = run_of(job)
        held = run.items.get(step, {})
        if str(index) in held:
            return None
        items = {**run.items, step: {**held, str(index): value}}
        run = run.model_copy(update={"items": items, "calls": (*run.calls, *calls)})
        status = run.status(step)
        return {"chain": _step(run, step, status.state, items_done=len(items[step]))}

    return change


def map_finished(step: str, count: int) -> JobChange:
    """A map's value, its items' values in order, once all `count` are in."""

    def change(job: Job) -> dict[str, object] | None:
        run = run_of(job)
        held = run.items.get(step, {})
        if step in run.values or len(held) < count:
            return None
        value = [held[str(index)] for index in range(1, count + 1)]
        items = {name: done for name, done in run.items.items() if name != step}
        run = _step(run, step, "succeeded").model_copy(
            update={"values": {**run.values, step: value}, "items": items}
        )
        return {"chain": run}

    return change


def concluded(output: Any) -> JobChange:
    """The chain's output is known; the steps it did not need are skipped."""

    def change(job: Job) -> dict[str, object] | None:
        run = run_of(job)
        steps = tuple(
            s.model_copy(update={"state": StepState.SKIPPED}) if s.state is StepState.PENDING else s
            for s in run.steps
        )
        return {"chain": run.model_copy(update={"steps": steps, "output": output})}

    return change


def missing_items(run: ChainRun, step: str, indexes: range) -> list[int]:
    """Which of a map's items at `indexes` have no value yet."""
    held = run.items.get(step, {})
    return [index for index in indexes if str(index) not in held]


def response_of(job: Job, output: Any) -> GenerateResponse:
    """A chain job's result as any job's: the output as text (and as JSON when it is not
    text), what its calls spent, and the chain in the metadata (its steps' values stay in
    the job's record: a completion event does not carry a long document's chunks)."""
    run = run_of(job)
    spent = usage_of(run.calls)
    name = f"chain:{run.id}"
    return GenerateResponse(
        id=job.id,
        model=name,
        provider_model=f"{name}@{run.version}",
        provider="promptbus",
        text=as_text(output),
        finish_reason="stop",
        usage=Usage(
            input_tokens=spent.input_tokens,
            output_tokens=spent.output_tokens,
            total_tokens=spent.input_tokens + spent.output_tokens,
        ),
        cost=Cost(input_usd=0.0, output_usd=0.0, total_usd=spent.cost_usd),
        cache=CacheInfo(hit=bool(run.calls) and spent.cache_hits == spent.calls, key=name),
        json_=None if isinstance(output, str) else output,
        created=time.time(),
        metadata={
            "chain": run.id,
            "version": run.version,
            "usage": spent.model_dump(mode="json"),
        },
    )


def step_event(
    job: Job, step: Step, state: StepState, error: ErrorDetail | None = None
) -> ChainStepEvent:
    """The `chain.step` event of `step` of the job (as just changed) entering `state`."""
    run = run_of(job)
    return ChainStepEvent(
        job_id=job.id,
        correlation_id=job.correlation_id,
        tenant=job.tenant,
        chain=run.id,
        version=run.version,
        step=step.name,
        kind=step.kind,
        state=state,
        error=error,
        at=job.updated_at,
    )


def values_of(job: Job) -> dict[str, Any]:
    """What the job's next step may read."""
    return known(run_of(job))


def _step(run: ChainRun, step: str, state: str, **fields: object) -> ChainRun:
    steps = tuple(
        s.model_copy(update={"state": StepState(state), **fields}) if s.name == step else s
        for s in run.steps
    )
    return run.model_copy(update={"steps": steps})
