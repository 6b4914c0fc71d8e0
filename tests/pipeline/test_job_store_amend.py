"""The job stores' amend, memory and Redis: atomic changes of an unfinished job's fields."""

import asyncio

import pytest

from pipeline.jobs.store import JobChange, JobStore
from schemas import JobState
from schemas.jobs import Job
from tests.support.clock import FakeClock
from tests.support.job_store import finish, job


async def test_amend_changes_an_unfinished_job_and_stamps_it(
    store: JobStore, clock: FakeClock
) -> None:
    # Given a queued job
    await store.create(job("job_a", clock))
    clock.advance(3)

    # When its metadata is amended, and a change that finds nothing to do is made
    amended = await store.amend("job_a", lambda held: {"metadata": {"n": "1"}})
    left = await store.amend("job_a", lambda held: None)

    # Then the first is recorded with its time, the second changed nothing
    assert amended is not None
    assert amended.metadata == {"n": "1"}
    assert amended.updated_at == clock()
    assert left is None
    assert await store.get("job_a") == amended


async def test_amend_leaves_a_finished_job_and_cannot_end_one(
    store: JobStore, clock: FakeClock
) -> None:
    await store.create(job("job_a", clock))
    await store.create(job("job_b", clock))
    await finish(store, "job_a")

    assert await store.amend("job_a", lambda held: {"metadata": {"n": "1"}}) is None
    assert await store.amend("job_unknown", lambda held: {"metadata": {}}) is None
    with pytest.raises(ValueError, match="transition"):
        await store.amend("job_b", lambda held: {"state": JobState.SUCCEEDED})
    held = await store.get("job_b")
    assert held is not None
    assert held.state is JobState.QUEUED


async def test_concurrent_amends_lose_no_change(store: JobStore, clock: FakeClock) -> None:
    # Given a job and twenty writers each adding its own key, all at once
    await store.create(job("job_a", clock))

    def adding(n: int) -> JobChange:
        def change(held: Job) -> dict[str, object]:
            return {"metadata": {**(held.metadata or {}), f"k{n}": str(n)}}

        return change

    await asyncio.gather(*(store.amend("job_a", adding(n)) for n in range(20)))

    # Then every key is there
    held = await store.get("job_a")
    assert held is not None
    assert held.metadata == {f"k{n}": str(n) for n in range(20)}
