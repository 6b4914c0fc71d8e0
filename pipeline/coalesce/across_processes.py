"""Cross-process single-flight over Redis: one process calls upstream, the others wait.

The leader holds `{prefix}lock:{key}` (SET NX PX, a random token), runs the call, then
deletes the lock only if it still holds its token and publishes on `{prefix}done:{key}`.
Followers wake on that message or every `poll_s`, and read the result with `check()`
(the call must have made it readable, e.g. stored it in the shared cache). A lock whose
leader died expires after `lock_ttl_s` and a follower takes it; a follower never waits
longer than `wait_s` before calling itself. Without Redis, every caller calls directly.
"""

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from pipeline.redis_guard import RedisDown, RedisGuard

T = TypeVar("T")

log = structlog.get_logger("promptbus.lock")

# Deletes the lock only for its own holder, and wakes the followers either way.
_RELEASE = """
local released = 0
if redis.call('get', KEYS[1]) == ARGV[1] then
    released = redis.call('del', KEYS[1])
end
redis.call('publish', ARGV[2], '1')
return released
"""


class RedisSingleFlight:
    """Runs one call per key at a time across processes sharing a Redis."""

    def __init__(
        self,
        redis: "Redis",
        *,
        prefix: str,
        lock_ttl_s: float,
        wait_s: float,
        poll_s: float = 0.05,
        guard: RedisGuard | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lock_ttl_ms = max(1, int(lock_ttl_s * 1000))
        self._wait_s = wait_s
        self._poll_s = poll_s
        # Share the cache tier's guard so that both see Redis go down and come back at once.
        self._guard = guard or RedisGuard(timeout_s=0.5, retry_after_s=5.0, name="lock")
        self._release_script = redis.register_script(_RELEASE)

    async def run(
        self,
        key: str,
        call: Callable[[], Awaitable[T]],
        *,
        check: Callable[[], Awaitable[T | None]],
    ) -> tuple[T, bool]:
        """The call's result and whether it came from another caller's call (via `check`)."""
        lock = f"{self._prefix}lock:{key}"
        token = secrets.token_hex(16)
        try:
            lead, value = await self._turn(key, lock, token, check)
        except RedisDown:
            # The guard logged the transition; this caller just goes upstream itself.
            lead, value = False, None
        if value is not None:
            return value, True
        if lead:
            return await self._lead(key, lock, token, call), False
        return await call(), False

    async def _turn(
        self, key: str, lock: str, token: str, check: Callable[[], Awaitable[T | None]]
    ) -> tuple[bool, T | None]:
        """Whether this caller holds the lock now, or the value another caller made."""
        if await self._acquire(lock, token):
            return True, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        async with self._redis.pubsub() as pubsub:
            await self._guard.call(lambda: pubsub.subscribe(f"{self._prefix}done:{key}"))
            while True:
                # Subscribed first, then checked: a result published before cannot be missed.
                value = await check()
                if value is not None:
                    return False, value
                if await self._acquire(lock, token):
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    log.info("lock_wait_expired", key=key, wait_s=self._wait_s)
                    return False, None
                await self._next_message(pubsub, min(self._poll_s, remaining))
        # The lock was free: its holder finished (maybe just after our check) or died.
        value = await check()
        if value is not None:
            await self._release(key, lock, token)
        return value is None, value

    async def _lead(self, key: str, lock: str, token: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        finally:
            await self._release(key, lock, token)

    async def _acquire(self, lock: str, token: str) -> bool:
        return bool(
            await self._guard.call(
                lambda: self._redis.set(lock, token, nx=True, px=self._lock_ttl_ms)
            )
        )

    async def _release(self, key: str, lock: str, token: str) -> None:
        channel = f"{self._prefix}done:{key}"
        # Not releasing is safe: the lock expires and the followers poll.
        with suppress(RedisDown):
            await self._guard.call(lambda: self._release_script(keys=[lock], args=[token, channel]))

    async def _next_message(self, pubsub: PubSub, timeout_s: float) -> None:
        await self._guard.call(
            lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout_s),
            timeout_s=timeout_s + self._guard.timeout_s,
        )
