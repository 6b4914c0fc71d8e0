"""The response cache: answers stored as ready-to-send JSON bytes, with their age.

An entry is one header line, `<stored_at> <ttl_s>\n`, then the response's JSON
without its `cache` member and closing brace. A hit appends fresh cache info and
the brace: no JSON parsing and no model validation on the fast path.
"""

import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from schemas import GenerateResponse

_CACHE_MEMBER = b',"cache":'


class CacheBackend(Protocol):
    """The part of aiocache's interface the response cache uses."""

    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(self, key: str, value: Any, ttl: float | None = None) -> bool: ...

    async def delete(self, key: str) -> int: ...


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored answer: its JSON without cache info, when it was stored, and its TTL."""

    prefix: bytes
    stored_at: float
    ttl_s: int
    tier: str = "l1"

    def age(self, now: float) -> float:
        """Seconds since the answer was stored."""
        return max(0.0, now - self.stored_at)

    def body(self, key: str, *, tier: str, age_s: float) -> bytes:
        """The response body of a hit: the stored JSON plus this hit's cache info."""
        info = {
            "hit": True,
            "tier": tier,
            "key": key,
            "age_s": round(age_s, 3),
            "stored": False,
            "coalesced": False,
            "ttl_s": self.ttl_s,
        }
        return self.prefix + _CACHE_MEMBER + orjson.dumps(info) + b"}"

    def response(self, key: str, *, tier: str, age_s: float) -> GenerateResponse:
        """The hit as a response model (for stages that pass models along)."""
        return GenerateResponse.model_validate_json(self.body(key, tier=tier, age_s=age_s))


def encode(response: GenerateResponse, *, stored_at: float, ttl_s: int) -> bytes:
    """A cache entry for `response`."""
    body = response.model_dump_json(exclude={"cache"}).encode()
    return f"{stored_at:.6f} {ttl_s}\n".encode() + body[:-1]


def decode(entry: bytes, tier: str = "l1") -> CachedAnswer:
    """The answer in a cache entry, as found in `tier`."""
    header, _, prefix = entry.partition(b"\n")
    stored_at, ttl_s = header.split(b" ")
    return CachedAnswer(prefix, float(stored_at), int(ttl_s), tier)


class ResponseCache:
    """Answers by cache key over one aiocache backend: the in-process LRU (L1)."""

    def __init__(self, backend: CacheBackend, *, default_ttl_s: int) -> None:
        self._backend = backend
        self.default_ttl_s = default_ttl_s

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under `key`, or None."""
        entry = await self._backend.get(key)
        return None if entry is None else decode(entry)

    async def fresh(self, key: str, max_age_s: float | None, now: float) -> CachedAnswer | None:
        """The answer under `key` if it is at most `max_age_s` old (any age if None)."""
        cached = await self.get(key)
        if cached is None or (max_age_s is not None and cached.age(now) > max_age_s):
            return None
        return cached

    async def put(self, key: str, response: GenerateResponse, ttl_s: int) -> bool:
        """Store an answer; False when the backend refused it (e.g. too large)."""
        entry = encode(response, stored_at=time.time(), ttl_s=ttl_s)
        return bool(await self._backend.set(key, entry, ttl=ttl_s))

    async def ping(self) -> bool:
        """Whether a value written can be read back."""
        probe = "readyz:probe"
        await self._backend.set(probe, b"ok", ttl=5)
        return bool(await self._backend.get(probe) == b"ok")

    async def delete(self, key: str) -> None:
        """Forget the answer under `key`."""
        await self._backend.delete(key)
