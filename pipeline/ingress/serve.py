"""One request through the one path: cache, coalescing, routing; plain or streamed.

Every API surface (promptbus's own and the compatible ones) parses its body into a
`GenerateRequest`, then hands it here with its own renderings of an answer and a stream.
"""

from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from handlers import identify
from pipeline.ingress.cache_control import merge_cache_control
from pipeline.ingress.keys import SEND, SERVICES
from pipeline.ingress.middleware import REQUEST_ID_KEY
from pipeline.ingress.permit import permit
from pipeline.ingress.principal import principal_of
from pipeline.ingress.sse import StreamFormat, answer_headers, send_stream
from pipeline.sync_path import LiveStream
from schemas import GenerateRequest, GenerateResponse

# How a surface renders a whole answer (its JSON body, parsed) as its own response body.
AnswerRenderer = Callable[[bytes, Mapping[str, Any]], bytes]


async def serve(
    request: web.Request,
    body: GenerateRequest,
    *,
    stream: StreamFormat,
    render: AnswerRenderer | None = None,
    key: str | None = None,
    tenant: str,
    stream_headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Answer `body` as a plain response (`render`ed; None: promptbus's own) or a stream.

    `tenant` is the request's (its principal's): the cache key and coalescing are its own.
    The request's key must allow the model (pipeline/ingress/permit.py).
    The request's `Cache-Control` header tightens the body's cache controls.
    `stream_headers` go on a streamed answer (a format that is not SSE names its type).
    """
    await permit(request, body)
    send = request.app[SEND]
    controls = merge_cache_control(request.headers.get("Cache-Control"), body.cache)
    if controls is not body.cache:
        # Cache controls are not part of the key: a key given stays right.
        body = body.model_copy(update={"cache": controls})
    key = key or identify(request.app[SERVICES].ctx.catalog, body, tenant)
    request_id = request[REQUEST_ID_KEY]
    key_id = principal_of(request).key_id
    if body.stream:
        async with send.sync_path.stream(
            body,
            request_id=request_id,
            tenant=tenant,
            max_age_s=controls.max_age,
            key=key,
            key_id=key_id,
        ) as streamed:
            sent = await send_stream(request, streamed, stream, stream_headers)
            if isinstance(streamed, LiveStream) and not streamed.shared:
                _spent(request, streamed.response)
            return sent
    answer = await send.sync_path.answer(
        body,
        request_id=request_id,
        tenant=tenant,
        max_age_s=controls.max_age,
        key=key,
        key_id=key_id,
    )
    if answer.response is not None:
        _spent(request, answer.response)
    payload = answer.body if render is None else render(answer.body, orjson.loads(answer.body))
    headers = {"Content-Type": "application/json", **answer_headers(answer)}
    return web.Response(body=payload, headers=headers)


def _spent(request: web.Request, response: GenerateResponse | None) -> None:
    """Count what a generated answer spent, for the tenant asking (a shared one spent nothing)."""
    if response is None or response.cache.hit or response.cache.coalesced:
        return
    metrics = request.app[SERVICES].metrics
    metrics.spent(
        response.provider_model, principal_of(request).tenant, response.usage, response.cost
    )
