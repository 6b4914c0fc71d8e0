"""`GET /{version}/models` and `GET /{version}/models/{model}` in Gemini's list and Model shapes.

Every name a request may use is a model here: each provider model, each alias and each
route of the catalogue, as `models/<name>`. promptbus's own account (provider, aliases,
prices, circuit state, a route's deployments) rides along under the extra key `promptbus`.
"""

from typing import Any, Final

from aiohttp import web

from pipeline.catalog import ModelCatalog, ModelSpec, Route
from pipeline.errors import ValidationFailed
from pipeline.ingress.keys import SERVICES
from pipeline.resilience.breaker import CircuitBreaker

METHODS: Final = ("generateContent", "streamGenerateContent", "countTokens")
PREFIX: Final = "models/"
_PAGE_SIZE: Final = 50
_MAX_PAGE_SIZE: Final = 1000


def model_name(name: str) -> str:
    """A model named in a path, without the `models/` Google's SDKs put before it."""
    return name.removeprefix(PREFIX)


def _spec_object(name: str, spec: ModelSpec, breaker: CircuitBreaker) -> dict[str, Any]:
    alias = name != spec.provider_model
    about = f"{'alias of ' if alias else ''}{spec.provider_model} ({spec.provider})"
    return {
        "name": PREFIX + name,
        "baseModelId": spec.provider_model,
        "displayName": name,
        "description": f"promptbus: {about}",
        "supportedGenerationMethods": list(METHODS),
        "promptbus": {
            "provider": spec.provider,
            "provider_model": spec.provider_model,
            "aliases": list(spec.aliases),
            "input_per_million_usd": spec.input_per_million,
            "output_per_million_usd": spec.output_per_million,
            "rpm": spec.rpm,
            "tpm": spec.tpm,
            "circuit": breaker.state(spec.deployment),
        },
    }


def _route_object(route: Route) -> dict[str, Any]:
    names = ", ".join(d.name for d in route.deployments)
    return {
        "name": PREFIX + route.name,
        "displayName": route.name,
        "description": f"promptbus route ({route.strategy}) over {names}",
        "supportedGenerationMethods": list(METHODS),
        "promptbus": {
            "strategy": route.strategy,
            "fallback_on_blocked": route.fallback_on_blocked,
            "deployments": [{"deployment": d.name, "weight": d.weight} for d in route.deployments],
        },
    }


def model_object(catalog: ModelCatalog, name: str, breaker: CircuitBreaker) -> dict[str, Any]:
    """The Model that `name` (a provider model, alias or route) is; UnknownModel if none."""
    route = catalog.route(name)
    if route.single and route.name == route.deployments[0].spec.provider_model:
        return _spec_object(name, route.deployments[0].spec, breaker)
    return _route_object(route)


def _names(catalog: ModelCatalog) -> list[str]:
    """Every name a request may use: provider models, then aliases and routes."""
    models = [spec.provider_model for spec in catalog.specs()]
    return [*models, *(name for name in catalog.aliases() if name not in models)]


def _page(request: web.Request, total: int) -> tuple[int, int]:
    """The offset and size of the page asked for (`pageToken` is an offset)."""
    token, size = request.query.get("pageToken") or "0", request.query.get("pageSize")
    if not token.isdigit() or int(token) > total:
        raise ValidationFailed(f"invalid pageToken {token!r}", field="pageToken")
    if size is not None and not size.isdigit():
        raise ValidationFailed(f"invalid pageSize {size!r}", field="pageSize")
    wanted = int(size) if size else _PAGE_SIZE
    return int(token), min(wanted or _PAGE_SIZE, _MAX_PAGE_SIZE)


async def list_models(request: web.Request) -> web.Response:
    """A page of the models (`pageSize`, `pageToken`), and the next page's token if any."""
    ctx = request.app[SERVICES].ctx
    names = _names(ctx.catalog)
    start, size = _page(request, len(names))
    page = names[start : start + size]
    body: dict[str, Any] = {
        "models": [model_object(ctx.catalog, name, ctx.router.breaker) for name in page]
    }
    if start + size < len(names):
        body["nextPageToken"] = str(start + size)
    return web.json_response(body)


async def get_model(request: web.Request) -> web.Response:
    """One model by provider model, alias or route (`{model}` or `{model_id}` in the route)."""
    ctx = request.app[SERVICES].ctx
    raw = request.match_info.get("model") or request.match_info["model_id"]
    return web.json_response(model_object(ctx.catalog, model_name(raw), ctx.router.breaker))
