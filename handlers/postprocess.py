"""Post-process: price the answer, shape the response and store it in the cache."""

import time

from handlers.context import StageContext
from schemas import CacheInfo, GenerateResponse, RoutingInfo, StageEnvelope


async def postprocess(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Attach the priced response, stored unless the request said `no_store`."""
    generation = envelope.generation
    if generation is None or envelope.cache_key is None:
        raise ValueError("post-process needs a generation: run generate first")
    request = envelope.request
    spec = ctx.catalog.deployment(generation.provider, generation.provider_model)
    if spec is None:
        spec = ctx.catalog.resolve(request.model)
    ttl = request.cache.ttl or ctx.cache.default_ttl_s
    response = GenerateResponse(
        id=f"gen_{envelope.request_id}",
        model=request.model,
        provider=generation.provider,
        provider_model=generation.provider_model,
        text=generation.text,
        tool_calls=generation.tool_calls,
        finish_reason=generation.finish_reason,
        usage=generation.usage,
        cost=spec.cost(generation.usage),
        cache=CacheInfo(hit=False, key=envelope.cache_key, ttl_s=ttl),
        routing=_routing(envelope, generation.provider, generation.provider_model),
        json_=generation.json_,
        created=time.time(),
    )
    if ctx.budgets is not None:
        await ctx.budgets.charge(envelope.tenant, envelope.key_id, response.cost.total_usd)
    stored = False
    if not request.cache.no_store:
        stored = await ctx.cache.put(envelope.cache_key, response, ttl)
    if stored:
        response = response.model_copy(
            update={"cache": response.cache.model_copy(update={"stored": True})}
        )
    return envelope.model_copy(update={"response": response})


def _routing(envelope: StageEnvelope, provider: str, provider_model: str) -> RoutingInfo:
    """Which deployment answered and how many calls it took (one, unless routing says more)."""
    state = envelope.routing
    return RoutingInfo(
        deployment=f"{provider}/{provider_model}",
        attempts=max(1, state.attempts) if state else 1,
        fallbacks=state.tried if state else (),
        strategy=state.strategy if state else None,
    )
