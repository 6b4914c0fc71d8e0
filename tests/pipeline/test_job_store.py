"""The job stores' contract, for memory and Redis: records, final states, watches, claims, keys.

Tests that move a fake clock past an expiry are memory-only; Redis expires keys in real
time, so tests/pipeline/test_redis_job_store.py checks its expiry with short real TTLs.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pipeline.errors import ServiceBusy
from pipeline.jobs.memory import MemoryJobStore
from pipeline.jobs.redis_store import RedisJobStore
from pipeline.jobs.store import JobStore
from pipeline.redis_client import redis_from_url
from schemas import ErrorDetail, GenerateRequest, JobState
from schemas.jobs import Job
from tests.factories import answer

RETENTION_S = 600.0
# Tests use database 15 only, under a prefix of their own (see /work/shared/SERVICES.md).
REDIS_URL = "redis://127.0.0.1:6379/15"


class RedisRun:
    """Clients of the test database for one test, and the key prefix only it uses."""

    def __init__(self) -> None:
        self.prefix = f"promptbus-test:{os.urandom(6).hex()}:"
        self._clients: list[Redis] = []

    def client(self) -> Redis:
        """A new client (its own connection pool), closed at the end of the test."""
        client = redis_from_url(REDIS_URL, timeout_s=2.0)
        self._clients.append(client)
        return client

    async def keys(self) -> list[bytes]:
        """Every key under this test's prefix."""
        return [key async for key in self._clients[0].scan_iter(match=self.prefix + "*")]

    async def close(self) -> None:
        """Delete this test's keys (and nobody else's), then close the clients."""
        try:
            keys = await self.keys()
            if keys:
                await self._clients[0].delete(*keys)
        finally:
            await self.disconnect()

    async def disconnect(self) -> None:
        """Close the clients."""
        for client in self._clients:
            await client.aclose()


@asynccontextmanager
async def redis_run() -> AsyncIterator[RedisRun]:
    """A RedisRun; the test fails, never skips, when Redis does not answer."""
    run = RedisRun()
    try:
        await run.client().ping()
    except RedisError as exc:
        await run.disconnect()
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (it should always run): {exc}")
    try:
        yield run
    finally:
        await run.close()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[JobStore]:
    """Each store in turn, stamping jobs with the test's clock."""
    if request.param == "memory":
        yield MemoryJobStore(retention_s=RETENTION_S, max_jobs=100, clock=clock)
        return
    async with redis_run() as run:
        yield RedisJobStore(
            run.client(), prefix=run.prefix, retention_s=RETENTION_S, max_jobs=100, clock=clock
        )


@pytest.fixture
def memory_store(clock: Clock) -> MemoryJobStore:
    """The memory store alone, for tests that move its clock past an expiry."""
    return MemoryJobStore(retention_s=RETENTION_S, max_jobs=100, clock=clock)


def job(job_id: str, clock: Clock, *, tenant: str = "default") -> Job:
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


async def test_create_get_and_a_duplicate_create(store: JobStore, clock: Clock) -> None:
    # Given a new job
    first = job("job_a", clock)

    # When it is created, then created again under the same id
    created = await store.create(first)
    again = await store.create(first.model_copy(update={"correlation_id": "other"}))

    # Then the first create wins and the record is the first job
    assert (created, again) == (True, False)
    assert await store.get("job_a") == first
    assert await store.get("job_unknown") is None


async def test_transitions_stamp_the_clock_and_a_finished_job_is_final(
    store: JobStore, clock: Clock
) -> None:
    # Given a queued job
    await store.create(job("job_a", clock))

    # When it runs, then succeeds, a little later each time
    clock.advance(1)
    running = await store.transition("job_a", JobState.RUNNING, stage="generate")
    clock.advance(2)
    done = await store.transition("job_a", JobState.SUCCEEDED, stage="emit", result=answer())

    # Then each change is recorded with its time, and only the final one is finished
    assert running is not None
    assert (running.state, running.stage, running.finished) == (JobState.RUNNING, "generate", False)
    assert running.updated_at == clock.now - 2
    assert running.finished_at is None
    assert done is not None
    assert done.finished
    assert done.finished_at == done.updated_at == clock.now
    assert done.result == answer()

    # And nothing moves it any more, cancel included
    error = ErrorDetail(type="cancelled", message="late", retryable=False)
    assert await store.transition("job_a", JobState.CANCELLED, error=error) is None
    assert await store.transition("job_a", JobState.RUNNING) is None
    assert await store.get("job_a") == done

    # And an unknown job cannot move
    assert await store.transition("job_unknown", JobState.RUNNING) is None


async def test_watch_yields_each_change_and_ends_at_the_final_state(
    store: JobStore, clock: Clock
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


async def test_watching_a_finished_or_unknown_job(store: JobStore, clock: Clock) -> None:
    # Given a finished job
    await store.create(job("job_a", clock))
    await finish(store, "job_a")

    # When it and an unknown job are watched
    finished = [j.state async for j in store.watch("job_a")]
    unknown = [j async for j in store.watch("job_unknown")]

    # Then the finished job is seen once, as it ended, and the unknown one not at all
    assert finished == [JobState.SUCCEEDED]
    assert unknown == []


async def test_a_slow_watcher_still_gets_the_final_state(store: JobStore, clock: Clock) -> None:
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


async def test_wait_returns_when_the_job_finishes(store: JobStore, clock: Clock) -> None:
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
    store: JobStore, clock: Clock
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


async def test_claims_are_one_time_until_released(store: JobStore) -> None:
    # Given a claim taken for a minute
    assert await store.claim("emit", "job_a", 60) is True

    # Then it cannot be taken twice, while other kinds and keys are free
    assert await store.claim("emit", "job_a", 60) is False
    assert await store.claim("dispatch", "job_a", 60) is True
    assert await store.claim("emit", "job_b", 60) is True

    # When it is released, it can be taken again, once
    await store.release("emit", "job_a")
    assert await store.claim("emit", "job_a", 60) is True
    assert await store.claim("emit", "job_a", 60) is False


async def test_a_claim_is_free_again_once_its_time_is_up(
    memory_store: MemoryJobStore, clock: Clock
) -> None:
    # Given a claim taken for a minute
    assert await memory_store.claim("emit", "job_a", 60) is True

    # Then it holds until its time is up, and no longer
    clock.advance(59)
    assert await memory_store.claim("emit", "job_a", 60) is False
    clock.advance(2)
    assert await memory_store.claim("emit", "job_a", 60) is True


async def test_idempotency_keys_reserve_replay_and_drop(store: JobStore) -> None:
    # Given a key reserved for a job for an hour
    assert await store.reserve_idempotency_key("default", "k1", "print-1", "job_a", 3600) is None

    # Then reserving it again gives back what it holds, whatever is asked
    held = await store.reserve_idempotency_key("default", "k1", "print-2", "job_b", 3600)
    assert held == ("print-1", "job_a")

    # And the same key of another tenant is another key, even one that looks alike
    assert await store.reserve_idempotency_key("acme", "k1", "print-2", "job_c", 3600) is None
    assert await store.reserve_idempotency_key("acme:k1", "", "print-3", "job_d", 3600) is None

    # And a dropped key is free at once
    await store.drop_idempotency_key("default", "k1")
    assert await store.reserve_idempotency_key("default", "k1", "print-5", "job_f", 3600) is None
    held = await store.reserve_idempotency_key("default", "k1", "print-6", "job_g", 3600)
    assert held == ("print-5", "job_f")


async def test_idempotency_keys_expire(memory_store: MemoryJobStore, clock: Clock) -> None:
    # Given a key reserved for a job for an hour
    assert await memory_store.reserve_idempotency_key("t", "k1", "print-1", "job_a", 3600) is None

    # When its hour is up, it can be reserved afresh
    clock.advance(3601)
    assert await memory_store.reserve_idempotency_key("t", "k1", "print-3", "job_d", 3600) is None
    held = await memory_store.reserve_idempotency_key("t", "k1", "print-4", "job_e", 3600)
    assert held == ("print-3", "job_d")


async def test_delete_forgets_a_job(store: JobStore, clock: Clock) -> None:
    # Given two jobs
    await store.create(job("job_a", clock))
    await store.create(job("job_b", clock))

    # When one is deleted (twice: the second time is a no-op)
    await store.delete("job_a")
    await store.delete("job_a")

    # Then it is gone from reads, moves and the list
    assert await store.get("job_a") is None
    assert await store.transition("job_a", JobState.RUNNING) is None
    page = await store.list(tenant="default", state=None, limit=10, cursor=None)
    assert [j.id for j in page.data] == ["job_b"]

    # And its id can be used afresh, listed once, as the new job
    await store.delete("job_b")
    clock.advance(1)
    assert await store.create(job("job_b", clock)) is True
    page = await store.list(tenant="default", state=None, limit=10, cursor=None)
    assert [(j.id, j.created_at) for j in page.data] == [("job_b", clock.now)]


async def test_finished_jobs_expire_after_retention_and_unfinished_ones_never(
    memory_store: MemoryJobStore, clock: Clock
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


async def test_a_full_store_refuses_new_jobs_until_finished_ones_expire(clock: Clock) -> None:
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


async def test_list_pages_newest_first_with_filters(store: JobStore, clock: Clock) -> None:
    # Given five jobs, one a second, the second and fourth finished, and one of another tenant
    for n in range(1, 6):
        await store.create(job(f"job_{n}", clock))
        clock.advance(1)
    await store.create(job("job_other", clock, tenant="acme"))
    await finish(store, "job_2")
    await finish(store, "job_4")

    # When they are listed two at a time
    pages = []
    cursor = None
    while True:
        page = await store.list(tenant="default", state=None, limit=2, cursor=cursor)
        pages.append([j.id for j in page.data])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    # Then the pages run newest first, without the other tenant's job
    assert pages == [["job_5", "job_4"], ["job_3", "job_2"], ["job_1"]]

    # And a state filter pages within that state
    succeeded = await store.list(tenant="default", state=JobState.SUCCEEDED, limit=1, cursor=None)
    assert [j.id for j in succeeded.data] == ["job_4"]
    assert succeeded.next_cursor is not None
    rest = await store.list(
        tenant="default", state=JobState.SUCCEEDED, limit=1, cursor=succeeded.next_cursor
    )
    assert [j.id for j in rest.data] == ["job_2"]
    assert rest.next_cursor is None

    # And a page that is exactly full has no cursor when nothing follows
    exact = await store.list(tenant="acme", state=None, limit=1, cursor=None)
    assert ([j.id for j in exact.data], exact.next_cursor) == (["job_other"], None)
