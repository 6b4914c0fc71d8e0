"""Dedupe: resolve the model and give the request its identity, the cache key."""

from typing import NamedTuple

from handlers.context import StageContext
from pipeline.cache.keys import cache_key
from pipeline.catalog import ModelCatalog
from schemas import GenerateRequest, StageEnvelope


class Identity(NamedTuple):
    """Who answers a request, and the key that identical requests share."""

    provider: str
    provider_model: str
    cache_key: str


def identify(catalog: ModelCatalog, request: GenerateRequest, tenant: str) -> Identity:
    """The request's identity; UnknownModel if its model is not in the catalogue."""
    spec = catalog.resolve(request.model)
    key = cache_key(
        request, tenant=tenant, provider=spec.provider, provider_model=spec.provider_model
    )
    return Identity(spec.provider, spec.provider_model, key)


async def dedupe(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Resolve the model and compute the key identical requests share."""
    identity = identify(ctx.catalog, envelope.request, envelope.tenant)
    return envelope.model_copy(update=identity._asdict())
