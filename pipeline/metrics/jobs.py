"""Job states counted where they are recorded: a wrapper around any job store.

Every way a job is created or moves on (the ingress, the bridge, the chain's steps, a
cancel, the sweeper) goes through the store, so counting there counts each once: a job
created is `queued`; a move to a final state counts that state (final is final, so once);
a move to `running` counts the stage it starts.
"""

from collections.abc import AsyncGenerator, Callable, Sequence

from pipeline.jobs.store import JobChange, JobStore
from pipeline.metrics.recorder import Metrics
from schemas import ErrorDetail, GenerateResponse, JobState
from schemas.jobs import TERMINAL_STATES, Job, JobPage


class MeteredJobStore:
    """A job store that counts the jobs it creates and the states they enter."""

    def __init__(self, store: JobStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    async def create(self, job: Job) -> bool:
        """Record a new job; False if a job with that id exists."""
        created = await self._store.create(job)
        if created:
            self._metrics.job(job.state.value)
        return created

    async def delete(self, job_id: str) -> None:
        """Forget a job that was never accepted after all."""
        await self._store.delete(job_id)

    async def get(self, job_id: str) -> Job | None:
        """The job, or None if unknown (or expired)."""
        return await self._store.get(job_id)

    async def transition(
        self,
        job_id: str,
        state: JobState,
        *,
        stage: str | None = None,
        result: GenerateResponse | None = None,
        error: ErrorDetail | None = None,
        finished_at: float | None = None,
        when: Callable[[Job], bool] | None = None,
    ) -> Job | None:
        """Move a job on; None if it is unknown, finished (finished is final) or fails `when`."""
        job = await self._store.transition(
            job_id,
            state,
            stage=stage,
            result=result,
            error=error,
            finished_at=finished_at,
            when=when,
        )
        if job is not None:
            if state in TERMINAL_STATES:
                self._metrics.job(state.value)
            elif state is JobState.RUNNING and stage is not None:
                self._metrics.job_stage(stage)
        return job

    async def amend(self, job_id: str, change: JobChange) -> Job | None:
        """Apply `change` to an unfinished job, atomically (see JobStore.amend)."""
        return await self._store.amend(job_id, change)

    async def list(
        self, *, tenant: str, state: JobState | None, limit: int, cursor: str | None
    ) -> JobPage:
        """Recent jobs of a tenant, newest first, a page at a time."""
        return await self._store.list(tenant=tenant, state=state, limit=limit, cursor=cursor)

    def watch(self, job_id: str) -> AsyncGenerator[Job, None]:
        """The job now and at each change after, ending with its final state."""
        return self._store.watch(job_id)

    async def wait(self, job_id: str, timeout_s: float) -> Job | None:
        """The job once finished, or as it is when `timeout_s` runs out."""
        return await self._store.wait(job_id, timeout_s)

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        """True for the first claim of (kind, key) within `ttl_s`; False after."""
        return await self._store.claim(kind, key, ttl_s)

    async def release(self, kind: str, key: str) -> None:
        """Undo a claim, so the work it guarded may be tried again."""
        await self._store.release(kind, key)

    async def claimed(self, kind: str, key: str) -> bool:
        """Whether (kind, key) is claimed now."""
        return await self._store.claimed(kind, key)

    async def stalled(self, idle_s: float, limit: int) -> Sequence[Job]:
        """Unfinished jobs that have not changed for `idle_s`, oldest change first."""
        return await self._store.stalled(idle_s, limit)

    async def undelivered(self, age_s: float, limit: int) -> Sequence[Job]:
        """Jobs that ended `age_s` ago or more and whose completion is not yet delivered."""
        return await self._store.undelivered(age_s, limit)

    async def delivered(self, job_id: str) -> None:
        """Take a job's completion out of the outbox: it went out."""
        await self._store.delivered(job_id)

    async def reserve_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, job_id: str, ttl_s: float
    ) -> tuple[str, str] | None:
        """Reserve `key` for `job_id`; None if new, else the (fingerprint, job id) it holds."""
        return await self._store.reserve_idempotency_key(tenant, key, fingerprint, job_id, ttl_s)

    async def drop_idempotency_key(self, tenant: str, key: str) -> None:
        """Forget an idempotency key (its job was never accepted)."""
        await self._store.drop_idempotency_key(tenant, key)
