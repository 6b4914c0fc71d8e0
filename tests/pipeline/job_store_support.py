"""Shared by the job-store contract tests: a Redis run per test, a hand-moved clock, the stores.

Tests that move a fake clock past an expiry are memory-only; Redis expires keys in real
time, so tests/pipeline/test_redis_job_store.py checks its expiry with short real TTLs.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pipeline.jobs.memory import MemoryJobStore
from pipeline.jobs.redis_store import RedisJobStore
from pipeline.jobs.store import JobStore
from pipeline.redis_client import redis_from_url
from schemas import GenerateRequest, JobState
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
