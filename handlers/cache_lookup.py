"""Cache lookup: answer from the cache when a fresh enough answer is stored."""

import time

from handlers.context import StageContext
from schemas import StageEnvelope


async def cache_lookup(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Attach the cached answer, marked as a hit, if the request accepts one."""
    if envelope.request.cache.no_cache or envelope.cache_key is None:
        return envelope
    cached = await ctx.cache.get(envelope.cache_key)
    if cached is None:
        return envelope
    age = cached.age(time.time())
    if envelope.max_age_s is not None and age > envelope.max_age_s:
        return envelope
    response = cached.response(
        hit=True, tier=ctx.cache.tier, age_s=round(age, 3), stored=False, coalesced=False
    )
    return envelope.model_copy(update={"response": response})
