"""The session store a process runs with: Redis when `PROMPTBUS_REDIS_URL` is set."""

from redis.asyncio import Redis

from pipeline.sessions.memory import MemorySessions
from pipeline.sessions.redis_store import RedisSessions
from pipeline.sessions.store import SessionStore
from pipeline.settings import Settings


def build_sessions(settings: Settings, redis: Redis | None) -> SessionStore:
    """Sessions in Redis, shared by every process; else in this one, bounded in count."""
    if redis is not None:
        return RedisSessions(
            redis,
            prefix=settings.redis_prefix,
            ttl_s=settings.session_ttl_s,
            max_messages=settings.session_max_messages,
            lock_wait_s=settings.session_lock_wait_s,
            turn_timeout_s=settings.session_turn_timeout_s,
        )
    return MemorySessions(
        ttl_s=settings.session_ttl_s,
        max_sessions=settings.session_max_sessions,
        max_messages=settings.session_max_messages,
        lock_wait_s=settings.session_lock_wait_s,
    )
