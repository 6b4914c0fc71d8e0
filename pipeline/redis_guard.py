"""Every Redis call bounded by a timeout, and Redis skipped for a while after a failure.

A `RedisGuard` bounds each call and, after a failure, marks Redis down so that calls skip
it (no I/O, no wait) until the retry window has passed; the first call after that probes
Redis and, on success, brings it back. The cache tier, the single-flight lock and the rate
limiter share one guard, so they see Redis go and come back together.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from redis.exceptions import RedisError

T = TypeVar("T")

log = structlog.get_logger("promptbus.redis")

Clock = Callable[[], float]


class RedisDown(Exception):
    """Redis was skipped (marked down) or the call failed or timed out."""


class RedisGuard:
    """Bounds each Redis call by a timeout and skips Redis for a while after a failure."""

    def __init__(
        self,
        *,
        timeout_s: float,
        retry_after_s: float,
        name: str = "redis",
        clock: Clock = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.name = name
        self._clock = clock
        self._retry_at: float | None = None
        self._probing = False
        self._errors = 0
        self._skipped = 0

    @property
    def down(self) -> bool:
        """Whether Redis is marked down (skipped until the next probe succeeds)."""
        return self._retry_at is not None

    def stats(self) -> dict[str, Any]:
        """Failed calls, calls skipped while down, and whether Redis is down now."""
        return {"errors": self._errors, "skipped": self._skipped, "down": self.down}

    async def call(self, op: Callable[[], Awaitable[T]], *, timeout_s: float | None = None) -> T:
        """The result of `op()`; RedisDown if Redis is skipped, fails or is too slow."""
        probe = False
        if self._retry_at is not None:
            # While one probe is out, the others skip: a dead Redis costs one wait per window.
            if self._probing or self._clock() < self._retry_at:
                self._skipped += 1
                raise RedisDown(f"{self.name} is down")
            self._probing = probe = True
        try:
            async with asyncio.timeout(self.timeout_s if timeout_s is None else timeout_s):
                result = await op()
        except (RedisError, OSError, TimeoutError) as exc:
            self._fail(exc, probe=probe)
            raise RedisDown(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if probe:
                self._probing = False
        if probe:
            self._retry_at = None
            log.info("redis_up", target=self.name, errors=self._errors, skipped=self._skipped)
        return result

    def _fail(self, exc: BaseException, *, probe: bool) -> None:
        self._errors += 1
        was_down = self._retry_at is not None
        if was_down and not probe:
            # A call that started before Redis went down: the window already runs.
            return
        self._retry_at = self._clock() + self.retry_after_s
        if not was_down:
            log.warning(
                "redis_down",
                target=self.name,
                error=f"{type(exc).__name__}: {exc}",
                retry_after_s=self.retry_after_s,
            )
