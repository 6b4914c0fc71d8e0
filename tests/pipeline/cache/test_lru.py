"""Tests for the bounded LRU aiocache backend and the orjson serializer."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiocache.lock import OptimisticLock, OptimisticLockError, RedLock

from pipeline.cache.lru import LRUMemoryCache
from pipeline.cache.serializers import OrjsonSerializer


class FakeClock:
    """Manually advanced monotonic clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **kwargs: Any) -> LRUMemoryCache:
    return LRUMemoryCache(clock=clock, **kwargs)


def entry_size(key: str, value: Any) -> int:
    return len(key) + len(orjson.dumps(value))


async def visible_items(cache: LRUMemoryCache) -> list[tuple[str, bytes]]:
    """Live (key, raw value) pairs, least recently used first."""
    return [(key, await cache.raw("get", key)) for key in await cache.raw("keys")]


async def recomputed_bytes(cache: LRUMemoryCache) -> int:
    return sum(len(key) + len(raw) for key, raw in await visible_items(cache))


# --- serializer ---------------------------------------------------------------------------


def test_orjson_serializer_roundtrip_and_none() -> None:
    ser = OrjsonSerializer()
    value = {"a": [1, 2.5, None, True], "b": {"c": "ü"}}
    dumped = ser.dumps(value)
    assert isinstance(dumped, bytes)
    assert dumped == orjson.dumps(value)
    assert ser.loads(dumped) == value
    assert ser.loads(dumped.decode()) == value
    assert ser.loads(None) is None
    assert ser.encoding is None
    assert OrjsonSerializer.DEFAULT_ENCODING is None


def test_orjson_serializer_rejects_non_json_instead_of_pickling() -> None:
    with pytest.raises(TypeError):
        OrjsonSerializer().dumps(object())


# --- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"max_entries": 0}, {"max_entries": -1}, {"max_bytes": 0}, {"ttl": -1.0}],
)
def test_constructor_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LRUMemoryCache(**kwargs)


def test_defaults() -> None:
    cache = LRUMemoryCache()
    assert isinstance(cache.serializer, OrjsonSerializer)
    assert cache.timeout is None
    assert cache.ttl is None
    assert cache.namespace == ""
    assert cache.stats() == {
        "entries": 0,
        "bytes": 0,
        "hits": 0,
        "misses": 0,
        "evictions": 0,
        "expirations": 0,
        "max_entries": 10_000,
        "max_bytes": 64 * 1024 * 1024,
    }


async def test_default_timeout_skips_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    async def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("asyncio.wait_for must not be used when timeout is None")

    cache = LRUMemoryCache()
    with monkeypatch.context() as m:
        m.setattr(asyncio, "wait_for", forbidden)
        await cache.set("k", 1)
        assert await cache.get("k") == 1
        assert await cache.get("missing") is None


# --- basic get/set ------------------------------------------------------------------------


async def test_set_get_roundtrip_of_dict(clock: FakeClock) -> None:
    cache = make(clock)
    value = {"model": "gemini", "messages": [{"role": "user", "content": "hi"}], "n": 2}
    assert await cache.set("req", value) is True
    got = await cache.get("req")
    assert got == value
    assert await cache.raw("get", "req") == orjson.dumps(value)
    got["n"] = 99
    assert (await cache.get("req"))["n"] == 2, "callers must get a fresh copy"


async def test_miss_returns_none_or_default(clock: FakeClock) -> None:
    cache = make(clock)
    assert await cache.get("nope") is None
    assert await cache.get("nope", default={"d": 1}) == {"d": 1}
    assert cache.stats()["misses"] == 2
    assert cache.stats()["hits"] == 0


# --- TTL ----------------------------------------------------------------------------------


async def test_per_entry_ttl(clock: FakeClock) -> None:
    cache = make(clock)
    await cache.set("short", "s", ttl=1.5)
    await cache.set("forever", "f")
    clock.advance(1.49)
    assert await cache.get("short") == "s"
    clock.advance(0.01)
    assert await cache.get("short") is None
    assert await cache.exists("short") is False
    clock.advance(1e9)
    assert await cache.get("forever") == "f"


async def test_get_does_not_extend_ttl(clock: FakeClock) -> None:
    cache = make(clock)
    await cache.set("k", 1, ttl=2)
    clock.advance(1)
    assert await cache.get("k") == 1
    clock.advance(0.9)
    assert await cache.get("k") == 1
    clock.advance(0.1)
    assert await cache.get("k") is None


async def test_default_ttl_applies_to_none_zero_and_omitted(clock: FakeClock) -> None:
    cache = make(clock, ttl=10)
    await cache.set("omitted", 1)
    await cache.set("none", 2, ttl=None)
    await cache.set("zero", 3, ttl=0)
    await cache.set("explicit", 4, ttl=30)
    await cache.multi_set([("multi", 5)])
    await cache.add("added", 6)
    await cache.increment("counter")
    clock.advance(9.9)
    assert await cache.multi_get(
        ["omitted", "none", "zero", "explicit", "multi", "added", "counter"]
    ) == [1, 2, 3, 4, 5, 6, 1]
    clock.advance(0.1)
    assert await cache.multi_get(
        ["omitted", "none", "zero", "explicit", "multi", "added", "counter"]
    ) == [None, None, None, 4, None, None, None]


async def test_negative_ttl_rejected(clock: FakeClock) -> None:
    cache = make(clock)
    with pytest.raises(ValueError, match="ttl"):
        await cache.set("k", 1, ttl=-1)
    await cache.set("k", 1)
    with pytest.raises(ValueError, match="ttl"):
        await cache.expire("k", -1)
    assert cache.stats()["entries"] == 1


async def test_purge_of_expired_entries_frees_bytes(clock: FakeClock) -> None:
    cache = make(clock)
    for i in range(5):
        await cache.set(f"tmp{i}", "x" * 100, ttl=1)
    await cache.set("keep", "y")
    clock.advance(1)
    # Nothing touched the expired entries yet, so they still occupy space.
    assert cache.stats()["entries"] == 6
    await cache.set("new", "z")
    stats = cache.stats()
    assert stats["entries"] == 2
    assert stats["bytes"] == entry_size("keep", "y") + entry_size("new", "z")
    assert stats["bytes"] == await recomputed_bytes(cache)
    assert stats["expirations"] == 5
    assert stats["evictions"] == 0


async def test_expired_entries_are_purged_before_live_ones_are_evicted(clock: FakeClock) -> None:
    cache = make(clock, max_entries=3)
    await cache.set("old_live", 1)
    await cache.set("mid_expiring", 2, ttl=1)
    await cache.set("recent", 3)
    clock.advance(1)
    await cache.set("newest", 4)
    assert await cache.raw("keys") == ["old_live", "recent", "newest"]
    assert cache.stats()["evictions"] == 0
    assert cache.stats()["expirations"] == 1


async def test_purge_expired_method(clock: FakeClock) -> None:
    cache = make(clock)
    await cache.multi_set([("a", 1), ("b", 2)], ttl=1)
    await cache.set("c", 3, ttl=5)
    clock.advance(1)
    assert cache.purge_expired() == 2
    assert cache.size() == 1
    assert cache.stats()["bytes"] == entry_size("c", 3)
    assert cache.purge_expired() == 0


async def test_expiry_heap_stays_bounded_under_rewrites(clock: FakeClock) -> None:
    cache = make(clock)
    for i in range(10_000):
        await cache.set("same", i, ttl=3600)
    assert await cache.get("same") == 9_999
    # White-box: stale heap records from overwrites must be compacted, not accumulate.
    assert len(cache._expiry_heap) <= 2 * cache.size() + 64 + 1
    clock.advance(3600)
    assert cache.purge_expired() == 1
    assert cache.stats()["bytes"] == 0


# --- bounds -------------------------------------------------------------------------------


async def test_eviction_by_count_keeps_most_recently_used(clock: FakeClock) -> None:
    cache = make(clock, max_entries=3)
    await cache.multi_set([("a", 1), ("b", 2), ("c", 3)])
    assert await cache.get("a") == 1
    await cache.set("d", 4)
    assert await cache.get("b") is None
    assert await cache.raw("keys") == ["c", "a", "d"]
    await cache.set("c", 30)
    await cache.set("e", 5)
    assert await cache.raw("keys") == ["d", "c", "e"]
    assert cache.stats()["evictions"] == 2
    assert cache.size() == 3


async def test_multi_get_refreshes_recency(clock: FakeClock) -> None:
    cache = make(clock, max_entries=2)
    await cache.multi_set([("a", 1), ("b", 2)])
    assert await cache.multi_get(["a", "zz"]) == [1, None]
    await cache.set("c", 3)
    assert await cache.raw("keys") == ["a", "c"]


async def test_exists_does_not_refresh_recency(clock: FakeClock) -> None:
    cache = make(clock, max_entries=2)
    await cache.multi_set([("a", 1), ("b", 2)])
    assert await cache.exists("a") is True
    await cache.set("c", 3)
    assert await cache.exists("a") is False
    assert cache.stats()["hits"] == 0


async def test_eviction_by_bytes(clock: FakeClock) -> None:
    unit = entry_size("k0", "x" * 8)
    cache = make(clock, max_bytes=3 * unit)
    for i in range(3):
        await cache.set(f"k{i}", "x" * 8)
    assert cache.stats()["bytes"] == 3 * unit
    await cache.get("k0")
    await cache.set("k3", "x" * 8)
    assert await cache.raw("keys") == ["k2", "k0", "k3"]
    # A value needing two slots evicts the two least recently used entries.
    big = "x" * (2 * unit - len("kb") - 2)
    assert entry_size("kb", big) == 2 * unit
    await cache.set("kb", big)
    assert await cache.raw("keys") == ["k3", "kb"]
    stats = cache.stats()
    assert stats["bytes"] == 3 * unit == await recomputed_bytes(cache)
    assert stats["evictions"] == 3


async def test_entry_exactly_max_bytes_is_accepted(clock: FakeClock) -> None:
    cache = make(clock, max_bytes=entry_size("k", "abc"))
    await cache.set("a", 1)
    assert await cache.set("k", "abc") is True
    assert await visible_items(cache) == [("k", orjson.dumps("abc"))]
    assert cache.stats()["evictions"] == 1


async def test_oversized_value_is_refused_and_evicts_nothing(clock: FakeClock) -> None:
    cache = make(clock, max_bytes=100)
    await cache.set("a", "x" * 10)
    await cache.set("b", "y" * 10)
    before_items = await visible_items(cache)
    before_stats = cache.stats()
    huge = "z" * 100
    assert await cache.set("huge", huge) is False
    assert await cache.get("huge") is None
    # Refusing an overwrite keeps the previous value rather than half-applying it.
    assert await cache.set("a", huge) is False
    await cache.multi_set([("m", huge)])
    await cache.add("h2", huge)
    assert await cache.exists("m") is False
    assert await cache.exists("h2") is False
    assert await visible_items(cache) == before_items
    after = cache.stats()
    assert {k: v for k, v in after.items() if k != "misses"} == {
        k: v for k, v in before_stats.items() if k != "misses"
    }


async def test_overwrite_updates_byte_total(clock: FakeClock) -> None:
    cache = make(clock)
    for value in ["short", "a much longer value " * 10, {"k": [1, 2, 3]}, 7]:
        await cache.set("key", value)
        stats = cache.stats()
        assert stats["entries"] == 1
        assert stats["bytes"] == entry_size("key", value)
        assert stats["bytes"] == await recomputed_bytes(cache)
    await cache.set("other", "v")
    assert cache.stats()["bytes"] == entry_size("key", 7) + entry_size("other", "v")


async def test_non_bytes_serializer_output_uses_repr_length(clock: FakeClock) -> None:
    class IdentitySerializer(OrjsonSerializer):
        def dumps(self, value: Any) -> Any:
            return value

        def loads(self, value: Any) -> Any:
            return value

    cache = make(clock, serializer=IdentitySerializer())
    await cache.set("k", (1, 2))
    await cache.set("s", "abc")
    assert cache.stats()["bytes"] == len("k") + len(repr((1, 2))) + len("s") + len("abc")


# --- other operations ---------------------------------------------------------------------


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


@dataclass
class _ModelEntry:
    raw: bytes
    size: int
    expires_at: float | None


@dataclass
class Model:
    """Reference LRU: a dict plus an explicit recency list, with the cache's documented rules."""

    max_entries: int
    max_bytes: int
    default_ttl: float | None
    clock: FakeClock
    data: dict[str, _ModelEntry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    evictions: int = 0

    def _expired(self, entry: _ModelEntry) -> bool:
        return entry.expires_at is not None and entry.expires_at <= self.clock.now

    def _drop(self, key: str) -> None:
        del self.data[key]
        self.order.remove(key)

    def live(self, key: str) -> _ModelEntry | None:
        entry = self.data.get(key)
        if entry is not None and self._expired(entry):
            self._drop(key)
            return None
        return entry

    def deadline(self, ttl: float | None) -> float | None:
        ttl = ttl or self.default_ttl
        return self.clock.now + ttl if ttl else None

    def store(self, key: str, raw: bytes, expires_at: float | None) -> bool:
        size = len(key) + len(raw)
        if size > self.max_bytes:
            return False
        for k in [k for k, e in self.data.items() if self._expired(e)]:
            self._drop(k)
        if key in self.data:
            self._drop(key)
        self.data[key] = _ModelEntry(raw, size, expires_at)
        self.order.append(key)
        while len(self.order) > self.max_entries or self.total_bytes() > self.max_bytes:
            self._drop(self.order[0])
            self.evictions += 1
        return True

    def get(self, key: str) -> Any:
        entry = self.live(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self.order.remove(key)
        self.order.append(key)
        return orjson.loads(entry.raw)

    def total_bytes(self) -> int:
        return sum(e.size for e in self.data.values())

    def visible(self) -> list[tuple[str, bytes]]:
        return [(k, self.data[k].raw) for k in self.order if not self._expired(self.data[k])]


def _random_value(rng: random.Random) -> Any:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randint(-50, 500)
    if kind == 1:
        return "x" * rng.randint(0, 45)
    if kind == 2:
        return {"a": [rng.randint(0, 9) for _ in range(rng.randint(0, 4))]}
    return None


@pytest.mark.parametrize("default_ttl", [None, 2.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_randomized_against_reference_model(seed: int, default_ttl: float | None) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    max_entries, max_bytes = 5, 40
    cache = LRUMemoryCache(
        max_entries=max_entries, max_bytes=max_bytes, ttl=default_ttl, clock=clock
    )
    model = Model(max_entries, max_bytes, default_ttl, clock)
    keys = [f"k{i}" for i in range(8)]
    ttls = [None, 0, 0.5, 1.0, 3.0]
    ops = ["set", "set", "get", "get", "delete", "add", "exists", "expire", "increment"]
    ops += ["multi_get", "multi_set", "tick"]

    for step in range(2000):
        op = rng.choice(ops)
        key = rng.choice(keys)
        where = f"step {step}: {op} {key}"
        if op == "set":
            value, ttl = _random_value(rng), rng.choice(ttls)
            expected = model.store(key, orjson.dumps(value), model.deadline(ttl))
            assert await cache.set(key, value, ttl=ttl) is expected, where
        elif op == "get":
            assert await cache.get(key) == model.get(key), where
        elif op == "delete":
            expected_deleted = 1 if model.live(key) is not None else 0
            if expected_deleted:
                model._drop(key)
            assert await cache.delete(key) == expected_deleted, where
        elif op == "add":
            value, ttl = _random_value(rng), rng.choice(ttls)
            if model.live(key) is not None:
                with pytest.raises(ValueError, match="already exists"):
                    await cache.add(key, value, ttl=ttl)
            else:
                model.store(key, orjson.dumps(value), model.deadline(ttl))
                await cache.add(key, value, ttl=ttl)
        elif op == "exists":
            assert await cache.exists(key) is (model.live(key) is not None), where
        elif op == "expire":
            ttl = rng.choice([0, 0.5, 2.0])
            entry = model.live(key)
            if entry is not None:
                entry.expires_at = clock.now + ttl if ttl else None
            assert await cache.expire(key, ttl) is (entry is not None), where
        elif op == "increment":
            delta = rng.randint(-3, 3)
            entry = model.live(key)
            current = 0 if entry is None else orjson.loads(entry.raw)
            if isinstance(current, int) and not isinstance(current, bool):
                deadline = model.deadline(None) if entry is None else entry.expires_at
                model.store(key, orjson.dumps(current + delta), deadline)
                assert await cache.increment(key, delta) == current + delta, where
            else:
                with pytest.raises(TypeError):
                    await cache.increment(key, delta)
        elif op == "multi_get":
            batch = rng.sample(keys, rng.randint(1, 4))
            assert await cache.multi_get(batch) == [model.get(k) for k in batch], where
        elif op == "multi_set":
            pairs = [(rng.choice(keys), _random_value(rng)) for _ in range(rng.randint(1, 3))]
            ttl = rng.choice(ttls)
            deadline = model.deadline(ttl)
            for k, v in pairs:
                model.store(k, orjson.dumps(v), deadline)
            await cache.multi_set(pairs, ttl=ttl)
        else:
            clock.advance(rng.choice([0.25, 0.5, 1.0]))

        assert await visible_items(cache) == model.visible(), where
        stats = cache.stats()
        assert stats["entries"] == len(model.data), where
        assert stats["bytes"] == model.total_bytes(), where
        assert stats["entries"] <= max_entries, where
        assert stats["bytes"] <= max_bytes, where

    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["evictions"]) == (
        model.hits,
        model.misses,
        model.evictions,
    )
    # Guard against a generator change that silently stops exercising the interesting paths.
    assert model.evictions > 0
    assert model.hits > 0
