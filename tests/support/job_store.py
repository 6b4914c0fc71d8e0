"""Jobs for the job-store contract tests, stamped by a clock the test moves by hand.

Tests that move a fake clock past an expiry are memory-only; Redis expires keys in real
time, so tests/pipeline/test_redis_job_store.py checks its expiry with short real TTLs.
The `clock`, `store` and `memory_store` fixtures are in tests/pipeline/conftest.py.
"""

from pipeline.jobs.store import JobStore
from schemas import GenerateRequest, JobState
from schemas.jobs import Job
from tests.support.clock import FakeClock
from tests.support.envelopes import answer

RETENTION_S = 600.0


def job(job_id: str, clock: FakeClock, *, tenant: str = "default") -> Job:
    """A queued job created now."""
    return Job(
        id=job_id,
        state=JobState.QUEUED,
        tenant=tenant,
        correlation_id=f"corr-{job_id}",
        created_at=clock(),
        updated_at=clock(),
        request=GenerateRequest(model="flash", prompt=f"prompt of {job_id}"),
    )


async def finish(store: JobStore, job_id: str) -> Job:
    done = await store.transition(job_id, JobState.SUCCEEDED, stage="emit", result=answer())
    assert done is not None
    return done
