"""Bounded in-memory LRU backend for aiocache."""

from __future__ import annotations

import heapq
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from aiocache.base import BaseCache

from pipeline.cache.serializers import OrjsonSerializer

Clock = Callable[[], float]

# Rebuild the expiry heap once stale records outnumber live entries by this slack.
_HEAP_SLACK = 64


class _Entry:
    """A stored value with its accounted size and absolute expiry deadline."""

    __slots__ = ("expires_at", "size", "value")

    def __init__(self, value: Any, size: int, expires_at: float | None) -> None:
        self.value = value
        self.size = size
        self.expires_at = expires_at


def _length(obj: Any) -> int:
    """Return the accounted length of a key or serialized value."""
    if isinstance(obj, str | bytes | bytearray):
        return len(obj)
    return len(repr(obj))


class LRUMemoryCache(BaseCache):  # type: ignore[misc]
    """In-process aiocache backend bounded by entry count and bytes, evicting LRU entries."""

    NAME = "lru_memory"

    def __init__(
        self,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        ttl: float | None = None,
        serializer: Any = None,
        namespace: str = "",
        clock: Clock = time.monotonic,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Create a cache holding at most ``max_entries`` entries and ``max_bytes`` bytes."""
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        if ttl is not None and ttl < 0:
            raise ValueError(f"ttl must be >= 0, got {ttl}")
        # timeout=None: aiocache otherwise runs every call through asyncio.wait_for, which
        # creates a Task per call and dominates the cost of an in-memory hit.
        super().__init__(
            serializer=serializer or OrjsonSerializer(),
            namespace=namespace,
            ttl=ttl or None,
            timeout=timeout,
            **kwargs,
        )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[Hashable, _Entry] = OrderedDict()
        # Min-heap of (deadline, seq, key); records go stale on overwrite/delete and are
        # validated against the live entry when popped. seq keeps keys out of comparisons.
        self._expiry_heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0

    def stats(self) -> dict[str, int]:
        """Return a snapshot of counters and usage; unpurged expired entries still count."""
        return {
            "entries": len(self._data),
            "bytes": self._bytes,
            "hits": self._hits,
            "misses": self._misses,
            "evictions": self._evictions,
            "expirations": self._expirations,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
        }

    def size(self) -> int:
        """Return the number of stored entries, including expired ones not yet purged."""
        # Deliberately not __len__: an empty cache would then be falsy.
        return len(self._data)

    def purge_expired(self) -> int:
        """Drop every expired entry now and return how many were removed."""
        before = self._expirations
        self._purge_expired()
        return self._expirations - before

    async def _get(self, key: Hashable, encoding: str | None = None, _conn: Any = None) -> Any:
        return self._lookup(key)

    async def _gets(self, key: Hashable, encoding: str | None = None, _conn: Any = None) -> Any:
        entry = self._live(key)
        return None if entry is None else entry.value

    async def _multi_get(
        self, keys: Iterable[Hashable], encoding: str | None = None, _conn: Any = None
    ) -> list[Any]:
        return [self._lookup(key) for key in keys]

    async def _set(
        self,
        key: Hashable,
        value: Any,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        if _cas_token is not None:
            current = self._live(key)
            if current is None or current.value != _cas_token:
                return False
        return self._store(key, value, self._deadline(ttl))

    async def _multi_set(
        self, pairs: Sequence[tuple[Hashable, Any]], ttl: float | None = None, _conn: Any = None
    ) -> bool:
        expires_at = self._deadline(ttl)
        for key, value in pairs:
            self._store(key, value, expires_at)
        return True

    async def _add(
        self, key: Hashable, value: Any, ttl: float | None = None, _conn: Any = None
    ) -> bool:
        if self._live(key) is not None:
            raise ValueError(f"Key {key} already exists, use .set to update the value")
        return self._store(key, value, self._deadline(ttl))

    async def _exists(self, key: Hashable, _conn: Any = None) -> bool:
        return self._live(key) is not None

    async def _increment(self, key: Hashable, delta: int, _conn: Any = None) -> int:
        entry = self._live(key)
        if entry is None:
            current, expires_at = 0, self._deadline(None)
        else:
            current, expires_at = self._as_int(entry.value), entry.expires_at
        result = current + delta
        if not self._store(key, self.serializer.dumps(result), expires_at):
            raise ValueError(f"Incremented value of {key} exceeds max_bytes")
        return result

    async def _expire(self, key: Hashable, ttl: float | None, _conn: Any = None) -> bool:
        # Unlike set(), aiocache defines expire(key, 0) as "remove the expiry".
        if ttl is not None and ttl < 0:
            raise ValueError(f"ttl must be >= 0, got {ttl}")
        entry = self._live(key)
        if entry is None:
            return False
        if ttl:
            entry.expires_at = self._clock() + ttl
            self._schedule(key, entry.expires_at)
        else:
            entry.expires_at = None
        return True

    async def _delete(self, key: Hashable, _conn: Any = None) -> int:
        entry = self._live(key)
        if entry is None:
            return 0
        self._remove(key, entry)
        return 1

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        # Mirrors SimpleMemoryCache: BaseCache.clear() passes None (not self.namespace) when
        # no namespace is given, which means "everything".
        if namespace:
            doomed = [k for k in self._data if isinstance(k, str) and k.startswith(namespace)]
            for key in doomed:
                self._remove(key, self._data[key])
        else:
            self._data.clear()
            self._expiry_heap.clear()
            self._bytes = 0
        return True

    async def _raw(
        self,
        command: str,
        *args: Any,
        encoding: str | None = None,
        _conn: Any = None,
        **kwargs: Any,
    ) -> Any:
        # Only read-only commands: mutating the dict directly would corrupt the byte accounting.
        if command == "get":
            entry = self._live(args[0])
            return None if entry is None else entry.value
        if command == "keys":
            now = self._clock()
            return [k for k, e in self._data.items() if e.expires_at is None or e.expires_at > now]
        raise ValueError(f"Unsupported raw command {command!r}; supported: 'get', 'keys'")

    async def _redlock_release(self, key: Hashable, value: Any) -> int:
        entry = self._live(key)
        if entry is None or entry.value != value:
            return 0
        self._remove(key, entry)
        return 1

    def _lookup(self, key: Hashable) -> Any:
        """Return the raw value for ``key`` on a hit (refreshing recency), else ``None``."""
        entry = self._data.get(key)
        if entry is not None:
            if entry.expires_at is None or entry.expires_at > self._clock():
                self._data.move_to_end(key)
                self._hits += 1
                return entry.value
            self._drop_expired(key, entry)
        self._misses += 1
        return None

    def _live(self, key: Hashable) -> _Entry | None:
        """Return the unexpired entry for ``key`` without touching recency or hit counters."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= self._clock():
            self._drop_expired(key, entry)
            return None
        return entry

    def _deadline(self, ttl: float | None) -> float | None:
        """Turn a relative ttl into an absolute deadline; None or 0 use the default ttl."""
        if ttl is not None and ttl < 0:
            raise ValueError(f"ttl must be >= 0, got {ttl}")
        effective = ttl or self.ttl
        if not effective:
            return None
        return self._clock() + effective

    def _store(self, key: Hashable, value: Any, expires_at: float | None) -> bool:
        """Insert or replace ``key`` as most recent, then evict; refuse entries over max_bytes."""
        size = _length(key) + _length(value)
        if size > self.max_bytes:
            return False
        self._purge_expired()
        old = self._data.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._data[key] = _Entry(value, size, expires_at)
        self._bytes += size
        if expires_at is not None:
            self._schedule(key, expires_at)
        self._evict()
        return True

    def _evict(self) -> None:
        """Pop least-recently-used entries until both bounds hold."""
        data = self._data
        while len(data) > self.max_entries or self._bytes > self.max_bytes:
            _, entry = data.popitem(last=False)
            self._bytes -= entry.size
            self._evictions += 1

    def _schedule(self, key: Hashable, expires_at: float) -> None:
        """Record a deadline for ``key`` in the expiry heap, compacting it if mostly stale."""
        heap = self._expiry_heap
        heapq.heappush(heap, (expires_at, next(self._seq), key))
        if len(heap) > 2 * len(self._data) + _HEAP_SLACK:
            self._expiry_heap = [
                (e.expires_at, next(self._seq), k)
                for k, e in self._data.items()
                if e.expires_at is not None
            ]
            heapq.heapify(self._expiry_heap)

    def _purge_expired(self) -> None:
        """Remove entries whose deadline has passed, cheapest when nothing is due."""
        heap = self._expiry_heap
        if not heap:
            return
        now = self._clock()
        data = self._data
        while heap and heap[0][0] <= now:
            _, _, key = heapq.heappop(heap)
            entry = data.get(key)
            # The record may be stale (key overwritten, re-expired or gone); trust the entry.
            if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
                self._drop_expired(key, entry)

    def _drop_expired(self, key: Hashable, entry: _Entry) -> None:
        """Remove an entry found expired and count it."""
        self._remove(key, entry)
        self._expirations += 1

    def _remove(self, key: Hashable, entry: _Entry) -> None:
        """Remove ``key`` and release its bytes."""
        del self._data[key]
        self._bytes -= entry.size

    def _as_int(self, raw: Any) -> int:
        """Decode a stored value as an integer for increment, as aiocache's backends do."""
        try:
            value = self.serializer.loads(raw)
            if isinstance(value, str | bytes):
                value = int(value)
        except (TypeError, ValueError):
            raise TypeError("Value is not an integer") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("Value is not an integer")
        return value
