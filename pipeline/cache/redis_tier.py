"""The L2 response cache in Redis, skipped for a while whenever Redis fails or is slow."""

from typing import Any

from redis.asyncio import Redis

from pipeline.redis_guard import RedisDown, RedisGuard


class RedisTier:
    """Cache entries (bytes, as ResponseCache stores them) under `{prefix}cache:{key}`."""

    tier = "l2"

    def __init__(self, redis: "Redis", guard: RedisGuard, *, prefix: str) -> None:
        self._redis = redis
        self.guard = guard
        self._prefix = prefix + "cache:"

    def stats(self) -> dict[str, Any]:
        """The guard's counters: errors, skipped calls, and whether Redis is down."""
        return self.guard.stats()

    async def get(self, key: str, default: Any = None) -> Any:
        """The entry under `key`, or `default` on a miss or while Redis is unavailable."""
        try:
            value = await self.guard.call(lambda: self._redis.get(self._prefix + key))
        except RedisDown:
            return default
        return default if value is None else value

    async def set(self, key: str, value: Any, ttl: float | None = None) -> bool:
        """Store an entry (bytes) for `ttl` seconds; False if not stored."""
        if not isinstance(value, bytes):
            raise TypeError(f"RedisTier stores bytes, not {type(value).__name__}")
        if ttl is not None and ttl <= 0:
            return False
        # PX takes whole milliseconds and refuses 0.
        px = None if ttl is None else max(1, int(ttl * 1000))
        try:
            stored = await self.guard.call(
                lambda: self._redis.set(self._prefix + key, value, px=px)
            )
        except RedisDown:
            return False
        return bool(stored)

    async def delete(self, key: str) -> int:
        """Delete the entry under `key`; how many were deleted (0 while Redis is unavailable)."""
        try:
            return int(await self.guard.call(lambda: self._redis.delete(self._prefix + key)))
        except RedisDown:
            return 0
