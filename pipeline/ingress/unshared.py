"""The routes that need state every process shares, when each process has its own."""

from collections.abc import Callable

from aiohttp import web

from pipeline.errors import JobsUnavailable
from pipeline.ingress.middleware import Handler
from pipeline.settings import Settings

Gate = Callable[[Handler], Handler]


def open_gate(handler: Handler) -> Handler:
    """The handler itself."""
    return handler


def shared_state_gate(settings: Settings) -> Gate:
    """Handlers as they are when state is shared; otherwise each answers 503 jobs_unavailable.

    Several processes without Redis each keep their own job store and webhook registry: a
    job would be readable only on the process that took it, so its routes say why instead.
    """
    if settings.shares_state:
        return open_gate
    message = (
        f"async jobs and webhook endpoints need PROMPTBUS_REDIS_URL when promptbus serves "
        f"from {settings.processes} processes: each would keep its own job store, and a job "
        "would be readable only on the process that took it. Set PROMPTBUS_REDIS_URL, or "
        "run one process."
    )

    async def unavailable(request: web.Request) -> web.StreamResponse:
        raise JobsUnavailable(message)

    return lambda handler: unavailable
