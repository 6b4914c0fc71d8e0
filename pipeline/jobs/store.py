"""The job store's interface: job records, one-time claims and idempotency keys."""

import asyncio
from collections.abc import AsyncGenerator
from typing import Protocol

from schemas import ErrorDetail, GenerateResponse, JobState
from schemas.jobs import Job, JobPage


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
    ) -> Job | None:
        """Move a job on; None if it is unknown or already finished (finished is final)."""
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

    async def reserve_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, job_id: str, ttl_s: float
    ) -> tuple[str, str] | None:
        """Reserve `key` for `job_id`; None if new, else the (fingerprint, job id) it holds."""
        ...

    async def drop_idempotency_key(self, tenant: str, key: str) -> None:
        """Forget an idempotency key (its job was never accepted)."""
        ...


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
