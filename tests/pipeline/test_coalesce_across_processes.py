"""Cross-process single-flight over real Redis: one upstream call, bounded waits, safe release."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from structlog.typing import EventDict

from pipeline.coalesce import RedisSingleFlight
from pipeline.redis_client import redis_from_url
from pipeline.redis_guard import RedisGuard
from tests.support.redis_servers import PrivateRedis
from tests.support.services import REDIS_URL
from tests.support.unique import free_port

TIMEOUT_S = 0.5
# Generous: these assert "bounded, not hung" (the alternative is a 30 s lock or forever),
# never a speed, so a loaded machine must not fail them.
SLACK_S = 2.0


@pytest.fixture
async def clients() -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients of the shared Redis: two processes."""
    a = redis_from_url(REDIS_URL, timeout_s=TIMEOUT_S)
    b = redis_from_url(REDIS_URL, timeout_s=TIMEOUT_S)
    yield a, b
    await a.aclose()
    await b.aclose()


def flight(client: Redis, prefix: str, **overrides: Any) -> RedisSingleFlight:
    settings: dict[str, Any] = {"lock_ttl_s": 5.0, "wait_s": 5.0}
    settings.update(overrides)
    guard = RedisGuard(timeout_s=TIMEOUT_S, retry_after_s=0.5)
    return RedisSingleFlight(client, prefix=prefix, guard=guard, **settings)


class Upstream:
    """Counts calls; a call stores its answer in Redis, where `check` finds it."""

    def __init__(self, prefix: str, *, delay_s: float = 0.0, stores: bool = True) -> None:
        self.key = prefix + "answer"
        self.delay_s = delay_s
        self.stores = stores
        self.calls = 0

    def call(self, client: Redis, value: bytes = b"42") -> Callable[[], Awaitable[bytes]]:
        async def call() -> bytes:
            self.calls += 1
            await asyncio.sleep(self.delay_s)
            if self.stores:
                await client.set(self.key, value, px=60_000)
            return value

        return call

    def check(self, client: Redis) -> Callable[[], Awaitable[bytes | None]]:
        async def check() -> bytes | None:
            found = await client.get(self.key)
            return found if isinstance(found, bytes) else None

        return check

    def cache_check(self, client: Redis) -> Callable[[], Awaitable[bytes | None]]:
        """`check` as the gateway's cache lookup makes it: a Redis that is down finds nothing."""
        checked = self.check(client)

        async def check() -> bytes | None:
            try:
                return await checked()
            except RedisError:
                return None

        return check


async def timed(coro: Awaitable[Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start


async def wait_for_lock(client: Redis, lock: str) -> None:
    for _ in range(100):
        if await client.exists(lock):
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"nobody took {lock}")


async def test_twenty_callers_in_two_processes_share_one_call(
    shared: tuple[Redis, str], clients: tuple[Redis, Redis]
) -> None:
    _, prefix = shared
    a, b = clients
    flights = [(flight(a, prefix), a), (flight(b, prefix), b)]
    upstream = Upstream(prefix, delay_s=0.2)

    results = await asyncio.gather(
        *(
            sf.run("k", upstream.call(client), check=upstream.check(client))
            for sf, client in (flights[i % 2] for i in range(20))
        )
    )

    assert upstream.calls == 1
    assert [value for value, _ in results] == [b"42"] * 20
    assert sum(was_shared for _, was_shared in results) == 19
    assert await a.exists(prefix + "lock:k") == 0


async def test_a_dead_leader_is_replaced_once_its_lock_expires(
    shared: tuple[Redis, str], clients: tuple[Redis, Redis]
) -> None:
    _, prefix = shared
    a, b = clients
    lock_ttl_s = 0.5
    sf_a, sf_b = flight(a, prefix, lock_ttl_s=lock_ttl_s), flight(b, prefix, lock_ttl_s=lock_ttl_s)
    stuck, upstream = Upstream(prefix, delay_s=60), Upstream(prefix)
    leader = asyncio.create_task(sf_a.run("k", stuck.call(a), check=stuck.check(a)))
    await wait_for_lock(a, prefix + "lock:k")
    try:
        results = await asyncio.gather(
            *(
                timed(sf.run("k", upstream.call(c), check=upstream.check(c)))
                for sf, c in [(sf_a, a), (sf_b, b)] * 3
            )
        )
    finally:
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader

    assert max(took for _, took in results) < lock_ttl_s + SLACK_S
    assert [value for (value, _), _ in results] == [b"42"] * 6
    assert (stuck.calls, upstream.calls) == (1, 1)
    assert sum(was_shared for (_, was_shared), _ in results) == 5


async def test_followers_of_a_hung_leader_call_upstream_after_wait_s(
    shared: tuple[Redis, str], clients: tuple[Redis, Redis]
) -> None:
    _, prefix = shared
    a, b = clients
    wait_s = 0.5
    sf_a, sf_b = flight(a, prefix, lock_ttl_s=30, wait_s=wait_s), flight(b, prefix, wait_s=wait_s)
    stuck, upstream = Upstream(prefix, delay_s=60), Upstream(prefix, stores=False)
    leader = asyncio.create_task(sf_a.run("k", stuck.call(a), check=stuck.check(a)))
    await wait_for_lock(a, prefix + "lock:k")
    try:
        results = await asyncio.gather(
            *(timed(sf_b.run("k", upstream.call(b), check=upstream.check(b))) for _ in range(3))
        )
    finally:
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader

    took = [seconds for _, seconds in results]
    assert wait_s <= min(took)
    assert max(took) < wait_s + SLACK_S
    assert [result for result, _ in results] == [(b"42", False)] * 3
    assert upstream.calls == 3
    # The cancelled leader released its own lock.
    assert await a.exists(prefix + "lock:k") == 0


async def test_release_never_deletes_another_holders_lock(shared: tuple[Redis, str]) -> None:
    client, prefix = shared
    sf = flight(client, prefix, lock_ttl_s=0.2)
    lock = prefix + "lock:k"

    async def outlives_its_lock() -> bytes:
        await asyncio.sleep(0.4)
        assert await client.exists(lock) == 0
        await client.set(lock, b"another-holder", px=5000)
        return b"late"

    assert await sf.run("k", outlives_its_lock, check=Upstream(prefix).check(client)) == (
        b"late",
        False,
    )
    assert await client.get(lock) == b"another-holder"


async def test_the_lock_is_released_when_the_call_fails(shared: tuple[Redis, str]) -> None:
    client, prefix = shared
    sf = flight(client, prefix)

    async def fails() -> bytes:
        assert await client.exists(prefix + "lock:k") == 1
        raise RuntimeError("upstream broke")

    with pytest.raises(RuntimeError, match="upstream broke"):
        await sf.run("k", fails, check=Upstream(prefix).check(client))
    assert await client.exists(prefix + "lock:k") == 0


async def test_without_redis_every_caller_calls_directly(logs: list[EventDict]) -> None:
    client = redis_from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=TIMEOUT_S)
    sf = flight(client, "pbtest:")
    calls = 0

    async def call() -> bytes:
        nonlocal calls
        calls += 1
        return b"direct"

    async def check() -> bytes | None:
        return None

    try:
        results = [await timed(sf.run("k", call, check=check)) for _ in range(5)]
        results += await asyncio.gather(*(timed(sf.run("k", call, check=check)) for _ in range(5)))
    finally:
        await client.aclose()

    assert [result for result, _ in results] == [(b"direct", False)] * 10
    assert calls == 10
    assert max(took for _, took in results) < TIMEOUT_S + SLACK_S
    assert [line["event"] for line in logs] == ["redis_down"]


async def test_a_follower_calls_directly_when_redis_dies_while_it_waits(
    private_redis: PrivateRedis,
) -> None:
    a = redis_from_url(private_redis.url, timeout_s=TIMEOUT_S)
    b = redis_from_url(private_redis.url, timeout_s=TIMEOUT_S)
    sf_a, sf_b = flight(a, "pbtest:"), flight(b, "pbtest:")
    slow = Upstream("pbtest:", delay_s=1.0, stores=False)
    upstream = Upstream("pbtest:", stores=False)
    try:
        leader = asyncio.create_task(sf_a.run("k", slow.call(a), check=slow.check(a)))
        await wait_for_lock(a, "pbtest:lock:k")
        # (a follower checks for the answer every poll: Redis may die during a check)
        follower = asyncio.create_task(
            timed(sf_b.run("k", upstream.call(b, b"mine"), check=upstream.cache_check(b)))
        )
        await asyncio.sleep(0.2)
        private_redis.kill()
        (value, took) = await follower
        assert await leader == (b"42", False)
    finally:
        await a.aclose()
        await b.aclose()

    assert value == (b"mine", False)
    assert took < 0.2 + TIMEOUT_S + SLACK_S
