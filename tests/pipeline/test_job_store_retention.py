"""The memory job store's bounds: retention of finished jobs, and a cap on how many it holds."""

import pytest

from pipeline.errors import ServiceBusy
from pipeline.jobs.memory import MemoryJobStore
from schemas import JobState
from tests.support.clock import FakeClock
from tests.support.job_store import RETENTION_S, finish, job

# The shared fixtures, imported so pytest finds them here.


async def test_finished_jobs_expire_after_retention_and_unfinished_ones_never(
    memory_store: MemoryJobStore, clock: FakeClock
) -> None:
    store = memory_store
    # Given a finished job and one still running
    await store.create(job("job_done", clock))
    await store.create(job("job_running", clock))
    await finish(store, "job_done")
    await store.transition("job_running", JobState.RUNNING)

    # When just under the retention passes, both remain
    clock.advance(RETENTION_S - 1)
    assert await store.get("job_done") is not None

    # When the retention has passed
    clock.advance(2)

    # Then the finished job is gone, from reads and from the list, and the running one is not
    assert await store.get("job_done") is None
    page = await store.list(tenant="default", state=None, limit=10, cursor=None)
    assert [j.id for j in page.data] == ["job_running"]
    clock.advance(100 * RETENTION_S)
    assert await store.get("job_running") is not None


async def test_a_full_store_refuses_new_jobs_until_finished_ones_expire(clock: FakeClock) -> None:
    # Given a store bounded to three jobs, full
    store = MemoryJobStore(retention_s=RETENTION_S, max_jobs=3, clock=clock)
    for name in ("job_a", "job_b", "job_c"):
        assert await store.create(job(name, clock)) is True

    # Then a fourth is refused as retryable
    with pytest.raises(ServiceBusy) as refused:
        await store.create(job("job_d", clock))
    assert refused.value.retryable is True

    # When one finishes and its retention passes
    await finish(store, "job_a")
    clock.advance(RETENTION_S + 1)

    # Then there is room again
    assert await store.create(job("job_d", clock)) is True
    assert await store.get("job_a") is None
