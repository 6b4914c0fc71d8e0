"""The Gemini routes: `POST /{version}/models/{model}:{method}` and the model listing."""

from typing import Final

from aiohttp import web

from pipeline.catalog import Route
from pipeline.errors import ContentBlocked, ValidationFailed
from pipeline.ingress.body import read_json
from pipeline.ingress.compat.errors import speaking
from pipeline.ingress.compat.gemini import models
from pipeline.ingress.compat.gemini.answers import blocked_object, render_answer
from pipeline.ingress.compat.gemini.errors import render_error
from pipeline.ingress.compat.gemini.requests import to_generate_request
from pipeline.ingress.compat.gemini.streams import GeminiStream, JsonArrayStream, SseStream
from pipeline.ingress.compat.gemini.tokens import count_tokens
from pipeline.ingress.compat.gemini.wire import CountTokensRequest, GenerateContentRequest, read
from pipeline.ingress.keys import SERVICES, SETTINGS
from pipeline.ingress.middleware import REQUEST_ID_KEY
from pipeline.ingress.permit import check_model
from pipeline.ingress.principal import principal_of
from pipeline.ingress.serve import serve

VERSIONS: Final = ("v1", "v1beta")
GENERATE: Final = "generateContent"
STREAM: Final = "streamGenerateContent"
COUNT: Final = "countTokens"

gemini_errors = speaking(render_error)


def _model_version(route: Route) -> str | None:
    """The provider model that will answer, when the route has only one."""
    return route.deployments[0].spec.provider_model if route.single else None


def _stream_format(request: web.Request, route: Route, *, streamed: bool) -> GeminiStream:
    """The chunks `?alt=` asks for (serve needs a format for a plain answer too: unused)."""
    alt = request.query.get("alt") if streamed else "sse"
    kind: type[GeminiStream]
    if alt == "sse":
        kind = SseStream
    elif alt in (None, "json"):
        kind = JsonArrayStream
    else:
        raise ValidationFailed(f"alt must be 'sse' or 'json', not {alt!r}", field="alt")
    return kind(response_id=f"gen_{request[REQUEST_ID_KEY]}", model_version=_model_version(route))


async def _generate(request: web.Request, *, stream: bool) -> web.StreamResponse:
    """One model's answer to a GenerateContentRequest, plain or streamed."""
    name = models.model_name(request.match_info["model"])
    route = request.app[SERVICES].ctx.catalog.route(name)  # UnknownModel: a 404
    raw = await read_json(request, request.app[SETTINGS].max_body_bytes)
    body = to_generate_request(read(GenerateContentRequest, raw), model=name, stream=stream)
    fmt = _stream_format(request, route, streamed=stream)
    try:
        return await serve(
            request,
            body,
            stream=fmt,
            render=render_answer,
            stream_headers=fmt.headers,
            tenant=principal_of(request).tenant,
        )
    except ContentBlocked as exc:
        # Gemini answers a blocked prompt or answer with a 200 that says so.
        if stream:
            return web.Response(body=fmt.blocked(exc), headers={**fmt.headers, "X-Cache": "MISS"})
        blocked = blocked_object(
            exc, response_id=f"gen_{request[REQUEST_ID_KEY]}", model_version=_model_version(route)
        )
        return web.json_response(blocked, headers={"X-Cache": "MISS"})


@gemini_errors
async def post_generate_content(request: web.Request) -> web.StreamResponse:
    """`:generateContent`: one answer."""
    return await _generate(request, stream=False)


@gemini_errors
async def post_stream_generate_content(request: web.Request) -> web.StreamResponse:
    """`:streamGenerateContent`: one answer, a chunk at a time."""
    return await _generate(request, stream=True)


@gemini_errors
async def post_count_tokens(request: web.Request) -> web.StreamResponse:
    """`:countTokens`: the input tokens of a conversation, nothing generated."""
    name = models.model_name(request.match_info["model"])
    route = request.app[SERVICES].ctx.catalog.route(name)
    check_model(request, name)
    raw = await read_json(request, request.app[SETTINGS].max_body_bytes)
    return await count_tokens(request, route, read(CountTokensRequest, raw))


list_models = gemini_errors(models.list_models)
get_model = gemini_errors(models.get_model)


def add_routes(app: web.Application) -> None:
    """Serve the Gemini routes on `app` (`GET /v1/models` is the OpenAI API's: it hands
    Gemini's callers to `list_models` and `get_model`)."""
    methods = {
        GENERATE: post_generate_content,
        STREAM: post_stream_generate_content,
        COUNT: post_count_tokens,
    }
    for version in VERSIONS:
        for method, handler in methods.items():
            # `.+`: a model's name may hold slashes (vLLM's "org/model").
            app.router.add_post(f"/{version}/models/{{model:.+}}:{method}", handler)
    app.router.add_get("/v1beta/models", list_models)
    app.router.add_get("/v1beta/models/{model:.+}", get_model)
