"""What each budget scope has spent in its current period: in process, or shared in Redis.

A counter's name holds its period's id (`acme/*/day/2026-12-07`), so a new period starts
from zero by itself; each counter expires a little after its period ends.
"""

import time
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis

from pipeline.redis_client import RedisKeys

# Counters outlive their period by this long, for the ledger's late records.
_GRACE_S = 3600


class Spend(Protocol):
    """Spend counters by name, each with the moment (epoch seconds) it may be forgotten."""

    async def spent(self, names: Sequence[str]) -> list[float]:
        """What each counter holds (0 for one never charged)."""
        ...

    async def add(self, names: Sequence[str], usd: float, expires: Sequence[float]) -> list[float]:
        """Charge `usd` to each counter; return what each holds now."""
        ...

    async def seed(self, name: str, usd: float, expires: float) -> None:
        """Start a counter at `usd` unless it exists (reconciling from the ledger)."""
        ...

    async def once(self, marker: str, expires: float) -> bool:
        """True the first time `marker` is asked for, across every process; then False."""
        ...


class MemorySpend:
    """Counters of this process only (one process, or no Redis), bounded by expiry."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[float, float]] = {}
        self._markers: dict[str, float] = {}

    async def spent(self, names: Sequence[str]) -> list[float]:
        """What each counter holds."""
        self._forget()
        return [self._counters.get(name, (0.0, 0.0))[0] for name in names]

    async def add(self, names: Sequence[str], usd: float, expires: Sequence[float]) -> list[float]:
        """Charge each counter."""
        totals = []
        for name, until in zip(names, expires, strict=True):
            total = self._counters.get(name, (0.0, until))[0] + usd
            self._counters[name] = (total, until)
            totals.append(total)
        return totals

    async def seed(self, name: str, usd: float, expires: float) -> None:
        """Start a counter unless it exists."""
        self._counters.setdefault(name, (usd, expires))

    async def once(self, marker: str, expires: float) -> bool:
        """True the first time only."""
        self._forget()
        if marker in self._markers:
            return False
        self._markers[marker] = expires
        return True

    def _forget(self) -> None:
        now = time.time()
        for name in [n for n, (_, until) in self._counters.items() if until + _GRACE_S < now]:
            del self._counters[name]
        for marker in [m for m, until in self._markers.items() if until + _GRACE_S < now]:
            del self._markers[marker]


class RedisSpend:
    """Counters every process shares: INCRBYFLOAT, each key expiring after its period."""

    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis = redis
        self._keys = keys

    async def spent(self, names: Sequence[str]) -> list[float]:
        """What each counter holds."""
        values = await self._redis.mget([self._key(name) for name in names])
        return [float(value) if value is not None else 0.0 for value in values]

    async def add(self, names: Sequence[str], usd: float, expires: Sequence[float]) -> list[float]:
        """Charge each counter, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for name, until in zip(names, expires, strict=True):
            pipe.incrbyfloat(self._key(name), usd)
            pipe.expireat(self._key(name), int(until) + _GRACE_S)
        results = await pipe.execute()
        return [float(total) for total in results[::2]]

    async def seed(self, name: str, usd: float, expires: float) -> None:
        """Start a counter unless another process (or an earlier start) already has."""
        await self._redis.set(self._key(name), repr(usd), nx=True, exat=int(expires) + _GRACE_S)

    async def once(self, marker: str, expires: float) -> bool:
        """True for the first process to ask."""
        key = self._keys("budget-marker", marker)
        return bool(await self._redis.set(key, b"1", nx=True, exat=int(expires) + _GRACE_S))

    def _key(self, name: str) -> str:
        return self._keys("budget", name)
