"""What the LRU tests share: caches on a hand-moved clock and views of their contents."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.cache.lru import LRUMemoryCache
from tests.support.clock import FakeClock


def make(clock: FakeClock, **kwargs: Any) -> LRUMemoryCache:
    return LRUMemoryCache(clock=clock, **kwargs)


def entry_size(key: str, value: Any) -> int:
    return len(key) + len(orjson.dumps(value))


async def visible_items(cache: LRUMemoryCache) -> list[tuple[str, bytes]]:
    """Live (key, raw value) pairs, least recently used first."""
    return [(key, await cache.raw("get", key)) for key in await cache.raw("keys")]


async def recomputed_bytes(cache: LRUMemoryCache) -> int:
    return sum(len(key) + len(raw) for key, raw in await visible_items(cache))
