"""Where shared state lives: in memory for one process, or in Redis for many."""

from dataclasses import dataclass

from redis.asyncio import Redis

from pipeline.cache.lru import LRUMemoryCache
from pipeline.cache.redis_tier import RedisTier
from pipeline.cache.responses import ResponseCache
from pipeline.cache.serializers import BytesSerializer
from pipeline.cache.tiered import TieredResponseCache
from pipeline.coalesce import RedisSingleFlight
from pipeline.jobs.deltas import MAX_WAIT_S, DeltaFeed
from pipeline.jobs.memory import MemoryJobStore
from pipeline.jobs.memory_deltas import MemoryDeltaFeed
from pipeline.jobs.redis_deltas import RedisDeltaFeed
from pipeline.jobs.redis_store import RedisJobStore
from pipeline.jobs.store import JobStore
from pipeline.redis_client import redis_from_url
from pipeline.redis_guard import RedisGuard
from pipeline.resilience.ratelimit import MemoryRateLimiter, RateLimiter
from pipeline.resilience.redis_ratelimit import RedisRateLimiter
from pipeline.settings import Settings
from pipeline.webhooks.redis_registry import RedisWebhookRegistry
from pipeline.webhooks.registry import MemoryWebhookRegistry, WebhookRegistry


@dataclass
class Backends:
    """The cache, the job store and delta feed, webhooks, the cross-process lock, rate limits."""

    l1: LRUMemoryCache
    cache: ResponseCache
    jobs: JobStore
    deltas: DeltaFeed
    webhooks: WebhookRegistry
    across_processes: RedisSingleFlight | None
    limiter: RateLimiter
    redis: Redis | None

    async def close(self) -> None:
        """Close the L1 cache and the Redis connections."""
        await self.l1.close()
        await self.deltas.close()
        if self.redis is not None:
            await self.redis.aclose()


def build_backends(settings: Settings) -> Backends:
    """Memory backends, or Redis ones when `PROMPTBUS_REDIS_URL` is set (L1 stays in process)."""
    l1 = LRUMemoryCache(
        max_entries=settings.cache_max_entries,
        max_bytes=settings.cache_max_bytes,
        namespace="promptbus:",
        serializer=BytesSerializer(),
    )
    if settings.redis_url is None:
        return Backends(
            l1=l1,
            cache=ResponseCache(l1, default_ttl_s=settings.cache_default_ttl_s),
            jobs=MemoryJobStore(retention_s=settings.job_retention_s, max_jobs=settings.max_jobs),
            deltas=MemoryDeltaFeed(
                max_deltas=settings.job_stream_max_deltas,
                max_jobs=settings.job_stream_max_jobs,
                retention_s=settings.job_retention_s,
            ),
            webhooks=MemoryWebhookRegistry(max_jobs_tracked=settings.max_jobs),
            across_processes=None,
            limiter=MemoryRateLimiter(),
            redis=None,
        )
    redis = redis_from_url(settings.redis_url, timeout_s=settings.redis_timeout_s)
    prefix = settings.redis_prefix
    # One guard for the cache and the lock: they see Redis go and come back together.
    guard = RedisGuard(
        timeout_s=settings.redis_timeout_s, retry_after_s=settings.redis_retry_after_s
    )
    return Backends(
        l1=l1,
        cache=TieredResponseCache(
            l1, RedisTier(redis, guard, prefix=prefix), default_ttl_s=settings.cache_default_ttl_s
        ),
        jobs=RedisJobStore(
            redis, prefix=prefix, retention_s=settings.job_retention_s, max_jobs=settings.max_jobs
        ),
        deltas=RedisDeltaFeed(
            redis,
            # Its waiting reads (XREAD BLOCK) outlast the usual bound on a reply by the wait.
            redis_from_url(settings.redis_url, timeout_s=settings.redis_timeout_s + MAX_WAIT_S),
            prefix=prefix,
            max_deltas=settings.job_stream_max_deltas,
            retention_s=settings.job_retention_s,
        ),
        webhooks=RedisWebhookRegistry(
            redis,
            prefix=prefix,
            max_jobs_tracked=settings.max_jobs,
            retention_s=settings.job_retention_s,
        ),
        across_processes=RedisSingleFlight(
            redis,
            prefix=prefix,
            lock_ttl_s=settings.lock_ttl_s,
            # Below the in-process wait, so a follower takes over before its caller gives up.
            wait_s=settings.coalesce_wait_s / 2,
            guard=guard,
        ),
        limiter=RedisRateLimiter(redis, prefix=prefix, guard=guard),
        redis=redis,
    )
