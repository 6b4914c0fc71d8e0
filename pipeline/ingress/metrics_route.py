"""`GET /metrics` on the ingress: open while API keys are not required, else the admin's.

The series name every tenant (and what each spent), so once keys are required a tenant's
key may not read them: Prometheus scrapes with the admin key as its bearer token
(`authorization: {credentials: ...}` in its scrape config). While no keys are required
(the embedded default) the endpoint is open, as every other route is.
"""

from aiohttp import web

from pipeline.errors import PermissionDenied
from pipeline.ingress.keys import SERVICES
from pipeline.ingress.middleware import Handler
from pipeline.ingress.principal import principal_of


def admin_once_keys_are_required(handler: Handler) -> Handler:
    """`handler`, refusing (403) any caller but the admin while keys are required."""

    async def get_metrics(request: web.Request) -> web.StreamResponse:
        if not principal_of(request).admin and await request.app[SERVICES].tenancy.keys_required():
            raise PermissionDenied(
                "/metrics names every tenant: it needs the admin key (PROMPTBUS_ADMIN_KEY) "
                "while API keys are required"
            )
        return await handler(request)

    return get_metrics
