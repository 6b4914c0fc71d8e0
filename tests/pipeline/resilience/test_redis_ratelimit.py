"""What only the Redis limiter does: keys that vanish when idle, and failing open."""

import asyncio

from redis.asyncio import Redis
from structlog.typing import EventDict

from pipeline.redis_client import redis_from_url
from pipeline.redis_guard import RedisGuard
from pipeline.resilience.ratelimit import BUCKETS_PER_WINDOW, Limits
from pipeline.resilience.redis_ratelimit import RedisRateLimiter
from tests.support.redis_servers import PrivateRedis
from tests.support.unique import free_port

TIMEOUT_S = 0.2
RETRY_AFTER_S = 0.3


def limiter(client: Redis, prefix: str) -> RedisRateLimiter:
    guard = RedisGuard(timeout_s=TIMEOUT_S, retry_after_s=RETRY_AFTER_S, name="ratelimit")
    return RedisRateLimiter(client, prefix=prefix, guard=guard)


async def test_keys_live_under_the_prefix_and_vanish_when_idle(shared: tuple[Redis, str]) -> None:
    client, prefix = shared
    limits = Limits(requests=5, tokens=100, window_s=0.3)
    rl = RedisRateLimiter(client, prefix=prefix)
    assert await rl.acquire("gemini/gemini-2.5-flash", limits, tokens=10) == 0.0
    await rl.settle("gemini/gemini-2.5-flash", limits, estimated=10, actual=12)

    keys = sorted([key async for key in client.scan_iter(match=prefix + "*")])
    assert keys == [
        f"{prefix}ratelimit:requests:gemini/gemini-2.5-flash".encode(),
        f"{prefix}ratelimit:tokens:gemini/gemini-2.5-flash".encode(),
    ]
    ttls = [await client.pttl(key) for key in keys]
    assert all(0 < ttl <= 300 for ttl in ttls)
    await asyncio.sleep(0.35)
    assert [key async for key in client.scan_iter(match=prefix + "*")] == []


async def test_the_logs_stay_bounded_under_load(shared: tuple[Redis, str]) -> None:
    client, prefix = shared
    rl = RedisRateLimiter(client, prefix=prefix)
    tokens_only = Limits(requests=None, tokens=10**9, window_s=0.5)
    requests_too = Limits(requests=20, tokens=None, window_s=60)

    for _ in range(300):
        assert await rl.acquire("t", tokens_only, tokens=3) == 0.0
    waits = [await rl.acquire("r", requests_too, tokens=3) for _ in range(100)]

    assert await client.zcard(prefix + "ratelimit:tokens:t") <= BUCKETS_PER_WINDOW + 1
    assert await client.exists(prefix + "ratelimit:requests:t") == 0
    assert await client.zcard(prefix + "ratelimit:requests:r") == 20
    assert await client.exists(prefix + "ratelimit:tokens:r") == 0
    assert waits.count(0.0) == 20


async def test_an_unreachable_redis_admits_everything_and_logs_once(
    logs: list[EventDict],
) -> None:
    client = redis_from_url(f"redis://127.0.0.1:{free_port()}/0", timeout_s=TIMEOUT_S)
    rl = limiter(client, "pbtest:")
    limits = Limits(requests=1, tokens=10, window_s=60)
    try:
        waits = [await rl.acquire("d", limits, tokens=100) for _ in range(10)]
        await rl.settle("d", limits, estimated=100, actual=5)
    finally:
        await client.aclose()

    assert waits == [0.0] * 10
    stats = rl.stats()
    assert stats["failed_open"] == 10
    assert stats["down"] is True
    # One line from the guard that saw Redis go, one from the limiter that now fails open
    assert [line["event"] for line in logs] == ["redis_down", "rate_limit_fail_open"]
    assert logs[1]["key"] == "d"


async def test_limits_hold_again_once_redis_is_back(
    private_redis: PrivateRedis, logs: list[EventDict]
) -> None:
    client = redis_from_url(private_redis.url, timeout_s=TIMEOUT_S)
    rl = limiter(client, "pbtest:")
    limits = Limits(requests=1, tokens=None, window_s=60)
    try:
        assert await rl.acquire("d", limits, tokens=0) == 0.0
        assert await rl.acquire("d", limits, tokens=0) > 0
        # Redis dies: requests go through unchecked
        private_redis.kill()
        assert [await rl.acquire("d", limits, tokens=0) for _ in range(5)] == [0.0] * 5
        # It comes back (empty): after the guard's retry window the limit holds again
        private_redis.start()
        await asyncio.sleep(RETRY_AFTER_S + 0.05)
        assert await rl.acquire("d", limits, tokens=0) == 0.0
        assert await rl.acquire("d", limits, tokens=0) > 0
    finally:
        await client.aclose()

    assert rl.stats()["failed_open"] == 5
    assert rl.stats()["down"] is False
    assert [line["event"] for line in logs] == [
        "redis_down",
        "rate_limit_fail_open",
        "redis_up",
        "rate_limit_enforced",
    ]


async def test_a_frozen_redis_admits_after_the_timeout(private_redis: PrivateRedis) -> None:
    client = redis_from_url(private_redis.url, timeout_s=5)
    rl = limiter(client, "pbtest:")
    limits = Limits(requests=1, tokens=None, window_s=60)
    assert await rl.acquire("d", limits, tokens=0) == 0.0
    private_redis.pause()
    try:
        assert await rl.acquire("d", limits, tokens=0) == 0.0
        assert await rl.acquire("d", limits, tokens=0) == 0.0
        assert rl.stats() == {"failed_open": 2, "errors": 1, "skipped": 1, "down": True}
    finally:
        private_redis.resume()
        await client.aclose()
