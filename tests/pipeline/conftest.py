"""Fixtures for tests that need a real Redis, a hand-moved clock, or each job store."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from pipeline.jobs.memory import MemoryJobStore
from pipeline.jobs.redis_store import RedisJobStore
from pipeline.jobs.store import JobStore
from pipeline.redis_client import redis_from_url
from tests.support.clock import FakeClock
from tests.support.job_store import RETENTION_S
from tests.support.redis_servers import PrivateRedis, redis_run
from tests.support.services import REDIS_URL


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def shared() -> AsyncIterator[tuple[Redis, str]]:
    """A client of the shared Redis (db 15) and a key prefix of this test's own."""
    client = redis_from_url(REDIS_URL, timeout_s=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} is required (see /work/shared/SERVICES.md): {exc!r}")
    prefix = f"pbtest:{uuid.uuid4().hex[:12]}:"
    yield client, prefix
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    assert [key async for key in client.scan_iter(match=prefix + "*")] == []
    await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand (the cache and breaker tests have their own)."""
    return FakeClock(1_000_000.0)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[JobStore]:
    """Each store in turn, stamping jobs with the test's clock."""
    if request.param == "memory":
        yield MemoryJobStore(retention_s=RETENTION_S, max_jobs=100, clock=clock)
        return
    async with redis_run() as run:
        yield RedisJobStore(
            run.client(), prefix=run.prefix, retention_s=RETENTION_S, max_jobs=100, clock=clock
        )


@pytest.fixture
def memory_store(clock: FakeClock) -> MemoryJobStore:
    """The memory store alone, for tests that move its clock past an expiry."""
    return MemoryJobStore(retention_s=RETENTION_S, max_jobs=100, clock=clock)
