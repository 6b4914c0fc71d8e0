"""Liveness, readiness and the model list."""

from aiohttp import web

from pipeline.ingress.keys import RUNTIME


async def get_healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def get_readyz(request: web.Request) -> web.Response:
    """The provider answers and the cache works; 503 otherwise."""
    runtime = request.app[RUNTIME]
    checks = {
        "provider": await runtime.gemini.ready(),
        "cache": await runtime.ctx.cache.ping(),
    }
    status = 200 if all(checks.values()) else 503
    return web.json_response(
        {"status": "ready" if status == 200 else "not_ready", "checks": checks}, status=status
    )


async def get_models(request: web.Request) -> web.Response:
    """Every model a request may name, with its aliases and prices."""
    catalog = request.app[RUNTIME].catalog
    data = [
        {
            "id": spec.provider_model,
            "provider": spec.provider,
            "aliases": list(spec.aliases),
            "input_per_million_usd": spec.input_per_million,
            "output_per_million_usd": spec.output_per_million,
        }
        for spec in catalog.specs()
    ]
    return web.json_response({"data": data})
