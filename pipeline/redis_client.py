"""The one way promptbus connects to Redis, and the names of the keys it uses there."""

import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# Idle pooled connections are pinged before reuse after this long, so a dead one is
# replaced instead of failing a request.
_HEALTH_CHECK_S = 15


def redis_from_url(url: str, *, timeout_s: float) -> Redis:
    """A client whose every connect and read gives up after `timeout_s`, without retries."""
    # No retries inside redis-py: a retried script after an ambiguous timeout could report
    # "exists" for its own write, and callers (the guard, the stores) decide what to do.
    return Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
        health_check_interval=_HEALTH_CHECK_S,
    )


def millis(seconds: float) -> int:
    """`seconds` as whole milliseconds for PX/PEXPIRE: rounded up, and at least 1."""
    return max(1, math.ceil(seconds * 1000))


@dataclass(frozen=True)
class RedisKeys:
    """Key and channel names under one deployment's prefix."""

    prefix: str

    def __call__(self, *parts: str) -> str:
        """The prefix, then `parts` joined by colons."""
        return self.prefix + ":".join(parts)

    def pair(self, kind: str, first: str, second: str) -> str:
        """A key for two free-form parts that cannot collide: the first is length-prefixed."""
        return f"{self.prefix}{kind}:{len(first)}:{first}:{second}"
