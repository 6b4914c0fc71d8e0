"""What the LRU tests share: a clock to move by hand and views of the cache's contents."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.cache.lru import LRUMemoryCache


class FakeClock:
    """Manually advanced monotonic clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
