"""Identify: the key that identical requests share (the cache key), from the resolved model."""

from handlers.context import StageContext
from pipeline.cache.keys import cache_key
from pipeline.catalog import ModelCatalog
from schemas import GenerateRequest, StageEnvelope


def identify(catalog: ModelCatalog, request: GenerateRequest, tenant: str) -> str:
    """The request's cache key; UnknownModel if its model is not in the catalogue.

    A model or alias keys as its provider model, so both share entries; a route of several
    deployments keys as the route, since any of them may answer.
    """
    route = catalog.route(request.model)
    if route.single:
        spec = route.deployments[0].spec
        return cache_key(
            request, tenant=tenant, provider=spec.provider, provider_model=spec.provider_model
        )
    return cache_key(request, tenant=tenant, provider="route", provider_model=route.name)


async def identified(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """The envelope with its cache key (kept when it already has one)."""
    if envelope.cache_key is not None:
        return envelope
    key = identify(ctx.catalog, envelope.request, envelope.tenant)
    return envelope.model_copy(update={"cache_key": key})
