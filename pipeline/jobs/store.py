"""The job store's interface: job records, one-time claims and idempotency keys.

Moving a job to a final state is atomic and final: of every way a job can end (its chain,
a cancel, a cached answer, the sweeper), only the first to record its end speaks for it.
A job that ends enters the outbox until its completion is delivered (`delivered`), so
a completion whose delivery failed is found again (`undelivered`); an unfinished job that
has not changed for a while is found too (`stalled`).
"""

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Protocol

from schemas import ErrorDetail, GenerateResponse, JobState
from schemas.jobs import TERMINAL_STATES, Job, JobPage

# The fields to change on a job, from the job as it is now; None: leave it as it is.
JobChange = Callable[[Job], dict[str, object] | None]


class JobStore(Protocol):
    """Where jobs live; in memory for the embedded default, Redis in production."""

    async def create(self, job: Job) -> bool:
        """Record a new job; False if a job with that id exists."""
        ...

    async def delete(self, job_id: str) -> None:
        """Forget a job that was never accepted after all."""
        ...

    async def get(self, job_id: str) -> Job | None:
        """The job, or None if unknown (or expired)."""
        ...

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
        ...

    async def amend(self, job_id: str, change: JobChange) -> Job | None:
        """Apply `change` to an unfinished job, atomically; the job as changed, or None if it
        is unknown, finished or left as it is. It never ends a job (that is `transition`'s)."""
        ...

    async def list(
        self, *, tenant: str, state: JobState | None, limit: int, cursor: str | None
    ) -> JobPage:
        """Recent jobs of a tenant, newest first, a page at a time."""
        ...

    def watch(self, job_id: str) -> AsyncGenerator[Job, None]:
        """The job now and at each change after, ending with its final state."""
        ...

    async def wait(self, job_id: str, timeout_s: float) -> Job | None:
        """The job once finished, or as it is when `timeout_s` runs out."""
        ...

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        """True for the first claim of (kind, key) within `ttl_s`; False after."""
        ...

    async def release(self, kind: str, key: str) -> None:
        """Undo a claim, so the work it guarded may be tried again."""
        ...

    async def claimed(self, kind: str, key: str) -> bool:
        """Whether (kind, key) is claimed now."""
        ...

    async def stalled(self, idle_s: float, limit: int) -> Sequence[Job]:
        """Unfinished jobs that have not changed for `idle_s`, oldest change first."""
        ...

    async def undelivered(self, age_s: float, limit: int) -> Sequence[Job]:
        """Jobs that ended `age_s` ago or more and whose completion is not yet delivered."""
        ...

    async def delivered(self, job_id: str) -> None:
        """Take a job's completion out of the outbox: it went out."""
        ...

    async def reserve_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, job_id: str, ttl_s: float
    ) -> tuple[str, str] | None:
        """Reserve `key` for `job_id`; None if new, else the (fingerprint, job id) it holds."""
        ...

    async def drop_idempotency_key(self, tenant: str, key: str) -> None:
        """Forget an idempotency key (its job was never accepted)."""
        ...


def ending_refused(update: dict[str, object]) -> None:
    """Refuse an `amend` that would end a job (ValueError): only `transition` ends one."""
    if update.get("state") in TERMINAL_STATES or "finished_at" in update:
        raise ValueError("amend cannot end a job; transition it")


async def wait_for_finish(store: JobStore, job_id: str, timeout_s: float) -> Job | None:
    """The job once finished, or as it is when `timeout_s` runs out (any store)."""
    last = None
    try:
        async with asyncio.timeout(timeout_s):
            async for job in store.watch(job_id):
                last = job
    except TimeoutError:
        pass
    return last if last is not None else await store.get(job_id)
