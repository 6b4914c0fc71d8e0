"""Liveness, readiness and the model list."""

import os

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pipeline.ingress.keys import SERVICES


async def get_healthz(request: web.Request) -> web.Response:
    """The process is up, and which one answered (several may share the port)."""
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def get_readyz(request: web.Request) -> web.Response:
    """The provider answers and the cache works; 503 otherwise."""
    services = request.app[SERVICES]
    checks = {
        "provider": await services.providers_ready(),
        "cache": await services.ctx.cache.ping(),
    }
    if services.backends.redis is not None:
        checks["redis"] = await _redis_ready(services.backends.redis)
    status = 200 if all(checks.values()) else 503
    return web.json_response(
        {"status": "ready" if status == 200 else "not_ready", "checks": checks}, status=status
    )


async def get_models(request: web.Request) -> web.Response:
    """Every model and route a request may name: aliases, prices, limits and circuit state."""
    ctx = request.app[SERVICES].ctx
    catalog, breaker = ctx.catalog, ctx.router.breaker
    data = [
        {
            "id": spec.provider_model,
            "provider": spec.provider,
            "aliases": list(spec.aliases),
            "input_per_million_usd": spec.input_per_million,
            "output_per_million_usd": spec.output_per_million,
            "rpm": spec.rpm,
            "tpm": spec.tpm,
            "circuit": breaker.state(spec.deployment),
        }
        for spec in catalog.specs()
    ]
    routes = [
        {
            "id": route.name,
            "strategy": route.strategy,
            "fallback_on_blocked": route.fallback_on_blocked,
            "deployments": [{"deployment": d.name, "weight": d.weight} for d in route.deployments],
        }
        for route in catalog.routes()
    ]
    return web.json_response({"data": data, "routes": routes})


async def _redis_ready(redis: Redis) -> bool:
    """Whether Redis answers a PING (the client's own timeout bounds it)."""
    try:
        return bool(await redis.ping())
    except (RedisError, OSError):
        return False
