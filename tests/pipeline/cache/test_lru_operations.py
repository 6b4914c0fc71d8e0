"""The LRU backend through aiocache's interface: every operation, locks, stats, namespaces."""

from __future__ import annotations

import pytest
from aiocache.lock import OptimisticLock, OptimisticLockError, RedLock

from tests.support.clock import FakeClock
from tests.support.lru import entry_size, make


async def test_delete(clock: FakeClock) -> None:
    cache = make(clock)
    await cache.set("a", 1)
    await cache.set("b", 2, ttl=1)
    assert await cache.delete("a") == 1
    assert await cache.delete("a") == 0
    clock.advance(1)
    assert await cache.delete("b") == 0
    assert cache.stats()["bytes"] == 0
    assert cache.size() == 0


async def test_exists(clock: FakeClock) -> None:
    cache = make(clock)
    assert await cache.exists("a") is False
    await cache.set("a", None)
    assert await cache.exists("a") is True


async def test_clear_all_and_by_namespace(clock: FakeClock) -> None:
    cache = make(clock, namespace="app:")
    await cache.set("a", 1)
    await cache.set("b", 2, ttl=5)
    await cache.set("a", 3, namespace="other:")
    assert await cache.clear(namespace="app:") is True
    assert await cache.raw("keys") == ["other:a"]
    assert cache.stats()["bytes"] == entry_size("other:a", 3)
    await cache.set("c", 4)
    # aiocache passes namespace=None through, which clears every namespace.
    assert await cache.clear() is True
    assert cache.size() == 0
    assert cache.stats()["bytes"] == 0
    await cache.set("d", 5, ttl=1)
    clock.advance(1)
    assert cache.purge_expired() == 1


async def test_add(clock: FakeClock) -> None:
    cache = make(clock)
    assert await cache.add("a", {"v": 1}) is True
    with pytest.raises(ValueError, match="already exists"):
        await cache.add("a", {"v": 2})
    assert await cache.get("a") == {"v": 1}
    await cache.set("t", 1, ttl=1)
    clock.advance(1)
    assert await cache.add("t", 2) is True
    assert await cache.get("t") == 2


async def test_expire(clock: FakeClock) -> None:
    cache = make(clock)
    assert await cache.expire("missing", 5) is False
    await cache.set("a", 1)
    assert await cache.expire("a", 5) is True
    clock.advance(4.9)
    assert await cache.get("a") == 1
    clock.advance(0.1)
    assert await cache.get("a") is None
    assert await cache.expire("a", 5) is False

    await cache.set("b", 2, ttl=1)
    assert await cache.expire("b", 0) is True  # 0 removes the expiry, as in aiocache
    await cache.set("c", 3, ttl=1)
    assert await cache.expire("c", 10) is True  # extending must outlive the old deadline
    clock.advance(5)
    await cache.set("trigger_purge", 0)
    assert await cache.multi_get(["b", "c"]) == [2, 3]


async def test_increment(clock: FakeClock) -> None:
    cache = make(clock)
    assert await cache.increment("n") == 1
    assert await cache.increment("n", 10) == 11
    assert await cache.increment("n", -20) == -9
    assert await cache.get("n") == -9
    assert cache.stats()["bytes"] == entry_size("n", -9)
    await cache.set("s", "abc")
    await cache.set("d", {"a": 1})
    await cache.set("flag", True)
    for key in ("s", "d", "flag"):
        with pytest.raises(TypeError, match="not an integer"):
            await cache.increment(key)
    assert await cache.get("s") == "abc"


async def test_increment_keeps_existing_deadline(clock: FakeClock) -> None:
    cache = make(clock)
    await cache.set("n", 5, ttl=2)
    clock.advance(1.5)
    assert await cache.increment("n") == 6
    clock.advance(0.5)
    assert await cache.get("n") is None


async def test_multi_get_and_multi_set(clock: FakeClock) -> None:
    cache = make(clock)
    assert await cache.multi_set([("a", 1), ("b", [2]), ("c", {"c": 3})], ttl=2) is True
    assert await cache.multi_get(["a", "x", "b", "c"]) == [1, None, [2], {"c": 3}]
    assert cache.stats()["hits"] == 3
    assert cache.stats()["misses"] == 1
    clock.advance(2)
    assert await cache.multi_get(["a", "b", "c"]) == [None, None, None]


async def test_multi_set_beyond_bounds_keeps_last_entries(clock: FakeClock) -> None:
    cache = make(clock, max_entries=2)
    await cache.multi_set([(f"k{i}", i) for i in range(5)])
    assert await cache.raw("keys") == ["k3", "k4"]
    assert cache.stats()["evictions"] == 3


async def test_raw_is_read_only(clock: FakeClock) -> None:
    cache = make(clock)
    await cache.set("a", 1)
    assert await cache.raw("get", "a") == b"1"
    assert await cache.raw("get", "missing") is None
    with pytest.raises(ValueError, match="Unsupported raw command"):
        await cache.raw("pop", "a")
    assert await cache.get("a") == 1


async def test_close_and_context_manager(clock: FakeClock) -> None:
    async with make(clock) as cache:
        await cache.set("a", 1)
    assert await cache.close() is None


async def test_optimistic_lock_uses_cas(clock: FakeClock) -> None:
    cache = make(clock)
    await cache.set("k", 1)
    async with OptimisticLock(cache, "k") as lock:
        await lock.cas(2)
    assert await cache.get("k") == 2
    async with OptimisticLock(cache, "k") as lock:
        await cache.set("k", 3)
        with pytest.raises(OptimisticLockError):
            await lock.cas(4)
    assert await cache.get("k") == 3


async def test_redlock_acquires_and_releases(clock: FakeClock) -> None:
    cache = make(clock)
    async with RedLock(cache, "job", lease=5):
        assert await cache.raw("keys") == ["job-lock"]
    assert await cache.raw("keys") == []
    assert cache.stats()["bytes"] == 0


# --- stats and namespaces -----------------------------------------------------------------


async def test_stats_counters(clock: FakeClock) -> None:
    cache = make(clock, max_entries=2, max_bytes=1000)
    await cache.set("a", 1)
    await cache.set("b", 2, ttl=1)
    await cache.get("a")
    await cache.get("a")
    await cache.get("zz")
    clock.advance(1)
    await cache.get("b")  # expired: a miss and an expiration
    await cache.set("c", 3)
    await cache.set("d", 4)  # evicts "a"
    assert cache.stats() == {
        "entries": 2,
        "bytes": entry_size("c", 3) + entry_size("d", 4),
        "hits": 2,
        "misses": 2,
        "evictions": 1,
        "expirations": 1,
        "max_entries": 2,
        "max_bytes": 1000,
    }


async def test_namespaces_separate_keys(clock: FakeClock) -> None:
    cache = make(clock, namespace="ns1:")
    await cache.set("k", "one")
    await cache.set("k", "two", namespace="ns2:")
    assert await cache.get("k") == "one"
    assert await cache.get("k", namespace="ns2:") == "two"
    assert await cache.get("k", namespace="ns3:") is None
    assert sorted(await cache.raw("keys")) == ["ns1:k", "ns2:k"]
    assert await cache.delete("k", namespace="ns2:") == 1
    assert await cache.get("k") == "one"
    # Bytes are accounted on the namespaced key.
    assert cache.stats()["bytes"] == entry_size("ns1:k", "one")

    other = make(clock, namespace="ns2:")
    assert await other.get("k") is None


async def test_custom_key_builder(clock: FakeClock) -> None:
    cache = make(clock, namespace="v1", key_builder=lambda key, namespace: f"{namespace}/{key}")
    await cache.set("k", 1)
    assert await cache.raw("keys") == ["v1/k"]
    assert await cache.get("k") == 1


# --- randomized model test ----------------------------------------------------------------
