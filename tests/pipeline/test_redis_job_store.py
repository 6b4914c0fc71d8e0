"""The Redis job store alone: real-time expiry, and several processes sharing one store."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from pipeline.errors import ServiceBusy
from pipeline.jobs.redis_store import RedisJobStore
from schemas import ErrorDetail, JobState
from tests.support.clock import FakeClock
from tests.support.envelopes import answer
from tests.support.job_store import finish, job
from tests.support.redis_servers import RedisRun, redis_run


@pytest.fixture
async def run() -> AsyncIterator[RedisRun]:
    async with redis_run() as redis:
        yield redis


def store(run: RedisRun, *, retention_s: float = 600.0, max_jobs: int = 100) -> RedisJobStore:
    """A store on a client of its own, as a separate process would have."""
    return RedisJobStore(
        run.client(), prefix=run.prefix, retention_s=retention_s, max_jobs=max_jobs
    )


async def test_finished_jobs_expire_after_retention_and_unfinished_ones_live_on(
    run: RedisRun,
) -> None:
    # Given a store keeping finished jobs for a second, with one job finished and one running
    jobs = store(run, retention_s=1)
    await jobs.create(job("job_done", FakeClock(time.time())))
    await jobs.create(job("job_running", FakeClock(time.time())))
    await finish(jobs, "job_done")
    await jobs.transition("job_running", JobState.RUNNING)
    redis = run.client()

    # Then the finished one expires within its retention, the other only far later
    done_ttl = await redis.pttl(f"{run.prefix}job:job_done")
    running_ttl = await redis.pttl(f"{run.prefix}job:job_running")
    assert 0 < done_ttl <= 1000
    assert running_ttl > 5000

    # When the retention has passed
    await asyncio.sleep(1.2)

    # Then the finished job is gone, from reads and from the list, and the running one is not
    assert await jobs.get("job_done") is None
    page = await jobs.list(tenant="default", state=None, limit=10, cursor=None)
    assert [j.id for j in page.data] == ["job_running"]

    # And the next job created takes the expired one out of the indexes for good
    await jobs.create(job("job_next", FakeClock(time.time()), tenant="acme"))
    assert await redis.zcard(f"{run.prefix}jobs:default") == 1
    assert await redis.zcard(f"{run.prefix}jobs-live") == 2


async def test_a_full_store_refuses_new_jobs_until_finished_ones_expire(run: RedisRun) -> None:
    # Given a store bounded to three jobs, full with jobs of two tenants
    jobs = store(run, retention_s=1, max_jobs=3)
    clock = FakeClock(time.time())
    for name, tenant in (("job_a", "default"), ("job_b", "acme"), ("job_c", "default")):
        assert await jobs.create(job(name, clock, tenant=tenant)) is True

    # Then a fourth is refused as retryable, whatever its tenant, but a duplicate is just False
    with pytest.raises(ServiceBusy) as refused:
        await jobs.create(job("job_d", clock, tenant="other"))
    assert refused.value.retryable is True
    assert await jobs.create(job("job_a", clock)) is False

    # When one finishes and its retention passes
    await finish(jobs, "job_a")
    await asyncio.sleep(1.2)

    # Then there is room again, for one
    assert await jobs.create(job("job_d", clock)) is True
    assert await jobs.get("job_a") is None
    with pytest.raises(ServiceBusy):
        await jobs.create(job("job_e", clock))

    # And a deleted job frees its place at once
    await jobs.delete("job_b")
    assert await jobs.create(job("job_e", clock)) is True


async def test_a_long_running_job_stays_listed_while_many_others_come_and_go(
    run: RedisRun,
) -> None:
    # Given a store of three jobs at most, one of them running all along
    jobs = store(run, retention_s=0.2, max_jobs=3)
    clock = FakeClock(time.time())
    await jobs.create(job("job_old", clock))
    await jobs.transition("job_old", JobState.RUNNING)

    # When six newer jobs come, finish and expire, two at a time
    for n in range(6):
        clock.advance(1)
        await jobs.create(job(f"job_{n}", clock))
        await finish(jobs, f"job_{n}")
        if n % 2:
            await asyncio.sleep(0.25)

    # Then the running job is still listed, and the list holds little more than the live jobs
    page = await jobs.list(tenant="default", state=None, limit=10, cursor=None)
    assert [j.id for j in page.data] == ["job_old"]
    assert await run.client().zcard(f"{run.prefix}jobs:default") <= 3


async def test_a_cursor_outlives_the_job_it_points_at(run: RedisRun) -> None:
    # Given three jobs a second apart; the middle one finished, kept for a second
    jobs = store(run, retention_s=1)
    clock = FakeClock(time.time())
    for n in (1, 2, 3):
        await jobs.create(job(f"job_{n}", clock))
        clock.advance(1)
    await finish(jobs, "job_2")

    # When a client pages to the middle job, and that job expires before the next page
    first = await jobs.list(tenant="default", state=None, limit=2, cursor=None)
    assert [j.id for j in first.data] == ["job_3", "job_2"]
    await asyncio.sleep(1.2)
    assert first.next_cursor is not None
    rest = await jobs.list(tenant="default", state=None, limit=2, cursor=first.next_cursor)

    # Then the next page still starts right after it; a cursor from nowhere finds nothing
    assert ([j.id for j in rest.data], rest.next_cursor) == (["job_1"], None)
    nowhere = await jobs.list(tenant="default", state=None, limit=2, cursor="not a cursor")
    assert nowhere.data == ()


async def test_claims_and_idempotency_keys_expire_with_their_ttl(run: RedisRun) -> None:
    # Given a claim and an idempotency key held for a fifth of a second
    jobs = store(run)
    assert await jobs.claim("emit", "job_a", 0.2) is True
    assert await jobs.reserve_idempotency_key("default", "k1", "print-1", "job_a", 0.2) is None
    assert await jobs.claim("emit", "job_a", 0.2) is False

    # When their time is up
    await asyncio.sleep(0.3)

    # Then both are free again
    assert await jobs.claim("emit", "job_a", 60) is True
    assert await jobs.reserve_idempotency_key("default", "k1", "print-2", "job_b", 60) is None


async def test_a_job_created_by_one_process_is_read_and_moved_by_another(run: RedisRun) -> None:
    # Given two processes, each with its own client
    ingress, worker = store(run), store(run)
    clock = FakeClock(time.time())

    # When the ingress creates a job and the worker runs it
    assert await ingress.create(job("job_a", clock)) is True
    seen = await worker.get("job_a")
    running = await worker.transition("job_a", JobState.RUNNING, stage="generate")

    # Then each sees the other's writes
    assert seen == job("job_a", clock)
    assert await ingress.get("job_a") == running
    assert await worker.create(job("job_a", clock)) is False


async def test_wait_in_one_process_wakes_when_another_finishes_the_job(run: RedisRun) -> None:
    # Given a job, and a client of another process waiting up to 10 s for it
    ingress, worker = store(run), store(run)
    await ingress.create(job("job_a", FakeClock(time.time())))
    started = time.monotonic()
    waiting = asyncio.create_task(ingress.wait("job_a", 10))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    # When the worker finishes the job
    await worker.transition("job_a", JobState.RUNNING)
    done = await finish(worker, "job_a")

    # Then the wait ends at once with the finished job, not at its timeout
    waited = await asyncio.wait_for(waiting, 10)
    assert waited == done
    assert time.monotonic() - started < 5


async def test_watch_in_one_process_sees_each_change_another_makes(run: RedisRun) -> None:
    # Given a job watched from another process
    ingress, worker = store(run), store(run)
    await ingress.create(job("job_a", FakeClock(time.time())))
    changes = ingress.watch("job_a")
    states = [(await anext(changes)).state]

    # When the worker moves it on, step by step
    await worker.transition("job_a", JobState.RUNNING, stage="generate")
    states.append((await asyncio.wait_for(anext(changes), 5)).state)
    await finish(worker, "job_a")
    states.append((await asyncio.wait_for(anext(changes), 5)).state)

    # Then the watch saw queued, running and succeeded, in order, and ended
    assert states == [JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED]
    with pytest.raises(StopAsyncIteration):
        await anext(changes)


async def test_only_one_of_many_concurrent_claims_wins(run: RedisRun) -> None:
    # Given two processes
    stores = [store(run), store(run)]

    # When 20 coroutines, ten on each, claim the same thing at once
    claims = await asyncio.gather(*(stores[n % 2].claim("emit", "job_a", 60) for n in range(20)))

    # Then exactly one has it
    assert sorted(claims) == [False] * 19 + [True]


async def test_a_finished_job_stays_final_under_concurrent_transitions(run: RedisRun) -> None:
    # Given two processes and jobs to fight over
    stores = [store(run), store(run)]
    clock = FakeClock(time.time())
    error = ErrorDetail(type="cancelled", message="cancelled", retryable=False)
    for n in range(10):
        await stores[0].create(job(f"job_{n}", clock))

    for n in range(10):
        # When each job is moved on many times at once, three of them to final states
        moves = [
            stores[0].transition(f"job_{n}", JobState.RUNNING, stage="a"),
            stores[1].transition(f"job_{n}", JobState.SUCCEEDED, result=answer()),
            stores[0].transition(f"job_{n}", JobState.RUNNING, stage="b"),
            stores[1].transition(f"job_{n}", JobState.CANCELLED, error=error),
            stores[0].transition(f"job_{n}", JobState.FAILED, error=error),
            stores[1].transition(f"job_{n}", JobState.RUNNING, stage="c"),
        ]
        results = await asyncio.gather(*moves)

        # Then exactly one final move happened, and it is what the job is now
        finals = [r for r in results if r is not None and r.finished]
        assert len(finals) == 1
        assert await stores[1].get(f"job_{n}") == finals[0]


async def test_a_slow_watcher_of_another_process_still_ends_at_the_final_state(
    run: RedisRun,
) -> None:
    # Given a watcher that reads nothing while another process moves the job many times
    ingress, worker = store(run), store(run)
    await ingress.create(job("job_a", FakeClock(time.time())))
    changes = ingress.watch("job_a")
    assert (await anext(changes)).state is JobState.QUEUED
    for step in range(200):
        await worker.transition("job_a", JobState.RUNNING, stage=f"step-{step}")
    await finish(worker, "job_a")

    # When it reads at last
    seen = [j async for j in changes]

    # Then the states it saw only move forward, and end with the final one
    steps = [int(j.stage.removeprefix("step-")) for j in seen[:-1] if j.stage]
    assert steps == sorted(set(steps))
    assert seen[-1].state is JobState.SUCCEEDED
