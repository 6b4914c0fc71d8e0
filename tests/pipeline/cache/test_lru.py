"""The bounded LRU aiocache backend: construction, TTLs, eviction by count and bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from pipeline.cache.lru import LRUMemoryCache
from pipeline.cache.serializers import OrjsonSerializer
from tests.support.clock import FakeClock
from tests.support.lru import entry_size, make, recomputed_bytes, visible_items


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
