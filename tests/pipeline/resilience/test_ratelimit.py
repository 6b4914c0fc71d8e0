"""One behaviour suite for both rate limiters: in memory (a fake clock) and in Redis (real time)."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from pipeline.redis_client import redis_from_url
from pipeline.resilience.ratelimit import Limits, MemoryRateLimiter, RateLimiter
from pipeline.resilience.redis_ratelimit import RedisRateLimiter
from tests.support.clock import FakeClock
from tests.support.services import REDIS_URL

# Redis runs on its own clock: waits are checked within what really elapsed, plus this.
EPS_S = 0.005


@dataclass
class Harness:
    """A limiter, another process's view of the same limits, and a way to let time pass."""

    limiter: RateLimiter
    peer: RateLimiter
    window_s: float
    sleep: Callable[[float], Awaitable[None]]
    real_time: bool
    started: float = field(default_factory=time.monotonic)
    advanced: float = 0.0

    def limits(
        self, requests: int | None, tokens: int | None, window_s: float | None = None
    ) -> Limits:
        return Limits(requests=requests, tokens=tokens, window_s=window_s or self.window_s)

    async def advance(self, seconds: float) -> None:
        self.advanced += seconds
        await self.sleep(seconds)

    def assert_wait(self, wait: float, expected: float) -> None:
        """`wait` is `expected` as of the test's timeline (less what real time overran it)."""
        if not self.real_time:
            assert wait == pytest.approx(expected)
            return
        lag = time.monotonic() - self.started - self.advanced
        assert expected - lag - EPS_S <= wait <= expected + EPS_S


@pytest.fixture
def memory_harness() -> Harness:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)

    return Harness(limiter, limiter, window_s=60.0, sleep=sleep, real_time=False)


@pytest.fixture
async def redis_harness(shared: tuple[Redis, str]) -> AsyncIterator[Harness]:
    client, prefix = shared
    other = redis_from_url(REDIS_URL, timeout_s=2)

    async def sleep(seconds: float) -> None:
        # A little over: Redis's clock and ours may disagree by a hair.
        await asyncio.sleep(seconds + 0.003)

    try:
        yield Harness(
            RedisRateLimiter(client, prefix=prefix),
            RedisRateLimiter(other, prefix=prefix),
            window_s=1.0,
            sleep=sleep,
            real_time=True,
        )
    finally:
        await other.aclose()


@pytest.fixture(params=["memory", "redis"])
def harness(request: pytest.FixtureRequest) -> Harness:
    found = request.getfixturevalue(f"{request.param}_harness")
    assert isinstance(found, Harness)
    found.started = time.monotonic()
    return found


async def test_no_limits_admit_everything(harness: Harness) -> None:
    limits = harness.limits(None, None)
    waits = [await harness.limiter.acquire("d", limits, tokens=10**9) for _ in range(100)]
    assert waits == [0.0] * 100


async def test_the_request_limit_counts_over_a_moving_window(harness: Harness) -> None:
    w = harness.window_s
    limits = harness.limits(3, None)
    acquire = harness.limiter.acquire
    # Given one request at 0 and two at w/2
    assert await acquire("d", limits, tokens=0) == 0.0
    await harness.advance(w / 2)
    assert await acquire("d", limits, tokens=0) == 0.0
    assert await acquire("d", limits, tokens=0) == 0.0
    # Then a fourth waits until the first leaves, at w
    harness.assert_wait(await acquire("d", limits, tokens=0), w / 2)
    # When the first has left, one more fits, and the next waits for the pair from w/2
    await harness.advance(w / 2)
    assert await acquire("d", limits, tokens=0) == 0.0
    harness.assert_wait(await acquire("d", limits, tokens=0), w / 2)
    await harness.advance(w / 2)
    assert [await acquire("d", limits, tokens=0) for _ in range(2)] == [0.0, 0.0]


async def test_the_token_limit_counts_over_a_moving_window(harness: Harness) -> None:
    w = harness.window_s
    limits = harness.limits(None, 100)
    acquire = harness.limiter.acquire
    assert await acquire("d", limits, tokens=60) == 0.0
    await harness.advance(w / 2)
    assert await acquire("d", limits, tokens=30) == 0.0
    # 90 counted: 20 more wait until the 60 leave; a refusal reserves nothing
    harness.assert_wait(await acquire("d", limits, tokens=20), w / 2)
    assert await acquire("d", limits, tokens=10) == 0.0
    harness.assert_wait(await acquire("d", limits, tokens=1), w / 2)
    # Once the 60 left, 40 are counted
    await harness.advance(w / 2)
    assert await acquire("d", limits, tokens=60) == 0.0
    harness.assert_wait(await acquire("d", limits, tokens=1), w / 2)


async def test_both_limits_hold_and_the_longer_wait_wins(harness: Harness) -> None:
    w = harness.window_s
    limits = harness.limits(3, 100)
    acquire = harness.limiter.acquire
    assert await acquire("d", limits, tokens=10) == 0.0
    await harness.advance(w / 2)
    assert await acquire("d", limits, tokens=80) == 0.0
    assert await acquire("d", limits, tokens=5) == 0.0
    # Three requests and 95 tokens counted. Tokens: 20 more need the 85 from w/2 gone.
    harness.assert_wait(await acquire("d", limits, tokens=20), w)
    # Requests: any call waits until the first leaves, tokens or not.
    harness.assert_wait(await acquire("d", limits, tokens=0), w / 2)
    await harness.advance(w / 2)
    assert await acquire("d", limits, tokens=15) == 0.0
    harness.assert_wait(await acquire("d", limits, tokens=0), w / 2)


async def test_settling_an_underestimate_counts_the_extra_tokens(harness: Harness) -> None:
    limits = harness.limits(None, 100)
    limiter = harness.limiter
    assert await limiter.acquire("d", limits, tokens=50) == 0.0
    await limiter.settle("d", limits, estimated=50, actual=90)
    harness.assert_wait(await limiter.acquire("d", limits, tokens=20), harness.window_s)
    assert await limiter.acquire("d", limits, tokens=10) == 0.0
    await limiter.settle("d", limits, estimated=10, actual=30)
    # 120 counted: even a call with no tokens waits for room
    harness.assert_wait(await limiter.acquire("d", limits, tokens=0), harness.window_s)


async def test_settling_an_overestimate_frees_tokens_but_never_below_zero(
    harness: Harness,
) -> None:
    limits = harness.limits(None, 100)
    limiter = harness.limiter
    assert await limiter.acquire("d", limits, tokens=80) == 0.0
    await limiter.settle("d", limits, estimated=80, actual=20)
    assert await limiter.acquire("d", limits, tokens=80) == 0.0
    harness.assert_wait(await limiter.acquire("d", limits, tokens=1), harness.window_s)
    # Taking back more than is counted leaves nothing counted, not a credit
    await limiter.settle("d", limits, estimated=500, actual=0)
    assert await limiter.acquire("d", limits, tokens=100) == 0.0
    harness.assert_wait(await limiter.acquire("d", limits, tokens=1), harness.window_s)


async def test_keys_are_independent(harness: Harness) -> None:
    limits = harness.limits(1, 10)
    acquire = harness.limiter.acquire
    assert await acquire("gemini/gemini-2.5-flash", limits, tokens=10) == 0.0
    assert await acquire("gemini/gemini-2.5-pro", limits, tokens=10) == 0.0
    assert await acquire("gemini/gemini-2.5-flash", limits, tokens=0) > 0
    assert await acquire("gemini/gemini-2.5-pro", limits, tokens=0) > 0
    assert await acquire("openai/gpt-4o", limits, tokens=0) == 0.0


async def test_an_estimate_above_the_whole_limit_is_admitted_on_an_empty_window(
    harness: Harness,
) -> None:
    w = harness.window_s
    limits = harness.limits(None, 100)
    acquire = harness.limiter.acquire
    assert await acquire("d", limits, tokens=500) == 0.0
    harness.assert_wait(await acquire("d", limits, tokens=1), w)
    await harness.advance(w / 2)
    harness.assert_wait(await acquire("d", limits, tokens=500), w / 2)
    await harness.advance(w / 2)
    assert await acquire("d", limits, tokens=1) == 0.0
    # Not empty any more: the big one waits for the small one to leave
    harness.assert_wait(await acquire("d", limits, tokens=500), w)


# A window the 50 racing calls cannot outlast on a loaded machine: nothing here sleeps in it.
RACE_WINDOW_S = 30.0


async def test_concurrent_acquires_never_overshoot(harness: Harness) -> None:
    limits = harness.limits(10, None, RACE_WINDOW_S)
    calls = [
        (harness.limiter if i % 2 else harness.peer).acquire("d", limits, tokens=1)
        for i in range(50)
    ]
    waits = await asyncio.gather(*calls)
    assert sum(1 for wait in waits if wait == 0.0) == 10
    assert all(0 < wait <= RACE_WINDOW_S for wait in waits if wait != 0.0)


async def test_concurrent_token_reservations_never_overshoot(harness: Harness) -> None:
    limits = harness.limits(None, 100, RACE_WINDOW_S)
    calls = [
        (harness.peer if i % 2 else harness.limiter).acquire("d", limits, tokens=7)
        for i in range(40)
    ]
    waits = await asyncio.gather(*calls)
    assert sum(1 for wait in waits if wait == 0.0) == 100 // 7


@pytest.mark.parametrize(
    ("requests", "tokens", "window_s"),
    [(0, None, 60.0), (None, 0, 60.0), (5, 5, 0.0), (-1, None, 1.0)],
)
def test_limits_refuse_nonsense(requests: int | None, tokens: int | None, window_s: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        Limits(requests=requests, tokens=tokens, window_s=window_s)


async def test_a_negative_estimate_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        await MemoryRateLimiter().acquire("d", Limits(1, 1, 1.0), tokens=-1)
