"""POST /v1/generate: the sync fast path."""

import math

from aiohttp import web

from pipeline.ingress.body import read_body
from pipeline.ingress.cache_control import merge_cache_control
from pipeline.ingress.keys import SEND, SETTINGS
from pipeline.ingress.middleware import REQUEST_ID_KEY
from pipeline.ingress.sse import PromptbusStream, send_stream
from schemas import DEFAULT_TENANT

PROMPTBUS_STREAM = PromptbusStream()


async def post_generate(request: web.Request) -> web.StreamResponse:
    """Answer one generate request, from the cache when possible; streamed if it asks."""
    raw = await read_body(request, request.app[SETTINGS].max_body_bytes)
    send = request.app[SEND]
    body, key = send.bodies.resolve(raw, DEFAULT_TENANT)
    controls = merge_cache_control(request.headers.get("Cache-Control"), body.cache)
    if controls is not body.cache:
        body = body.model_copy(update={"cache": controls})
    if body.stream:
        async with send.sync_path.stream(
            body,
            request_id=request[REQUEST_ID_KEY],
            tenant=DEFAULT_TENANT,
            max_age_s=controls.max_age,
            key=key,
        ) as streamed:
            return await send_stream(request, streamed, PROMPTBUS_STREAM)
    answer = await send.sync_path.answer(
        body,
        request_id=request[REQUEST_ID_KEY],
        tenant=DEFAULT_TENANT,
        max_age_s=controls.max_age,
        key=key,
    )
    headers = {"Content-Type": "application/json"}
    if answer.age_s is None:
        headers["X-Cache"] = "MISS"
    else:
        headers["X-Cache"] = "HIT"
        headers["Age"] = str(math.floor(answer.age_s))
    return web.Response(body=answer.body, headers=headers)
