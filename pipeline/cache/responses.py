"""The response cache: stores answers as JSON under their cache key, with their age."""

import time
from dataclasses import dataclass
from typing import Any, Protocol

from schemas import GenerateResponse


class CacheBackend(Protocol):
    """The part of aiocache's interface the response cache uses."""

    async def get(self, key: str, default: Any = None) -> Any: ...

    async def set(self, key: str, value: Any, ttl: float | None = None) -> bool: ...

    async def delete(self, key: str) -> int: ...


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored answer, as its JSON-ready dict, and when it was stored (Unix time)."""

    payload: dict[str, Any]
    stored_at: float

    def response(self, **cache_info: Any) -> GenerateResponse:
        """The stored response with its cache info updated by `cache_info`."""
        # One validation of an updated dict is far cheaper than validate-then-copy.
        payload = dict(self.payload)
        payload["cache"] = {**payload["cache"], **cache_info}
        return GenerateResponse.model_validate(payload)

    def age(self, now: float) -> float:
        """Seconds since the answer was stored."""
        return max(0.0, now - self.stored_at)


class ResponseCache:
    """Answers by cache key over one aiocache backend (the L1 LRU for now)."""

    tier = "l1"

    def __init__(self, backend: CacheBackend, *, default_ttl_s: int) -> None:
        self._backend = backend
        self.default_ttl_s = default_ttl_s

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under `key`, or None."""
        raw = await self._backend.get(key)
        if raw is None:
            return None
        return CachedAnswer(raw["response"], raw["stored_at"])

    async def put(self, key: str, response: GenerateResponse, ttl_s: int) -> bool:
        """Store an answer; False when the backend refused it (e.g. too large)."""
        value = {"response": response.model_dump(mode="json"), "stored_at": time.time()}
        return bool(await self._backend.set(key, value, ttl=ttl_s))

    async def ping(self) -> bool:
        """Whether a value written can be read back."""
        probe = "readyz:probe"
        await self._backend.set(probe, {"ok": True}, ttl=5)
        return bool(await self._backend.get(probe) == {"ok": True})

    async def delete(self, key: str) -> None:
        """Forget the answer under `key`."""
        await self._backend.delete(key)
