"""POST /v1/generate: the sync fast path."""

import math

import structlog
from aiohttp import web

from pipeline.ingress.body import parse_model, read_json
from pipeline.ingress.cache_control import merge_cache_control
from pipeline.ingress.keys import RUNTIME, SETTINGS
from pipeline.ingress.middleware import REQUEST_ID_KEY
from schemas import GenerateRequest, StageEnvelope

DEFAULT_TENANT = "default"

log = structlog.get_logger("promptbus.ingress")


async def post_generate(request: web.Request) -> web.Response:
    """Answer one generate request, from the cache when possible."""
    settings = request.app[SETTINGS]
    body = parse_model(GenerateRequest, await read_json(request, settings.max_body_bytes))
    controls = merge_cache_control(request.headers.get("Cache-Control"), body.cache)
    if controls is not body.cache:
        body = body.model_copy(update={"cache": controls})
    envelope = StageEnvelope(
        request_id=request[REQUEST_ID_KEY],
        tenant=DEFAULT_TENANT,
        request=body,
        max_age_s=controls.max_age,
    )
    answer = await request.app[RUNTIME].sync_path.answer(envelope)
    headers = {"X-Cache": "HIT" if answer.cache.hit else "MISS"}
    if answer.cache.hit and answer.cache.age_s is not None:
        headers["Age"] = str(math.floor(answer.cache.age_s))
    else:
        log.info(
            "generated",
            model=answer.provider_model,
            coalesced=answer.cache.coalesced,
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
        )
    return web.Response(
        body=answer.model_dump_json(), content_type="application/json", headers=headers
    )
