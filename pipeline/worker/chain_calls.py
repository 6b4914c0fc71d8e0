"""The model calls of one step of a chain job, each answered on promptbus's path in a worker.

Each call is a request of the job's tenant and key on the one path (cache, coalescing
within and across processes, routing, retries, budgets), with one usage row however it
ends (surface `chain`, the job, the chain, its version and step). A chain job's steps do
not stream.
"""

import time
from collections.abc import AsyncIterator

from pipeline.chains.usage import call_of
from pipeline.errors import PromptbusError
from pipeline.ledger import ChainTag, UsageSink, answered_model, caller, failed
from pipeline.metrics import Metrics
from pipeline.sessions import ChainMemory
from pipeline.sync_path import SyncPath
from schemas import GenerateRequest, GenerateResponse
from schemas.chains import ChainCall
from schemas.jobs import Job


class JobChainCalls:
    """The gateway of one step of a chain job: its calls as the job's own requests."""

    streaming = False

    def __init__(
        self,
        job: Job,
        sync_path: SyncPath,
        usage: UsageSink,
        metrics: Metrics,
        memory: ChainMemory | None = None,
    ) -> None:
        if job.chain is None:
            raise ValueError(f"job {job.id} runs no chain")
        self._job = job
        self._run = job.chain
        self._sync_path = sync_path
        self._usage = usage
        self._metrics = metrics
        self._memory = memory
        self.made: list[ChainCall] = []

    async def generate(self, request: GenerateRequest, *, step: str | None) -> GenerateResponse:
        """The answer to one model call of the step."""
        job, run = self._job, self._run
        body = request.model_copy(update={"cache": run.cache})
        if self._memory is not None:
            body = self._memory.applied(body, step)
        who = caller(
            body,
            tenant=job.tenant,
            key_id=job.key_id,
            request_id=job.id,
            surface="chain",
            job_id=job.id,
            chain=ChainTag(run.id, run.version, step),
        )
        started = time.perf_counter()
        try:
            answer = await self._sync_path.answer(
                body,
                request_id=job.id,
                tenant=job.tenant,
                max_age_s=run.cache.max_age,
                key_id=job.key_id,
            )
        except PromptbusError as exc:
            self._usage.record(failed(who, exc.type, (time.perf_counter() - started) * 1000))
            raise
        response = answer.response or GenerateResponse.model_validate_json(answer.body)
        self._usage.record(answered_model(who, response, (time.perf_counter() - started) * 1000))
        if not (response.cache.hit or response.cache.coalesced):
            self._metrics.spent(response.provider_model, job.tenant, response.usage, response.cost)
        self.made.append(call_of(step, response))
        return response

    def stream(
        self, request: GenerateRequest, *, step: str | None
    ) -> AsyncIterator[str | GenerateResponse]:
        """Not used: a chain job's calls are answered whole (`streaming` is False)."""
        raise NotImplementedError("a chain job's steps do not stream")
