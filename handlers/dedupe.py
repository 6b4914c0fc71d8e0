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
    """The request's identity; UnknownModel if its model is not in the catalogue.

    A model or alias keys as its provider model, so both share entries; a route of several
    deployments keys as the route, since any of them may answer.
    """
    route = catalog.route(request.model)
    primary = route.deployments[0].spec
    provider, model = (
        (primary.provider, primary.provider_model) if route.single else ("route", route.name)
    )
    key = cache_key(request, tenant=tenant, provider=provider, provider_model=model)
    return Identity(primary.provider, primary.provider_model, key)


async def dedupe(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """Resolve the model and compute the key identical requests share."""
    identity = identify(ctx.catalog, envelope.request, envelope.tenant)
    return envelope.model_copy(update=identity._asdict())
