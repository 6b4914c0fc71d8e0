"""The tiered response cache over real Redis: L2 fills L1, and a Redis outage only degrades it."""

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from structlog.typing import EventDict

from pipeline.cache.lru import LRUMemoryCache
from pipeline.cache.redis_tier import RedisTier
from pipeline.cache.responses import encode
from pipeline.cache.serializers import BytesSerializer
from pipeline.cache.tiered import TieredResponseCache
from pipeline.redis_client import redis_from_url
from pipeline.redis_guard import RedisGuard
from schemas import GenerateResponse
from tests.support.clock import FakeClock
from tests.support.envelopes import answer
from tests.support.redis_servers import PrivateRedis
from tests.support.services import REDIS_URL

TIMEOUT_S = 0.5
RETRY_AFTER_S = 0.5
# Scheduling noise allowed on top of a bound: these assert "bounded, not hung", never a speed.
SLACK_S = 1.0


def lru(clock: FakeClock | None = None) -> LRUMemoryCache:
    return LRUMemoryCache(serializer=BytesSerializer(), clock=clock or time.monotonic)


def tiered(client: Redis, prefix: str, l1: LRUMemoryCache | None = None) -> TieredResponseCache:
    guard = RedisGuard(timeout_s=TIMEOUT_S, retry_after_s=RETRY_AFTER_S)
    l2 = RedisTier(client, guard, prefix=prefix)
    return TieredResponseCache(l1 or lru(), l2, default_ttl_s=60)


async def timed(coro: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = await coro
    return result, time.monotonic() - start


async def test_an_l2_hit_fills_l1_for_the_remaining_ttl(shared: tuple[Redis, str]) -> None:
    client, prefix = shared
    clock = FakeClock()
    cache = tiered(client, prefix, lru(clock))
    key = "v1:tenant-a:abc"
    # Another process stored it 10 s ago for 60 s: 50 s are left.
    assert await cache.l2.set(key, encode(answer(), stored_at=time.time() - 10, ttl_s=60), ttl=60)

    first = await cache.get(key)
    second = await cache.get(key)

    assert first is not None
    assert second is not None
    assert (first.tier, second.tier) == ("l2", "l1")
    assert (second.prefix, second.stored_at) == (first.prefix, first.stored_at)
    clock.now += 49
    assert (await cache.get(key)).tier == "l1"  # type: ignore[union-attr]
    clock.now += 2
    assert (await cache.get(key)).tier == "l2"  # type: ignore[union-attr]


async def test_an_l2_entry_past_its_ttl_is_not_copied_into_l1(shared: tuple[Redis, str]) -> None:
    client, prefix = shared
    cache = tiered(client, prefix)
    key = "v1:tenant-a:old"
    await cache.l2.set(key, encode(answer(), stored_at=time.time() - 100, ttl_s=60), ttl=60)

    tiers = [(await cache.get(key)).tier for _ in range(2)]  # type: ignore[union-attr]

    assert tiers == ["l2", "l2"]


async def test_the_hit_body_names_the_tier_that_answered(shared: tuple[Redis, str]) -> None:
    client, prefix = shared
    writer, reader = tiered(client, prefix), tiered(client, prefix)
    key = "v1:tenant-a:body"
    await writer.put(key, answer("from l2"), 60)
    now = time.time()

    cached = await reader.fresh(key, 5, now)

    assert cached is not None
    body = GenerateResponse.model_validate_json(cached.body(key, tier=cached.tier, age_s=0.1))
    assert (body.text, body.cache.hit, body.cache.tier, body.cache.key) == (
        "from l2",
        True,
        "l2",
        key,
    )
    assert await reader.fresh(key, 0, now + 1) is None


async def test_a_put_writes_both_tiers_and_delete_removes_both(
    shared: tuple[Redis, str],
) -> None:
    client, prefix = shared
    l1 = lru()
    cache = tiered(client, prefix, l1)
    key = "v1:tenant-a:both"

    assert await cache.put(key, answer(), 30)

    in_l1 = await l1.get(key)
    assert in_l1 is not None
    assert await client.get(f"{prefix}cache:{key}") == in_l1
    assert 29_000 < await client.pttl(f"{prefix}cache:{key}") <= 30_000
    await cache.delete(key)
    assert await l1.get(key) is None
    assert await client.exists(f"{prefix}cache:{key}") == 0


async def test_two_processes_share_l2(shared: tuple[Redis, str]) -> None:
    _, prefix = shared
    client_a = redis_from_url(REDIS_URL, timeout_s=TIMEOUT_S)
    client_b = redis_from_url(REDIS_URL, timeout_s=TIMEOUT_S)
    a, b = tiered(client_a, prefix), tiered(client_b, prefix)
    key = "v1:tenant-b:shared"
    try:
        await a.put(key, answer("made by a"), 60)

        in_b = await b.fresh(key, None, time.time())
        again = await b.get(key)
    finally:
        await client_a.aclose()
        await client_b.aclose()

    assert in_b is not None
    assert again is not None
    assert (in_b.tier, again.tier) == ("l2", "l1")
    assert b"made by a" in in_b.prefix
    assert await b.get("v1:tenant-c:shared") is None


async def test_a_dead_redis_leaves_l1_working_and_is_used_again_once_back(
    private_redis: PrivateRedis, logs: list[EventDict]
) -> None:
    client = redis_from_url(private_redis.url, timeout_s=TIMEOUT_S)
    cache, other = tiered(client, "pbtest:"), tiered(client, "pbtest:")
    await cache.put("v1:t:before", answer(), 60)
    private_redis.kill()

    durations: list[float] = []
    for i in range(20):
        stored, took_put = await timed(cache.put(f"v1:t:k{i}", answer(), 60))
        hit, took_hit = await timed(cache.get(f"v1:t:k{i}"))
        miss, took_miss = await timed(cache.get("v1:t:only-in-l2"))
        assert (stored, hit.tier, miss) == (True, "l1", None)
        durations += [took_put, took_hit, took_miss]

    assert max(durations) < TIMEOUT_S + SLACK_S
    stats = cache.stats()
    # Each of the 40 calls that needed L2 either failed or skipped it; very few failed.
    assert stats["down"] is True
    assert 1 <= stats["errors"] <= 2
    assert stats["errors"] + stats["skipped"] == 40
    assert [line["event"] for line in logs] == ["redis_down"]

    # Back on the same port, empty: after the retry window the same objects use it again.
    private_redis.start()
    await asyncio.sleep(RETRY_AFTER_S + 0.05)
    assert await other.put("v1:t:after", answer("after"), 60)
    stats_before = cache.stats()
    found = await cache.get("v1:t:after")
    try:
        assert found is not None
        assert found.tier == "l2"
        assert cache.stats() == {**stats_before, "down": False}
        assert [line["event"] for line in logs] == ["redis_down", "redis_up"]
    finally:
        await client.aclose()


async def test_a_frozen_redis_costs_one_timeout_per_retry_window(
    private_redis: PrivateRedis,
) -> None:
    client = redis_from_url(private_redis.url, timeout_s=TIMEOUT_S)
    cache = tiered(client, "pbtest:")
    await cache.put("v1:t:warm", answer(), 60)
    private_redis.pause()
    try:
        miss, took = await timed(cache.get("v1:t:absent"))
        assert miss is None
        assert TIMEOUT_S * 0.8 < took < TIMEOUT_S + SLACK_S
        skipped = [await timed(cache.get("v1:t:absent")) for _ in range(10)]
        assert max(took for _, took in skipped) < TIMEOUT_S  # no call waits on the network

        # After the window, one call probes (and waits); concurrent ones still skip.
        await asyncio.sleep(RETRY_AFTER_S)
        results = await asyncio.gather(*(timed(cache.get("v1:t:absent")) for _ in range(10)))
        waits = sorted(took for _, took in results)
        assert waits[-1] < TIMEOUT_S + SLACK_S
        assert waits[-2] < 0.05
        assert [found for found, _ in results] == [None] * 10
        assert cache.stats() == {"errors": 2, "skipped": 19, "down": True}
        warm = await cache.get("v1:t:warm")
        assert warm is not None
        assert warm.tier == "l1"
    finally:
        private_redis.resume()

    await asyncio.sleep(RETRY_AFTER_S)
    try:
        assert await cache.put("v1:t:thawed", answer(), 60)
        assert cache.stats()["down"] is False
        assert await client.exists("pbtest:cache:v1:t:thawed") == 1
    finally:
        await client.aclose()
