"""The OpenAI-compatible API: the official `openai` SDK works with `base_url=.../v1`."""

from aiohttp import web

from pipeline.ingress.body import read_json
from pipeline.ingress.compat import gemini
from pipeline.ingress.compat.errors import speaking
from pipeline.ingress.compat.openai.answers import ChatStream, render_completion
from pipeline.ingress.compat.openai.errors import render_error
from pipeline.ingress.compat.openai.models import get_model, list_models
from pipeline.ingress.compat.openai.requests import read_request, to_generate_request
from pipeline.ingress.keys import SETTINGS
from pipeline.ingress.middleware import REQUEST_ID_KEY, Handler
from pipeline.ingress.principal import principal_of
from pipeline.ingress.serve import serve
from pipeline.ingress.sessions import session_header

openai_errors = speaking(render_error)


@openai_errors
async def post_chat_completions(request: web.Request) -> web.StreamResponse:
    """`POST /v1/chat/completions`: one answer, plain or as `chat.completion.chunk`s."""
    chat = read_request(await read_json(request, request.app[SETTINGS].max_body_bytes))
    body = to_generate_request(chat)
    if (session_id := session_header(request)) is not None:
        body = body.model_copy(update={"session_id": session_id})
    stream = ChatStream(
        completion_id=request[REQUEST_ID_KEY], model=chat.model, include_usage=chat.include_usage
    )
    return await serve(
        request,
        body,
        stream=stream,
        render=render_completion,
        tenant=principal_of(request).tenant,
        surface="chat",
    )


def _shared(openai_handler: Handler, gemini_handler: Handler) -> Handler:
    """A route both APIs call by the same path: Gemini's callers get Gemini's shape."""
    spoken = openai_errors(openai_handler)

    async def either(request: web.Request) -> web.StreamResponse:
        if gemini.is_gemini_request(request):
            return await gemini_handler(request)
        return await spoken(request)

    return either


def add_routes(app: web.Application) -> None:
    """Serve the OpenAI-compatible routes on `app` (`/v1/models` shared with Gemini's API)."""
    app.router.add_post("/v1/chat/completions", post_chat_completions)
    app.router.add_get("/v1/models", _shared(list_models, gemini.list_models))
    app.router.add_get("/v1/models/{model_id}", _shared(get_model, gemini.get_model))
