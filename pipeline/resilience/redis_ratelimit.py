"""Rate limits shared by every process, in Redis; the rules of `pipeline.resilience.ratelimit`.

Per key, `{prefix}ratelimit:requests:{key}` is a sorted set of admitted requests scored
by their time, and `{prefix}ratelimit:tokens:{key}` one of token buckets
("<opened>:<tokens>", scored by their latest addition). One Lua script prunes, checks and
reserves atomically, so concurrent callers in any number of processes cannot overshoot.
Times come from Redis's own `TIME` inside the scripts, in microseconds: one clock for
every process, so the hosts' clocks do not matter. Each write sets `PEXPIRE` to the
window, so an idle key's sets vanish.

When Redis fails or is too slow (a `RedisGuard` bounds every call and skips Redis for a
while after a failure), the limiter fails open: it admits, counts it, logs once per
outage, and enforces the limits again as soon as a call succeeds.
"""

import secrets
from typing import Any

import structlog
from redis.asyncio import Redis

from pipeline.redis_client import RedisKeys, millis
from pipeline.redis_guard import RedisDown, RedisGuard
from pipeline.resilience.ratelimit import BUCKETS_PER_WINDOW, Limits

log = structlog.get_logger("promptbus.ratelimit")

# Shared by both scripts. Token buckets come back oldest first, expired ones removed.
_PRELUDE = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function buckets(key, cutoff)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  local raw = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local list = {}
  for i = 1, #raw, 2 do
    local opened, tokens = string.match(raw[i], '^(%d+):(%d+)$')
    list[#list + 1] = {member = raw[i], opened = tonumber(opened),
                       tokens = tonumber(tokens), at = tonumber(raw[i + 1])}
  end
  return list
end

local function put(key, opened, at, tokens)
  -- %.0f: tostring() would print these microsecond counts in 14 digits only.
  redis.call('ZADD', key, at, string.format('%.0f:%.0f', opened, tokens))
end

local function add_tokens(key, list, now, tokens, bucket)
  local last = list[#list]
  if last and now - last.opened < bucket then
    redis.call('ZREM', key, last.member)
    put(key, last.opened, now, last.tokens + tokens)
  else
    put(key, now, now, tokens)
  end
end
"""

_ACQUIRE = (
    _PRELUDE
    + """
-- KEYS: requests, tokens. ARGV: window us, window ms, bucket us, max requests (-1: none),
-- max tokens (-1: none), tokens, a member naming this request. Returns the wait in us.
local window, bucket = tonumber(ARGV[1]), tonumber(ARGV[3])
local max_requests, max_tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
local now = now_us()
local cutoff = now - window
local wait = 0
if max_requests >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
  local count = redis.call('ZCARD', KEYS[1])
  if count >= max_requests then
    local i = count - max_requests
    local oldest = redis.call('ZRANGE', KEYS[1], i, i, 'WITHSCORES')
    wait = tonumber(oldest[2]) + window - now
  end
end
local list = {}
if max_tokens >= 0 then
  list = buckets(KEYS[2], cutoff)
  local used = 0
  for _, b in ipairs(list) do used = used + b.tokens end
  local room = math.max(max_tokens - tokens, 0)
  if used > room then
    for _, b in ipairs(list) do
      used = used - b.tokens
      if used <= room then
        wait = math.max(wait, b.at + window - now)
        break
      end
    end
  end
end
if wait > 0 then return wait end
if max_requests >= 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[7])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if max_tokens >= 0 and tokens > 0 then
  add_tokens(KEYS[2], list, now, tokens, bucket)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 0
"""
)

_SETTLE = (
    _PRELUDE
    + """
-- KEYS: tokens. ARGV: window us, window ms, bucket us, tokens to add (< 0: to take back).
local now = now_us()
local list = buckets(KEYS[1], now - tonumber(ARGV[1]))
local delta = tonumber(ARGV[4])
if delta > 0 then
  add_tokens(KEYS[1], list, now, delta, tonumber(ARGV[3]))
else
  local left = -delta
  for i = #list, 1, -1 do
    if left <= 0 then break end
    local b = list[i]
    local taken = math.min(left, b.tokens)
    left = left - taken
    redis.call('ZREM', KEYS[1], b.member)
    if b.tokens > taken then put(KEYS[1], b.opened, b.at, b.tokens - taken) end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
)


class RedisRateLimiter:
    """Limits shared across processes through Redis; admits while Redis is unavailable."""

    def __init__(self, redis: Redis, *, prefix: str, guard: RedisGuard | None = None) -> None:
        self._keys = RedisKeys(prefix)
        # Share the cache's guard so that every Redis user sees an outage at once.
        self._guard = guard or RedisGuard(timeout_s=0.5, retry_after_s=5.0, name="ratelimit")
        self._acquire = redis.register_script(_ACQUIRE)
        self._settle = redis.register_script(_SETTLE)
        self._failing_open = False
        self._failed_open = 0

    def stats(self) -> dict[str, Any]:
        """Requests admitted unchecked while Redis was unavailable, and the guard's counters."""
        return {"failed_open": self._failed_open, **self._guard.stats()}

    async def acquire(self, key: str, limits: Limits, *, tokens: int) -> float:
        """0.0 with one request and `tokens` reserved, or the seconds until they could fit."""
        if tokens < 0:
            raise ValueError(f"tokens must not be negative, not {tokens}")
        if limits.unlimited:
            return 0.0
        window_us = _micros(limits.window_s)
        keys = [self._keys("ratelimit", "requests", key), self._keys("ratelimit", "tokens", key)]
        args: list[int | str] = [
            window_us,
            millis(limits.window_s),
            _bucket_us(window_us),
            -1 if limits.requests is None else limits.requests,
            -1 if limits.tokens is None else limits.tokens,
            tokens,
            secrets.token_hex(8),
        ]
        try:
            wait_us = await self._guard.call(lambda: self._acquire(keys=keys, args=args))
        except RedisDown as exc:
            self._failed_open += 1
            if not self._failing_open:
                self._failing_open = True
                log.warning("rate_limit_fail_open", key=key, error=str(exc))
            return 0.0
        self._enforcing()
        return int(wait_us) / 1_000_000

    async def settle(self, key: str, limits: Limits, *, estimated: int, actual: int) -> None:
        """Count `actual - estimated` more tokens (or fewer) under `key`; skipped without Redis."""
        delta = actual - estimated
        if limits.tokens is None or delta == 0:
            return
        window_us = _micros(limits.window_s)
        keys = [self._keys("ratelimit", "tokens", key)]
        args = [window_us, millis(limits.window_s), _bucket_us(window_us), delta]
        try:
            await self._guard.call(lambda: self._settle(keys=keys, args=args))
        except RedisDown:
            # Dropping a correction only makes the limit a little off for one window.
            return
        self._enforcing()

    def _enforcing(self) -> None:
        if self._failing_open:
            self._failing_open = False
            log.info("rate_limit_enforced", failed_open=self._failed_open)


def _micros(seconds: float) -> int:
    return max(1, round(seconds * 1_000_000))


def _bucket_us(window_us: int) -> int:
    return max(1, round(window_us / BUCKETS_PER_WINDOW))
