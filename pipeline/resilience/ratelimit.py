"""Rate limits per key (requests and tokens per moving window), and the in-process limiter.

A moving (sliding-log) window: "N requests per W seconds" refuses a request when N were
admitted in the last W seconds, and the wait it returns is exactly when the oldest of
them leaves the window. Tokens work alike: a request fits while the tokens counted in
the last W seconds plus its estimate stay within the limit, and the wait is when enough
of them have left. A request whose estimate alone exceeds the token limit is admitted
once the window holds no tokens at all; otherwise it could never be admitted.

Tokens are kept in time buckets so that a busy key holds a bounded log: an addition
within `window_s / BUCKETS_PER_WINDOW` of a bucket's opening joins that bucket, which
then counts until its latest addition leaves the window (at most one bucket width late,
never early). `settle` adds an underestimate now, and takes an overestimate back from
the newest buckets (never below zero). `RedisRateLimiter` implements the same rules
across processes.
"""

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

BUCKETS_PER_WINDOW = 50


@dataclass(frozen=True, slots=True)
class Limits:
    """At most `requests` calls and `tokens` tokens per `window_s`; None is unlimited."""

    requests: int | None  # per window
    tokens: int | None  # per window
    window_s: float

    def __post_init__(self) -> None:
        if self.requests is not None and self.requests < 1:
            raise ValueError(f"requests must be at least 1 or None, not {self.requests}")
        if self.tokens is not None and self.tokens < 1:
            raise ValueError(f"tokens must be at least 1 or None, not {self.tokens}")
        if not self.window_s > 0:
            raise ValueError(f"window_s must be positive, not {self.window_s}")

    @property
    def unlimited(self) -> bool:
        """Whether neither requests nor tokens are limited."""
        return self.requests is None and self.tokens is None

    @property
    def bucket_s(self) -> float:
        """How close in time token additions must be to share a bucket."""
        return self.window_s / BUCKETS_PER_WINDOW


class RateLimiter(Protocol):
    """Reserves room under per-key limits; `MemoryRateLimiter` and `RedisRateLimiter`."""

    async def acquire(self, key: str, limits: Limits, *, tokens: int) -> float:
        """Reserve one request and `tokens` (an estimate) under `key`: 0.0 when reserved;
        otherwise reserve nothing and return the seconds until it could fit (> 0)."""
        ...

    async def settle(self, key: str, limits: Limits, *, estimated: int, actual: int) -> None:
        """Correct the token count once the real usage is known (actual - estimated, may be < 0)."""
        ...


class _Bucket:
    """Tokens added from `opened` on; they count until `at` (the latest addition) leaves."""

    __slots__ = ("at", "opened", "tokens")

    def __init__(self, now: float, tokens: int) -> None:
        self.opened = self.at = now
        self.tokens = tokens


class _Log:
    """One key's admitted request times and token buckets, oldest first."""

    __slots__ = ("buckets", "requests")

    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.buckets: deque[_Bucket] = deque()

    def prune(self, cutoff: float) -> None:
        """Forget what left the window (everything at or before `cutoff`)."""
        while self.requests and self.requests[0] <= cutoff:
            self.requests.popleft()
        while self.buckets and self.buckets[0].at <= cutoff:
            self.buckets.popleft()

    def add_tokens(self, now: float, tokens: int, bucket_s: float) -> None:
        last = self.buckets[-1] if self.buckets else None
        if last is not None and now - last.opened < bucket_s:
            last.at = now
            last.tokens += tokens
        else:
            self.buckets.append(_Bucket(now, tokens))

    def take_back(self, tokens: int) -> None:
        """Remove up to `tokens` from the newest buckets: an overestimate just settled."""
        while tokens > 0 and self.buckets:
            last = self.buckets[-1]
            taken = min(tokens, last.tokens)
            last.tokens -= taken
            tokens -= taken
            if last.tokens == 0:
                self.buckets.pop()


class MemoryRateLimiter:
    """The limits of one process (asyncio-safe: check and reserve never await between)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[str, _Log] = {}

    async def acquire(self, key: str, limits: Limits, *, tokens: int) -> float:
        """0.0 with one request and `tokens` reserved, or the seconds until they could fit."""
        if tokens < 0:
            raise ValueError(f"tokens must not be negative, not {tokens}")
        if limits.unlimited:
            return 0.0
        now = self._clock()
        log = self._logs.setdefault(key, _Log())
        log.prune(now - limits.window_s)
        wait = 0.0
        if limits.requests is not None and len(log.requests) >= limits.requests:
            # The request whose departure leaves room for one more.
            oldest = log.requests[len(log.requests) - limits.requests]
            wait = oldest + limits.window_s - now
        if limits.tokens is not None:
            wait = max(wait, _token_wait(log.buckets, limits, tokens, now))
        if wait > 0:
            return wait
        if limits.requests is not None:
            log.requests.append(now)
        if limits.tokens is not None and tokens > 0:
            log.add_tokens(now, tokens, limits.bucket_s)
        return 0.0

    async def settle(self, key: str, limits: Limits, *, estimated: int, actual: int) -> None:
        """Count `actual - estimated` more tokens (or fewer) under `key`."""
        delta = actual - estimated
        if limits.tokens is None or delta == 0:
            return
        now = self._clock()
        log = self._logs.setdefault(key, _Log())
        log.prune(now - limits.window_s)
        if delta > 0:
            log.add_tokens(now, delta, limits.bucket_s)
        else:
            log.take_back(-delta)


def _token_wait(buckets: deque[_Bucket], limits: Limits, tokens: int, now: float) -> float:
    """Seconds until `tokens` fit beside what the (pruned) window holds; 0.0 if they do."""
    assert limits.tokens is not None
    used = sum(bucket.tokens for bucket in buckets)
    # An estimate above the whole limit needs an empty window.
    room = max(limits.tokens - tokens, 0)
    if used <= room:
        return 0.0
    for bucket in buckets:
        used -= bucket.tokens
        if used <= room:
            return bucket.at + limits.window_s - now
    raise AssertionError("unreachable: an empty window always has room")
