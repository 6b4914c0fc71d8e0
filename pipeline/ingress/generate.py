"""POST /v1/generate: the sync fast path, plain or streamed."""

from aiohttp import web

from pipeline.ingress.body import read_body
from pipeline.ingress.keys import SEND, SETTINGS
from pipeline.ingress.principal import principal_of
from pipeline.ingress.serve import serve
from pipeline.ingress.sse import PromptbusStream

PROMPTBUS_STREAM = PromptbusStream()


async def post_generate(request: web.Request) -> web.StreamResponse:
    """Answer one generate request, from the cache when possible; streamed if it asks."""
    raw = await read_body(request, request.app[SETTINGS].max_body_bytes)
    tenant = principal_of(request).tenant
    body, key = request.app[SEND].bodies.resolve(raw, tenant)
    return await serve(request, body, stream=PROMPTBUS_STREAM, key=key, tenant=tenant)
