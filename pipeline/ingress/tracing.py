"""The span of each HTTP request: a server span named by its matched route.

Installed only when tracing is on, as the outermost middleware, so that it sees the status
of every answer, errors rendered by the request-context middleware included. A request that
carries a W3C `traceparent` continues its caller's trace.
"""

from aiohttp import web
from opentelemetry.trace import Span, SpanKind

from pipeline.ingress.keys import SERVICES
from pipeline.ingress.middleware import Handler
from pipeline.tracing import failed, from_headers, names, span


@web.middleware
async def traced_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the request inside its server span, and record the status it ends with."""
    tracer = request.app[SERVICES].tracing.tracer
    if tracer is None:
        return await handler(request)
    method = request.method
    attributes = {
        names.HTTP_METHOD: method,
        names.URL_PATH: request.path,
        names.URL_SCHEME: request.scheme,
    }
    # The route's pattern (`/v1/jobs/{job_id}`), never the path: span names stay few.
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else None
    if route is not None:
        attributes[names.HTTP_ROUTE] = route
    name = f"{method} {route}" if route is not None else method
    with span(
        tracer,
        name,
        kind=SpanKind.SERVER,
        attributes=attributes,
        parent=from_headers(request.headers),
        passing=(web.HTTPException,),
    ) as current:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a redirect or the like, answered by aiohttp
            _ended(current, exc.status)
            raise
        _ended(current, response.status)
        return response


def _ended(current: Span, status: int) -> None:
    current.set_attribute(names.HTTP_STATUS, status)
    if status >= 500:
        # Server spans fail on 5xx only: a 4xx is the caller's error, not the server's.
        failed(current, str(status))
