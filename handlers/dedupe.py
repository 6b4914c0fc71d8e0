"""Dedupe: resolve the model and give the request its identity, the cache key."""

from handlers.context import StageContext
from pipeline.cache.keys import cache_key
from schemas import StageEnvelope


async def dedupe(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Resolve the model and compute the key identical requests share."""
    spec = ctx.catalog.resolve(envelope.request.model)
    key = cache_key(
        envelope.request,
        tenant=envelope.tenant,
        provider=spec.provider,
        provider_model=spec.provider_model,
    )
    return envelope.model_copy(
        update={"provider": spec.provider, "provider_model": spec.provider_model, "cache_key": key}
    )
