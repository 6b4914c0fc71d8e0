"""The Gemini routes: `POST /{version}/models/{model}:{method}` and the model listing."""

from typing import Final

from aiohttp import web

from pipeline.catalog import Route
from pipeline.errors import ContentBlocked, NotFound, ValidationFailed
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
from pipeline.ingress.serve import serve

VERSIONS: Final = ("v1", "v1beta")
GENERATE: Final = "generateContent"
STREAM: Final = "streamGenerateContent"
COUNT: Final = "countTokens"

gemini_errors = speaking(render_error)


def _target(target: str) -> tuple[str, str]:
    """The model and the method of a `<model>:<method>` path segment."""
    name, sep, method = target.rpartition(":")
    if not sep or not name or method not in (GENERATE, STREAM, COUNT):
        raise NotFound(f"unknown method {target!r}: {GENERATE}, {STREAM} or {COUNT}")
    return models.model_name(name), method


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


@gemini_errors
async def post_model_method(request: web.Request) -> web.StreamResponse:
    """`:generateContent`, `:streamGenerateContent` and `:countTokens` of one model."""
    name, method = _target(request.match_info["target"])
    route = request.app[SERVICES].ctx.catalog.route(name)  # UnknownModel: a 404
    raw = await read_json(request, request.app[SETTINGS].max_body_bytes)
    if method == COUNT:
        return await count_tokens(request, route, read(CountTokensRequest, raw))
    body = to_generate_request(
        read(GenerateContentRequest, raw), model=name, stream=method == STREAM
    )
    fmt = _stream_format(request, route, streamed=body.stream)
    try:
        return await serve(
            request, body, stream=fmt, render=render_answer, stream_headers=fmt.headers
        )
    except ContentBlocked as exc:
        # Gemini answers a blocked prompt or answer with a 200 that says so.
        if body.stream:
            return web.Response(body=fmt.blocked(exc), headers={**fmt.headers, "X-Cache": "MISS"})
        blocked = blocked_object(
            exc, response_id=f"gen_{request[REQUEST_ID_KEY]}", model_version=_model_version(route)
        )
        return web.json_response(blocked, headers={"X-Cache": "MISS"})


list_models = gemini_errors(models.list_models)
get_model = gemini_errors(models.get_model)


def add_routes(app: web.Application) -> None:
    """Serve the Gemini routes on `app` (`GET /v1/models` is the OpenAI API's: it hands
    Gemini's callers to `list_models` and `get_model`)."""
    for version in VERSIONS:
        app.router.add_post(f"/{version}/models/{{target:.+}}", post_model_method)
    app.router.add_get("/v1beta/models", list_models)
    app.router.add_get("/v1beta/models/{model:.+}", get_model)
