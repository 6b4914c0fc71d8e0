"""`GET /v1/models` and `GET /v1/models/{model_id}` in OpenAI's list and model shapes.

Each model object keeps promptbus's own fields (aliases, prices, limits, circuit state)
as extra keys, and the list keeps its `routes`, so promptbus's own clients read on.
"""

from typing import Any, Final

from aiohttp import web

from pipeline.catalog import ModelSpec
from pipeline.ingress.keys import SERVICES
from pipeline.resilience.breaker import CircuitBreaker

# OpenAI's `created`; the catalogue has no dates, so one fixed time for all.
_CREATED: Final = 1_700_000_000


def _model(spec: ModelSpec, breaker: CircuitBreaker) -> dict[str, Any]:
    return {
        "id": spec.provider_model,
        "object": "model",
        "created": _CREATED,
        "owned_by": spec.provider,
        "provider": spec.provider,
        "aliases": list(spec.aliases),
        "input_per_million_usd": spec.input_per_million,
        "output_per_million_usd": spec.output_per_million,
        "rpm": spec.rpm,
        "tpm": spec.tpm,
        "circuit": breaker.state(spec.deployment),
    }


async def list_models(request: web.Request) -> web.Response:
    """Every model a request may name, and the routes over them."""
    ctx = request.app[SERVICES].ctx
    catalog, breaker = ctx.catalog, ctx.router.breaker
    routes = [
        {
            "id": route.name,
            "object": "model",
            "created": _CREATED,
            "owned_by": "promptbus",
            "strategy": route.strategy,
            "fallback_on_blocked": route.fallback_on_blocked,
            "deployments": [{"deployment": d.name, "weight": d.weight} for d in route.deployments],
        }
        for route in catalog.routes()
    ]
    data = [_model(spec, breaker) for spec in catalog.specs()]
    return web.json_response({"object": "list", "data": data, "routes": routes})


async def get_model(request: web.Request) -> web.Response:
    """One model by provider model, alias or route name; 404 if the catalogue has none."""
    ctx = request.app[SERVICES].ctx
    name = request.match_info["model_id"]
    route = ctx.catalog.route(name)  # UnknownModel (404) when it names nothing
    if route.single:
        found = _model(route.deployments[0].spec, ctx.router.breaker)
        return web.json_response({**found, "id": name})
    return web.json_response(
        {"id": route.name, "object": "model", "created": _CREATED, "owned_by": "promptbus"}
    )
