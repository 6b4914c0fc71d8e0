"""Cache lookup: answer from the cache when a fresh enough answer is stored."""

import time

from handlers.context import StageContext
from schemas import StageEnvelope


async def cache_lookup(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Attach the cached answer, marked as a hit, if the request accepts one."""
    key = envelope.cache_key
    if key is None:
        raise ValueError("cache lookup needs the request's key: identify it first")
    if envelope.request.cache.no_cache:
        ctx.metrics.cache_bypass()
        return envelope
    now = time.time()
    cached = await ctx.cache.fresh(key, envelope.max_age_s, now)
    if cached is None:
        ctx.metrics.cache_miss()
        return envelope
    ctx.metrics.cache_hit(cached.tier)
    response = cached.response(key, tier=cached.tier, age_s=cached.age(now))
    return envelope.model_copy(update={"response": response})
