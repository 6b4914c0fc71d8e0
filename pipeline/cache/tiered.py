"""Two cache tiers: the in-process LRU (L1) in front of Redis shared by all processes (L2).

Reads try L1, then L2; an L2 hit is copied into L1 for what is left of its TTL. Writes
go to both. While Redis is down, the L2 tier skips it, so everything runs on L1 alone.
"""

import time
from collections.abc import Callable
from typing import Any

from pipeline.cache.redis_tier import RedisTier
from pipeline.cache.responses import CacheBackend, CachedAnswer, ResponseCache, decode, encode
from schemas import GenerateResponse

Clock = Callable[[], float]


class TieredResponseCache(ResponseCache):
    """ResponseCache over L1 (any aiocache-like backend) and L2 (Redis)."""

    def __init__(
        self,
        l1: CacheBackend,
        l2: RedisTier,
        *,
        default_ttl_s: int,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(l1, default_ttl_s=default_ttl_s)
        self.l2 = l2
        self._clock = clock

    def stats(self) -> dict[str, Any]:
        """L2 degradation counters: errors, skipped calls, and whether Redis is down."""
        return self.l2.stats()

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer under `key` from L1, else from L2 (then copied into L1), else None."""
        entry = await self._backend.get(key)
        if entry is not None:
            return decode(entry, "l1")
        entry = await self.l2.get(key)
        if entry is None:
            return None
        answer = decode(entry, "l2")
        remaining = answer.ttl_s - answer.age(self._clock())
        if remaining > 0:
            await self._backend.set(key, entry, ttl=remaining)
        return answer

    async def put(self, key: str, response: GenerateResponse, ttl_s: int) -> bool:
        """Store an answer in both tiers; False when neither accepted it."""
        entry = encode(response, stored_at=self._clock(), ttl_s=ttl_s)
        in_l1 = bool(await self._backend.set(key, entry, ttl=ttl_s))
        in_l2 = await self.l2.set(key, entry, ttl=ttl_s)
        return in_l1 or in_l2

    async def delete(self, key: str) -> None:
        """Forget the answer under `key` in both tiers."""
        await self._backend.delete(key)
        await self.l2.delete(key)
