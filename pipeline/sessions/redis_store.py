"""Sessions in plain Redis: a list of JSON messages a session, and a lock a session.

No Redis modules: RPUSH/LTRIM/EXPIRE in one transaction per turn, LRANGE to read, and
redis-py's lock (SET NX PX with a token) to hold a session for a turn across processes.
A Redis that fails fails the turn (503), rather than answering it without its history.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

from pipeline.errors import ServiceBusy
from pipeline.redis_client import RedisKeys
from schemas import Message

log = structlog.get_logger("promptbus.sessions")


class RedisSessions:
    """Sessions every process shares: `max_messages` kept in each, for `ttl_s` after a turn."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        ttl_s: float,
        max_messages: int,
        lock_wait_s: float,
        turn_timeout_s: float,
    ) -> None:
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._ttl_ms = int(ttl_s * 1000)
        self._max_messages = max_messages
        self._lock_wait_s = lock_wait_s
        self._turn_timeout_s = turn_timeout_s

    def _key(self, tenant: str, session_id: str) -> str:
        return self._keys.pair("session", tenant, session_id)

    @asynccontextmanager
    async def turn(self, tenant: str, session_id: str) -> AsyncIterator[None]:
        """Hold the session for one turn, in every process; ServiceBusy if it stays held."""
        lock = self._redis.lock(
            self._keys.pair("session-lock", tenant, session_id),
            # A process that dies holding it frees it after this long.
            timeout=self._turn_timeout_s,
            blocking_timeout=self._lock_wait_s,
            sleep=0.02,
        )
        try:
            held = await lock.acquire()
        except RedisError as exc:
            raise _unavailable(exc) from exc
        if not held:
            raise ServiceBusy(
                f"session {session_id!r} is busy with another turn; try again", retry_after_s=1.0
            )
        try:
            yield
        finally:
            try:
                await lock.release()
            except (LockError, RedisError) as exc:
                # Held past its timeout (another turn may have run): say so, nothing to undo.
                log.warning("session lock lost", session_id=session_id, error=str(exc))

    async def history(self, tenant: str, session_id: str) -> list[Message]:
        """The session's kept messages, oldest first."""
        try:
            raw = await self._redis.lrange(self._key(tenant, session_id), 0, -1)
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return [Message.model_validate_json(item) for item in raw]

    async def append(self, tenant: str, session_id: str, messages: Sequence[Message]) -> None:
        """Add one turn's messages; keep the newest `max_messages`; live for the TTL."""
        key = self._key(tenant, session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *(m.model_dump_json(exclude_none=True) for m in messages))
                pipe.ltrim(key, -self._max_messages, -1)
                pipe.pexpire(key, self._ttl_ms)
                pipe.pexpire(self._keys.pair("session-summary", tenant, session_id), self._ttl_ms)
                await pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def summary(self, tenant: str, session_id: str) -> str | None:
        """The running summary of the session's older turns, if any."""
        try:
            found = await self._redis.get(self._keys.pair("session-summary", tenant, session_id))
        except RedisError as exc:
            raise _unavailable(exc) from exc
        if found is None:
            return None
        return found if isinstance(found, str) else found.decode()

    async def fold(self, tenant: str, session_id: str, dropped: int, summary: str) -> None:
        """Drop the `dropped` oldest messages and keep `summary`, for the session's TTL."""
        key = self._key(tenant, session_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.ltrim(key, dropped, -1)
                pipe.set(
                    self._keys.pair("session-summary", tenant, session_id),
                    summary,
                    px=self._ttl_ms,
                )
                await pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc

    async def ttl_s(self, tenant: str, session_id: str) -> float | None:
        """Seconds until the session expires; None when there is none."""
        try:
            left = await self._redis.pttl(self._key(tenant, session_id))
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return None if left < 0 else left / 1000

    async def delete(self, tenant: str, session_id: str) -> bool:
        """Forget the session; whether there was one."""
        summary = self._keys.pair("session-summary", tenant, session_id)
        try:
            return bool(await self._redis.delete(self._key(tenant, session_id), summary))
        except RedisError as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: RedisError) -> ServiceBusy:
    return ServiceBusy(f"the session store is unavailable: {type(exc).__name__}", retry_after_s=1)
