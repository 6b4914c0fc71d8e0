"""The key lookup every request makes: the database behind a small cache of each process.

A key found (or found missing) is trusted for `ttl_s`; after that the next request with it
reads the database again. That TTL is the stated bound: a key revoked (or a tenant
disabled) anywhere stops working in every process within it. A cached key costs a dict
read, so the hit path pays microseconds for authentication. Concurrent lookups of one
uncached key make one query.
"""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import KeysUnavailable
from pipeline.tenancy.grant import Grant
from pipeline.tenancy.store import TenantStore

T = TypeVar("T")
V = TypeVar("V")
# What the database may fail with when it is away: a lookup then fails closed (a 503).
_DOWN: Final = (SQLAlchemyError, OSError, TimeoutError)
# One lookup waits at most this long for the database.
LOOKUP_TIMEOUT_S: Final = 5.0


class _TtlCache(Generic[V]):
    """A bounded LRU of values that expire `ttl_s` after they were read from the database."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float]) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[V]] = {}

    def fresh(self, key: str) -> tuple[float, V] | None:
        """The entry of `key` (its expiry and value) while it is trusted, else None."""
        entry = self._entries.get(key)
        return entry if entry is not None and entry[0] > self._clock() else None

    async def get(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of `key`, or `load()`ed once for every caller waiting on it."""
        entry = self.fresh(key)
        if entry is not None:
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failure nobody else awaited is not "lost"
            raise
        else:
            future.set_result(value)
            self.put(key, value)
            return value
        finally:
            del self._loading[key]

    def put(self, key: str, value: V) -> None:
        """Trust `value` for `key` from now for the TTL."""
        self._entries[key] = (self._clock() + self._ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop `key`: the next read goes to the database."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()


class KeyDirectory:
    """Which tenant a key acts for (and whether keys are needed at all), cached per process."""

    def __init__(
        self,
        store: TenantStore,
        *,
        ttl_s: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._grants: _TtlCache[Grant | None] = _TtlCache(ttl_s, max_entries, clock)
        self._facts: _TtlCache[bool] = _TtlCache(ttl_s, max_entries, clock)
        # Keys are never deleted, only revoked: once any exists, keys stay required.
        self._keys_exist = False

    async def grant(self, digest: str) -> Grant | None:
        """What the key with this digest grants, or None if no key has it."""
        return await self._grants.get(digest, lambda: _bounded(self._store.find(digest)))

    def known_grant(self, digest: str) -> tuple[float, Grant | None] | None:
        """`grant`'s answer while it is cached (with its expiry): no await on a cache hit's
        path; None when only `grant` can tell."""
        return self._grants.fresh(digest)

    @property
    def keys_known_to_exist(self) -> bool:
        """Whether a key was seen to exist (then keys stay required: none is ever deleted)."""
        return self._keys_exist

    async def keys_exist(self) -> bool:
        """Whether any key was ever made (in any process: seen within the TTL)."""
        if not self._keys_exist:
            self._keys_exist = await self._facts.get(
                "keys", lambda: _bounded(self._store.any_keys())
            )
        return self._keys_exist

    async def tenants_exist(self) -> bool:
        """Whether any tenant exists (seen within the TTL)."""
        return await self._facts.get("tenants", lambda: _bounded(self._store.any_tenants()))

    async def tenant_usable(self, tenant: str) -> bool:
        """Whether `tenant` exists and is not disabled (seen within the TTL)."""
        return await self._facts.get(
            f"tenant:{tenant}", lambda: _bounded(self._store.usable_tenant(tenant))
        )

    def changed(self) -> None:
        """This process changed keys or tenants: read them afresh (others do within the TTL)."""
        self._grants.clear()
        self._facts.clear()


async def _bounded(query: Awaitable[T]) -> T:
    """`query`, within the lookup bound; KeysUnavailable if the database fails or is slow."""
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT_S):
            return await query
    except _DOWN as exc:
        raise KeysUnavailable(
            f"the key database is unavailable ({type(exc).__name__}); try again shortly"
        ) from exc
