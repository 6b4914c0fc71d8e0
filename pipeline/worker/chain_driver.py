"""A chain job on the Celery cluster: each step a task, a map's items a group of chunk tasks.

A step's task runs the step (its model calls on promptbus's path, through JobChainCalls),
records its value in the job, then queues the task of the step after it (`next_step`), or
ends the job with the chain's output. A map's task queues a group of at most
`max_concurrency` chunk tasks; each runs its share of the items, a few at a time per task,
and whichever records the last item records the map's value and goes on.

Every task may run twice (late acks: a worker killed mid-task has its message delivered
again; the sweeper re-drives a job that stopped moving). A rerun skips what is recorded
(step values, items), a change already recorded is not reported again, the next task is
queued once (a claim), and the job ends once (`finish`): one completion, one result.
"""

from collections.abc import Awaitable
from typing import Any, Final

import structlog
from celery import Celery

from handlers import StageContext, finish
from pipeline.bus.celery_app import ChainTask, chain_step_task, map_chunks
from pipeline.bus.publisher import EventPublisher
from pipeline.chains import ChainCatalog, ChainVersion, using_gateway
from pipeline.chains import record as rec
from pipeline.chains.spec import MapStep
from pipeline.chains.stepwise import first_llm_step, map_items, next_step, run_item, run_step
from pipeline.errors import PromptbusError
from pipeline.jobs.store import JobChange
from pipeline.sessions import ChainMemory, SessionWindow
from pipeline.sync_path import SyncPath
from pipeline.transient import TRANSIENT
from pipeline.worker.chain_calls import JobChainCalls
from schemas import ErrorDetail, JobState
from schemas.chains import ChainCall, StepState
from schemas.jobs import Job

log = structlog.get_logger("promptbus.chains")

# Claimed by whoever queues a step's task (or a chunk's next part), so a task run twice
# queues what follows it once.
QUEUED: Final = "chain-queued"
# A chunk task runs at most this many of its items, then queues itself for the rest: each
# task stays within a bound of a few model calls (and the broker's redelivery timeouts).
ITEMS_PER_TASK: Final = 4


class ChainDriver:
    """Runs chain jobs' tasks against one stage context and sync path."""

    def __init__(
        self,
        ctx: StageContext,
        chains: ChainCatalog,
        sync_path: SyncPath,
        publisher: EventPublisher,
        celery: Celery,
        window: SessionWindow,
    ) -> None:
        self._ctx = ctx
        self._window = window
        self._chains = chains
        self._sync_path = sync_path
        self._publisher = publisher
        self._celery = celery

    async def run(self, task: ChainTask) -> None:
        """Run one task of a chain job (nothing if the job is unknown or has ended)."""
        job = await self._ctx.jobs.get(task.job_id)
        if job is None or job.finished or job.chain is None:
            return
        chain = self._chains.get(job.chain.id, job.chain.version).spec
        with structlog.contextvars.bound_contextvars(job_id=job.id, step=task.step):
            if task.chunk is not None:
                await self._chunk(job, chain, task)
            elif task.step not in job.chain.values:
                await self._step(job, chain, task)
            else:
                await self.advance(job.id, redrive=task.redrive)

    async def advance(self, job_id: str, *, redrive: bool = False) -> None:
        """Queue the job's next step, or end the job with its output once it is known."""
        job = await self._ctx.jobs.get(job_id)
        if job is None or job.finished or job.chain is None:
            return
        chain = self._chains.get(job.chain.id, job.chain.version).spec
        step = next_step(chain, rec.values_of(job))
        if step is None:
            await self._succeed(job, chain, redrive)
            return
        await self._queue(job.id, step, chain_step_task(self._celery, job.id, step), redrive)

    async def _step(self, job: Job, chain: ChainVersion, task: ChainTask) -> None:
        name = task.step
        changed = await self._change(job, chain, name, rec.started(name), StepState.RUNNING)
        job = changed or job
        step = chain.steps[name]
        if isinstance(step, MapStep):
            await self._start_map(job, chain, step, task.redrive)
            return
        outcome = await self._attempt(job, chain, name, run_step(chain, name, known(job)))
        if outcome is None:
            return
        value, calls = outcome
        await self._change(job, chain, name, rec.succeeded(name, value, calls), StepState.SUCCEEDED)
        await self.advance(job.id)

    async def _start_map(self, job: Job, chain: ChainVersion, step: MapStep, redrive: bool) -> None:
        try:
            items = map_items(step, known(job))
        except PromptbusError as exc:
            await self._fail(job, chain, step.name, _named(step.name, exc.detail()))
            return
        await self._ctx.jobs.amend(job.id, rec.items_counted(step.name, len(items)))
        if not items:
            await self._finish_map(job.id, chain, step, 0)
            return
        chunks = range(min(step.max_concurrency, len(items)))
        group = map_chunks(self._celery, job.id, step.name, chunks)
        await self._queue(job.id, f"{step.name}#map", group, redrive)

    async def _chunk(self, job: Job, chain: ChainVersion, task: ChainTask) -> None:
        step = chain.steps[task.step]
        assert isinstance(step, MapStep)
        assert task.chunk is not None
        values = known(job)
        items = map_items(step, values)
        width = min(step.max_concurrency, len(items))
        mine = range(task.chunk + 1, len(items) + 1, width)
        todo = rec.missing_items(rec.run_of(job), step.name, mine)
        for index in todo[:ITEMS_PER_TASK]:
            item = items[index - 1]
            outcome = await self._attempt(
                job,
                chain,
                step.name,
                run_item(chain, step, values, index, item),
                item=index,
            )
            if outcome is None:
                return
            value, calls = outcome
            changed = await self._ctx.jobs.amend(
                job.id, rec.item_done(step.name, index, value, calls)
            )
            if changed is None and await self._ended(job.id):
                return  # a sibling failed the job, or it was cancelled
        if len(todo) > ITEMS_PER_TASK:
            rest = chain_step_task(self._celery, job.id, step.name, chunk=task.chunk)
            await self._queue(job.id, f"{step.name}#{task.chunk}@{todo[ITEMS_PER_TASK]}", rest)
            return
        await self._finish_map(job.id, chain, step, len(items))

    async def _finish_map(
        self, job_id: str, chain: ChainVersion, step: MapStep, count: int
    ) -> None:
        job = await self._ctx.jobs.get(job_id)
        if job is None or job.finished:
            return
        finished = rec.map_finished(step.name, count)
        changed = await self._change(job, chain, step.name, finished, StepState.SUCCEEDED)
        # A chunk run again after the map was done goes on too (what follows is queued once).
        if changed is not None or step.name in rec.run_of(job).values:
            await self.advance(job_id)

    async def _attempt(
        self,
        job: Job,
        chain: ChainVersion,
        name: str,
        work: Awaitable[Any],
        *,
        item: int | None = None,
    ) -> tuple[Any, list[ChainCall]] | None:
        """The value `work` gives and the calls it made; None once it failed the job."""
        run = rec.run_of(job)
        memory = None
        if run.history or run.summary is not None:
            memory = ChainMemory(run.history, run.summary, first_llm_step(chain), self._window)
        calls = JobChainCalls(job, self._sync_path, self._ctx.ledger, self._ctx.metrics, memory)
        try:
            with using_gateway(calls):
                return await work, calls.made
        except TRANSIENT:
            raise  # the infrastructure, not the step: the task runs again
        except PromptbusError as exc:
            error = exc.detail()
        except Exception as exc:
            log.exception("chain step raised; the job fails with an internal error")
            error = ErrorDetail(
                type="internal_error", message=f"failed: {type(exc).__name__}", retryable=False
            )
        if item is not None:
            error = error.model_copy(update={"message": f"item {item}: {error.message}"})
        await self._fail(job, chain, name, _named(name, error))
        return None

    async def _fail(self, job: Job, chain: ChainVersion, name: str, error: ErrorDetail) -> None:
        await self._change(job, chain, name, rec.failed(name, error), StepState.FAILED, error)
        await finish(self._ctx, job.id, JobState.FAILED, error=error, stage=name)

    async def _succeed(self, job: Job, chain: ChainVersion, redrive: bool) -> None:
        """End the job with the chain's output (once: an advance made twice ends it once)."""
        if not redrive and not await self._ctx.jobs.claim(
            QUEUED, f"{job.id}:#end", self._ctx.claim_ttl_s
        ):
            return
        output = rec.values_of(job)[chain.output]
        concluded = await self._ctx.jobs.amend(job.id, rec.concluded(output))
        if concluded is None:
            return
        result = rec.response_of(concluded, output)
        await finish(self._ctx, job.id, JobState.SUCCEEDED, result=result, stage=chain.output)

    async def _queue(self, job_id: str, what: str, signature: Any, redrive: bool = False) -> None:
        """Queue `signature` once for `what` of the job (a re-drive queues it again)."""
        jobs, key = self._ctx.jobs, f"{job_id}:{what}"
        if not redrive and not await jobs.claim(QUEUED, key, self._ctx.claim_ttl_s):
            return
        try:
            await self._publisher.publish_chain(signature)
        except BaseException:
            await jobs.release(QUEUED, key)
            raise

    async def _change(
        self,
        job: Job,
        chain: ChainVersion,
        name: str,
        change: JobChange,
        state: StepState,
        error: ErrorDetail | None = None,
    ) -> Job | None:
        """Record `change`; if it changed the job, tell the bus the step is now `state`."""
        changed = await self._ctx.jobs.amend(job.id, change)
        if changed is not None:
            event = rec.step_event(changed, chain.steps[name], state, error)
            try:
                await self._publisher.publish_chain_step(event)
            except TRANSIENT as exc:  # a notice: the job's record is the truth
                log.warning("chain.step event not published", error=f"{type(exc).__name__}")
        return changed

    async def _ended(self, job_id: str) -> bool:
        job = await self._ctx.jobs.get(job_id)
        return job is None or job.finished


def known(job: Job) -> dict[str, Any]:
    """What the job's steps may read now."""
    return rec.values_of(job)


def _named(step: str, error: ErrorDetail) -> ErrorDetail:
    """`error` with the step named in its message (once)."""
    prefix = f"step {step!r}: "
    if error.message.startswith(prefix):
        return error
    return error.model_copy(update={"message": prefix + error.message})
