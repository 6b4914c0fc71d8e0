"""Liveness and readiness."""

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


async def _redis_ready(redis: Redis) -> bool:
    """Whether Redis answers a PING (the client's own timeout bounds it)."""
    try:
        return bool(await redis.ping())
    except (RedisError, OSError):
        return False
