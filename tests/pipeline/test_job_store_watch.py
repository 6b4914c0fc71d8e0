"""The job stores, memory and Redis: watching a job change, and waiting for it to finish."""

import asyncio

import pytest

from pipeline.jobs.store import JobStore
from schemas import ErrorDetail, JobState
from tests.support.clock import FakeClock
from tests.support.job_store import finish, job

# The shared fixtures, imported so pytest finds them here.


async def test_watch_yields_each_change_and_ends_at_the_final_state(
    store: JobStore, clock: FakeClock
) -> None:
    # Given a queued job being watched
    await store.create(job("job_a", clock))
    changes = store.watch("job_a")
    assert (await anext(changes)).state is JobState.QUEUED

    # When it runs and fails
    await store.transition("job_a", JobState.RUNNING, stage="lookup")
    running = await anext(changes)
    error = ErrorDetail(type="upstream_error", message="boom", retryable=True)
    await store.transition("job_a", JobState.FAILED, error=error)
    failed = await anext(changes)

    # Then the watch saw each state, and ends after the final one
    assert (running.state, running.stage) == (JobState.RUNNING, "lookup")
    assert (failed.state, failed.error) == (JobState.FAILED, error)
    with pytest.raises(StopAsyncIteration):
        await anext(changes)


async def test_watching_a_finished_or_unknown_job(store: JobStore, clock: FakeClock) -> None:
    # Given a finished job
    await store.create(job("job_a", clock))
    await finish(store, "job_a")

    # When it and an unknown job are watched
    finished = [j.state async for j in store.watch("job_a")]
    unknown = [j async for j in store.watch("job_unknown")]

    # Then the finished job is seen once, as it ended, and the unknown one not at all
    assert finished == [JobState.SUCCEEDED]
    assert unknown == []


async def test_a_slow_watcher_still_gets_the_final_state(store: JobStore, clock: FakeClock) -> None:
    # Given a watcher that reads nothing while the job changes many times
    await store.create(job("job_a", clock))
    changes = store.watch("job_a")
    assert (await anext(changes)).state is JobState.QUEUED
    for step in range(100):
        await store.transition("job_a", JobState.RUNNING, stage=f"step-{step}")
    await finish(store, "job_a")

    # When it reads at last
    seen = [j async for j in changes]

    # Then what it missed was dropped, but it ends with the final state
    assert seen[-1].state is JobState.SUCCEEDED
    assert len(seen) < 101


async def test_wait_returns_when_the_job_finishes(store: JobStore, clock: FakeClock) -> None:
    # Given a queued job and a client waiting for it for up to 30 s
    await store.create(job("job_a", clock))
    waiting = asyncio.create_task(store.wait("job_a", 30))
    await asyncio.sleep(0)  # one turn of the loop: the waiter is now watching
    assert not waiting.done()

    # When the job finishes
    await store.transition("job_a", JobState.RUNNING)
    await finish(store, "job_a")

    # Then the wait ends at once with the finished job
    async with asyncio.timeout(5):
        waited = await waiting
    assert waited is not None
    assert waited.state is JobState.SUCCEEDED


async def test_wait_returns_the_job_as_it_is_when_time_runs_out(
    store: JobStore, clock: FakeClock
) -> None:
    # Given a job that is running and will not finish
    await store.create(job("job_a", clock))
    await store.transition("job_a", JobState.RUNNING, stage="generate")

    # When a client waits briefly, and another waits for an unknown job
    waited = await store.wait("job_a", 0.05)
    unknown = await store.wait("job_unknown", 5)

    # Then the first gets the job as it is, the second nothing
    assert waited is not None
    assert (waited.state, waited.stage) == (JobState.RUNNING, "generate")
    assert unknown is None
